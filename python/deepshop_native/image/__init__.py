"""Images in and out of Deepshop (numpy and Pillow only, no OpenCV at run time).

One job per module:

* :mod:`.read` -- a path, bytes or a file object -> :class:`LoadedImage` (RGB + alpha, 8/16 bits);
* :mod:`.write` -- arrays -> a file, atomically, the format from the extension (or -> bytes in memory);
* :mod:`.arrays` -- arrays, Pillow images and loaded images brought to RGB + alpha; depth, resizing;
* :mod:`.pil` -- a decoded Pillow image of any mode as RGB + alpha arrays;
* :mod:`.exif` -- EXIF orientation and ICC profiles;
* :mod:`.limits` -- the pixel limit (decompression-bomb guard);
* :mod:`.formats` -- the one table of image extensions;
* :mod:`.pillow16`, :mod:`.png16`, :mod:`.tiff16` -- 16-bit codecs (Pillow decodes 16-bit RGB to 8 bits).
"""
from .arrays import fit_max_side, resize_max_side, resize_to, to_depth, to_rgb_array
from .formats import FALLBACK_EXTENSION, READ_EXTENSIONS, WRITE_EXTENSIONS, is_image_name, is_writable_name
from .limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, check_made_size, effective_max_pixels, max_pixels_scope
from .read import ImageSource, LoadedImage, read_image
from .write import encode_image, write_image

__all__ = [
    "DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "READ_EXTENSIONS", "WRITE_EXTENSIONS", "FALLBACK_EXTENSION",
    "ImageSource", "LoadedImage", "read_image", "write_image", "encode_image", "to_rgb_array", "to_depth",
    "resize_max_side", "resize_to", "fit_max_side", "effective_max_pixels", "max_pixels_scope", "check_made_size",
    "is_image_name", "is_writable_name",
]
