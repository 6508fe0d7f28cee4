"""The ``feature_net`` family: an image to named feature maps (VGG's ReLU layers), the encoder of
Gatys-style optimisation and of perceptual losses.  network.py builds it (from Caffe layers),
export.py writes it."""
from .export import export_feature_net
from .network import FeatureNet, network_from_caffe

__all__ = ["FeatureNet", "network_from_caffe", "export_feature_net"]
