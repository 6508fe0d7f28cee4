"""How far each Gatys precision gets in the same iterations: ds.gatys(precision=P) on photo/painting
pairs, one level (no coarse to fine), and the loss of each result image evaluated again in fp32 with
the driver's own targets (so bf16's own, rounded, loss figure is not what is compared).

    python bench/gatys_precision.py --styles PAINTINGS --length 384 --iterations 150 --precisions auto,fp32

PAINTINGS: a folder with starry_night.jpg, composition_vii.jpg and wave.jpg (the project's
public-domain paintings); the photos are scikit-image's astronaut, coffee and chelsea.  The
network is the default (ImageNet VGG19), made on first use.  Prints per pair and precision: what
ran (result.precision), the fp32 loss of the result, the driver's last loss, the time and the
evaluations.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

PAIRS = {"astronaut": "starry_night.jpg", "coffee": "composition_vii.jpg", "chelsea": "wave.jpg"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", required=True, help="folder of the paintings")
    p.add_argument("--length", type=int, default=384)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--precisions", default="auto,fp32")
    p.add_argument("--pairs", default=",".join(PAIRS))
    args = p.parse_args()
    from PIL import Image
    from skimage import data

    import deepshop_native as ds
    from deepshop_native.pipelines import gatys as gt
    from deepshop_native.pipelines.gatys import transfer as tr

    fp32 = gt.GatysModel(gt.resolve_model("vgg19"), device="auto", precision="fp32")
    content_w, style_w = gt.loss_weights(fp32, 1e4)
    m = fp32.stride_multiple
    for pair in args.pairs.split(","):
        photo = getattr(data, pair)()
        painting = np.asarray(Image.open(Path(args.styles) / PAIRS[pair]).convert("RGB"))
        # The driver's targets at its one level (transfer.gatys: content and style resized to it).
        h, w = tr._network_size(*tr.fit_length(*photo.shape[:2], args.length), m)
        content_targets, _ = fp32.targets(tr._chw(tr._resize(photo.astype(np.float32), h, w)))
        sh, sw = tr._network_size(*tr.fit_length(*painting.shape[:2], args.length), m)
        _, grams = fp32.targets(tr._chw(tr._resize(painting.astype(np.float32), sh, sw)))
        for precision in args.precisions.split(","):
            t0 = time.perf_counter()
            r = ds.gatys(photo, painting, length=args.length, iterations=args.iterations, precision=precision,
                         coarse_to_fine=False)
            seconds = time.perf_counter() - t0
            x = tr._chw(tr._resize(r.image.astype(np.float32), h, w))
            loss = float(fp32.evaluate(x, content_targets, grams, content_w, style_w, 1e-2 / (3 * h * w))["loss"])
            level = r.levels[-1]
            phases = ", ".join(f"{q['precision']} {q['iterations']} ({q['reason']})" for q in level["phases"])
            print(f"{pair} {w}x{h}, {args.iterations} iterations, precision={precision}: ran {r.precision} [{phases}]; "
                  f"fp32 loss of the image {loss:.5g} (driver's last {r.loss:.5g}); {seconds:.1f} s, "
                  f"{level['evaluations']} evaluations", flush=True)


if __name__ == "__main__":
    main()
