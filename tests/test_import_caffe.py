"""deepshop-export model.caffemodel: VGG-shaped Caffe files written here with protobuf dynamic
messages (a schema built in code, independent of the importer's wire reader), in both the V1
``layers`` and the new ``layer`` layout, exported and run with ONNX Runtime, against a rebuild
with torch.nn.functional convolutions and numpy pooling (Caffe's rounding up)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("google.protobuf")

import torch.nn.functional as F  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

from deepshop_export.cli import main  # noqa: E402
from deepshop_export.importers.caffe import read_caffemodel  # noqa: E402
from deepshop_export.onnx.metadata import read_metadata  # noqa: E402
from deepshop_native.core.errors import ModelError  # noqa: E402

FD = descriptor_pb2.FieldDescriptorProto
VGG_MEAN = np.array([103.939, 116.779, 123.680], np.float32)[:, None, None]


def _caffe_classes():
    """The few caffe.proto messages a VGG file uses, with caffe.proto's field numbers."""
    f = descriptor_pb2.FileDescriptorProto(name="deepshop_test_caffe.proto", package="tcaffe", syntax="proto2")

    def message(name, *fields):
        m = f.message_type.add(name=name)
        for fname, number, ftype, repeated, type_name, packed in fields:
            fd = m.field.add(name=fname, number=number, type=ftype,
                             label=FD.LABEL_REPEATED if repeated else FD.LABEL_OPTIONAL)
            if type_name:
                fd.type_name = ".tcaffe." + type_name
            if packed:
                fd.options.packed = True

    message("BlobShape", ("dim", 1, FD.TYPE_INT64, True, None, True))
    message("BlobProto", ("num", 1, FD.TYPE_INT32, False, None, False), ("channels", 2, FD.TYPE_INT32, False, None, False),
            ("height", 3, FD.TYPE_INT32, False, None, False), ("width", 4, FD.TYPE_INT32, False, None, False),
            ("data", 5, FD.TYPE_FLOAT, True, None, True), ("shape", 7, FD.TYPE_MESSAGE, False, "BlobShape", False))
    message("ConvolutionParameter", ("num_output", 1, FD.TYPE_UINT32, False, None, False),
            ("bias_term", 2, FD.TYPE_BOOL, False, None, False), ("pad", 3, FD.TYPE_UINT32, True, None, False),
            ("kernel_size", 4, FD.TYPE_UINT32, True, None, False), ("stride", 6, FD.TYPE_UINT32, True, None, False))
    message("PoolingParameter", ("pool", 1, FD.TYPE_INT32, False, None, False),
            ("kernel_size", 2, FD.TYPE_UINT32, False, None, False), ("stride", 3, FD.TYPE_UINT32, False, None, False))
    message("LayerParameter", ("name", 1, FD.TYPE_STRING, False, None, False), ("type", 2, FD.TYPE_STRING, False, None, False),
            ("bottom", 3, FD.TYPE_STRING, True, None, False), ("top", 4, FD.TYPE_STRING, True, None, False),
            ("blobs", 7, FD.TYPE_MESSAGE, True, "BlobProto", False),
            ("convolution_param", 106, FD.TYPE_MESSAGE, False, "ConvolutionParameter", False),
            ("pooling_param", 121, FD.TYPE_MESSAGE, False, "PoolingParameter", False))
    message("V1LayerParameter", ("bottom", 2, FD.TYPE_STRING, True, None, False), ("top", 3, FD.TYPE_STRING, True, None, False),
            ("name", 4, FD.TYPE_STRING, False, None, False), ("type", 5, FD.TYPE_INT32, False, None, False),
            ("blobs", 6, FD.TYPE_MESSAGE, True, "BlobProto", False),
            ("convolution_param", 10, FD.TYPE_MESSAGE, False, "ConvolutionParameter", False),
            ("pooling_param", 19, FD.TYPE_MESSAGE, False, "PoolingParameter", False))
    message("NetParameter", ("name", 1, FD.TYPE_STRING, False, None, False),
            ("layers", 2, FD.TYPE_MESSAGE, True, "V1LayerParameter", False),
            ("layer", 100, FD.TYPE_MESSAGE, True, "LayerParameter", False))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName("tcaffe." + name))


V1_CODES = {"Convolution": 4, "ReLU": 18, "Pooling": 17, "InnerProduct": 14, "Dropout": 6, "Softmax": 20, "Data": 5}


def write_vgg(path, blocks, widths, v1: bool, seed: int):
    """A VGG-shaped caffemodel: conv{b}_{i} + relu{b}_{i} per block, pool{b} after each, then the
    fully connected head (fc6, relu6, drop6, fc8, prob).  Returns the conv weights (w, b) in order."""
    cls = _caffe_classes()
    net = cls("NetParameter")(name="VGG_test")
    rng = np.random.default_rng(seed)
    weights = []
    prev, last_top = 3, "data"

    def add(name, kind, bottom, top, blobs=(), conv=None, pool=None):
        layer = net.layers.add() if v1 else net.layer.add()
        layer.name = name
        if v1:
            layer.type = V1_CODES[kind]
        else:
            layer.type = kind
        layer.bottom.append(bottom)
        layer.top.append(top)
        for array in blobs:
            blob = layer.blobs.add()
            if v1:   # 2014 files: the legacy 4-D shape fields
                shape = (1,) * (4 - array.ndim) + array.shape
                blob.num, blob.channels, blob.height, blob.width = shape
            else:
                blob.shape.dim.extend(array.shape)
            blob.data.extend(array.ravel().tolist())
        if conv:
            layer.convolution_param.num_output = conv
            layer.convolution_param.pad.append(1)
            layer.convolution_param.kernel_size.append(3)
        if pool:
            layer.pooling_param.pool = 0
            layer.pooling_param.kernel_size = 2
            layer.pooling_param.stride = 2

    if v1:
        add("data", "Data", "", "data")
    for b, (count, width) in enumerate(zip(blocks, widths), start=1):
        for i in range(1, count + 1):
            w = rng.normal(0, np.sqrt(2 / (prev * 9)), (width, prev, 3, 3)).astype(np.float32)
            bias = rng.normal(0, 0.5, width).astype(np.float32)
            weights.append((w, bias))
            add(f"conv{b}_{i}", "Convolution", last_top, f"conv{b}_{i}", (w, bias), conv=width)
            add(f"relu{b}_{i}", "ReLU", f"conv{b}_{i}", f"conv{b}_{i}")
            last_top, prev = f"conv{b}_{i}", width
        add(f"pool{b}", "Pooling", last_top, f"pool{b}", pool=True)
        last_top = f"pool{b}"
    fc = rng.normal(size=(10, prev * 4)).astype(np.float32)
    add("fc6", "InnerProduct", last_top, "fc6", (fc, np.zeros(10, np.float32)))
    add("relu6", "ReLU", "fc6", "fc6")
    add("drop6", "Dropout", "fc6", "fc6")
    add("prob", "Softmax", "fc6", "prob")
    with open(path, "wb") as fh:
        fh.write(net.SerializeToString())
    return weights


def _pool(x: np.ndarray, kind: str) -> np.ndarray:
    """Caffe's 2x2/2 pooling (numpy): the output size rounds up, the last window is clipped to the
    image and averaged over what it covers."""
    n, c, h, w = x.shape
    oh, ow = -(-(h - 2) // 2) + 1, -(-(w - 2) // 2) + 1
    out = np.empty((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, 2 * i:min(2 * i + 2, h), 2 * j:min(2 * j + 2, w)]
            out[:, :, i, j] = window.max(axis=(2, 3)) if kind == "max" else window.mean(axis=(2, 3))
    return out


def _reference(weights, blocks, x: np.ndarray, pooling: str) -> dict:
    feats, k = {}, 0
    t = x
    for b, count in enumerate(blocks, start=1):
        for i in range(1, count + 1):
            w, bias = weights[k]
            k += 1
            with torch.no_grad():
                t = F.relu(F.conv2d(torch.from_numpy(t), torch.from_numpy(w), torch.from_numpy(bias), padding=1)).numpy()
            feats[f"relu{b}_{i}"] = t
        if b < len(blocks):
            t = _pool(t, pooling)
    return feats


@pytest.mark.parametrize("arch,v1,pooling", [
    ("vgg16", True, "max"),        # the 2014 file layout (V1 'layers', legacy blob shapes)
    ("vgg19", False, "average"),   # the newer 'layer' layout, Gatys' average pooling
])
def test_features_match_a_rebuild(tmp_path, arch, v1, pooling):
    blocks = (2, 2, 3, 3, 3) if arch == "vgg16" else (2, 2, 4, 4, 4)
    path = tmp_path / f"VGG_{arch}.caffemodel"
    weights = write_vgg(path, blocks, (4, 8, 8, 16, 16), v1=v1, seed=len(blocks) + v1)
    out = tmp_path / f"{arch}.onnx"
    assert main([str(path), "-o", str(out), "--pooling", pooling, "--license", "CC-BY-4.0"]) == 0

    meta = read_metadata(out)
    names = [f"relu{b}_{i}" for b, count in enumerate(blocks, start=1) for i in range(1, count + 1)]
    assert json.loads(meta["features"]) == names and meta["pooling"] == pooling
    assert meta["family"] == "feature_net" and meta["channel_order"] == "BGR" and meta["value_range"] == "0,255"
    assert meta["mean"] == "103.939,116.779,123.68" and meta["stride_multiple"] == "16"
    assert json.loads(meta["outputs"]) == {n: "features" for n in names}
    assert json.loads(meta["provenance"])["source_format"] == "caffemodel"

    # A BGR photo, mean subtracted as Caffe's VGG takes it; 132 x 100 so that pooling rounds up (33 -> 17).
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image
    rgb = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((100, 132), Image.LANCZOS), np.float32)
    x = (rgb[..., ::-1].transpose(2, 0, 1) - VGG_MEAN)[None].astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = dict(zip(names, session.run(names, {"input": x})))
    expected = _reference(weights, blocks, x, pooling)
    for name in names:
        assert got[name].shape == expected[name].shape, name
        scale = max(1.0, float(np.abs(expected[name]).max()))
        assert np.abs(got[name] - expected[name]).max() <= 1e-4 * scale, name
    assert got[names[-1]].shape[2:] == (9, 7)


def test_reader_sees_both_layouts_the_same(tmp_path):
    a = write_vgg(tmp_path / "a.caffemodel", (1, 1), (4, 4), v1=True, seed=1)
    b = write_vgg(tmp_path / "b.caffemodel", (1, 1), (4, 4), v1=False, seed=1)
    la, lb = read_caffemodel(tmp_path / "a.caffemodel"), read_caffemodel(tmp_path / "b.caffemodel")
    assert [(l.name, l.type) for l in la if l.type != "Data"] == [(l.name, l.type) for l in lb]
    conv_a = next(l for l in la if l.name == "conv2_1")
    np.testing.assert_array_equal(conv_a.blobs[0], a[1][0])
    np.testing.assert_array_equal(conv_a.blobs[1].reshape(-1), a[1][1])
    assert conv_a.params["kernel"] == (3, 3) and conv_a.params["pad"] == (1, 1) and conv_a.params["stride"] == (1, 1)
    np.testing.assert_array_equal(next(l for l in lb if l.name == "conv2_1").blobs[0], b[1][0])


def test_bad_caffe_files_and_options(tmp_path, capsys):
    write_vgg(tmp_path / "full.caffemodel", (1, 1), (4, 4), v1=False, seed=2)
    data = (tmp_path / "full.caffemodel").read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(data[:len(data) // 3])
    with pytest.raises(ModelError, match="cut.caffemodel.*not a readable caffemodel"):
        read_caffemodel(tmp_path / "cut.caffemodel")
    (tmp_path / "deploy.caffemodel").write_text('name: "VGG"\nlayer { name: "conv1_1" type: "Convolution" }\n')
    assert main([str(tmp_path / "deploy.caffemodel"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "deploy.caffemodel" in capsys.readouterr().err
    assert main([str(tmp_path / "full.caffemodel"), "-o", str(tmp_path / "x.onnx"), "--statistics"]) == 1
    assert "--statistics" in capsys.readouterr().err
    assert main([str(tmp_path / "x.t7"), "-o", str(tmp_path / "x.onnx"), "--pooling", "average"]) == 1
    assert "--pooling" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_help_lists_the_importers(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for needle in (".t7", "eccv16", ".caffemodel", "VGG_ILSVRC_19_layers.caffemodel", ".pth"):
        assert needle in text
