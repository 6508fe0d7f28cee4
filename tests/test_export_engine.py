"""Checkpoint -> deepshop-export -> native engine, against torch on the same weights."""
from __future__ import annotations

import numpy as np
import pytest

import deepshop_native as ds

from model_factory import random_transformer_net, torch_reference

torch = pytest.importorskip("torch")
export_cli = pytest.importorskip("deepshop_export.cli")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    net = random_transformer_net(seed=7)
    path = tmp_path_factory.mktemp("ckpt") / "style.pth"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.mark.parametrize("fp16,tol", [(False, 0.02), (True, 2.0)])
def test_exported_checkpoint_runs_in_the_engine_like_torch(tmp_path, checkpoint, fp16, tol):
    net, pth = checkpoint
    out = tmp_path / "style.onnx"
    args = [str(pth), "-o", str(out), "--name", "random", "--no-validate"] + (["--fp16"] if fp16 else [])
    assert export_cli.main(args) == 0
    st = ds.Stylizer(out, device="cpu", tile=0)
    meta = st.metadata
    assert meta["deepshop.family"] == "transformer_net" and meta["deepshop.stride_multiple"] == "4"
    assert int(meta["deepshop.receptive_field"]) > 100
    img = np.random.default_rng(3).integers(0, 256, (100, 132, 3), dtype=np.uint8)
    got = st(img.astype(np.float32) / 255) * 255
    # fp32: summation order only.  fp16: the weights are rounded to half precision (the model
    # still computes in float32 on the CPU), which moves outputs by up to about 1 grey level.
    assert np.abs(got - torch_reference(net, img)).max() < tol


def test_training_record_travels_into_the_model(tmp_path, checkpoint):
    import json
    import stat

    net, _ = checkpoint
    pth = tmp_path / "model.pth"
    torch.save(net.state_dict(), pth)
    (tmp_path / "model.json").write_text(json.dumps({"style_image": {"file": "s.png", "license": "CC0-1.0"},
                                                      "training": {"iterations": 3}}))
    out = tmp_path / "m.onnx"
    assert export_cli.main([str(pth), "-o", str(out), "--no-validate", "--license", "CC0-1.0"]) == 0
    meta = ds.Stylizer(out, device="cpu").metadata
    prov = json.loads(meta["deepshop.provenance"])
    assert prov["style_image"]["file"] == "s.png" and prov["training"]["iterations"] == 3
    assert prov["source"] == "model.pth" and meta["deepshop.license"] == "CC0-1.0"
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, not 0600
