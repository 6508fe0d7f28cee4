"""The torch side of Deepshop: model definitions, checkpoint import, training and ONNX export.

Never imported by ``deepshop_native`` at run time; it needs the ``export`` extra (torch, onnx).
Modules import torch themselves, so that ``deepshop_export.cli`` can report a missing torch.
"""
__version__ = "0.1.0"
__all__ = ["families", "importers", "onnx", "receptive_field", "checkpoint", "cli"]
