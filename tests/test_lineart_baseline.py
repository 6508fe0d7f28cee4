"""The tutorial-style baseline of the line-art colouriser (issue 11): a fixed 128 x 128 input
squeezed to 1 x 1 x 2187 and back (``deepshop-train lineart --arch tutorial``).  References:
parameter counts worked out by hand from the layer list, block-by-block evaluation."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from deepshop_export.families.lineart.network import TutorialNet, build_network, parameter_count  # noqa: E402
from deepshop_export.families.lineart.train import resolve_settings  # noqa: E402
from deepshop_export.training.errors import TrainError  # noqa: E402


def hand_count(widths, classes):
    """4 x 4 (transposed) convolutions without bias + batch norm (2 per channel), the last
    transposed convolution with a bias and no norm."""
    enc = [1] + list(widths) + [2187]
    n = sum(16 * a * b + 2 * b for a, b in zip(enc[:-1], enc[1:]))
    dec = enc[::-1][:-1] + [classes]
    n += sum(16 * a * b + 2 * b for a, b in zip(dec[:-2], dec[1:-1]))
    return n + 16 * dec[-2] * classes + classes


def test_shape_and_parameters():
    with torch.device("meta"):                                     # 233 M parameters, no memory
        full = TutorialNet(16)
    assert parameter_count(full) == hand_count((64, 128, 256, 512, 1024, 2048), 16) == 232_756_262
    net = TutorialNet(16, width=0.125).eval()
    assert parameter_count(net) == hand_count((8, 16, 32, 64, 128, 256), 16) == 19_321_222
    x = (torch.rand(1, 1, 128, 128) < 0.1).float()
    assert net.encoder(x).shape == (1, 2187, 1, 1)                 # the 1 x 1 x 2187 squeeze
    assert net(x).shape == (1, 16, 128, 128)


def test_larger_inputs_run_as_independent_blocks():
    net = TutorialNet(5, width=0.05).eval()
    x = torch.rand(1, 1, 256, 384)
    with torch.no_grad():
        y = net(x)
        for by in range(2):
            for bx in range(3):
                crop = (slice(None), slice(None), slice(128 * by, 128 * by + 128), slice(128 * bx, 128 * bx + 128))
                torch.testing.assert_close(y[crop], net(x[crop]))
        with pytest.raises(ValueError, match="128"):
            net(torch.rand(1, 1, 96, 128))


def test_settings(tmp_path):
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--arch", "tutorial"]
    with pytest.raises(TrainError, match="--no-export"):
        resolve_settings(base + ["--image-size", "128"])
    with pytest.raises(TrainError, match="--image-size 128"):
        resolve_settings(base + ["--no-export", "--image-size", "96"])   # fixed input size
    s = resolve_settings(base + ["--no-export", "--image-size", "128", "--width", "0.125"])
    assert isinstance(build_network(s, 16), TutorialNet)
    assert type(build_network(resolve_settings(base[:4]), 16)).__name__ == "LineArtUNet"
