"""Training pairs for the line-art colouriser: (edges, class labels) cut from photos.

Each item is a random resized crop of a photo (train_data.random_resized_crop, horizontal flips),
then, at the crop's own resolution (so line density matches what users feed at run time):

* edges: deepshop_native.pipelines.edges (the tutorial's auto-Canny: bilateral filter, median thresholds),
  as float32 in [0, 1], 1 x S x S;
* labels: the crop posterised by the native kernel (deepshop_native.posterize, nearest palette
  colour in RGB or CIELAB, ties to the lowest index), int64 S x S.

Both run in the DataLoader's worker processes, so the training step is not starved by them.
Unreadable files and images smaller than the crop's minimum are skipped and counted (as
train_data.ImageFolderCrops does); a sample whose edges are not finite (cannot happen with an
8-bit Canny map, checked anyway because the tutorial's pipeline had to) is dropped the same way.
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ... import train_data

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


class LineArtCrops(Dataset):
    """Random (edges, labels) crops of the given photo files.  Item: (edges 1 x S x S float32,
    labels S x S int64, newly broken file indices)."""

    def __init__(self, files: Sequence[str], size: int, palette: np.ndarray, space: str = "rgb",
                 scale: tuple[float, float] = (0.35, 1.0), hflip: bool = True):
        self.files = list(files)
        self.size, self.scale, self.hflip = int(size), scale, hflip
        self.palette = np.ascontiguousarray(palette, dtype=np.uint8)
        self.space = space
        self.broken: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, img: Image.Image, rng: random.Random):
        crop = train_data.random_resized_crop(img, self.size, rng, self.scale)
        if self.hflip and rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        rgb = np.asarray(crop, dtype=np.uint8)
        e = edges_unit(rgb)
        if not np.isfinite(e).all():
            raise ValueError("edges are not finite")
        return torch.from_numpy(e[None]), torch.from_numpy(labels_of(rgb, self.palette, self.space).astype(np.int64))

    def __getitem__(self, key):
        index, crop_seed = key if isinstance(key, tuple) else (key, random.getrandbits(63))
        rng = random.Random(crop_seed)
        i = int(index)
        newly_broken: list[int] = []
        while True:
            path = self.files[i]
            if path not in self.broken:
                try:
                    img = train_data.load_rgb(path)
                    if min(img.size) < MIN_SIDE:
                        raise ValueError(f"smaller than {MIN_SIDE} pixels")
                    e, lab = self.sample(img, rng)
                    return e, lab, newly_broken
                except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError):
                    self.broken.add(path)
                    newly_broken.append(i)
            usable = [j for j, p in enumerate(self.files) if p not in self.broken]
            if not usable:
                raise RuntimeError(f"every image file is unreadable or too small ({len(self.files)} tried)")
            i = rng.choice(usable)


def collate(items):
    return (torch.stack([e for e, _, _ in items]), torch.stack([l for _, l, _ in items]),
            [i for _, _, b in items for i in b])


def make_loader(dataset: LineArtCrops, batch_size: int, workers: int, seed: int, start_step: int,
                total_steps: int) -> DataLoader:
    """Batches for steps start_step .. total_steps - 1, reproducible across resumes
    (train_data.StepBatchSampler)."""
    sampler = train_data.StepBatchSampler(len(dataset), batch_size, seed, start_step, total_steps)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                      persistent_workers=False)


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
