"""16-bit TIFF encoder (uncompressed RGB(A)), the IFD serialised by Pillow: Pillow cannot write
16-bit RGB itself."""
from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO, Optional

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

_TIFF_STRUCTURE_TAGS = {254, 255, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320,
                        322, 323, 324, 325, 338, 339, 513, 514, 530, 531, 532, 34675}


def encode_tiff16(f: BinaryIO, rgb: np.ndarray, alpha: Optional[np.ndarray],
                  exif: Optional[bytes], icc: Optional[bytes], *, extra_samples: int = 2) -> None:
    """An uncompressed 16-bit RGB(A) TIFF (unassociated alpha), in this machine's byte order,
    the IFD serialised by Pillow's ImageFileDirectory_v2 (EXIF tags merged as Pillow does)."""
    arr = np.ascontiguousarray(rgb if alpha is None else np.dstack([rgb, alpha]), dtype="=u2")
    h, w, c = arr.shape
    ifd = TiffImagePlugin.ImageFileDirectory_v2(
        prefix=b"II" if sys.byteorder == "little" else b"MM")
    if exif:
        info = Image.Exif()
        info.load(exif)
        for key in list(info):
            if key in _TIFF_STRUCTURE_TAGS:
                continue
            ifd[key] = info.get_ifd(key) if key in TiffTags.TAGS_V2_GROUPS else info.get(key)
            with contextlib.suppress(Exception):
                ifd.tagtype[key] = info.tagtype[key]
    stride = w * c * 2
    rows_per_strip = max(1, min(h, (1 << 20) // stride))
    strips = (h + rows_per_strip - 1) // rows_per_strip
    full = stride * rows_per_strip
    ifd[256] = w                                   # ImageWidth
    ifd[257] = h                                   # ImageLength
    ifd[258] = (16,) * c                           # BitsPerSample
    ifd[259] = 1                                   # Compression: none
    ifd[262] = 2                                   # Photometric: RGB
    ifd[277] = c                                   # SamplesPerPixel
    ifd[278] = rows_per_strip                      # RowsPerStrip
    ifd[284] = 1                                   # PlanarConfiguration: contiguous
    ifd[339] = (1,) * c                            # SampleFormat: unsigned
    if c == 4:
        ifd[338] = extra_samples                   # ExtraSamples: 2 = unassociated alpha
    if icc:
        ifd[34675] = icc                           # ICC profile
    ifd.tagtype[273] = ifd.tagtype[279] = TiffTags.LONG
    ifd[279] = (full,) * (strips - 1) + (stride * h - full * (strips - 1),)   # StripByteCounts
    ifd[273] = tuple(range(0, full * strips, full))   # StripOffsets (+ data start, by Pillow)
    ifd.save(f)   # at file position 0, so with the TIFF header
    f.write(memoryview(arr).cast("B"))
