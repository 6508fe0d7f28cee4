"""Training pairs for the line-art colouriser: (edges, class labels) cut from photos.

Each item is a random resized crop of a photo (train_data.random_resized_crop, horizontal flips),
then, at the crop's own resolution (so line density matches what users feed at run time):

* edges: deepshop_native.pipelines.edges (the tutorial's auto-Canny: bilateral filter, median thresholds),
  as float32 in [0, 1], 1 x S x S;
* labels: the crop posterised by the native kernel (deepshop_native.posterize, nearest palette
  colour in RGB or CIELAB, ties to the lowest index), int64 S x S.

Both run in the DataLoader's worker processes, so the training step is not starved by them.
Unreadable files and images smaller than the crop's minimum are skipped and counted (the shared
training.data.CropDataset does it; the shared loader batches the items); a sample whose edges are not finite (cannot happen with an
8-bit Canny map, checked anyway because the tutorial's pipeline had to) is dropped the same way.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ...training import data as train_data

MIN_SIDE = 64   # photos smaller than this on their shorter side are skipped as too small


def edges_unit(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> H x W float32 auto-Canny edges in {0, 1} (the network's input)."""
    from deepshop_native.pipelines.edges import edges
    return edges(rgb).astype(np.float32) / np.float32(255)


def labels_of(rgb: np.ndarray, palette: np.ndarray, space: str) -> np.ndarray:
    """H x W int32 palette indices from the native posterise kernel."""
    from deepshop_native import posterize
    _img, labels = posterize(rgb, palette=palette, space=space, return_labels=True)
    return labels


class LineArtCrops(train_data.CropDataset):
    """Random (edges, labels) crops of the given photo files.  Item: (edges 1 x S x S float32,
    labels S x S int64, newly broken file indices)."""

    min_side = MIN_SIDE

    def __init__(self, files: Sequence[str], size: int, palette: np.ndarray, space: str = "rgb",
                 scale: tuple[float, float] = (0.35, 1.0), hflip: bool = True, folder: str | None = None):
        super().__init__(files, size, scale, hflip, folder)
        self.palette = np.ascontiguousarray(palette, dtype=np.uint8)
        self.space = space

    def sample(self, img: Image.Image, rng: random.Random):
        rgb = np.asarray(self.crop(img, rng), dtype=np.uint8)
        e = edges_unit(rgb)
        if not np.isfinite(e).all():
            raise ValueError("edges are not finite")
        return torch.from_numpy(e[None]), torch.from_numpy(labels_of(rgb, self.palette, self.space).astype(np.int64))


def split_holdout(files: Sequence[str], every: int) -> tuple[list[str], list[str]]:
    """(training files, held-out files): every `every`-th file of the sorted list is held out
    (0: none), so the split is the same on every machine with the same photos."""
    files = sorted(files)
    if every <= 0:
        return files, []
    held = files[every - 1::every]
    held_set = set(held)
    return [f for f in files if f not in held_set], held


def thumbnails(files: Sequence[str], side: int, limit: int) -> list[np.ndarray]:
    """Up to `limit` readable photos shrunk to at most `side` pixels (palette and class statistics)."""
    out = []
    for p in files:
        try:
            img = train_data.load_rgb(p)
        except Exception:
            continue
        img.thumbnail((side, side), Image.BILINEAR)
        out.append(np.asarray(img, dtype=np.uint8))
        if len(out) == limit:
            break
    return out


def learned_palette(files: Sequence[str], k: int, seed: int) -> np.ndarray:
    """k colours by k-means in CIELAB (deepshop_native.palette_from_image) over thumbnails of the
    training photos stacked into one image."""
    from deepshop_native import palette_from_image
    thumbs = thumbnails(files, 64, 200)
    if not thumbs:
        raise ValueError("no readable training photo to learn a palette from")
    pixels = np.concatenate([t.reshape(-1, 3) for t in thumbs])[None]
    return palette_from_image(pixels, k, method="kmeans", space="lab", seed=seed)


def class_frequencies(files: Sequence[str], palette: np.ndarray, space: str, limit: int = 200) -> np.ndarray:
    """Fraction of pixels in each class over thumbnails of (up to `limit`) training photos."""
    counts = np.zeros(len(palette), dtype=np.float64)
    for t in thumbnails(files, 128, limit):
        counts += np.bincount(labels_of(t, palette, space).ravel(), minlength=len(palette))
    total = counts.sum()
    return counts / total if total else np.full(len(palette), 1.0 / len(palette))


def rebalancing_weights(freq: np.ndarray, mix: float = 0.5) -> np.ndarray:
    """Per-class loss weights w_k proportional to 1 / ((1 - mix) p_k + mix / K), normalised so that
    the expected weight under p is 1 (Zhang et al. 2016's class rebalancing): rare colours count
    more, and `mix` keeps classes never seen from getting unbounded weights."""
    K = len(freq)
    w = 1.0 / ((1.0 - mix) * freq + mix / K)
    return (w / float(np.sum(freq * w))).astype(np.float32)
