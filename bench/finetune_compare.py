"""Compare fine-tune runs of `deepshop-train finetune` (docs/results/finetune.md).

    python bench/finetune_compare.py --runs a=runs/a b=runs/b c=runs/c --photos held1.jpg held2.jpg ...
                                     --style sand_painting.png [--size 256] [--grid out.jpg] [--json out.json]

For each run (``LABEL=RUN_FOLDER``, the folders ``deepshop-train finetune`` writes) and for the
start they share (the pretrained network narrowed to the run's start style, read again from the
weight package):

* the loss terms of ``log.jsonl`` over steps (means over each log interval of the training
  crops) and the near-black fraction it recorded at each checkpoint;
* on the held-out ``--photos`` (centre squares of ``--size`` px, painted by torch): the style loss
  (Gram MSE over the run's style layers) and the content loss at its content layer, on the run's
  loss network with the run's weights, the fraction of near-black pixels (luma under 16 of 255),
  and the mean luma;
* the training time the run recorded (``model.json``: wall_time_s; load-dependent).

``--grid`` writes one row per photo: the photo, the start's painting, then each run's (JPEG).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
import torch
from PIL import Image, ImageDraw

from deepshop_export.families.multistyle import single_style, start as starts
from deepshop_export.families.multistyle.finetune import near_black_fraction
from deepshop_export.families.transformer_net.train import load_style
from deepshop_export.training import data, perceptual
from deepshop_export.training.losses import PerceptualLoss


def read_run(folder: str) -> dict:
    prov = json.load(open(os.path.join(folder, "model.json")))
    log = [json.loads(line) for line in open(os.path.join(folder, "log.jsonl")) if line.strip()]
    return {"prov": prov, "log": log, "state": torch.load(os.path.join(folder, "model.pth"), weights_only=True)}


def criterion_of(prov: dict, style_path: str, style_size):
    loss = prov["loss"]
    settings = {"loss_net": {"imagenet_vgg19": "vgg19", "hed_vgg16": "hed"}.get(loss["network"]), "vgg": None,
                "vgg_arch": None, "content_layer": loss["content_layer"], "style_layers": ",".join(loss["style_layers"]),
                "content_weight": loss["content_weight"], "style_weight": loss["style_weight"]}
    net = perceptual.make_loss_network(settings, defaultdict(dict))     # the weights are the run's
    style = data.to_tensor255(load_style(style_path, style_size)).unsqueeze(0)
    return PerceptualLoss(net, style, settings["content_layer"], loss["style_layers"], loss["content_weight"],
                          loss["style_weight"], 0.0)


def paint(net, photos: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        y = net(x, torch.ones(1, 1)) * 255.0
    return y.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()


def measure(crit, photos: np.ndarray, out: np.ndarray) -> dict:
    with torch.no_grad():
        y = torch.from_numpy(out).permute(0, 3, 1, 2).float()
        x = torch.from_numpy(photos).permute(0, 3, 1, 2).float()
        _, terms = crit(y, x)
    luma = out.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return {"style": float(terms["style"]), "content": float(terms["content"]),
            "near_black": near_black_fraction(out), "mean_luma": float(luma.mean())}


def grid(rows, labels, path: str) -> None:
    cell, gap, head = rows[0][0].shape[0], 4, 16
    img = Image.new("RGB", (len(labels) * (cell + gap) - gap, head + len(rows) * (cell + gap) - gap), "white")
    draw = ImageDraw.Draw(img)
    for c, label in enumerate(labels):
        draw.text((c * (cell + gap) + 3, 2), label, fill="black")
    for r, row in enumerate(rows):
        for c, a in enumerate(row):
            img.paste(Image.fromarray(a), (c * (cell + gap), head + r * (cell + gap)))
    from deepshop_native.core.files import atomic_write
    atomic_write(path, lambda f: img.save(f, format="JPEG", quality=82), True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="LABEL=RUN_FOLDER")
    p.add_argument("--photos", nargs="+", required=True, help="held-out photos")
    p.add_argument("--style", required=True, help="the style image the runs were trained on")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--grid")
    p.add_argument("--json")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        runs[label] = read_run(folder)
    first = next(iter(runs.values()))["prov"]
    index = first["start"]["start_style"]["index"]
    if any(r["prov"]["start"]["start_style"]["index"] != index for r in runs.values()):
        raise SystemExit("finetune_compare: the runs start from different styles")
    crit = criterion_of(first, args.style, max(first["style_image"]["size"]))     # the size it was trained at
    photos = np.stack([data.center_square(data.load_rgb(f), args.size) for f in args.photos])
    start = starts.multistyle_start(index).net.eval()
    outs = {"start": paint(start, photos)}
    for label, run in runs.items():
        net = starts.multistyle_start(index).net
        net.load_state_dict(run["state"])
        outs[label] = paint(net.eval(), photos)
    result = {"start_style": first["start"]["start_style"], "held_out": {}, "runs": {}}
    for label, out in outs.items():
        result["held_out"][label] = measure(crit, photos, out)
    for label, run in runs.items():
        prov = run["prov"]
        result["runs"][label] = {
            "freeze": prov["freeze"], "trained_parameters": prov["trained_parameters"],
            "steps": prov["training"]["iterations"], "wall_time_s": prov["wall_time_s"],
            "log": [{k: r[k] for k in ("step", "style", "content") if k in r} for r in run["log"] if "style" in r],
            "near_black": [{"step": r["step"], "near_black": r["near_black"]} for r in run["log"] if "near_black" in r]}
    print(f"start: {result['start_style']['name']} (style {index}); held-out photos at {args.size} px; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| | freeze | trained parameters | steps | training s | style (held out) | content (held out) "
          "| near-black | mean luma |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, m in result["held_out"].items():
        r = result["runs"].get(label, {"freeze": "-", "trained_parameters": 0, "steps": 0, "wall_time_s": 0})
        print(f"| {label} | {r['freeze']} | {r['trained_parameters']} | {r['steps']} | {r['wall_time_s']:.0f} | "
              f"{m['style']:.4g} | {m['content']:.4g} | {m['near_black']:.4f} | {m['mean_luma']:.1f} |")
    for label, r in result["runs"].items():
        print(f"{label} log (step: style / content): " + ", ".join(
            f"{x['step']}: {x['style']:.4g} / {x['content']:.4g}" for x in r["log"]))
        print(f"{label} near-black at checkpoints: " + ", ".join(
            f"{x['step']}: {x['near_black']:.4f}" for x in r["near_black"]))
    if args.grid:
        grid([[photos[i]] + [outs[k][i] for k in outs] for i in range(len(photos))], ["photo", *outs], args.grid)
        print(f"wrote {args.grid}")
    if args.json:
        from deepshop_native.core.files import atomic_write
        text = json.dumps(result, indent=1).encode()
        atomic_write(args.json, lambda f: f.write(text), True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
