"""The metadata a Deepshop ONNX model carries in its ``metadata_props``: the contract between the
exporter (deepshop_export) which writes it and the engine (cpp/engine/model_info.cpp) which reads it.

All values are strings.  Keys (prefix ``deepshop.``):

=====================  =======================================================================
``format``             version of this contract, "1"
``family``             model family, e.g. "transformer_net"
``name``               display name, e.g. "mosaic"
``input_layout``       "NCHW" (the only layout the engine runs)
``value_range``        "lo,hi": pixel range the network takes and gives, e.g. "0,255" or "0,1"
``channel_order``      "RGB" or "BGR"
``mean``               "a,b,c": per-channel value subtracted after scaling to value_range, in the
                       network's channel order, added back to the output ("0,0,0" for none)
``stride_multiple``    input height/width must be multiples of this, e.g. "4"
``receptive_field``    width in input pixels of one output pixel's receptive field, e.g. "109"
``normalization``      "instance" (per-image statistics: tiles see their own) or "none"
``precision``          "fp32" or "fp16" (of the weights; the model's inputs stay float32), or
                       "int8" on a quantized file (below)
``license``            licence of the weights
``provenance``         JSON: source checkpoint and its sha256, exporter version, date, style
                       image, training settings and data, as far as known
``inputs``             JSON object: graph input name -> role (INPUT_ROLES below).  Absent: the
                       model's single 4-D input is the image
``outputs``            JSON object: graph output name -> role (OUTPUT_ROLES below).  Absent: the
                       model's single 4-D output is the image
``statistics``         JSON object, only on global-statistics graphs of instance-norm networks
                       (deepshop_export/families/transformer_net/statistics.py has the full
                       interface and how the engine uses it):
                       ``layers``: one entry per instance-norm layer in packing order, each
                       ``{"name", "channels", "offset", "eps", "scale"}`` (offset of its channels
                       in the packed vectors, eps of (x - m) / sqrt(v + eps), downsampling factor
                       of its input against the image); ``total_channels``: length of the packed
                       vectors; ``variance``: "biased" (M2 / count);
                       ``inputs``: ``{"mean", "var", "mix", "mask"}`` -> graph input names
                       (packed means, packed variances, the mix scalar: 0 = the tile's own
                       statistics, 1 = the given ones, the measuring mask);
                       ``outputs``: ``{"count", "mean", "m2"}`` -> graph output names (per layer
                       the mask weight total N x L; per channel the weighted mean and the
                       weighted sum of squared deviations N x C, to be combined across tiles with
                       Chan's parallel formula in double precision).
                       A model without it keeps the harmonize pass.
``features``           JSON list, only on feature networks (family "feature_net", e.g. VGG
                       imported from Caffe): the graph output names in network order, each a
                       named ReLU feature map (role "features")
``pooling``            feature networks: "max" or "average", the pooling the network was
                       exported with
``pipeline``           JSON object, on models that are one graph of a pipeline of several files
                       (family "msgnet": a style encoder and a generator joined by a Gram
                       matrix): ``part`` ("encoder" or "generator"), the other file's name beside
                       it (``encoder`` / ``generator``), on the generator ``encoder_sha256`` (a
                       mismatched pair is refused) and ``gram_input`` (the aux input taking the
                       style Gram), and ``feature_channels`` and ``gram_normalize`` ("CN": F F^T
                       divided by C h w).  Family "arbitrary_style" (a style predictor and a
                       generator joined by a style vector): ``part`` "predictor" or "generator",
                       the other file (``predictor`` / ``generator``), on the generator
                       ``predictor_sha256`` and ``style_input`` (the aux input taking the
                       vector), and ``style_dim``
``styles``             JSON object, on networks with built-in styles (family "multistyle"):
                       ``input`` (the aux input taking one weight per style) and ``styles``, a
                       list of ``{"name", "description"}`` in the order of the weights
``quantization``       JSON, only on int8 files made by ``deepshop-export quantize`` (NAME.int8.onnx
                       beside NAME.onnx, which carry the source's keys besides these): method,
                       quantized operators, calibration and held-out photos, the command, date
``quantized_from``     int8 files: "BYTES:CRC32" of the fp32 file quantized (CRC-32 as zlib's, 8
                       lower-case hex digits); the engine ignores the file once the source differs
``quantized_psnr``     int8 files: the least PSNR (dB, 0..255 outputs) against the fp32 model over
                       the held-out photos; ``precision="auto"`` takes the file only at or above
                       the engine's bound (cpp/engine/execution_providers.h, kInt8AutoMinPsnrDb)
=====================  =======================================================================

Family ``gatys_vgg`` (a feature network's style-transfer loss and its gradient with respect to the
image; deepshop_export/families/gatys/gradient_graph.py has the full interface) also has
``pooling`` and:

=====================  =======================================================================
``feature_network``    "vgg16" or "vgg19"
``feature_weights``    where the weights came from: "hed" (HED's VGG16, BSDS500) or "torchvision"
``feature_input``      how the graph feeds the network the RGB 0..255 image it takes:
                       "caffe" (BGR minus the Caffe mean, 0..255) or "torchvision" (RGB/255,
                       ImageNet mean and std)
``content_layers``     JSON object: layer name -> channels, e.g. {"relu4_2": 512}, in the order
                       of the content weights
``style_layers``       JSON object: layer name -> channels, in the order of the style weights
=====================  =======================================================================

Family ``gatys_vgg_tiled`` (the tile graph of a ``gatys_vgg`` graph for its tiled evaluation,
``deepshop-export gatys --tiled``: a tile's features and its gradient given dloss/dF; see
gradient_graph.build_tiled_gradient_graph) has the same keys.

Family ``lineart`` (line drawing -> colour classes; deepshop_export/families/lineart/) also has:

=====================  =======================================================================
``palette``            JSON list of K [r, g, b] 8-bit colours: the colour of each class score
``palette_space``      "rgb" or "lab": the space the training targets were posterised in
``decoding``           "argmax" (the best class's colour) or "annealed_mean" (the expectation of
                       the palette under softmax(scores / temperature)), the default at run time
``temperature``        the annealed mean's temperature, e.g. "0.38" ("0" with argmax)
=====================  =======================================================================

Roles (values of ``inputs`` / ``outputs``):

* inputs: ``image`` = spatial N x C x H x W, pixel-encoded by the engine from the image and
  tiled; ``aux`` = non-spatial tensor passed whole to every tile/call (style Grams, layer
  statistics, loss targets); ``tile_mask`` = spatial N x 1 x H x W made by the engine for each
  tile: 1 on the tile's kept span, 0 on its halo (1 everywhere for an untiled run).
* outputs: ``image`` = spatial, decoded to pixels and blended; ``classes`` = spatial K-channel class
  scores, blended then decoded by argmax/palette; ``aux`` = non-spatial tensor returned whole
  (layer statistics); ``scalar`` = a loss term or other scalar; ``features`` = spatial feature map
  returned whole, not decoded to pixels (feature networks run untiled); ``gradient`` = spatial
  like the image input but NOT pixel-encoded: the derivative of a loss with respect to the
  network's input pixel values (0..255 scale), returned whole as float32 (the Gatys graph).

Sizes (stride_multiple, receptive_field) are plain decimal integers of at most MAX_PIXELS.  A
``tile_mask`` input is 1 on the tile's kept span inside the image and 0 on its halo and on the
padding beyond the image.

This module imports nothing of the package but its errors (no C++ extension): the exporter uses it.  The
C++ side keeps the key strings it reads in ONE header, cpp/engine/metadata_keys.h, which a test
checks against this module.
"""
from __future__ import annotations

import json
import os
import stat
from typing import Dict, List

from .errors import ModelError

PREFIX = "deepshop."
FORMAT_VERSION = "1"

#: Written on every model the exporter makes.
CORE_KEYS = (
    "format", "family", "name", "input_layout", "value_range", "channel_order", "mean",
    "stride_multiple", "receptive_field", "normalization", "precision", "license", "provenance",
)
#: Keys a model carries when it has more than one image input and output (see Roles above).
IO_KEYS = ("inputs", "outputs")
#: Written only where they apply (several inputs/outputs, statistics graphs, feature networks).
OPTIONAL_KEYS = IO_KEYS + ("statistics", "features", "pooling",
                           "feature_network", "feature_weights", "feature_input", "content_layers", "style_layers",
                           "palette", "palette_space", "decoding", "temperature")
#: Pipelines of several graphs (MSG-Net's encoder and generator), built-in style lists.
OPTIONAL_KEYS += ("pipeline", "styles")
#: int8 files made by `deepshop-export quantize` (cpp/engine/quantized_model.h).
QUANTIZATION_KEYS = ("quantization", "quantized_from", "quantized_psnr")
OPTIONAL_KEYS += QUANTIZATION_KEYS
#: Every key of the contract.
KEYS = ALL_KEYS = CORE_KEYS + OPTIONAL_KEYS

ROLE_IMAGE, ROLE_AUX, ROLE_CLASSES, ROLE_SCALAR = "image", "aux", "classes", "scalar"
ROLE_TILE_MASK, ROLE_FEATURES, ROLE_GRADIENT = "tile_mask", "features", "gradient"
INPUT_ROLES = (ROLE_IMAGE, ROLE_AUX, ROLE_TILE_MASK)
OUTPUT_ROLES = (ROLE_IMAGE, ROLE_CLASSES, ROLE_AUX, ROLE_SCALAR, ROLE_FEATURES, ROLE_GRADIENT)
#: Largest size (pixels) of a tile, halo, overlap, stride multiple or receptive field.
MAX_PIXELS = 1 << 20


def key(name: str) -> str:
    """The full metadata key of a contract key: key("family") == "deepshop.family"."""
    if name not in KEYS:
        raise KeyError(f"{name!r} is not a key of the deepshop metadata contract {list(KEYS)}")
    return PREFIX + name


def encode_roles(roles: Dict[str, str], *, outputs: bool) -> str:
    """The JSON text of deepshop.inputs (outputs=False) or deepshop.outputs, checked."""
    allowed = OUTPUT_ROLES if outputs else INPUT_ROLES
    bad = {name: role for name, role in roles.items() if role not in allowed}
    if bad:
        raise ValueError(f"roles {bad} are not among {list(allowed)}")
    return json.dumps(dict(roles), sort_keys=True)


class MetadataReadError(ValueError):
    """The file is not an ONNX model whose metadata can be read (message says why)."""


def _varint(f) -> int:
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            raise MetadataReadError("truncated varint")
        result |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise MetadataReadError("varint too long")


def _entry(data: bytes):
    """A StringStringEntryProto: key (field 1) and value (field 2)."""
    import io
    f, end, out = io.BytesIO(data), len(data), {1: "", 2: ""}
    while f.tell() < end:
        tag = _varint(f)
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            n = _varint(f)
            raw = f.read(n)
            if len(raw) != n:
                raise MetadataReadError("truncated metadata entry")
            if field in out:
                out[field] = raw.decode("utf-8", errors="replace")
        elif wire == 0:
            _varint(f)
        else:
            raise MetadataReadError(f"unexpected wire type {wire} in a metadata entry")
    return out[1], out[2]


def read_metadata(path) -> Dict[str, str]:
    """Every metadata_props entry of the ONNX file at `path`, without building a session and
    without the onnx package: ModelProto.metadata_props is field 14, a StringStringEntryProto
    (key = 1, value = 2); every other field (the graph and its weights among them) is skipped
    unread.  Raises MetadataReadError when the file is not a readable protobuf, OSError when it
    cannot be opened."""
    path = os.fspath(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise MetadataReadError("not a regular file")  # a FIFO would block the reader forever
    metadata: Dict[str, str] = {}
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for field, wire, value in _fields(f, size, "the file"):
            if field == 14 and wire == 2:
                f.seek(value[0])
                k, v = _entry(f.read(value[1]))
                metadata[k] = v
    return metadata


def _fields(f, end: int, what: str = "its message"):
    """(field, wire type, value) of each field of the message in f up to ``end``: the value of a
    length-delimited field is its (start, length), left unread; of a varint, the number.  ``what``
    names the message's end in the error of a field running past it."""
    while f.tell() < end:
        tag = _varint(f)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise MetadataReadError("field number 0")
        if wire == 0:
            yield field, wire, _varint(f)
        elif wire == 1:
            f.seek(8, os.SEEK_CUR)
        elif wire == 5:
            f.seek(4, os.SEEK_CUR)
        elif wire == 2:
            n = _varint(f)
            start = f.tell()
            if start + n > end:
                raise MetadataReadError(f"a field runs past the end of {what}")
            yield field, wire, (start, n)
            f.seek(start + n)
        else:
            raise MetadataReadError(f"unexpected wire type {wire}")


def external_data_locations(path) -> List[str]:
    """The files holding the model's weights outside the .onnx (external data): each
    ``location`` of the top-level graph's initializers (ModelProto.graph = 7, GraphProto.initializer
    = 5, TensorProto.external_data = 13 of StringStringEntryProto), in order, once each, relative to
    the model's folder.  The weights themselves are skipped unread."""
    path = os.fspath(path)
    found: List[str] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for field, wire, value in list(_fields(f, size)):
            if field != 7 or wire != 2:
                continue
            start, n = value
            f.seek(start)
            for g_field, g_wire, g_value in list(_fields(f, start + n)):
                if g_field != 5 or g_wire != 2:
                    continue
                t_start, t_n = g_value
                f.seek(t_start)
                for t_field, t_wire, t_value in list(_fields(f, t_start + t_n)):
                    if t_field == 13 and t_wire == 2:
                        f.seek(t_value[0])
                        k, v = _entry(f.read(t_value[1]))
                        if k == "location" and v and v not in found:
                            found.append(v)
    return found


def read_model_metadata(path) -> Dict[str, str]:
    """A model file's metadata; ModelError naming the file and why it cannot be read."""
    try:
        return read_metadata(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not an ONNX model file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot be read ({e.strerror or e})") from None
    except MetadataReadError as e:
        raise ModelError(f"{path}: not an ONNX model ({e})") from None
