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
``inputs``             JSON object: graph input name -> role (INPUT_ROLES); absent: the single
                       4-D input is ``image``
``outputs``            JSON object: graph output name -> role (OUTPUT_ROLES); absent: the single
                       4-D output is ``image``
=====================  =======================================================================

Family ``gatys_vgg`` (a feature network's style-transfer loss and its gradient; see
deepshop_export.families.gatys) adds:

=====================  =======================================================================
``feature_network``    "vgg16" or "vgg19"
``feature_weights``    where the weights came from: "hed" (HED's VGG16, BSDS500) or "torchvision"
``feature_input``      how the graph feeds the network the RGB 0..255 image it takes:
                       "caffe" (BGR minus the Caffe mean, 0..255) or "torchvision" (RGB/255,
                       ImageNet mean and std)
``pooling``            "max" or "avg"
``content_layers``     JSON object: layer name -> channels, e.g. {"relu4_2": 512}
``style_layers``       JSON object: layer name -> channels, in the order of the style weights
=====================  =======================================================================
"""

PREFIX = "deepshop."
FORMAT_VERSION = "1"

#: Keys every Deepshop model carries.
COMMON_KEYS = (
    "format", "family", "name", "input_layout", "value_range", "channel_order", "mean",
    "stride_multiple", "receptive_field", "normalization", "precision", "license", "provenance",
)
#: Keys of models with several named inputs/outputs (optional: absent means one image in, one out).
IO_KEYS = ("inputs", "outputs")
#: Keys of the gatys_vgg family.
GATYS_KEYS = ("feature_network", "feature_weights", "feature_input", "pooling", "content_layers", "style_layers")
#: Every key of the contract.
KEYS = COMMON_KEYS + IO_KEYS + GATYS_KEYS

#: Roles of graph inputs: ``image`` is spatial (N x C x H x W), pixel-encoded by the engine and
#: tiled; ``aux`` is passed whole to every call (style Grams, layer statistics, loss targets).
INPUT_ROLES = ("image", "aux")
#: Roles of graph outputs: ``image`` is decoded to pixels and blended; ``classes`` are K-channel
#: scores, blended then decoded by argmax; ``aux`` is returned whole; ``scalar`` is a loss term or
#: another scalar; ``gradient`` (proposed with the Gatys graph) is spatial like the image input
#: but NOT pixel-encoded: a derivative with respect to the pixel values, returned as float32.
OUTPUT_ROLES = ("image", "classes", "aux", "scalar", "gradient")
