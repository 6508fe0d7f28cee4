"""deepshop-export model.t7: the Torch7 reader and Johnson's networks rebuilt, on .t7 files written
here (both architectures, random weights), against OpenCV 4's readNetFromTorch on the same file
(pre/post-processed as OpenCV's fast_neural_style.py sample does: BGR, mean subtracted by
blobFromImage, added back), the torch rebuild, torchfile (an independent reader) and the engine."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

import deepshop_native as ds  # noqa: E402
from deepshop_export.cli import main  # noqa: E402
from deepshop_export.importers.johnson import MEAN, load_johnson_t7  # noqa: E402
from deepshop_export.importers.torch7 import TorchObject, load_t7  # noqa: E402
from deepshop_export.onnx.metadata import read_metadata  # noqa: E402
from deepshop_native.core.errors import ModelError  # noqa: E402

from torch7_writer import Obj, Strided, johnson_network, lua_list, write_t7  # noqa: E402

MEAN_BGR = np.array(MEAN, np.float32)[:, None, None]


def _opencv_has_torch_importer() -> bool:
    return hasattr(cv2, "dnn") and hasattr(cv2.dnn, "readNetFromTorch")


@pytest.fixture(scope="module")
def bgr_photo():
    """A photo in BGR uint8, 132 x 100 (multiples of 4, not square)."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image
    rgb = np.asarray(Image.fromarray(skimage_data.chelsea()).resize((100, 132), Image.LANCZOS))
    return np.ascontiguousarray(rgb[..., ::-1])


@pytest.fixture(scope="module", params=["instance_norm", "eccv16"])
def t7_export(request, tmp_path_factory):
    """A .t7 of each architecture, exported with the CLI.  The instance-norm one is written as
    fast-neural-style's checkpoint table {model, opt}, the batch-norm one as the bare module."""
    d = tmp_path_factory.mktemp("t7")
    batch_norm = request.param == "eccv16"
    network = johnson_network(seed=11 if batch_norm else 12, batch_norm=batch_norm)
    root = network if batch_norm else {"model": network, "opt": {"arch": "c9s1-32,d64,d128,R128,R128,R128,R128,R128,"
                                                                        "u64,u32,c9s1-3", "style_image": "candy.jpg",
                                                                        "use_instance_norm": 1}}
    t7 = write_t7(d / f"{request.param}.t7", root)
    out = d / f"{request.param}.onnx"
    assert main([t7, "-o", str(out), "--license", "test"]) == 0
    return request.param, t7, out


def _opencv_run(t7, bgr):
    net = cv2.dnn.readNetFromTorch(str(t7))
    blob = cv2.dnn.blobFromImage(bgr, 1.0, (bgr.shape[1], bgr.shape[0]), tuple(float(m) for m in MEAN),
                                 swapRB=False, crop=False)
    net.setInput(blob)
    return blob, net.forward()[0] + MEAN_BGR          # 3 x H x W, BGR, 0..255 (unclipped)


def test_matches_opencv_and_the_torch_rebuild(t7_export, bgr_photo):
    if not _opencv_has_torch_importer():
        pytest.skip(f"OpenCV {cv2.__version__} has no Torch importer (OpenCV 5 dropped it; .ci/setup pins < 5)")
    kind, t7, onnx_path = t7_export
    blob, expected = _opencv_run(t7, bgr_photo)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["output"], {"input": blob})[0][0] + MEAN_BGR
    with torch.no_grad():
        rebuilt = load_johnson_t7(t7)(torch.from_numpy(blob))[0].numpy() + MEAN_BGR
    clip = lambda a: np.clip(a, 0, 255)  # noqa: E731  (the images the sample shows)
    err_cv, err_torch = np.abs(clip(got) - clip(expected)).max(), np.abs(clip(got) - clip(rebuilt)).max()
    print(f"\n{kind}: ONNX vs OpenCV {cv2.__version__} max abs {err_cv:.4f}, vs torch rebuild {err_torch:.4f} "
          f"(output spans {expected.min():.0f}..{expected.max():.0f})")
    assert err_cv <= 0.5 and err_torch <= 0.5
    assert np.std(expected) > 20        # a real picture, not a saturated or flat one


def test_metadata_and_the_engine(t7_export, bgr_photo):
    kind, t7, onnx_path = t7_export
    meta = read_metadata(onnx_path)
    assert meta["channel_order"] == "BGR" and meta["mean"] == "103.939,116.779,123.68"
    assert meta["value_range"] == "0,255" and meta["family"] == "transformer_net" and meta["stride_multiple"] == "4"
    assert meta["normalization"] == ("none" if kind == "eccv16" else "instance")
    prov = json.loads(meta["provenance"])
    assert prov["source"] == f"{kind}.t7" and prov["source_format"] == "torch7" and len(prov["source_sha256"]) == 64
    if kind == "instance_norm":
        assert prov["opt.style_image"] == "candy.jpg"
    # The engine converts RGB to the network's BGR, subtracts the mean and adds it back itself.
    blob = bgr_photo.transpose(2, 0, 1)[None].astype(np.float32) - MEAN_BGR
    with torch.no_grad():
        reference = load_johnson_t7(t7)(torch.from_numpy(blob))[0].numpy() + MEAN_BGR
    reference = np.clip(reference[::-1].transpose(1, 2, 0), 0, 255)           # RGB, H x W x 3
    rgb = bgr_photo[..., ::-1].astype(np.float32) / 255
    got = ds.Stylizer(onnx_path, device="cpu", tile=0)(rgb) * 255
    assert got.shape == reference.shape and np.abs(got - reference).max() <= 0.5
    if _opencv_has_torch_importer():   # and the engine against OpenCV directly
        _, cv_out = _opencv_run(t7, bgr_photo)
        assert np.abs(got - np.clip(cv_out[::-1].transpose(1, 2, 0), 0, 255)).max() <= 0.5


def test_reader_agrees_with_torchfile(tmp_path):
    """Shared objects (memo back-references), a non-contiguous tensor and every scalar type."""
    torchfile = pytest.importorskip("torchfile")
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(4, 5)).astype(np.float32)
    storage = rng.normal(size=40).astype(np.float32)
    table = {"name": "x", 1: 2.5, 2: True, "nested": {"a": shared, "b": shared}, "nothing": None,
             "strided": Strided(storage, (3, 4), (1, 6), offset=2),
             "module": Obj("nn.Identity", {"train": False})}
    path = write_t7(tmp_path / "mixed.t7", table)
    ours, theirs = load_t7(path), torchfile.load(path)
    assert ours["name"] == "x" and ours[1] == 2.5 and ours[2] is True and ours["nothing"] is None
    np.testing.assert_array_equal(ours["nested"]["a"], shared)
    assert ours["nested"]["a"] is ours["nested"]["b"]
    expected_strided = np.lib.stride_tricks.as_strided(storage[2:], (3, 4), (4, 24))
    np.testing.assert_array_equal(ours["strided"], expected_strided)
    np.testing.assert_array_equal(ours["strided"], theirs[b"strided"])
    np.testing.assert_array_equal(ours["nested"]["a"], theirs[b"nested"][b"a"])
    assert isinstance(ours["module"], TorchObject) and ours["module"].class_name == "nn.Identity"
    assert theirs[b"module"].torch_typename() == b"nn.Identity"


def test_rebuild_follows_torchfile_weights(tmp_path):
    """The conv weights the importer puts in the torch module are those torchfile reads."""
    torchfile = pytest.importorskip("torchfile")
    path = write_t7(tmp_path / "net.t7", johnson_network(seed=3, batch_norm=False, blocks=1))
    net = load_johnson_t7(path)
    theirs = torchfile.load(path)
    first_conv = theirs[b"modules"][1]
    np.testing.assert_array_equal(net.body[1].weight.detach().numpy(), first_conv[b"weight"])
    assert net.receptive_field >= 4 * 2 + 1 and net.stride_multiple == 4


def test_bad_files_name_the_file_and_the_reason(tmp_path, capsys):
    path = write_t7(tmp_path / "cut.t7", johnson_network(seed=3, batch_norm=False, blocks=1))
    data = open(path, "rb").read()
    (tmp_path / "cut.t7").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.t7.*more bytes"):
        load_t7(tmp_path / "cut.t7")
    assert main([str(tmp_path / "cut.t7"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "cut.t7" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()

    odd = write_t7(tmp_path / "odd.t7", Obj("nn.Sequential", {"modules": lua_list([Obj("nn.SpatialMaxPooling", {})])}))
    with pytest.raises(ModelError, match="odd.t7.*nn.SpatialMaxPooling is not supported"):
        load_johnson_t7(odd)
    not_a_net = write_t7(tmp_path / "table.t7", {"epoch": 3})
    with pytest.raises(ModelError, match="table.t7.*no nn module"):
        load_johnson_t7(not_a_net)
    (tmp_path / "lua.t7").write_bytes(b"\x06\x00\x00\x00\x01\x00\x00\x00")
    with pytest.raises(ModelError, match="Lua function"):
        load_t7(tmp_path / "lua.t7")
    with pytest.raises(ModelError, match="no such file"):
        load_t7(tmp_path / "missing.t7")


def test_statistics_graph_of_an_instance_norm_t7(tmp_path):
    """--statistics works on an imported instance-norm network: mix 0 is the plain network."""
    path = write_t7(tmp_path / "in.t7", johnson_network(seed=5, batch_norm=False, blocks=1))
    out = tmp_path / "in_stats.onnx"
    assert main([path, "-o", str(out), "--statistics", "--no-validate"]) == 0
    stats = json.loads(read_metadata(out)["statistics"])
    assert [l["channels"] for l in stats["layers"]] == [32, 64, 128, 128, 128, 64, 32]
    x = np.random.default_rng(1).uniform(-120, 130, (1, 3, 64, 48)).astype(np.float32)
    total = stats["total_channels"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["output"], {"input": x, "stat_mean": np.zeros(total, np.float32),
                                   "stat_var": np.ones(total, np.float32), "stat_mix": np.zeros(1, np.float32),
                                   "stat_mask": np.ones((1, 1, 64, 48), np.float32)})[0]
    with torch.no_grad():
        expected = load_johnson_t7(path)(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-2
    bn = write_t7(tmp_path / "bn.t7", johnson_network(seed=5, batch_norm=True, blocks=1))
    assert main([bn, "-o", str(tmp_path / "bn.onnx"), "--statistics", "--no-validate"]) == 1
