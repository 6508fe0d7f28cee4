"""The built-in styles, and the one place that turns "a model and some styles" into a pipeline with
its style set: what `deepshop stylize --style`, `deepshop styles` and ``ds.stylize(style=)`` use.

Built-in styles are the project's own (bundled feedforward models, each one style) and those of
the pretrained multi-style network (``deepshop-export pretrained``, made on first use).  A
``--style`` value that names an existing file is a style image (a painting: the arbitrary-style
network, or the MSG-Net model given with ``--model``); otherwise it is a built-in style's name or
number.  Several styles blend, within one network: style images by their style vectors (or Grams),
built-in styles of the multi-style network by its style weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..core import metadata as mm
from ..core.errors import ModelError, OptionError
from ..core.paths import BUNDLED_MODELS, resolve_model
from . import class_of, pipeline_class

#: The style of `deepshop stylize photo.jpg` and ds.stylize(photo) without a model or style:
#: chosen by eye and by the quality measures (docs/results/quality.md).
DEFAULT_STYLE = "stained-glass"


@dataclass(frozen=True)
class BuiltinStyle:
    name: str
    description: str
    family: str                  # "transformer_net" (a model of its own) or "multistyle"
    path: Optional[Path] = None  # the bundled model (transformer_net)
    index: Optional[int] = None  # its place in the multi-style network


def own_styles() -> List[BuiltinStyle]:
    """The bundled feedforward styles (a name and description each from their metadata)."""
    styles = []
    for path in sorted(BUNDLED_MODELS.glob("*.onnx")):
        meta = mm.read_model_metadata(path)
        if meta.get(mm.key("family"), "transformer_net") != "transformer_net":
            continue
        name = (meta.get(mm.key("name")) or path.stem).replace("_", "-")
        styles.append(BuiltinStyle(name, "the project's own style, trained on CPU (licence "
                                         f"{meta.get(mm.key('license'), 'unknown')})", "transformer_net", path=path))
    return styles


def multistyle_styles(pipeline=None) -> List[BuiltinStyle]:
    """The multi-style network's styles (its model made on first use when it is missing)."""
    from ..pipelines import multistyle
    if pipeline is None:
        path = multistyle.default_model()
        styles = _styles_of(path)
    else:
        styles = pipeline.styles
    return [BuiltinStyle(s["name"], s.get("description", ""), "multistyle", index=i) for i, s in enumerate(styles)]


def _styles_of(path: Path) -> list:
    from ..pipelines.multistyle import styles_of
    return styles_of(path, mm.read_model_metadata(path))[1]


def builtin_styles() -> List[BuiltinStyle]:
    """Every built-in style: the multi-style network's (numbered as the network numbers them), then
    the project's own."""
    return multistyle_styles() + own_styles()


def find_style(name: str, styles: Optional[List[BuiltinStyle]] = None) -> BuiltinStyle:
    """A built-in style by name (any case) or number (its position in builtin_styles());
    OptionError listing the names otherwise."""
    styles = builtin_styles() if styles is None else styles
    text = str(name).strip()
    if text.isdigit() and int(text) < len(styles):
        return styles[int(text)]
    def key(n: str) -> str:
        return n.lower().replace("_", "-")
    for s in styles:
        if key(s.name) == key(text):
            return s
    raise OptionError(f"style: {name!r} is neither an image file nor a built-in style; the built-in styles are "
                      + ", ".join(s.name for s in styles) + " (deepshop styles lists them)")


def is_style_image(value) -> bool:
    """A --style value that names an existing file (or is image data) is a style image."""
    if isinstance(value, (str, os.PathLike)):
        try:
            return os.path.isfile(os.fspath(value))
        except ValueError:          # a NUL byte: no file
            return False
    return True                     # arrays, PIL images, bytes


def _opened(cls, path, engine_options: dict, family_options: dict):
    """``cls(path, ...)`` with the family options it takes; OptionError naming one it does not."""
    for name in family_options:
        if name not in getattr(cls, "FAMILY_OPTIONS", ()):
            raise OptionError(f"{name}: not an option of {cls.__name__} models")
    return cls(path, **family_options, **engine_options)


def open_styled(model=None, styles: Sequence = (), weights: Optional[Sequence[float]] = None,
                family_options: Optional[dict] = None, **engine_options):
    """The pipeline that paints with ``styles`` (module doc), its style set.  ``model`` None: the
    family follows from the styles (images: the arbitrary-style network; names: the built-in
    styles; none: DEFAULT_STYLE).  A model takes the styles its family takes, or none.
    ``family_options`` (e.g. style_size) go to the family that takes them."""
    styles = list(styles)
    family_options = dict(family_options or {})
    if model is not None:
        path = resolve_model(model)
        cls = class_of(path)
        takes = getattr(cls, "STYLE", None)
        if takes is None:
            if styles:
                raise ModelError(f"{path}: style: this model has no style input (its family takes no style at run "
                                 "time); leave out --model to use the built-in styles and style images")
            return _opened(cls, path, engine_options, family_options)
        if not styles:
            raise OptionError(f"style: {path} takes its style at run time: give --style IMAGE (style= in Python)")
        pipeline = _opened(cls, path, engine_options, family_options)
        return pipeline.set_style(styles if len(styles) > 1 else styles[0], weights)
    if not styles:
        styles = [DEFAULT_STYLE]
    images = [is_style_image(s) for s in styles]
    if all(images):
        pipeline = _opened(pipeline_class("arbitrary_style"), None, engine_options, family_options)
        return pipeline.set_style(styles if len(styles) > 1 else styles[0], weights)
    if any(images):
        raise OptionError("style: give either style images or built-in style names, not both (a blend is within "
                          "one network)")
    found = [find_style(s) for s in styles]
    families = {s.family for s in found}
    if families == {"multistyle"}:
        pipeline = _opened(pipeline_class("multistyle"), None, engine_options, family_options)
        return pipeline.set_style([s.index for s in found] if len(found) > 1 else found[0].index, weights)
    if len(found) > 1:
        raise OptionError("style: " + ", ".join(s.name for s in found) + " cannot be blended: only the multi-style "
                          "network's styles blend")
    return _opened(pipeline_class(found[0].family), found[0].path, engine_options, family_options)
