"""The README picture of the line-art colouriser:

    python -m deepshop_export.families.lineart.figure OUT.jpg PHOTO [--model M] [--temperature T]

Top row: a line drawing (dark pen lines on white, drawn here with Pillow's line primitives, as
a user's scan would look) and its colouring.  Bottom row: PHOTO (a held-out one), its auto-Canny
edges, and their colouring.  Everything runs through the engine (ds.Colorizer).
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw


def pen_drawing(size: int = 384) -> np.ndarray:
    """A landscape in black lines on white: hills, a house, a tree, the sun, clouds."""
    s = size / 384
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    w = max(1, round(2 * s))
    P = lambda pts: [(x * s, y * s) for x, y in pts]
    d.line(P([(0, 250), (60, 225), (130, 240), (200, 215), (270, 235), (384, 220)]), fill=0, width=w)  # hills
    d.rectangle(P([(220, 250), (320, 330)]), outline=0, width=w)                                      # house
    d.line(P([(210, 250), (270, 195), (330, 250)]), fill=0, width=w)                                   # roof
    d.rectangle(P([(255, 285), (280, 330)]), outline=0, width=w)                                      # door
    d.rectangle(P([(290, 265), (310, 285)]), outline=0, width=w)                                      # window
    d.rectangle(P([(85, 270), (100, 340)]), outline=0, width=w)                                       # trunk
    d.ellipse(P([(45, 190), (140, 280)]), outline=0, width=w)                                          # crown
    d.ellipse(P([(300, 40), (350, 90)]), outline=0, width=w)                                           # sun
    for cx, cy in ((80, 70), (170, 100)):                                                              # clouds
        for dx in (-25, 0, 25):
            d.arc(P([(cx + dx - 20, cy - 18), (cx + dx + 20, cy + 18)]), 180, 360, fill=0, width=w)
        d.line(P([(cx - 45, cy), (cx + 45, cy)]), fill=0, width=w)
    d.line(P([(0, 360), (384, 350)]), fill=0, width=w)                                                 # path
    return np.asarray(img)


def main(argv=None) -> int:
    import deepshop_native as ds
    from deepshop_native.core.files import atomic_write

    p = argparse.ArgumentParser(prog="python -m deepshop_export.families.lineart.figure")
    p.add_argument("out")
    p.add_argument("photo")
    p.add_argument("--model")
    p.add_argument("--temperature", type=float)
    p.add_argument("--size", type=int, default=384)
    a = p.parse_args(argv)
    c = ds.Colorizer(a.model)
    drawing = pen_drawing(a.size)
    painted = c.run(drawing, temperature=a.temperature)["rgb"]
    im = Image.open(a.photo).convert("RGB")
    side = min(im.size)
    im = im.crop(((im.width - side) // 2, (im.height - side) // 2, (im.width + side) // 2,
                  (im.height + side) // 2)).resize((a.size, a.size), Image.BICUBIC)
    rgb = np.asarray(im)
    e = ds.edges(rgb)
    from_photo = c.run(e, input="edges", temperature=a.temperature)["rgb"]
    n = a.size
    grid = Image.new("RGB", (3 * n + 8, 2 * n + 4), "white")
    grid.paste(Image.fromarray(drawing).convert("RGB"), (0, 0))
    grid.paste(Image.fromarray(painted), (n + 4, 0))
    grid.paste(Image.fromarray(rgb), (0, n + 4))
    grid.paste(Image.fromarray(255 - e).convert("RGB"), (n + 4, n + 4))
    grid.paste(Image.fromarray(from_photo), (2 * n + 8, n + 4))
    atomic_write(a.out, lambda f: grid.save(f, format="JPEG", quality=90), overwrite=True)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
