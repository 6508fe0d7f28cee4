"""How good a line-art colouriser is on held-out photos, against the trivial baseline.

For each held-out photo: its centre square resized to `size` (a multiple of the network's
stride), auto-Canny edges as input, the posterised photo (native kernel) as target.  Reported:

* per-pixel accuracy (predicted class == target class);
* mean colour error ΔE (CIE76: Euclidean distance in CIELAB, D65) of the predicted colours
  against the posterised target and against the photo itself;
* the same for the baseline "the most frequent training class everywhere", and for the
  annealed-mean decoding at `temperature` (ΔE only; its colours need not be palette colours),
  whose fair baseline is the constant "mean colour": the palette averaged under the training
  class frequencies (what hedging towards grey gives without looking at the drawing).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...training import data as train_data
from . import data


def srgb_to_lab(rgb8: np.ndarray) -> np.ndarray:
    """... x 3 uint8 sRGB -> CIELAB (D65 white), float64."""
    c = np.asarray(rgb8, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def delta_e(a_rgb8: np.ndarray, b_rgb8: np.ndarray) -> float:
    """Mean CIE76 ΔE between two RGB images."""
    return float(np.mean(np.linalg.norm(srgb_to_lab(a_rgb8) - srgb_to_lab(b_rgb8), axis=-1)))


def centre_square(path: str, size: int) -> np.ndarray:
    return train_data.center_square(train_data.load_rgb(path), size)


def fixed_pairs(files: Sequence[str], size: int, palette: np.ndarray, space: str) -> dict:
    """Centre squares of `files` (the readable ones): edges (H x W float32), edges and targets as RGB."""
    out = {"edges": [], "edges_rgb": [], "target_rgb": [], "labels": [], "photo": []}
    for p in files:
        try:
            rgb = centre_square(p, size)
        except Exception:      # unreadable: evaluation and samples go on without it
            continue
        e = data.edges_unit(rgb)
        lab = data.labels_of(rgb, palette, space)
        out["edges"].append(e)
        out["edges_rgb"].append(np.repeat((e * 255).astype(np.uint8)[..., None], 3, axis=2))
        out["target_rgb"].append(palette[lab])
        out["labels"].append(lab)
        out["photo"].append(rgb)
    return out


@torch.no_grad()
def scores_of(net, edges: np.ndarray, device="cpu") -> np.ndarray:
    """K x H x W class scores of one H x W edge map."""
    return net(torch.from_numpy(edges)[None, None].to(device))[0].float().cpu().numpy()


def annealed_mean(scores: np.ndarray, palette: np.ndarray, temperature: float) -> np.ndarray:
    """K x H x W scores -> H x W x 3 uint8: sum_k softmax(scores / T)_k palette_k, rounded (the
    numpy reference of the engine's decoding)."""
    z = scores.astype(np.float64) / temperature
    z -= z.max(axis=0, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=0, keepdims=True)
    rgb = np.einsum("khw,kc->hwc", p, palette.astype(np.float64))
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def predict_colours(net, edges: np.ndarray, palette: np.ndarray, device="cpu") -> np.ndarray:
    return palette[scores_of(net, edges, device).argmax(0)]


def evaluate(net, files: Sequence[str], palette: np.ndarray, space: str, train_frequencies: np.ndarray,
             size: int = 256, device="cpu", temperature: float = 0.38) -> dict:
    """Held-out figures of `net` and of the most-frequent-class baseline (see the module doc)."""
    size = max(net.stride_multiple, size // net.stride_multiple * net.stride_multiple)
    pairs = fixed_pairs(files, size, palette, space)
    majority = int(np.argmax(train_frequencies))
    mean_colour = np.round(np.asarray(train_frequencies, np.float64) @ palette.astype(np.float64)).astype(np.uint8)
    acc, acc0, de_t, de_p, de0_t, de0_p, de_am_t, de_am_p, dem_t, dem_p = ([] for _ in range(10))
    for e, lab, target, photo in zip(pairs["edges"], pairs["labels"], pairs["target_rgb"], pairs["photo"]):
        s = scores_of(net, e, device)
        pred = s.argmax(0)
        colours = palette[pred]
        base = np.broadcast_to(palette[majority], colours.shape)
        am = annealed_mean(s, palette, temperature)
        acc.append(float(np.mean(pred == lab)))
        acc0.append(float(np.mean(lab == majority)))
        de_t.append(delta_e(colours, target)); de_p.append(delta_e(colours, photo))
        de0_t.append(delta_e(base, target)); de0_p.append(delta_e(base, photo))
        de_am_t.append(delta_e(am, target)); de_am_p.append(delta_e(am, photo))
        flat = np.broadcast_to(mean_colour, colours.shape)
        dem_t.append(delta_e(flat, target)); dem_p.append(delta_e(flat, photo))
    mean = lambda v: round(float(np.mean(v)), 4) if v else None
    return {
        "photos": len(acc), "size": size,
        "model": {"accuracy": mean(acc), "delta_e_target": mean(de_t), "delta_e_photo": mean(de_p)},
        "model_annealed_mean": {"temperature": temperature, "delta_e_target": mean(de_am_t),
                                "delta_e_photo": mean(de_am_p)},
        "majority_baseline": {"class": majority, "colour": [int(c) for c in palette[majority]],
                              "accuracy": mean(acc0), "delta_e_target": mean(de0_t), "delta_e_photo": mean(de0_p)},
        "mean_colour_baseline": {"colour": [int(c) for c in mean_colour], "delta_e_target": mean(dem_t),
                                 "delta_e_photo": mean(dem_p)},
    }
