"""The guided window on the built-in styles at 3000 px: the route's window (radius 2, eps 1e-3)
against the painting route's smallest one (radius 1, eps 1e-4), by quality.py's built-in measure
(drift from the network's own 512 px painting) and detail.  Not a test: a figure for
docs/results/quality.md.

    cd bench && python builtin_window.py --photos PHOTOS [--count 8] [--size 3000]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image

import quality as q
from painting_route_variants import GuidedWindow


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", required=True)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--size", type=int, default=3000)
    p.add_argument("--styles", nargs="+", default=["swirls", "pastel"])
    args = p.parse_args(argv)
    photos = q.images_in(args.photos, args.count, args.size)
    m, routes = q.Measures(), q.Routes("auto")
    res = {}
    for path in photos:
        photo = np.asarray(q.fit(Image.open(path).convert("RGB"), args.size))
        for name in args.styles:
            net = routes.builtin(name)
            base = getattr(net._session, "_inner", net._session)
            ref = m.grams(m.features(Image.fromarray(routes.builtin_reference("builtin:" + name, photo))))
            for radius, eps in ((2, 1e-3), (1, 1e-4)):
                net._session = GuidedWindow(base, radius, eps)
                out = net.run(photo)
                feats = m.features(Image.fromarray(out))
                res.setdefault((name, radius, eps), []).append((m.style(feats, ref), q.detail(out, photo)))
            net._session = base
    print(f"{len(photos)} photos at {args.size} px\n| style | window | drift | detail |\n|---|---|---|---|")
    for (name, radius, eps), v in res.items():
        a = np.array(v).mean(axis=0)
        print(f"| {name} | radius {radius}, eps {eps:g} | {a[0]:.3f} | {a[1]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
