"""Shared fixtures: small ONNX models made on the fly (nothing is downloaded) and sample photos
that scikit-image ships."""
from __future__ import annotations

import os

import pytest

from deepshop_native import _native
from deepshop_native.core import runtime as _runtime

from model_factory import TRANSFORMER_META, export_plain, identity_model, random_transformer_net

#: The OpenVINO plugin as installed here ("" if not).  The suite hides it (subprocesses included):
#: tests that leave device="auto" compare with torch at fp32 tolerances, and on an Intel CPU auto
#: would take OpenVINO in bf16.  tests/test_providers.py turns it back on with `openvino_plugin`.
OPENVINO_PLUGIN = _runtime.find_openvino_plugin()[0]
os.environ[_runtime.ENV_OPENVINO_LIBRARY] = "/hidden-by-the-test-suite/openvino-plugin.so"
#: OpenVINO's own library (the `openvino` wheel, called directly), hidden the same way; shown by
#: the `openvino_library` fixture.
OPENVINO_LIBRARY = _runtime.find_openvino_library()[0]
os.environ[_runtime.ENV_OPENVINO_DIRECT_LIBRARY] = "/hidden-by-the-test-suite/libopenvino_c.so"
#: OpenVINO's compiled-model cache off (subprocesses included): tests write nothing into the user's
#: cache folder; tests/test_openvino_cache.py points it at its own folders.
os.environ["DEEPSHOP_CACHE"] = "off"


#: Whether this CPU computes bf16 (AVX512-BF16 or AMX).  CI runs on whatever CPU the machine has:
#: bf16 cases skip where it is missing, and tests check the DeviceError there instead.
CPU_HAS_BF16 = bool(_native.cpu_has_bf16())
#: Set by tools/sanitize.sh: the extension runs under AddressSanitizer, where OpenVINO cannot load
#: (its TBB opens libraries with RTLD_DEEPBIND, which the sanitizer runtime refuses by aborting).
SANITIZED = os.environ.get("DEEPSHOP_SANITIZED") == "1"
NO_OPENVINO_UNDER_ASAN = ("under AddressSanitizer: OpenVINO's TBB dlopens with RTLD_DEEPBIND, which the "
                          "sanitizer runtime aborts on")
needs_bf16 = pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has no AVX512-BF16 or AMX")


@pytest.fixture
def openvino_plugin(monkeypatch):
    """Shows the installed OpenVINO plugin to the test (its path, or "" where none is installed)."""
    if SANITIZED:
        pytest.skip(NO_OPENVINO_UNDER_ASAN)
    if OPENVINO_PLUGIN:
        monkeypatch.setenv(_runtime.ENV_OPENVINO_LIBRARY, OPENVINO_PLUGIN)
    else:
        monkeypatch.delenv(_runtime.ENV_OPENVINO_LIBRARY, raising=False)
    return OPENVINO_PLUGIN


@pytest.fixture
def openvino_library(monkeypatch):
    """Shows OpenVINO's own C API library to the test (its path), or skips where the `openvino`
    package is not installed."""
    if SANITIZED:
        pytest.skip(NO_OPENVINO_UNDER_ASAN)
    if not OPENVINO_LIBRARY:
        pytest.skip("the openvino package is not installed (pip install 'deepshop-native[openvino]')")
    monkeypatch.setenv(_runtime.ENV_OPENVINO_DIRECT_LIBRARY, OPENVINO_LIBRARY)
    return OPENVINO_LIBRARY


@pytest.fixture(scope="session")
def transformer_net():
    return random_transformer_net(seed=0)


@pytest.fixture(scope="session")
def transformer_onnx(tmp_path_factory, transformer_net):
    path = tmp_path_factory.mktemp("models") / "tnet.onnx"
    return export_plain(transformer_net, path, {**TRANSFORMER_META, "deepshop.receptive_field": "109"})


@pytest.fixture(scope="session")
def identity_onnx(tmp_path_factory):
    return identity_model(tmp_path_factory.mktemp("models") / "identity.onnx")


@pytest.fixture(scope="session")
def photos():
    """Sample photos shipped with scikit-image (RGB uint8)."""
    data = pytest.importorskip("skimage.data")
    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}


@pytest.fixture(scope="session")
def msgnet_net():
    """A small random MSG-Net (ngf=8), seeded: torch's reference of the exported pair."""
    torch = pytest.importorskip("torch")
    from deepshop_export.families.msgnet.network import MSGNet
    torch.manual_seed(5)
    return MSGNet(ngf=8, n_blocks=2).eval()


@pytest.fixture(scope="session")
def msgnet_pair(tmp_path_factory, msgnet_net):
    """msgnet_net exported as the encoder + generator pair (the generator's path).  Session-wide: the
    export takes tens of seconds on a small machine, and test_msgnet and test_serve share it."""
    from deepshop_export.families.msgnet.export import export_msgnet
    out = tmp_path_factory.mktemp("msgnet") / "msg.onnx"
    # No export-time validation: test_msgnet's test_engine_matches_torch_end_to_end is the stronger check.
    export_msgnet(msgnet_net, out, name="test", provenance={"source": "test"}, validate=False)
    return str(out)


def _tiny_styles():
    """The 26 styles' names and descriptions, as the real conversion writes them."""
    try:
        from deepshop_export.families.multistyle.export import STYLES
    except ImportError:          # no torch: the fixture skips anyway
        return []
    return STYLES


#: The styles of the tiny stand-in for the 26-style network (tiny_pretrained): the real names.
TINY_STYLES = _tiny_styles()


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """A stand-in for the pretrained folder (deepshop-export pretrained): small random networks of the
    converted ones' layer kinds under their file names, and the torch modules they came from:
    (folder, predictor, transfer, multistyle network)."""
    pytest.importorskip("torch")
    from deepshop_export.families.arbitrary_style.export import export_arbitrary_style
    from deepshop_export.families.multistyle.export import export_multistyle

    from model_factory import tiny_style_nets
    out = tmp_path_factory.mktemp("pretrained")
    predictor, transfer = tiny_style_nets(2)
    export_arbitrary_style(predictor, transfer, out / "arbitrary_style.onnx", name="tiny", license="test",
                           provenance={"predictor": {}, "generator": {}}, statistics=True)
    _, multi = tiny_style_nets(3, style_dim=len(TINY_STYLES))
    export_multistyle(multi, out / "multistyle26.onnx", name="tiny", provenance={}, license="test",
                      styles=TINY_STYLES, statistics=False)
    return out, predictor, transfer, multi
