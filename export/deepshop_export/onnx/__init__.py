"""Generic ONNX passes shared by every model family: opset lowering (opset.py), float16 conversion
(fp16.py), the deepshop metadata (metadata.py, keys from deepshop_native.core.metadata),
validation against ONNX Runtime (validate.py) and the export pipeline tying them together
(export.py).  Named ``onnx`` after its subject; inside it, ``import onnx`` still means the onnx
package (absolute imports)."""
