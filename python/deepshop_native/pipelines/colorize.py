"""Line drawings to colour paintings: ``ds.colorize(drawing)`` and the ``lineart`` model family.

A line-art model (deepshop_export/families/lineart) takes one edge channel (white lines on black
in [0, 1], the auto-Canny edges of deepshop_native.edges it was trained on) and gives K class
scores per pixel; the engine runs it tile by tile, blends the scores and decodes them to colours
through the model's palette (metadata ``deepshop.palette``): the best class's colour (argmax,
``temperature=0``) or the annealed mean, the expectation of the palette under softmax(scores / T)
(``temperature=T > 0``: lower is closer to argmax, higher is smoother and greyer).

What comes in (``input=``):

* ``"auto"`` (default): a drawing.  A gray image whose median is light is taken as dark lines on
  paper (a scan or a pen drawing): pixels darker than ``threshold`` (default 128) are lines.  A dark
  image is taken as light lines on black (an edge map): pixels lighter than ``threshold`` are lines.
  A colour image is converted to gray first, with a note (pass ``input="photo"`` to draw the edges
  of a photo instead).  Transparent pixels count as paper.
* ``"photo"``: a photo, whose auto-Canny edges (deepshop_native.edges) are coloured.
* ``"edges"``: an edge map as it is (white lines on black, 0..1 after scaling).

Lines are used at the width they have; the network was trained on Canny's one-pixel lines, and
thick pen strokes come out as solid areas of line colour rather than as outlines.  Notes (a colour
image converted, a drawing with no lines) are returned by :meth:`Colorizer.run` and given as
:class:`ColorizeNote` warnings by :func:`colorize`.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Optional, Sequence

import numpy as np

from ..core import metadata as mm
from ..core import options
from ..core.errors import ModelError, OptionError
from ..core.files import check_not_an_input
from ..core.paths import DEFAULT_LINEART_MODEL
from ..image import to_depth, to_rgb_array, write_image
from .edges import edges
from .generic import TiledPipeline

INPUT_KINDS = ("auto", "photo", "edges")
DEFAULT_THRESHOLD = 128
#: A colour image: some pixel's channels differ by more than this (8-bit levels).
COLOUR_SPREAD = 24


class ColorizeNote(UserWarning):
    """Something the caller should know about the input (converted, or empty)."""


def _gray_and_alpha(image):
    """(H x W float32 gray in 0..255 with transparency composited on white, is_colour)."""
    rgb, alpha = to_rgb_array(image)
    rgb8 = to_depth(rgb, 8) if rgb.dtype != np.uint8 else rgb
    spread = int((rgb8.max(axis=2).astype(np.int16) - rgb8.min(axis=2)).max(initial=0))
    gray = rgb8.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if alpha is not None:
        a = (to_depth(alpha[..., None], 8)[..., 0] if alpha.dtype != np.uint8 else alpha).astype(np.float32) / 255
        gray = gray * a + 255 * (1 - a)
    return gray, spread > COLOUR_SPREAD


def drawing_to_edges(image, input: str = "auto", threshold: Optional[float] = None):
    """(H x W float32 edge map, 1 on lines and 0 elsewhere, notes): what the network takes."""
    if input not in INPUT_KINDS:
        raise OptionError(f"input: one of {', '.join(INPUT_KINDS)}, got {input!r}")
    thr = DEFAULT_THRESHOLD if threshold is None else options.check_number("threshold", threshold, 0, 255)
    notes = []
    if input == "photo":
        e = edges(image).astype(np.float32) / 255
    else:
        gray, is_colour = _gray_and_alpha(image)
        if input == "edges":
            e = np.clip(gray / 255, 0, 1).astype(np.float32)
        else:
            if is_colour:
                notes.append("a colour image was given as a drawing: it was converted to gray and its dark "
                             "strokes taken as lines (use input='photo' / --input photo to colour a photo's edges)")
            if float(np.median(gray)) >= 128:      # paper: dark lines on light
                e = (gray < thr).astype(np.float32)
            else:                                  # an edge map: light lines on dark
                e = (gray > thr).astype(np.float32)
    fraction = float(e.mean())
    if fraction == 0.0 or fraction == 1.0:
        notes.append("the drawing has no lines (it is all " + ("paper" if fraction == 0.0 else "line") +
                     "); the model paints it as an empty drawing")
    return e, notes


class Colorizer(TiledPipeline):
    """A line-art model run tiled through the engine: ``Colorizer(model)(drawing) -> H x W x 3 uint8``.

    ``model``: a ``lineart``-family ONNX file (default: the bundled one).  ``device``, ``tile``,
    ``halo``, ``overlap``, ``threads`` as for :class:`deepshop_native.pipelines.generic.TiledPipeline`."""

    def __init__(self, model=None, *, device: str = "auto", tile: Optional[int] = None, halo: Optional[int] = None,
                 overlap: int = 64, threads: int = 0):
        path = os.fspath(model) if model is not None else str(DEFAULT_LINEART_MODEL)
        if model is None and not os.path.isfile(path):
            raise ModelError(f"{path}: no bundled line-art model in this installation; pass a model "
                             f"(model=... / --model M) trained with 'deepshop-train lineart'")
        super().__init__(path, device=device, tile=tile, halo=halo, overlap=overlap, threads=threads)
        meta = self.metadata
        try:
            self.palette = np.asarray(json.loads(meta[mm.key("palette")]), dtype=np.uint8)
        except (KeyError, ValueError) as e:
            raise ModelError(f"{path}: not a line-art model: no readable {mm.key('palette')} metadata ({e})") from None
        outputs = [t for t in self.outputs if t["role"] == mm.ROLE_CLASSES]
        inputs = [t for t in self.inputs if t["role"] == mm.ROLE_IMAGE]
        if len(outputs) != 1 or len(inputs) != 1:
            raise ModelError(f"{path}: a line-art model has one image input and one classes output")
        self._input, self._output = inputs[0]["name"], outputs[0]["name"]
        classes = outputs[0]["shape"][1] if len(outputs[0]["shape"]) == 4 else -1
        if self.palette.ndim != 2 or self.palette.shape[1] != 3 or (classes > 0 and len(self.palette) != classes):
            raise ModelError(f"{path}: the palette ({self.palette.shape}) does not give one colour to each of the "
                             f"{classes} classes")
        decoding = meta.get(mm.key("decoding"), "argmax")
        self.default_temperature = float(meta.get(mm.key("temperature"), "0")) if decoding == "annealed_mean" else 0.0

    def run(self, drawing, *, temperature: Optional[float] = None, palette=None, input: str = "auto",
            threshold: Optional[float] = None, progress=None) -> dict:
        """{'rgb': H x W x 3 uint8, 'labels': H x W int32 (argmax classes), 'edges': H x W float32 (the
        network's input), 'notes': [str]}."""
        t = self.default_temperature if temperature is None else options.check_number("temperature", temperature,
                                                                                          0.0, 1e6)
        pal = self.palette if palette is None else np.asarray(palette)
        if pal.shape != self.palette.shape:
            raise OptionError(f"palette: expected {self.palette.shape[0]} x 3 colours (one per class of the model), "
                              f"got shape {pal.shape}")
        if palette is not None and (pal.dtype.kind not in "ui" or pal.min() < 0 or pal.max() > 255):
            raise OptionError("palette: expected integer colours 0..255")
        e, notes = drawing_to_edges(drawing, input, threshold)
        result = self.run_images({self._input: e}, palettes={self._output: pal.astype(np.uint8)},
                                 temperatures={self._output: t}, progress=progress)
        return {"rgb": result["colours"][self._output], "labels": result["labels"][self._output], "edges": e,
                "notes": notes}

    def __call__(self, drawing, **kwargs) -> np.ndarray:
        out = self.run(drawing, **kwargs)
        for note in out["notes"]:
            warnings.warn(note, ColorizeNote, stacklevel=2)
        return out["rgb"]


def colorize(drawing, model=None, temperature: Optional[float] = None, *, palette=None, input: str = "auto",
             threshold: Optional[float] = None, device: str = "auto", tile: Optional[int] = None,
             out=None, overwrite: bool = False) -> np.ndarray:
    """Colour a line drawing (array, PIL image or path) with a line-art model (default: the bundled
    one): H x W x 3 uint8.  ``temperature``: None = the model's default decoding, 0 = argmax,
    T > 0 = annealed mean.  ``out``: also write the result there (atomically; an existing file only
    with ``overwrite``).  Notes about the input come as :class:`ColorizeNote` warnings."""
    if out is not None:   # before any work: the output is none of the files read
        check_not_an_input(out, [drawing, model])
    rgb = Colorizer(model, device=device, tile=tile)(drawing, temperature=temperature, palette=palette,
                                                      input=input, threshold=threshold)
    if out is not None:
        write_image(out, rgb, overwrite=overwrite)
    return rgb
