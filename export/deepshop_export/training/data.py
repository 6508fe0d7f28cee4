"""Training images of every trainer: every image under a folder, searched recursively (the COCO
``train2014/`` layout works as is), cut into random resized crops with random horizontal flips.

``CropDataset`` is what the trainers share: broken or unreadable files, images too small to
crop and images of a single colour (whose crops make the instance normalisation of a style
network degenerate: its gradient becomes NaN) are not fatal: they are found when first read, skipped (another image is drawn instead) and
counted, so a few bad files in a large photo collection cost nothing but a line in the log.  Only
a folder with no usable image at all stops the run, with a TrainError saying why
(``describe_unusable``).  A family's dataset says what an item is (``sample``); ``ImageFolderCrops``
is the style trainers' (a crop in 0..255).
"""
from __future__ import annotations

import os
import random
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import NoUsableImagesError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


def find_images(folder: str) -> list[str]:
    """All image files under ``folder`` (by extension), sorted so runs are reproducible."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: training data folder not found")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.join(root, name))
    found.sort()
    if not found:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found in it or below")
    return found


def load_rgb(path: str) -> Image.Image:
    """Decode fully (so truncated files fail here, not later) and convert to RGB."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def random_resized_crop(img: Image.Image, size: int, rng: random.Random,
                        scale: tuple[float, float] = (0.35, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image.Image:
    """A random sub-rectangle covering ``scale`` of the area with aspect in ``ratio``, resized
    to size x size (the whole centre square when no such rectangle fits)."""
    w, h = img.size
    area = w * h
    for _ in range(10):
        a = area * rng.uniform(*scale)
        r = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(a * r))), int(round(np.sqrt(a / r)))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return img.resize((size, size), Image.BICUBIC, box=(x, y, x + cw, y + ch))
    s = min(w, h)
    x, y = (w - s) // 2, (h - s) // 2
    return img.resize((size, size), Image.BICUBIC, box=(x, y, x + s, y + s))


def to_tensor255(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor (3, H, W) in 0..255 (what TransformerNet takes)."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)


def center_square(img: Image.Image, size: int) -> np.ndarray:
    """The centre square of ``img`` resized to size x size, as an H x W x 3 uint8 array."""
    s = min(img.size)
    x, y = (img.width - s) // 2, (img.height - s) // 2
    return np.asarray(img.resize((size, size), Image.BICUBIC, box=(x, y, x + s, y + s)))


def fixed_samples(paths, dataset: "CropDataset", size: int, count: int = 4) -> list[np.ndarray]:
    """Centre squares of ``paths`` (the --sample-images, which must be readable: ImageError), or
    of the first ``count`` readable files of ``dataset``."""
    from deepshop_native.core.errors import ImageError
    if paths:
        out = []
        for p in paths:
            try:
                out.append(center_square(load_rgb(p), size))
            except Exception as e:
                raise ImageError(f"{p}: cannot read the sample image ({e})") from e
        return out
    out = []
    for p in dataset.files:
        try:
            out.append(center_square(load_rgb(p), size))
        except Exception:     # broken: the data loader will skip and count it
            continue
        if len(out) == count:
            break
    return out


class TooSmallError(ValueError):
    """An image whose shorter side is under the dataset's ``min_side``."""


class FlatImageError(ValueError):
    """An image, or every crop tried of it, of a single colour: nothing to learn from, and a
    constant input makes an instance normalisation's variance 0 (NaN gradients)."""


def is_flat(img: Image.Image) -> bool:
    """Whether every pixel of ``img`` has the same value in every channel."""
    extrema = img.getextrema()
    if not isinstance(extrema[0], tuple):      # one band: (lo, hi)
        extrema = (extrema,)
    return all(lo == hi for lo, hi in extrema)


class CropDataset(Dataset):
    """Random items cut from image files, skipping the unusable ones.  ``len`` is the number of
    files; item ``(i, crop seed)`` is ``sample(image, rng)`` of file ``i`` (or of another file
    when ``i`` is unusable) followed by the indices of the files found unusable while producing
    it, so the training loop can keep the exact set across worker processes (each worker
    remembers its own in ``broken`` and does not try them again)."""

    #: shorter sides under this many pixels are skipped as too small to crop
    min_side = 8
    #: crops tried before an image whose crops all come out of a single colour is skipped
    flat_crop_tries = 8

    def __init__(self, files: Sequence[str], size: int, scale: tuple[float, float] = (0.35, 1.0),
                 hflip: bool = True, folder: str | None = None):
        self.files = list(files)
        self.size = int(size)
        self.scale = scale
        self.hflip = hflip
        self.folder = folder
        self.broken: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, img: Image.Image, rng: random.Random) -> tuple:
        raise NotImplementedError

    def crop(self, img: Image.Image, rng: random.Random) -> Image.Image:
        """A random resized crop of ``size``, flipped left-right half of the time; a crop of a
        single colour (a flat region of a photo) is drawn again, up to ``flat_crop_tries`` times."""
        for _ in range(self.flat_crop_tries):
            crop = random_resized_crop(img, self.size, rng, self.scale)
            if not is_flat(crop):
                break
        else:
            raise FlatImageError(f"{self.flat_crop_tries} crops of a single colour")
        if self.hflip and rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        return crop

    def open(self, path: str) -> Image.Image:
        img = load_rgb(path)
        if min(img.size) < self.min_side:
            raise TooSmallError(f"smaller than {self.min_side} pixels")
        if is_flat(img):
            raise FlatImageError("a single colour")
        return img

    def __getitem__(self, key):
        # ``key`` is (file index, crop seed) from StepBatchSampler, or a bare index.
        index, crop_seed = key if isinstance(key, tuple) else (key, random.getrandbits(63))
        rng = random.Random(crop_seed)
        i = int(index)
        newly_broken: list[int] = []
        while True:
            path = self.files[i]
            if path not in self.broken:
                try:
                    return (*self.sample(self.open(path), rng), newly_broken)
                except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError,
                        SyntaxError):
                    self.broken.add(path)
                    newly_broken.append(i)
            # Another file in its place; only a failure pays for scanning the list.
            usable = [j for j, p in enumerate(self.files) if p not in self.broken]
            if not usable:
                raise NoUsableImagesError(f"none of the {len(self.files)} image files can be used")
            i = rng.choice(usable)

    def describe_unusable(self) -> str:
        """Why no file can be used, counted over every file (the error path of a run whose data
        folder holds nothing usable): how many are too small for the crop size, how many unreadable."""
        small, flat, unreadable = [], [], []
        for path in self.files:
            try:
                self.open(path)
            except TooSmallError:
                small.append(path)
            except FlatImageError:
                flat.append(path)
            except Exception:
                unreadable.append(path)
        parts = []
        if small:
            parts.append(f"{len(small)} too small for --image-size {self.size} (shorter side under {self.min_side} "
                         f"pixels, e.g. {small[0]})")
        if flat:
            parts.append(f"{len(flat)} of a single colour (nothing to learn from, e.g. {flat[0]})")
        if unreadable:
            parts.append(f"{len(unreadable)} unreadable (e.g. {unreadable[0]})")
        where = f"{self.folder}: " if self.folder else ""
        return f"{where}no usable training image among {len(self.files)}: " + ("; ".join(parts) or "all skipped")


class ImageFolderCrops(CropDataset):
    """Random crops of the images under a folder (or of ``files``): item ``(crop, newly_broken)``
    with the crop a float tensor (3, size, size) in 0..255."""

    def __init__(self, folder: str | None = None, size: int = 256, files: Sequence[str] | None = None,
                 scale: tuple[float, float] = (0.35, 1.0), hflip: bool = True):
        super().__init__(list(files) if files is not None else find_images(folder), size, scale, hflip, folder)

    def sample(self, img: Image.Image, rng: random.Random) -> tuple:
        return (to_tensor255(self.crop(img, rng)),)


class StepBatchSampler(Sampler):
    """Batches for training steps ``start_step .. total_steps - 1``, each a list of
    ``(file index, crop seed)``.  The file order of each epoch is a permutation seeded by
    (seed, epoch) and each crop's randomness by (seed, step, slot), so the batch of step s is the
    same whether a run went straight through or was resumed at any step, with any number of
    workers."""

    def __init__(self, n_files: int, batch_size: int, seed: int, start_step: int, total_steps: int):
        self.n, self.bs, self.seed = n_files, batch_size, seed
        self.start, self.total = start_step, total_steps

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def _perm(self, epoch: int) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def __iter__(self):
        cache: dict[int, list[int]] = {}
        for step in range(self.start, self.total):
            batch = []
            for slot in range(self.bs):
                k = step * self.bs + slot
                epoch, pos = divmod(k, self.n)
                if epoch not in cache:
                    cache.clear()
                    cache[epoch] = self._perm(epoch)
                crop_seed = (self.seed * 1_000_003 + step) * 64 + slot
                batch.append((cache[epoch][pos], crop_seed))
            yield batch


def collate_items(items):
    """Stack each tensor of the items; concatenate their lists of broken-file indices (last)."""
    fields = list(zip(*items))
    return (*(torch.stack(f) for f in fields[:-1]), [i for b in fields[-1] for i in b])


def make_loader(dataset: CropDataset, batch_size: int, workers: int, seed: int,
                start_step: int, total_steps: int, collate=collate_items) -> DataLoader:
    """Loader yielding the batch of each step from ``start_step`` on: the stacked fields of the
    items, then the indices of the files found broken (``(crops, broken)`` for ImageFolderCrops)."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start_step, total_steps)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      collate_fn=collate, persistent_workers=False)


def write_skimage_photos(folder: str) -> list[str]:
    """Write the photos scikit-image ships (no download) as PNGs into ``folder``: a small,
    offline, redistributable training set.  Returns the paths written."""
    import skimage.data as sd
    os.makedirs(folder, exist_ok=True)
    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle",
                 "immunohistochemistry", "hubble_deep_field", "retina", "camera"):
        try:
            arr = getattr(sd, name)()
        except Exception:       # an image that needs the optional pooch download: skip it
            continue
        arrays = arr[:2] if isinstance(arr, tuple) else (arr,)
        for k, a in enumerate(arrays):
            a = np.asarray(a)
            if a.ndim == 2:
                a = np.stack([a] * 3, -1)
            p = os.path.join(folder, f"{name}{'_' + str(k) if len(arrays) > 1 else ''}.png")
            Image.fromarray(a[..., :3].astype(np.uint8)).save(p)
            out.append(p)
    return out
