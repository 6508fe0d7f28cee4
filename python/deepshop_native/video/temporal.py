"""Temporal consistency of stylized video: what makes consecutive painted frames agree.

Stylizing frame by frame flickers: each frame gets its own instance-norm statistics and its own
strokes.  Three modes, cheapest first:

``off``     each frame on its own.
``stats``   one set of instance-norm statistics per shot (ShotStatistics): measured on the shot's
            first frame and on every ``every``-th frame after it, pooled into the statistics of all
            the frames measured so far, reset at scene cuts (SceneCuts).  Every frame of a shot is
            normalised alike, so its colours and contrast do not pump.  Needs a global-statistics
            graph.
``flow``    ``stats`` where the graph has them, and the previous painted frame's strokes, warped by
            the optical flow of the input frames (OpenCV's DIS), carried into the current one where
            the flow is reliable (FlowBlender): forward and backward flows agree (Sundaram et al.'s
            check, as Ruder et al. use it) and the warped input matches the current input.  Strokes
            then follow the motion instead of boiling; colour and light follow the current frame.

Nothing here knows about files or engines: the driver (driver.py) feeds frames and a measuring
function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from ..core.errors import MissingDependencyError

MODES = ("off", "stats", "flow")
#: The mode of `deepshop video` and ds.stylize_video without temporal= (docs/results/video.md).
DEFAULT_MODE = "flow"
#: Frames between measurements of the shot statistics.
DEFAULT_STATS_EVERY = 8
#: Weight of the previous painted frame's strokes, carried along the motion, where it is reliable
#: (flow mode; docs/results/video.md).
DEFAULT_BLEND = 1.0
#: The detail flow mode carries: what a Gaussian of this many pixels (of the painting at the
#: network's working size) takes out, the strokes; what it keeps comes from the current painting.
DETAIL = 8.0
#: Longer side the optical flow is computed at (larger frames are downscaled for it).
FLOW_SIDE = 640


def require_cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("video's flow mode and scene cuts need OpenCV: "
                                     "pip install 'deepshop-native[video]'") from None
    return cv2


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0, 1] (float32) of H x W x 3 uint8 pixels."""
    return (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0


# ----------------------------------------------------------------------------- scene cuts

class SceneCuts:
    """Hard cuts between frames: the mean absolute difference of small grayscale thumbnails
    (THUMB px wide) jumps well above the recent level, and the colour histograms differ.

    ``threshold`` (in 0..1 grey levels) is the least jump; a frame is a cut when its difference
    from the previous frame exceeds ``threshold``, the 3 x 8-bin colour histograms of the two
    thumbnails differ by more than ``histogram`` (half the L1 distance, 0..1), and either the
    difference exceeds ``ratio`` times the median of the last few differences (camera motion
    raises them all, a cut only one) or the histograms differ by more than twice ``histogram``
    (fast camera motion over one scene moves pixels but keeps its colours)."""

    THUMB = 64

    def __init__(self, threshold: float = 0.08, ratio: float = 3.0, histogram: float = 0.15):
        self.threshold, self.ratio, self.histogram = threshold, ratio, histogram
        self._previous: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._recent: list = []

    def _signature(self, rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        cv2 = require_cv2()
        h, w = rgb.shape[:2]
        tw = min(self.THUMB, w)
        th = max(1, round(h * tw / w))
        small = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA)
        hist = np.concatenate([np.bincount(small[..., c].ravel() // 32, minlength=8) for c in range(3)])
        return luma(small), hist.astype(np.float64) / (small.shape[0] * small.shape[1])

    def __call__(self, rgb: np.ndarray) -> bool:
        """Whether ``rgb`` starts a new shot (the first frame does)."""
        grey, hist = self._signature(rgb)
        previous, self._previous = self._previous, (grey, hist)
        if previous is None:
            return True
        difference = float(np.abs(grey - previous[0]).mean())
        recent = float(np.median(self._recent)) if self._recent else 0.0
        self._recent = (self._recent + [difference])[-5:]
        histogram = 0.5 * float(np.abs(hist - previous[1]).sum()) / 3
        cut = (difference > self.threshold and histogram > self.histogram
               and (difference > self.ratio * recent or histogram > 2 * self.histogram))
        if cut:
            self._recent = []
        return cut


# ----------------------------------------------------------------------------- stats mode

class ShotStatistics:
    """The instance-norm statistics of a shot: ``measure(frame) -> (means, variances)`` on its
    first frame and every ``every``-th after, pooled (the statistics of the union of the frames
    measured: the mean of the means, and the mean of variance + mean^2, less the pooled mean^2)."""

    def __init__(self, measure: Callable[[np.ndarray], tuple], every: int = DEFAULT_STATS_EVERY):
        self.measure, self.every = measure, max(1, int(every))
        self._since = 0
        self._count = 0
        self._mean = self._square = None
        self.measurements = 0

    def __call__(self, frame: np.ndarray, cut: bool) -> tuple:
        """The statistics to normalise ``frame`` with (``cut``: it starts a shot)."""
        if cut or self._count == 0:
            self._count, self._since = 0, 0
            self._mean = self._square = None
        if self._since % self.every == 0:
            mean, var = (np.asarray(a, dtype=np.float64) for a in self.measure(frame))
            self.measurements += 1
            if self._mean is None:
                self._mean, self._square = np.zeros_like(mean), np.zeros_like(mean)
            self._mean += mean
            self._square += var + mean * mean
            self._count += 1
        self._since += 1
        mean = self._mean / self._count
        var = np.maximum(self._square / self._count - mean * mean, 0.0)
        return mean.astype(np.float32), var.astype(np.float32)


# ----------------------------------------------------------------------------- flow mode

@dataclass
class Motion:
    """How the current frame came from the previous one, at the flow's resolution: ``flow``
    (H' x W' x 2, pixels there) maps each current pixel to where it was; ``reliable`` (H' x W',
    0..1) says where to trust it; ``scale``: full-size pixels per flow pixel."""
    flow: np.ndarray
    reliable: np.ndarray
    scale: float


def _flow_size(height: int, width: int, side: int) -> Tuple[int, int]:
    scale = min(1.0, side / max(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))


def _within(x: np.ndarray, y: np.ndarray, w: int, h: int) -> np.ndarray:
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def _positions(flow: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y) + flow(x, y) for every pixel: where each pixel of the current frame came from."""
    grid = np.indices(flow.shape[:2], dtype=np.float32)
    return grid[1] + flow[..., 0], grid[0] + flow[..., 1]


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray, cv2, interpolation=None) -> np.ndarray:
    """``image`` sampled at (x, y) (bilinear unless told, edges replicated)."""
    return cv2.remap(image, x, y, cv2.INTER_LINEAR if interpolation is None else interpolation,
                     borderMode=cv2.BORDER_REPLICATE)


class MotionEstimator:
    """Backward flow (current -> previous) between consecutive input frames and where it is
    reliable: the forward flow at the point it lands on leads back within
    0.01 (|b|^2 + |f|^2) + 0.5 px^2 (Sundaram et al. 2010), the previous frame's luma warped by
    it matches the current one's (a soft step from ``tolerance`` to twice that), and away from
    the frame's edge.  The mask is eroded and softened by a few pixels so that no seam shows."""

    def __init__(self, side: int = FLOW_SIDE, tolerance: float = 0.06):
        self.side, self.tolerance = side, tolerance
        self._cv2 = require_cv2()
        self._dis = self._cv2.DISOpticalFlow_create(self._cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._previous: Optional[np.ndarray] = None

    def reset(self) -> None:
        self._previous = None

    def __call__(self, rgb: np.ndarray, cut: bool) -> Optional[Motion]:
        """The motion from the previous frame to ``rgb``; None for the first frame and at cuts."""
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        fh, fw = _flow_size(h, w, self.side)
        small = cv2.resize(rgb, (fw, fh), interpolation=cv2.INTER_AREA) if (fh, fw) != (h, w) else rgb
        grey = luma(small)
        previous, self._previous = self._previous, grey
        if previous is None or cut or previous.shape != grey.shape:
            return None
        a, b = (np.clip(g * 255 + 0.5, 0, 255).astype(np.uint8) for g in (grey, previous))
        backward = self._dis.calc(a, b, None)
        forward = self._dis.calc(b, a, None)
        came_from = _positions(backward)
        there = _sample(forward, *came_from, cv2)
        error = np.sum((backward + there) ** 2, axis=2)
        bound = 0.01 * (np.sum(backward ** 2, axis=2) + np.sum(there ** 2, axis=2)) + 0.5
        consistent = (error <= bound).astype(np.float32)
        mismatch = np.abs(_sample(previous, *came_from, cv2) - grey)
        photometric = np.clip(2.0 - mismatch / self.tolerance, 0.0, 1.0)
        inside = _within(*came_from, fw, fh).astype(np.float32)
        reliable = consistent * inside
        reliable = cv2.erode(reliable, np.ones((3, 3), np.uint8))
        reliable = cv2.GaussianBlur(reliable, (5, 5), 0) * photometric
        return Motion(backward, reliable, scale=w / fw)


class FlowBlender:
    """The previous painted frames carried along the motion, in their fine detail only:

        out = current + blend * reliable * (d - blur(d)),   d = carried - current

    where the motion can be trusted the strokes (what is finer than the blur, a Gaussian of
    ``detail`` pixels of the frame) come from earlier painted frames, moved with the picture, and
    the coarse colour and light from the current painting (so that fades, lighting and the shot
    statistics still show); elsewhere (new content, occlusions, cuts) the current painting as it
    is.  Averaging paintings instead (out = current + w (warp - current)) would cut flicker by
    mixing unrelated strokes, which washes the texture out (docs/results/video.md measures it).

    Strokes are resampled once, not once a frame: the blender keeps an *anchor* (an earlier output
    frame) and, for every pixel of the current frame, where it came from in the anchor (the flows
    composed) and how far that path is trusted (the product of the per-frame reliabilities).
    ``carried`` is the anchor sampled there (a Lanczos warp) where the path holds, and the previous
    output warped by this frame's flow where it does not (content that came into view after the
    anchor).  Warping the previous output every frame instead softens the strokes a little more
    at each frame along a shot.  The anchor moves to the current output when less than
    ``REANCHOR`` of the frame still traces back to it, and at cuts.  ``blend`` in [0, 1]: 0 is
    stats alone; below 1 the current painting's strokes show through."""

    #: Least fraction of the frame that must still trace back to the anchor.
    REANCHOR = 0.5

    def __init__(self, blend: float = DEFAULT_BLEND, detail: float = DETAIL):
        self.blend, self.detail = float(blend), float(detail)
        self._cv2 = require_cv2()
        self._previous: Optional[np.ndarray] = None
        self._anchor: Optional[np.ndarray] = None
        self._coords: Optional[np.ndarray] = None      # H x W x 2: x, y in the anchor
        self._traced: Optional[np.ndarray] = None      # H x W: trust in that path, 0..1
        self.anchors = 0

    def _set_anchor(self, out: np.ndarray) -> None:
        h, w = out.shape[:2]
        grid = np.indices((h, w), dtype=np.float32)
        self._anchor = out
        self._coords = np.stack([grid[1], grid[0]], axis=2)
        self._traced = np.ones((h, w), np.float32)
        self.anchors += 1

    def _carried(self, flow: np.ndarray, reliable: np.ndarray) -> np.ndarray:
        """The earlier strokes moved to the current frame (float32, as the frames)."""
        cv2 = self._cv2
        h, w = flow.shape[:2]
        came_from = _positions(flow)
        coords = _sample(self._coords, *came_from, cv2)
        x, y = coords[..., 0], coords[..., 1]
        inside = _within(*came_from, w, h) & _within(x, y, w, h)    # a path that leaves the frame ends
        traced = _sample(self._traced, *came_from, cv2) * reliable * inside
        self._coords, self._traced = coords, traced
        from_anchor = _sample(self._anchor, x, y, cv2, cv2.INTER_LANCZOS4)
        from_previous = _sample(self._previous, *came_from, cv2, cv2.INTER_LANCZOS4)
        return from_previous + traced[..., None] * (from_anchor - from_previous)

    def __call__(self, styled: np.ndarray, motion: Optional[Motion]) -> np.ndarray:
        """The blended frame (uint8, as ``styled``)."""
        cv2 = self._cv2
        current = styled.astype(np.float32)
        previous, out = self._previous, current
        carry = (motion is not None and previous is not None and previous.shape == current.shape
                 and self.blend > 0)
        if carry:
            h, w = current.shape[:2]
            flow, reliable = motion.flow, motion.reliable
            if flow.shape[:2] != (h, w):
                flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(motion.scale)
                reliable = cv2.resize(reliable, (w, h), interpolation=cv2.INTER_LINEAR)
            d = self._carried(flow, reliable) - current
            d -= cv2.GaussianBlur(d, (0, 0), self.detail)
            out = np.clip(current + (self.blend * reliable)[..., None] * d, 0, 255)
        self._previous = out
        if not carry or float(self._traced.mean()) < self.REANCHOR:
            self._set_anchor(out)
        return (out + 0.5).astype(np.uint8)
