"""Statistics given from outside (a video shot's): a global-statistics graph normalises every tile,
a single one too, with them instead of measuring the image (engine/image_runner: run_image's
statistics; StylePipeline.statistics measures them).  Checked on the bundled style (a
global-statistics TransformerNet) against its own runs."""
from __future__ import annotations

import numpy as np
import pytest

import deepshop_native as ds


@pytest.fixture(scope="module")
def stylizer():
    return ds.Stylizer(device="cpu", tile=0)


def test_an_images_own_statistics_given_back_are_its_own_run(stylizer, photos):
    assert stylizer.has_statistics
    # One window, sides multiples of the stride (no reflected padding, which the network's own
    # statistics would include and a measurement over the image leaves out), no thumbnail factor.
    photo = np.ascontiguousarray(photos["astronaut"][:304:4, :448:4])
    assert photo.shape == (76, 112, 3)
    mean, var = stylizer.statistics(photo)
    assert mean.shape == var.shape and mean.ndim == 1 and np.all(var >= 0)
    own = stylizer.run(photo.astype(np.float32) / 255)
    given = stylizer.run(photo.astype(np.float32) / 255, statistics=(mean, var))
    assert np.abs(own - given).max() < 1e-5          # measured 4e-7


def test_given_statistics_make_frames_alike(stylizer, photos):
    """Two crops of one scene normalised with one set of statistics differ less from each other where
    they overlap than with each its own (what a video's shot statistics are for)."""
    scene = photos["astronaut"][::2, ::2]
    a, b = np.ascontiguousarray(scene[:200, :200]), np.ascontiguousarray(scene[20:220, 10:210])
    shot = stylizer.statistics(np.ascontiguousarray(scene))
    own_a, own_b = stylizer.run(a), stylizer.run(b)
    shot_a, shot_b = stylizer.run(a, statistics=shot), stylizer.run(b, statistics=shot)
    inner = (slice(60, 160), slice(60, 160))
    moved = (slice(40, 140), slice(50, 150))
    own = np.abs(own_a[inner].astype(int) - own_b[moved]).mean()
    same = np.abs(shot_a[inner].astype(int) - shot_b[moved]).mean()
    assert same < own


def test_given_statistics_are_checked(stylizer, identity_onnx):
    with pytest.raises(ds.OptionError, match="statistics: expected"):
        stylizer.run(np.zeros((16, 16, 3), np.uint8), statistics=(np.zeros(3), np.ones(3)))
    plain = ds.Stylizer(identity_onnx, device="cpu")
    with pytest.raises(ds.ModelError, match="not a global-statistics graph"):
        plain.statistics(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ds.ModelError, match="no global-statistics graph"):
        plain.run(np.zeros((16, 16, 3), np.uint8), statistics=(np.zeros(3), np.ones(3)))
