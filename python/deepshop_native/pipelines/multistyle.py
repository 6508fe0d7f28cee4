"""Built-in styles of one network: Dumoulin et al.'s conditional-instance-norm network with 26
styles (TensorFlow's Android stylize demo), family ``multistyle``, converted by
``deepshop-export pretrained``.

    net = MultiStyle()                              # the converted 26-style network
    net.set_style(7)                                # a style by number or name ("blue-gold")
    net.set_style([3, 12], [0.5, 0.5])              # a blend: the weights of the network's input
    out = net(photo)

The network takes, besides the photo, one weight per style (aux input ``style_weights``, shared by
every tile): its instance norms use the weighted sum of the styles' learned scales and shifts, so a
one-hot vector is one style and weights summing to 1 blend them.  The styles' names and one-line
descriptions are the model's metadata (``deepshop.styles``).

A model of one style (what ``deepshop-train finetune`` writes) has that style set from the start:
``MultiStyle(path)(photo)`` paints with it, and ``deepshop stylize --model`` needs no ``--style``.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..core import metadata as mm
from ..core import options
from ..core.errors import ModelError, OptionError
from ..core.paths import PRETRAINED_ENV, made_on_first_use, pretrained_dir
from .base import ChosenStylePipeline

FAMILY = "multistyle"
#: The network's file in the pretrained folder.
MODEL_FILE = "multistyle26.onnx"
#: Longer side the network paints at before guided upsampling to the photo's size (0: full size).
DEFAULT_WORKING_SIZE = 1024

StyleRef = Union[int, str]


def default_model() -> Path:
    """The converted network, made on first use from the weight package (deepshop-export pretrained)."""
    folder = pretrained_dir()
    return made_on_first_use(folder / MODEL_FILE, ["pretrained", "--out", str(folder)],
                             "pretrained style networks", PRETRAINED_ENV)


def styles_of(path, metadata: dict) -> tuple:
    """(the style-weights input's name, [{"name", "description"}]) of a multi-style model's
    ``deepshop.styles`` entry; ModelError naming the file when it is missing or malformed."""
    try:
        entry = json.loads(metadata[mm.key("styles")])
        styles = entry["styles"]
        if not (isinstance(entry["input"], str) and styles and all(isinstance(s, dict) and s.get("name") for s in styles)):
            raise ValueError("no input or no named styles")
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: a multi-style model without a readable {mm.key('styles')} entry ({e})") from None
    return entry["input"], styles


class MultiStyle(ChosenStylePipeline):
    """A multi-style network: ``set_style(names or numbers, weights)`` then call on photos (options
    as StylePipeline's).  ``styles``: [{"name", "description"}] in the network's order."""

    STYLE = "name"
    DEFAULT_WORKING_SIZE = DEFAULT_WORKING_SIZE

    def __init__(self, model=None, **engine_options):
        super().__init__(model, **engine_options)
        self._style_input, self.styles = styles_of(self.model_path, self.metadata)
        inputs = {t["name"]: t for t in self._session.inputs}
        if inputs.get(self._style_input, {}).get("role") != mm.ROLE_AUX:
            raise ModelError(f"{self.model_path}: {mm.key('styles')} names the style-weights input "
                             f"{self._style_input!r}, which is not an aux input of the model")
        self._lock = threading.Lock()
        self._weights: Optional[np.ndarray] = None
        self.style_names: list = []
        if len(self.styles) == 1:          # a one-style model: nothing to choose
            self._weights = np.ones(1)
            self.style_names = [self.styles[0]["name"]]

    @classmethod
    def fixed_style(cls, path) -> bool:
        """Whether the model at ``path`` has one style only (it paints without set_style)."""
        return len(styles_of(path, mm.read_model_metadata(path))[1]) == 1

    def resolve(self, model) -> Path:
        return super().resolve(default_model() if model is None else model)

    def index_of(self, style: StyleRef) -> int:
        """A style's position: its number (0-based, an int or digits) or its name (any case);
        OptionError listing the names otherwise."""
        if isinstance(style, (int, np.integer)) and not isinstance(style, bool):
            index = int(style)
        elif isinstance(style, str) and style.strip().isdigit():
            index = int(style.strip())
        elif isinstance(style, str):
            names = [s["name"].lower() for s in self.styles]
            if style.strip().lower() not in names:
                raise OptionError(f"style: no built-in style {style!r}; the styles are "
                                  + ", ".join(s["name"] for s in self.styles))
            return names.index(style.strip().lower())
        else:
            raise OptionError(f"style: expected a style name or number, got {type(style).__name__}")
        if not 0 <= index < len(self.styles):
            raise OptionError(f"style: number {index} is out of range: 0 to {len(self.styles) - 1}")
        return index

    def set_style(self, style, weights: Optional[Sequence[float]] = None) -> "MultiStyle":
        """One style (a name or number) or several blended (weights >= 0, not all 0; default
        equal; normalised to sum 1).  Returns self."""
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise OptionError("style: no style given")
        w = options.check_blend_weights(len(styles), weights)
        vector = np.zeros(len(self.styles))
        for wi, s in zip(w, styles):
            vector[self.index_of(s)] += wi
        with self._lock:
            self._weights = vector
            self.style_names = [self.styles[self.index_of(s)]["name"] for s in styles]
        return self

    def style_inputs(self) -> dict:
        if self._weights is None:
            raise OptionError(f"{self.model_path}: no style: call set_style(name or number) first")
        return {self._style_input: np.ascontiguousarray(self._weights, dtype=np.float32)}
