"""The torch side of Deepshop: model definitions, checkpoint import, training and ONNX export.

Never imported by ``deepshop_native`` at run time; it needs the ``export`` extra (torch, onnx).
"""
__all__ = ["transformer_net", "metadata"]
