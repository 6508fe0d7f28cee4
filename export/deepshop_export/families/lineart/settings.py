"""The settings of ``deepshop-train lineart``: its options (the shared ones of
deepshop_export.training.settings, with line art's defaults), their checks and the checkpoint format."""
from __future__ import annotations

import argparse

from ...training import settings as run_settings
from ...training.errors import TrainError
from .network import ARCHITECTURES, TUTORIAL_SIZE

CHECKPOINT_FORMAT = "deepshop-train-lineart-1"

DEFAULTS = dict(
    run_settings.RUN_DEFAULTS, image_size=128, batch_size=8, lr=2e-3, epochs=4, checkpoint_interval=200,
    levels=3, palette="uniform", k=16, space="rgb", rebalance=False, base=24, depth=3, holdout_every=10,
    name="lineart", license="unknown", fp16=False, eval_size=256, export=True, arch="unet", width=1.0,
)
RUN_CONTROL = run_settings.RUN_CONTROL | {"name", "license", "fp16", "eval_size", "export"}


def build_parser() -> argparse.ArgumentParser:
    p = run_settings.new_parser(
        "deepshop-train lineart",
        "Train a line-drawing colouriser: auto-Canny edges of photos in, posterised colour "
        "classes out (a fully convolutional U-Net), and export it to ONNX.")
    a = p.add_argument
    a("--levels", type=int, help="uniform palette: this many values per channel, levels^3 classes (default 3: 27)")
    a("--palette", choices=["uniform", "kmeans"], help="uniform levels, or K colours learned from the photos "
      "by k-means in CIELAB (default: uniform)")
    a("-k", type=int, help="number of learned colours with --palette kmeans (default 16)")
    a("--space", choices=["rgb", "lab"], help="colour distance of the posterised targets (default: rgb)")
    a("--rebalance", action="store_const", const=True,
      help="weight the loss by inverse class frequency (rare colours otherwise vanish)")
    a("--arch", choices=ARCHITECTURES, help="unet (default: ours) or tutorial (the baseline: the tutorial's fixed "
      "128 x 128 network squeezed to 1 x 1 x 2187, for comparison only; needs --image-size 128 --no-export)")
    a("--width", type=float, help="--arch tutorial: channel multiplier of every layer but the 2187-channel "
      "bottleneck (default 1: 233 M parameters; 0.125: 19 M)")
    a("--base", type=int, help="channels of the U-Net's first level (default 24: ~1.0 M parameters)")
    a("--depth", type=int, help="U-Net levels (default 3: inputs multiples of 8)")
    run_settings.add_run_arguments(
        p, DEFAULTS, data_help="folder of training photos, searched recursively",
        out_help="run folder (checkpoints, logs, plots, samples, model.onnx)",
        image_size_help="training crop size, a multiple of 2^depth", batch_help="crops per step")
    a("--holdout-every", type=int, help="hold out every Nth photo (sorted by path) for evaluation; 0: none "
      "(default 10)")
    a("--name", help="model name in the metadata (default: lineart)")
    a("--license", help="licence of the weights, recorded in the model (default: unknown)")
    a("--fp16", action="store_const", const=True, help="store the exported weights in float16")
    a("--eval-size", type=int, help="held-out evaluation: centre squares of this size (default 256)")
    a("--no-export", dest="export", action="store_const", const=False,
      help="do not export model.onnx at the end (deepshop-export-free runs, tests)")
    return p


def resolve_settings(argv) -> dict:
    settings = run_settings.resolve(build_parser(), argv, DEFAULTS, RUN_CONTROL, CHECKPOINT_FORMAT)
    if settings["arch"] == "tutorial":
        if settings["image_size"] != TUTORIAL_SIZE:
            raise TrainError(f"--arch tutorial: the network's input is fixed at {TUTORIAL_SIZE} x {TUTORIAL_SIZE}; "
                             f"use --image-size {TUTORIAL_SIZE}")
        if settings["export"]:
            raise TrainError("--arch tutorial is a baseline for comparison, not exported (a fixed-size network "
                             "cannot be tiled by the engine): add --no-export")
        if not 0 < settings["width"] <= 1:
            raise TrainError(f"--width {settings['width']}: must be in (0, 1]")
    stride = 2 ** settings["depth"]
    if settings["depth"] < 1 or settings["depth"] > 6:
        raise TrainError(f"--depth {settings['depth']}: must be 1..6")
    if settings["arch"] == "unet" and (settings["image_size"] % stride or settings["image_size"] < 2 * stride):
        raise TrainError(f"--image-size {settings['image_size']}: must be a multiple of {stride} (2^depth), "
                         f"at least {2 * stride}")
    if settings["batch_size"] < 1 or settings["base"] < 1:
        raise TrainError("--batch-size and --base must be at least 1")
    if settings["palette"] == "uniform" and not 2 <= settings["levels"] <= 8:
        raise TrainError(f"--levels {settings['levels']}: must be 2..8 (8: 512 classes)")
    if settings["palette"] == "kmeans" and not 2 <= settings["k"] <= 256:
        raise TrainError(f"-k {settings['k']}: must be 2..256")
    return settings
