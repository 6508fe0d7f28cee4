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
``precision``          "fp32" or "fp16" (of the weights; the model's inputs stay float32)
``license``            licence of the weights
``provenance``         JSON: source checkpoint and its sha256, exporter version, date, style
                       image, training settings and data, as far as known
=====================  =======================================================================
"""

PREFIX = "deepshop."
FORMAT_VERSION = "1"

KEYS = (
    "format", "family", "name", "input_layout", "value_range", "channel_order", "mean",
    "stride_multiple", "receptive_field", "normalization", "precision", "license", "provenance",
)
