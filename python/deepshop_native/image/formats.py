"""Which files are images to Deepshop: the one table of extensions (reading, writing, and what a
folder scan picks up).  Imports nothing else of the package."""
import os

#: Extensions write_image accepts, and the Pillow format each one means.
WRITE_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP",
                    ".tif": "TIFF", ".tiff": "TIFF"}
#: Extensions that count as images when a folder or a glob is scanned (read_image reads
#: whatever Pillow can open, though).
READ_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
#: Output extension for an input whose format cannot be written (e.g. .bmp): lossless.
FALLBACK_EXTENSION = ".png"


def is_image_name(name: str) -> bool:
    """The file name has an image extension (compared case-insensitively)."""
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in READ_EXTENSIONS


def is_writable_name(name: str) -> bool:
    """write_image can write a file of this name (its extension says which format)."""
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in WRITE_EXTENSIONS


def is_unwritable_image_name(name: str) -> bool:
    """The name ends in the extension of an image format write_image cannot write (``x.gif``,
    ``x.bmp``): an output named so is refused rather than taken for a folder."""
    from PIL import Image

    ext = os.path.splitext(name)[1].lower()
    return bool(ext) and ext not in WRITE_EXTENSIONS and (ext in READ_EXTENSIONS or ext in Image.registered_extensions())
