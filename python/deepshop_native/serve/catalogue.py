"""What a server offers: styles (the gallery) and models (the pipelines it was started with).

    catalogue = default_catalogue(["mosaic.onnx", "msgnet.onnx"], device="cpu")
    catalogue.styles   # [Style("default_style", ...), Style("mosaic", ...)]
    catalogue.models   # [Model("default_style"), Model("mosaic"), Model("msgnet", takes_style_image=True)]

A :class:`Model` says how to open its pipeline (``open()``: an object called as
``pipeline(pixels, strength=, preserve_colors=, progress=)``, and with ``set_style(image)`` when
``takes_style_image``).  A :class:`Style` is a gallery entry: a model, and for a model that takes
a style image, the painting it is run with.  The server opens each model once and shares the
pipeline between requests (pipelines are thread-safe).  Only :func:`default_catalogue` knows where
the styles come from: the built-in styles (deepshop_native.models.styles: the 26-style network's
and the project's own) with the arbitrary-style network for paintings, or only the bundled default
style, and each ``--model FILE``, named by file stem.
"""
from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Union

import deepshop_native as ds

#: The bundled style's name in the catalogue.
DEFAULT_STYLE_NAME = "default_style"


@dataclass(frozen=True)
class Model:
    """A pipeline the server can run.  ``open()`` builds (loads) it; the server calls it once."""

    name: str
    description: str
    open: Callable[[], Any] = field(repr=False)
    takes_style_image: bool = False


@dataclass(frozen=True)
class Style:
    """A gallery entry.  ``style_image``: for a model that takes one, the painting (a path or the
    bytes of an image file) this style runs it with.  ``thumbnail``: a JPEG to show; None lets the
    server render one from its sample photo (once, kept in memory)."""

    name: str
    description: str
    model: Model
    style_image: Optional[Union[str, bytes]] = None
    thumbnail: Optional[bytes] = field(default=None, repr=False)


@dataclass
class Catalogue:
    styles: List[Style]
    models: List[Model]

    def style(self, name: str) -> Optional[Style]:
        return next((s for s in self.styles if s.name == name), None)

    def model(self, name: str) -> Optional[Model]:
        return next((m for m in self.models if m.name == name), None)

    def style_image_model(self) -> Optional[Model]:
        """The first model that takes a style image (what a style-image upload runs by default)."""
        return next((m for m in self.models if m.takes_style_image), None)


def _loaded(pipeline) -> Callable[[], Any]:
    return lambda: pipeline


def _is_style_pipeline(pipeline) -> bool:
    return isinstance(pipeline, (ds.Stylizer, ds.StyleNet))


def _describe(pipeline, origin: str) -> str:
    """A line for people: the model's own name and licence from its metadata, and where it came
    from.  Never a server path."""
    meta = getattr(pipeline, "metadata", {}) or {}
    parts = []
    if meta.get("deepshop.name"):
        parts.append(str(meta["deepshop.name"]).replace("_", " "))
    family = meta.get("deepshop.family") or "transformer_net"
    parts.append("MSG-Net: any painting as the style" if callable(getattr(pipeline, "set_style", None))
                 else f"{family} model")
    if meta.get("deepshop.license"):
        parts.append(f"licence {meta['deepshop.license']}")
    return f"{origin}: " + ", ".join(parts)


def open_style_model(path, origin: str, **engine) -> Model:
    """Loads the model at ``path`` (ModelError naming it when it cannot be, or when it is no style
    model) and wraps it as a :class:`Model` named by the file stem."""
    path = Path(os.fspath(path))
    pipeline = ds.open_model(path, **engine)
    if not _is_style_pipeline(pipeline):
        family = type(pipeline).__name__
        raise ds.ModelError(f"{path}: a {family} model, not a style model (the server runs feedforward style "
                            "models and MSG-Net)")
    try:
        pipeline.plan(2048, 2048)       # a window too small for the model's halo: told at start, not per request
    except ds.OptionError as e:
        raise ds.OptionError(f"--tile: {path.name}: {str(e).removeprefix('tile: ')}") from None
    return Model(name=path.stem, description=_describe(pipeline, origin), open=_loaded(pipeline),
                 takes_style_image=callable(getattr(pipeline, "set_style", None)))


#: The model that paints with an uploaded painting when the server offers the built-in styles.
PAINTING_MODEL_NAME = "any-painting"


def builtin_entries(**engine) -> tuple:
    """(styles, models) of the built-in styles, the default style first, and the arbitrary-style
    network for paintings.  The 26-style network is opened once: each of its styles is a shallow
    copy with its own style weights (sessions shared, no style shared between requests)."""
    from deepshop_native.models.styles import DEFAULT_STYLE, builtin_styles, open_styled

    shared: dict = {}
    lock = threading.Lock()

    def network(key, make):
        with lock:
            if key not in shared:
                shared[key] = make()
            return shared[key]

    def opener(style):
        if style.family == "multistyle":
            return lambda: copy.copy(network("multistyle", lambda: open_styled(None, [style.name], **engine))
                                     ).set_style(style.index)
        return lambda: open_styled(None, [style.name], **engine)

    listed = builtin_styles()
    listed.sort(key=lambda s: s.name != DEFAULT_STYLE)          # the default first: a request's default
    models = [Model(s.name, s.description, opener(s)) for s in listed]
    styles = [Style(m.name, m.description, m) for m in models]
    painting = Model(PAINTING_MODEL_NAME, "Magenta's arbitrary-style network: any painting as the style",
                     lambda: ds.open_model(_arbitrary_model(), **engine), takes_style_image=True)
    return styles, models + [painting]


def _arbitrary_model():
    from deepshop_native.pipelines.arbitrary import default_model
    return default_model()


def default_catalogue(models: Sequence = (), *, include_default: bool = True, builtin: bool = False,
                      **engine) -> Catalogue:
    """The server's catalogue: the built-in styles and the painting model (``builtin``), else the
    bundled default style (unless ``include_default`` is False), then each model file given,
    loaded now with ``engine`` options (device, threads, tile), so that a bad file stops the server
    at start.  Feedforward models are styles; models that take a style image (MSG-Net) are models
    only, and make the page offer "a painting as the style"."""
    loaded: List[Model] = []
    builtin_styles: List[Style] = []
    if builtin:
        builtin_styles, loaded = builtin_entries(**engine)
    elif include_default:
        default = open_style_model(ds.DEFAULT_MODEL, "bundled", **engine)
        loaded.append(Model(DEFAULT_STYLE_NAME, default.description, default.open, default.takes_style_image))
    for path in models:
        model = open_style_model(path, "--model", **engine)
        clash = next((m for m in loaded if m.name == model.name), None)
        if clash is not None:
            raise ds.OptionError(f"--model: two models are named {model.name!r} (the file stem): rename one")
        loaded.append(model)
    named = {s.name for s in builtin_styles}
    styles = builtin_styles + [Style(m.name, m.description, m) for m in loaded
                               if not m.takes_style_image and m.name not in named]
    return Catalogue(styles=styles, models=loaded)


def style_json(style: Style, thumbnail_url: Optional[str]) -> dict:
    return {"name": style.name, "description": style.description, "thumbnail": thumbnail_url,
            "model": style.model.name}


def model_json(model: Model) -> dict:
    return {"name": model.name, "description": model.description, "takes_style_image": model.takes_style_image}


__all__ = ["Catalogue", "Model", "Style", "default_catalogue", "builtin_entries", "open_style_model",
           "DEFAULT_STYLE_NAME", "PAINTING_MODEL_NAME",
           "style_json", "model_json"]
