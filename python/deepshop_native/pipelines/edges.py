"""Line drawings from photos: ``ds.edges(image, method="canny")``.

The default is the line-drawing tutorial's "auto-Canny", the input the line-art colouriser
(pipelines/colorize.py) was trained on:

1. grayscale (ITU-R BT.601 luma, OpenCV's RGB2GRAY),
2. a bilateral filter, d=3, sigmaColor=60, sigmaSpace=120 (smooths texture, keeps contours),
3. Canny with thresholds from the median m of the filtered image:
   low = max(0, (1 - sigma) * m), high = min(255, (1 + sigma) * m), sigma = 0.33.

The result is an H x W uint8 map, 255 on edges and 0 elsewhere (white lines on black, as the
network sees them); ``invert=True`` gives dark lines on white, as a drawing on paper.

OpenCV (``opencv-python-headless``) is an optional dependency of the runtime: the filter and
Canny are OpenCV's, so the result equals what the tutorial computed.  Without it, edges() raises
a DeepshopError saying what to install.

``method="hed"``: the learned HED edge network run tiled by the engine, its probability thinned
and thresholded (pipelines/hed.py; the model is exported once with ``deepshop-export hed``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..core import options
from ..core.errors import MissingDependencyError, OptionError
from ..image import to_depth, to_rgb_array
from . import hed

METHODS = ("canny", "hed")
#: The tutorial's parameters.
BILATERAL_DIAMETER, BILATERAL_SIGMA_COLOR, BILATERAL_SIGMA_SPACE = 3, 60.0, 120.0
DEFAULT_SIGMA = 0.33


def _cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError(
            "edges(method='canny') needs OpenCV: pip install 'opencv-python-headless' "
            "(or 'deepshop-native[edges]')") from None
    return cv2


def gray8(image) -> np.ndarray:
    """An image (array, PIL image, path, ...) as H x W uint8 luma (OpenCV's RGB2GRAY weights).
    16-bit and float images are reduced to 8 bits first (Canny's thresholds are 8-bit values)."""
    rgb, _alpha = to_rgb_array(image)
    rgb8 = np.ascontiguousarray(to_depth(rgb, 8) if rgb.dtype != np.uint8 else rgb)
    return _cv2().cvtColor(rgb8, _cv2().COLOR_RGB2GRAY)


def auto_thresholds(gray: np.ndarray, sigma: float = DEFAULT_SIGMA):
    """The tutorial's Canny thresholds from the median m of `gray`: (max(0, (1-sigma) m),
    min(255, (1+sigma) m)), as integers (the tutorial truncates with int())."""
    m = float(np.median(gray))
    return int(max(0.0, (1.0 - sigma) * m)), int(min(255.0, (1.0 + sigma) * m))


def thicken(edge_map: np.ndarray, thickness: int) -> np.ndarray:
    """Lines `thickness` pixels wide: a dilation by a disc of that diameter (1: unchanged)."""
    if thickness <= 1:
        return edge_map
    cv2 = _cv2()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    return cv2.dilate(edge_map, kernel)


def edges(image, method: str = "canny", *, sigma: float = DEFAULT_SIGMA, low: Optional[float] = None,
          high: Optional[float] = None, smooth: bool = True, thickness: int = 1, invert: bool = False,
          threshold: Optional[float] = None, thin: bool = True, model=None, device: str = "auto",
          tile: Optional[int] = None) -> np.ndarray:
    """Edge map of `image` (numpy array, PIL image, path, bytes): H x W uint8, 255 on edges.

    * ``method="canny"``: the tutorial's auto-Canny (see the module doc).
    * ``sigma``: spread of the automatic thresholds around the median (0.33, the tutorial's).
    * ``low`` / ``high``: fixed hysteresis thresholds (0..255) instead of the automatic ones
      (give both, or one and the other stays automatic).
    * ``smooth=False`` skips the bilateral filter (more, noisier edges).
    * ``method="hed"``: the HED network (pipelines/hed.py).  ``threshold``: edge probability
      from which a pixel is a line (default 0.5); ``thin=False`` keeps HED's wide ridges instead
      of thinning them to one pixel; ``model``: an .onnx path or a ``HedEdges`` (default: hed.onnx
      in the models folder); ``device``, ``tile``: as for the stylizer (tile default 512).
    * ``thickness``: line width in pixels (1: one-pixel lines; more: dilated).
    * ``invert=True``: dark lines on white (0 on edges, 255 elsewhere).
    """
    if method not in METHODS:
        raise OptionError(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "hed":
        return _hed_edges(image, sigma=sigma, low=low, high=high, smooth=smooth, thickness=thickness, invert=invert,
                          threshold=threshold, thin=thin, model=model, device=device, tile=tile)
    given = [name for name, value in (("threshold", threshold), ("model", model), ("tile", tile)) if value is not None]
    given += ["thin=False"] if not thin else []
    given += ["device"] if device != "auto" else []
    if given:
        raise OptionError(f"{', '.join(given)}: only for method='hed' (Canny has --low/--high thresholds)")
    sigma = options.check_number("sigma", sigma, 0.0, 1.0)
    thickness = options.check_integer("thickness", thickness, 1, 64)
    if low is not None:
        low = options.check_number("low", low, 0.0, 255.0)
    if high is not None:
        high = options.check_number("high", high, 0.0, 255.0)
    cv2 = _cv2()
    gray = gray8(image)
    if smooth:
        gray = cv2.bilateralFilter(gray, BILATERAL_DIAMETER, BILATERAL_SIGMA_COLOR, BILATERAL_SIGMA_SPACE)
    auto_low, auto_high = auto_thresholds(gray, sigma)
    lo = auto_low if low is None else low
    hi = auto_high if high is None else high
    if lo > hi:
        raise OptionError(f"low ({lo:g}) must not exceed high ({hi:g})")
    out = thicken(cv2.Canny(gray, lo, hi), thickness)
    return 255 - out if invert else out


def _hed_edges(image, *, sigma, low, high, smooth, thickness, invert, threshold, thin, model, device, tile):
    given = [name for name, value in (("low", low), ("high", high)) if value is not None]
    given += ["sigma"] if sigma != DEFAULT_SIGMA else []
    given += ["smooth=False"] if not smooth else []
    if given:
        raise OptionError(f"{', '.join(given)}: only for method='canny' (HED takes a probability threshold)")
    threshold = hed.check_threshold(hed.DEFAULT_THRESHOLD if threshold is None else threshold)
    thickness = options.check_integer("thickness", thickness, 1, 64)
    net = model if isinstance(model, hed.HedEdges) else hed.HedEdges(
        model, device=device, tile=hed.DEFAULT_TILE if tile is None else tile)
    out = thicken(hed.lines_from_probability(net(image), threshold=threshold, thin=thin), thickness)
    return 255 - out if invert else out
