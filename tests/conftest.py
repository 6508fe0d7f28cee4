"""Shared fixtures: small ONNX models made on the fly (nothing is downloaded) and sample photos
that scikit-image ships."""
from __future__ import annotations

import pytest

from model_factory import TRANSFORMER_META, export_plain, identity_model, random_transformer_net


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
