"""Gatys et al. optimisation-based style transfer, export side: the VGG feature network and the
gradient of the style-transfer loss as ONE ONNX graph (image and targets in; loss terms, Gram
matrices, content features and dLoss/dImage out), for the native optimiser to run.

* ``feature_network`` -- which VGG (HED VGG16 offline default, torchvision VGG16/VGG19 files),
  its layers, pooling and input convention, as plain arrays.
* ``gradient_graph`` -- builds the ONNX graph: the forward pass and, since ONNX has no automatic
  differentiation, its hand-written adjoint made of ordinary operators.
* ``export`` -- metadata and writing the file (``deepshop-export gatys``).
"""
