"""Line-art colouriser: the training data pipeline and inference, measured in one run.

Groups:

* lineart-sample-128px: one training sample from a decoded photo (random 128 x 128 crop, auto-Canny
  edges, posterised class labels for the 27-colour palette), three ways of posterising: the
  native kernel (what the training uses), vectorised numpy (broadcast distance + argmin), and the
  tutorial's per-pixel Python loop.  samples/s = 1 / time.
* lineart-train-step: one training step of the bundled model's configuration (U-Net base 16,
  depth 3, batch 8 of 96 x 96, 27 classes, Adam) on one torch thread, to set the data
  pipeline's samples/s against (extra_info samples_per_step).
* lineart-inference-512: the bundled model through the engine (tiled runner, argmax decoding) on
  a 512 x 512 drawing: MP/s = extra_info mpix / time.  $LINEART_MODEL names another model;
  skipped without either.

    python -m pytest bench/bench_lineart.py --benchmark-only --benchmark-json=/tmp/la.json
    python bench/ratios.py /tmp/la.json
"""
import functools
import os
import random

import numpy as np
import pytest
from PIL import Image
from skimage import data

import deepshop_native as ds

PALETTE = ds.uniform_palette(3)


@functools.lru_cache(maxsize=1)
def photo():
    return Image.fromarray(data.astronaut())


def numpy_labels(rgb, palette):
    px = rgb.reshape(-1, 3).astype(np.float32)
    pal = palette.astype(np.float32)
    d = (px[:, 0:1] - pal[:, 0]) ** 2
    d += (px[:, 1:2] - pal[:, 1]) ** 2
    d += (px[:, 2:3] - pal[:, 2]) ** 2
    return d.argmin(axis=1).reshape(rgb.shape[:2])


def python_loop_labels(rgb, palette):
    """The tutorial's way: every pixel against every colour in Python."""
    out = np.empty(rgb.shape[:2], np.int64)
    pal = [tuple(int(v) for v in c) for c in palette]
    for y in range(rgb.shape[0]):
        for x in range(rgb.shape[1]):
            r, g, b = (int(v) for v in rgb[y, x])
            out[y, x] = min(range(len(pal)), key=lambda k: (pal[k][0] - r) ** 2 + (pal[k][1] - g) ** 2
                            + (pal[k][2] - b) ** 2)
    return out


def native_labels(rgb, palette):
    return ds.posterize(rgb, palette=palette, return_labels=True)[1]


LABELLERS = {"native": native_labels, "numpy": numpy_labels, "python-loop": python_loop_labels}


def make_sample(labeller, rng):
    from deepshop_export.training.data import random_resized_crop
    crop = np.asarray(random_resized_crop(photo(), 128, rng), dtype=np.uint8)
    edges = ds.edges(crop).astype(np.float32) / 255
    return edges, labeller(crop, PALETTE)


@pytest.mark.parametrize("impl", ["numpy", "native", "python-loop"])
def test_sample(benchmark, impl):
    rng = random.Random(0)
    benchmark.group = "lineart-sample-128px"
    benchmark.extra_info["impl"] = impl
    e, lab = benchmark.pedantic(lambda: make_sample(LABELLERS[impl], rng), rounds=3 if impl == "python-loop" else 20,
                                iterations=1, warmup_rounds=1)
    crop = np.asarray(photo().resize((128, 128)))
    assert np.array_equal(LABELLERS[impl](crop, PALETTE), numpy_labels(crop, PALETTE))


def test_train_step(benchmark):
    torch = pytest.importorskip("torch")
    from deepshop_export.families.lineart.network import LineArtUNet
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = LineArtUNet(27, 16, 3)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    x = (torch.rand(8, 1, 96, 96) < 0.1).float()
    y = torch.randint(0, 27, (8, 96, 96))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    benchmark.group = "lineart-train-step"
    benchmark.extra_info["samples_per_step"] = 8
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)


def test_inference(benchmark):
    from deepshop_native.pipelines.colorize import DEFAULT_LINEART_MODEL, Colorizer
    model = os.environ.get("LINEART_MODEL", DEFAULT_LINEART_MODEL)
    if not os.path.isfile(model):
        pytest.skip("no line-art model (bundled or $LINEART_MODEL)")
    c = Colorizer(model, threads=1)
    drawing = ds.edges(np.asarray(photo()))
    benchmark.group = "lineart-inference-512"
    benchmark.extra_info["mpix"] = drawing.size / 1e6
    benchmark.extra_info["threads"] = 1
    benchmark.pedantic(lambda: c.run(drawing, input="edges", temperature=0), rounds=5, iterations=1, warmup_rounds=1)
