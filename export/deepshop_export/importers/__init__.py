"""Readers of foreign checkpoint formats, each turning a file into a torch module of ours that the
generic export pipeline writes as ONNX: Torch7 ``.t7`` (Johnson's fast-neural-style networks, as
OpenCV's sample runs them) and Caffe ``.caffemodel`` (the VGG16/VGG19 feature networks of the
Gatys tools).  Pure Python: neither Lua Torch nor Caffe is needed."""

#: File extension -> (what it reads, the function "module:name" that exports it).  The function
#: takes (path, out_path, *, name, license, provenance, fp16, opset, validate, overwrite,
#: statistics) and returns an ExportReport.  deepshop-export picks the importer by extension.
IMPORTERS = {
    ".t7": ("Torch7 fast-neural-style network (Johnson et al.): the instance_norm/*.t7 and eccv16/*.t7 "
            "files of jcjohnson/fast-neural-style, as OpenCV's fast_neural_style.py sample runs them",
            "deepshop_export.importers.johnson:export_t7"),
    ".caffemodel": ("Caffe VGG16/VGG19 (VGG_ILSVRC_16_layers.caffemodel, VGG_ILSVRC_19_layers.caffemodel) "
                    "to a feature network: image -> named ReLU feature maps",
                    "deepshop_export.importers.caffe:export_caffemodel"),
    ".model": ("PyTorch MSG-Net state_dict (21styles.model of zhanghang1989/PyTorch-Multi-Style-Transfer) "
               "to an encoder + generator pair (OUTPUT and OUTPUT-stem.encoder.onnx)",
               "deepshop_export.importers.msgnet:export_pytorch_msgnet"),
    ".pdparams": ("PaddleHub msgnet parameters (read without PaddlePaddle) to an encoder + generator pair",
                  "deepshop_export.importers.msgnet:export_paddle_msgnet"),
}


def read_source(path: str) -> bytes:
    """The bytes of a checkpoint file, with the one wording for a missing or unreadable one."""
    import os

    from deepshop_native.core.errors import ModelError

    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or e})") from e


def importer_for(path: str):
    """The export function for ``path`` by its extension, or None (a TransformerNet .pth)."""
    import importlib
    import os

    entry = IMPORTERS.get(os.path.splitext(path)[1].lower())
    if entry is None:
        return None
    module, _, function = entry[1].partition(":")
    return getattr(importlib.import_module(module), function)
