"""A small collection of generated photos for the deepshop batch tests: 30 files in nested folders,
every format the batch reads, EXIF (with orientations) and ICC profiles on some, alpha on others,
and two corrupt files; plus a hidden file and a non-image that a folder scan must leave out."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

#: Files of the collection that cannot be read (a truncated JPEG, text named .png).
CORRUPT = ("broken.jpg", "b/notes.png")


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(i: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Deepshop test camera"      # Make
    exif[0x0110] = f"model {i}"                 # Model
    exif[0x0112] = (1, 3, 6, 8)[i % 4]          # Orientation
    return exif.tobytes()


def photo(rng, h: int, w: int, alpha: bool = False) -> np.ndarray:
    """Smooth colour fields with some noise: a photo-like texture that JPEG keeps."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(x / (3 + rng.random() * 5)), 128 + 100 * np.cos(y / 6.0),
                     (x * 3 + y * 2) % 256], axis=-1)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    if alpha:
        a = np.clip(255 - (x * 255 // max(1, w - 1)), 20, 255).astype(np.uint8)
        img = np.dstack([img, a])
    return img


def make_collection(root: Path, *, side: int = 40, count: int = 30) -> Path:
    """``count`` files (two of them corrupt) below ``root``; returns ``root``."""
    rng = np.random.default_rng(7)
    icc = srgb_icc()
    (root / "a" / "deeper").mkdir(parents=True, exist_ok=True)
    (root / "b").mkdir(parents=True, exist_ok=True)
    kinds = ["jpg", "jpg", "jpg", "png", "png_alpha", "webp", "tif", "bmp"]
    made = 0
    i = 0
    while made < count - len(CORRUPT):
        kind = kinds[i % len(kinds)]
        h, w = side + (i * 7) % 17, side + (i * 5) % 23
        folder = root / ("" if i % 3 == 0 else "a" if i % 3 == 1 else "a/deeper")
        arr = photo(rng, h, w, alpha=kind == "png_alpha")
        im = Image.fromarray(arr)
        if kind == "jpg":
            im.save(folder / f"p{i:02d}.jpg", quality=92, exif=_exif(i), icc_profile=icc if i % 2 else None)
        elif kind.startswith("png"):
            im.save(folder / f"p{i:02d}.png", icc_profile=icc if i % 2 else None)
        elif kind == "webp":
            im.save(folder / f"p{i:02d}.webp", quality=90, exif=_exif(i))
        elif kind == "tif":
            im.save(folder / f"p{i:02d}.tif")
        else:
            im.save(folder / f"p{i:02d}.bmp")
        made += 1
        i += 1
    good = io.BytesIO()
    Image.fromarray(photo(rng, side, side)).save(good, format="JPEG")
    (root / CORRUPT[0]).write_bytes(good.getvalue()[: len(good.getvalue()) // 3])
    (root / CORRUPT[1]).write_text("not an image at all\n")
    (root / ".hidden.jpg").write_bytes(good.getvalue())
    (root / "readme.txt").write_text("not an input\n")
    return root


def tree(folder: Path) -> dict:
    """Relative path -> bytes of every non-hidden file below ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def collection_fixture(folder: str):
    """A module-scoped ``collection`` fixture: :func:`make_collection` in a fresh temporary ``folder``."""
    @pytest.fixture(scope="module")
    def collection(tmp_path_factory):
        return make_collection(tmp_path_factory.mktemp(folder) / "photos")
    return collection
