"""Readers of foreign checkpoint formats, each turning a file into a torch module of ours that the
generic export pipeline writes as ONNX: Torch7 ``.t7`` (Johnson's fast-neural-style networks, as
OpenCV's sample runs them) and Caffe ``.caffemodel`` (the VGG16/VGG19 feature networks of the
Gatys tools).  Pure Python: neither Lua Torch nor Caffe is needed."""
