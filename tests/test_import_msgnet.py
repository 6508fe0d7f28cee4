"""MSG-Net checkpoints in the two public layouts, written here from a reference network with random
weights (the real 21styles.model / PaddleHub files cannot be downloaded here): the PyTorch layout
(every encoder parameter twice, model1.* and model.0.*; ins.weight and model.1.weight; legacy
InstanceNorm running statistics) and PaddleHub's .pdparams (a pickled dict of numpy arrays, the
encoder flattened into model.0-4, InstanceNorm scale/bias fixed at 1/0, paddle.save's name table).
Each import must compute what the reference network computes."""
from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepshop_export.families.msgnet.network import MSGNet  # noqa: E402
from deepshop_export.importers.msgnet import load_msgnet_file  # noqa: E402
from deepshop_native.core.errors import ModelError  # noqa: E402

NGF = 8          # small for speed; the layout is the published one otherwise (6 residual blocks)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(3)
    return MSGNet(ngf=NGF).eval()


def _norm_names(net: MSGNet, prefix_map) -> list:
    """(name, channels) of every InstanceNorm, in the layout's naming."""
    out = []
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.InstanceNorm2d) and not name.startswith("model.0.") and name != "model.1":
            out.append((prefix_map(name), m.num_features))
    return out


def pytorch_layout(net: MSGNet) -> dict:
    """21styles.model: net.state_dict() lists model1.* and model.0.*, ins.weight and model.1.weight;
    old torch saved InstanceNorm running statistics too."""
    state = dict(net.state_dict())
    assert "model.0.0.conv2d.weight" in state and "model1.0.conv2d.weight" in state and "model.1.weight" in state
    for name, c in _norm_names(net, lambda n: n):
        for alias in ([name, "model.0." + name[len("model1."):]] if name.startswith("model1.") else [name]):
            state[alias + ".running_mean"] = torch.zeros(c)
            state[alias + ".running_var"] = torch.ones(c)
    return state


def paddle_name(name: str) -> str:
    """Our module name -> PaddleHub's (encoder flattened into model.0-4, ins = model.5, the rest
    shifted by 4)."""
    if name.startswith("model1."):
        return "model." + name[len("model1."):]
    if name == "ins" or name.startswith("ins."):
        return "model.5" + name[len("ins"):]
    m = re.match(r"model\.(\d+)(.*)$", name)
    return f"model.{int(m.group(1)) + 4}{m.group(2)}"


def paddle_layout(net: MSGNet) -> dict:
    state = {}
    for k, v in net.named_parameters():
        state[paddle_name(k)] = v.detach().numpy().copy()
    for name, c in _norm_names(net, paddle_name):
        state[name + ".scale"] = np.ones(c, np.float32)
        state[name + ".bias"] = np.zeros(c, np.float32)
    state["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(state)}
    return state


def _same_as_reference(net, reference):
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 36, 28, generator=gen) * 255
    style = torch.rand(1, 3, 32, 40, generator=gen) * 255
    with torch.no_grad():
        want = reference(content, reference.style_gram(style))
        got = net(content, net.style_gram(style))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_pytorch_21styles_layout(tmp_path, reference):
    path = tmp_path / "21styles.model"
    torch.save(pytorch_layout(reference), path)
    net = load_msgnet_file(path)
    assert net.ngf == NGF and len(net.model) == 2 + 6 + 5
    _same_as_reference(net, reference)


def test_pytorch_layout_with_differing_duplicates_is_refused(tmp_path, reference):
    state = pytorch_layout(reference)
    state["model.0.0.conv2d.bias"] = state["model.0.0.conv2d.bias"] + 1
    torch.save(state, tmp_path / "bad.model")
    with pytest.raises(ModelError, match="bad.model.*model.0.0.conv2d.bias.*differ"):
        load_msgnet_file(tmp_path / "bad.model")


def test_paddlehub_pdparams_without_paddle(tmp_path, reference):
    path = tmp_path / "msgnet.pdparams"
    with open(path, "wb") as f:
        pickle.dump(paddle_layout(reference), f, protocol=4)
    net = load_msgnet_file(path)
    _same_as_reference(net, reference)


def test_pdparams_refuses_code_and_trained_norms(tmp_path, reference):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ModelError, match="evil.pdparams.*refusing to load builtins.print"):
        load_msgnet_file(evil)
    state = paddle_layout(reference)
    state["model.1.scale"] = state["model.1.scale"] * 2
    bad = tmp_path / "affine.pdparams"
    bad.write_bytes(pickle.dumps(state, protocol=4))
    with pytest.raises(ModelError, match="affine.pdparams.*model.1.scale.*not fixed at 1"):
        load_msgnet_file(bad)
    with pytest.raises(ModelError, match="missing.pdparams: no such file"):
        load_msgnet_file(tmp_path / "missing.pdparams")
