"""One sub-package per model family (the ``deepshop.family`` metadata value): its torch network,
its export (interface + metadata, through the generic ``deepshop_export.onnx`` pipeline) and
whatever graphs beyond the plain one it offers."""
