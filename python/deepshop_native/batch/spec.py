"""What a batch paints with: :class:`PaintSpec`, the model, styles and options, checked once on the
driver, picklable (the Ray engine ships it to every worker), with the hash of everything that
shapes the output's bytes (:meth:`PaintSpec.digest`: the manifest's "same options")."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from ..core import options
from ..core.errors import ImageError, OptionError
from ..core.files import check_regular_file, sha256_of
from ..image.limits import DEFAULT_MAX_PIXELS

__all__ = ["PaintSpec", "make_spec"]

#: Engine options that change how fast, not what (left out of the digest).
_SPEED_ONLY = ("threads",)
_MISSING = object()


def _engine_defaults() -> Dict[str, Any]:
    """The pipelines' own defaults: an option given at its default is the same run as one left out
    (the command line gives them all, the Python API only those named)."""
    from ..core.session import DEFAULT_OVERLAP, DEFAULT_STATISTICS_SIZE
    return {"device": "auto", "precision": "auto", "tile": "auto", "halo": None, "overlap": DEFAULT_OVERLAP,
            "batch": 1, "statistics": "auto", "statistics_size": DEFAULT_STATISTICS_SIZE, "value_range": None,
            "channel_order": None, "mean": None, "stride_multiple": None}


@dataclass(frozen=True)
class PaintSpec:
    """A checked set of painting options (:func:`make_spec` makes them).

    ``styles`` holds built-in style names and style images as their files' bytes (read on the
    driver, so that workers need no copy of them); ``model`` is a resolved path (every worker
    must see the file at that path) or None for the built-in styles.
    """

    model: Optional[str] = None
    model_sha256: Optional[str] = None
    styles: Tuple[Union[str, bytes], ...] = ()
    weights: Optional[Tuple[float, ...]] = None
    family_options: Tuple[Tuple[str, Any], ...] = ()
    engine: Tuple[Tuple[str, Any], ...] = ()
    working_size: Optional[int] = None
    strength: float = 1.0
    preserve_colors: bool = False
    max_side: Optional[int] = None
    quality: int = 95
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
    style_names: Tuple[str, ...] = field(default=(), compare=False)

    def settings(self) -> Dict[str, Any]:
        """The options that shape the output, as JSON values (the manifest's run record)."""
        return {
            "deepshop": _version(), "model": self.model, "model_sha256": self.model_sha256,
            "styles": [s if isinstance(s, str) else {"image": n, "sha256": hashlib.sha256(s).hexdigest()}
                       for s, n in zip(self.styles, self.style_names or [""] * len(self.styles))],
            "weights": list(self.weights) if self.weights else None,
            "family_options": dict(self.family_options),
            "engine": {k: v for k, v in self.engine
                       if k not in _SPEED_ONLY and _engine_defaults().get(k, _MISSING) != v},
            "working_size": self.working_size, "strength": self.strength, "preserve_colors": self.preserve_colors,
            "max_side": self.max_side, "quality": self.quality,
        }

    def digest(self) -> str:
        """A hash of :meth:`settings` without names and paths (a model or style image moved
        elsewhere is the same model): two runs with the same digest write the same bytes."""
        s = self.settings()
        s["model"] = None
        s["styles"] = [x if isinstance(x, str) else x["sha256"] for x in s["styles"]]
        text = json.dumps(s, sort_keys=True, default=repr, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def open_pipeline(self, threads: Optional[int] = None):
        """The pipeline that paints (models/styles.open_styled), its style set; ``threads``
        replaces the engine's thread count (each Ray worker uses its own share of the cores)."""
        from ..models.styles import open_styled
        engine = dict(self.engine)
        if threads is not None:
            engine["threads"] = threads
        if self.working_size is not None:
            engine["working_size"] = self.working_size
        return open_styled(self.model, list(self.styles), list(self.weights) if self.weights else None,
                           family_options=dict(self.family_options), **engine)


def _version() -> str:
    from .. import __version__
    return __version__


def _check_engine(engine: Dict[str, Any]) -> Dict[str, Any]:
    """The engine options, checked as Stylizer checks them (tile may be "auto", the provider's own)."""
    from ..core.session import PRECISIONS
    known = ("device", "tile", "halo", "overlap", "batch", "threads", "harmonize", "statistics", "statistics_size",
             "value_range", "channel_order", "mean", "stride_multiple")
    unknown = sorted(set(engine) - set(known) - {"precision"})
    if unknown:
        raise OptionError(f"{unknown[0]}: not an engine option; the engine options are "
                          + ", ".join(known + ("precision",)))
    given = {k: engine[k] for k in known if k in engine and not (k == "tile" and engine[k] == "auto")}
    checked = options.engine_options(**given)
    out = {k: checked[k] for k in given}
    if engine.get("tile") == "auto":
        out["tile"] = "auto"
    if "precision" in engine:
        if engine["precision"] not in PRECISIONS:
            raise OptionError(f"precision: must be one of {', '.join(PRECISIONS)}, got {engine['precision']!r}")
        out["precision"] = engine["precision"]
    return out


def _style_value(value) -> Tuple[Union[str, bytes], str]:
    """A style image file as its bytes (and its name), a built-in style's name as it is."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "<bytes>"
    if not isinstance(value, (str, os.PathLike)):
        raise OptionError(f"style: expected a style image file, its bytes or a built-in style's name, "
                          f"got {type(value).__name__}")
    text = os.fspath(value)
    try:
        is_file = os.path.isfile(text)
    except ValueError:
        is_file = False
    if not is_file:
        return text, text
    check_regular_file(text, "style image")
    try:
        with open(text, "rb") as f:
            return f.read(), text
    except OSError as e:
        raise ImageError(f"{text}: cannot read ({e.strerror or e})") from None


def make_spec(model=None, style: Sequence = (), style_weights: Optional[Sequence[float]] = None, *,
              strength: float = 1.0, preserve_colors: bool = False, max_side: Optional[int] = None,
              working_size: Optional[int] = None, quality: int = 95, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
              family_options: Optional[dict] = None, **engine) -> PaintSpec:
    """The options of a batch, checked before any file is touched (OptionError naming the
    option).  Arguments as ``deepshop stylize`` and ``ds.stylize`` take them; ``engine`` is the
    engine options (device, tile, precision, ...)."""
    from ..core.paths import resolve_model
    styles = [style] if isinstance(style, (str, os.PathLike, bytes, bytearray)) else list(style or ())
    values = [_style_value(s) for s in styles]
    weights = None
    if style_weights is not None:
        options.check_blend_weights(len(values), style_weights)
        weights = tuple(float(w) for w in style_weights)
    if max_pixels is not None:
        max_pixels = options.check_integer("max_pixels", max_pixels, 0, 1 << 62) or None
    path = os.path.abspath(resolve_model(model)) if model is not None else None
    return PaintSpec(
        model=path, model_sha256=sha256_of(path) if path else None,
        styles=tuple(v for v, _ in values), style_names=tuple(n for _, n in values), weights=weights,
        family_options=tuple(sorted((family_options or {}).items())),
        engine=tuple(sorted(_check_engine(engine).items())),
        working_size=None if working_size is None else options.check_size("working_size", working_size),
        strength=options.check_strength(strength), preserve_colors=bool(preserve_colors),
        max_side=options.check_max_side(max_side), quality=options.check_quality(quality), max_pixels=max_pixels)
