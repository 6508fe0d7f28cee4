"""Side-by-side predictions of several ``deepshop-train lineart`` runs on the same held-out photos:

    python -m deepshop_export.families.lineart.compare OUT.jpg --data photos RUN/checkpoint.pt... [--photos 6]

Rows: auto-Canny edges, the posterised target, then each checkpoint's argmax colours (in the
order given).  The held-out photos are those of the first run's split (--holdout-every), centre
squares at --size pixels (a multiple of every network's stride: 128 for the tutorial-style one).
The runs must share a palette (same --palette/-k/--space and photos).
"""
from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    from deepshop_native.core.files import atomic_write
    from PIL import Image

    from ...training import data as train_data
    from ...training.checkpoint import load_checkpoint
    from . import data, evaluate
    from .network import build_network
    from .settings import CHECKPOINT_FORMAT

    p = argparse.ArgumentParser(prog="python -m deepshop_export.families.lineart.compare")
    p.add_argument("out")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", required=True, help="the runs' photo folder")
    p.add_argument("--photos", type=int, default=6, help="held-out photos shown, evenly spaced (default 6)")
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args(argv)
    ckpts = [load_checkpoint(c, CHECKPOINT_FORMAT) for c in a.checkpoints]
    palette = np.asarray(ckpts[0]["palette"], dtype=np.uint8)
    for c, ck in zip(a.checkpoints, ckpts):
        if not np.array_equal(np.asarray(ck["palette"], dtype=np.uint8), palette):
            raise SystemExit(f"{c}: another palette than {a.checkpoints[0]}'s")
    s = ckpts[0]["settings"]
    _, held = data.split_holdout(train_data.find_images(a.data), s["holdout_every"])
    chosen = [held[i] for i in np.linspace(0, len(held) - 1, min(a.photos, len(held))).round().astype(int)]
    pairs = evaluate.fixed_pairs(chosen, a.size, palette, s.get("space", "rgb"))
    rows = [pairs["edges_rgb"], pairs["target_rgb"]]
    for ck in ckpts:
        net = build_network(ck["settings"], len(palette))
        net.load_state_dict(ck["model"])
        net.eval()
        rows.append([evaluate.predict_colours(net, e, palette) for e in pairs["edges"]])
    n, gap = a.size, 4
    grid = Image.new("RGB", (len(rows[0]) * (n + gap) - gap, len(rows) * (n + gap) - gap), "white")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            grid.paste(Image.fromarray(img), (c * (n + gap), r * (n + gap)))
    atomic_write(a.out, lambda f: grid.save(f, format="JPEG", quality=88), overwrite=True)
    print(f"wrote {a.out}: {len(chosen)} held-out photos, rows: edges, target, "
          + ", ".join(a.checkpoints))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
