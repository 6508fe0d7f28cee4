"""How much larger or smaller the perceptual-loss terms of one loss network are than another's, on
the same images: the factors that carry default loss weights tuned on one network (HED's VGG16)
over to another (the ImageNet VGG19), so that content and style keep the balance that was tuned.

    python tools/loss_weight_scale.py STYLE_IMAGE... [--reference hed] [--network vgg19] [--size 256]

Photos: the ones scikit-image ships (training.data.write_skimage_photos), centre squares of
--size pixels.  For each network and the trainers' default layers (content relu2_2, style
relu1_2, relu2_2, relu3_3, relu4_3):

* content term: mean over photos of mean((F(x) - F(blur(x)))^2) at the content layer, x against
  itself blurred (Gaussian, sigma 2 px: a stand-in for the stylised output, which keeps the
  structure and changes the texture); and the mean squared activation mean(F(x)^2) as a check
  that the ratio does not depend on the pair chosen;
* style term: mean over (photo, style) pairs of the sum over the style layers of
  mean((G(x) - G(s))^2), Gram matrices normalised by C*H*W as training.losses does.

It prints the ratios reference / network: multiply the reference's weights by them.  Nothing is
written."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch
from PIL import Image, ImageFilter

from deepshop_export.training import data, loss_networks
from deepshop_export.training.losses import gram_matrix

CONTENT = "relu2_2"
STYLE = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def tensor(img: Image.Image) -> torch.Tensor:
    return data.to_tensor255(img).unsqueeze(0)


def terms(name: str, photos, styles) -> dict:
    net = loss_networks.build_loss_network(None, [CONTENT, *STYLE], name=name)
    content, energy, style = [], [], []
    with torch.no_grad():
        style_grams = [{l: gram_matrix(f) for l, f in net(tensor(s)).items() if l in STYLE} for s in styles]
        for p in photos:
            f = net(tensor(p))
            g = net(tensor(p.filter(ImageFilter.GaussianBlur(2))))
            content.append(float(((f[CONTENT] - g[CONTENT]) ** 2).mean()))
            energy.append(float((f[CONTENT] ** 2).mean()))
            grams = {l: gram_matrix(f[l]) for l in STYLE}
            for sg in style_grams:
                style.append(sum(float(((grams[l] - sg[l]) ** 2).mean()) for l in STYLE))
    return {"content": np.mean(content), "energy": np.mean(energy), "style": np.mean(style)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tools/loss_weight_scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("styles", nargs="+", help="style images")
    p.add_argument("--reference", default="hed", choices=loss_networks.LOSS_NETWORKS)
    p.add_argument("--network", default="vgg19", choices=loss_networks.LOSS_NETWORKS)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    with tempfile.TemporaryDirectory() as tmp:
        photos = [Image.fromarray(data.center_square(data.load_rgb(f), a.size))
                  for f in data.write_skimage_photos(tmp)]
    styles = [Image.fromarray(data.center_square(data.load_rgb(f), a.size)) for f in a.styles]
    ref, net = terms(a.reference, photos, styles), terms(a.network, photos, styles)
    print(f"{len(photos)} photos, {len(styles)} styles, {a.size} px; content {CONTENT}, style {', '.join(STYLE)}")
    for key in ("content", "energy", "style"):
        print(f"{key:8s} {a.reference} {ref[key]:.4g}  {a.network} {net[key]:.4g}  ratio {ref[key] / net[key]:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
