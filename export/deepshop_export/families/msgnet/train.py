"""``deepshop-train msgnet``: train MSG-Net on a folder of styles, or fine-tune it on one style
(the "sand painting" recipe), with the perceptual losses of the existing trainer.

    deepshop-train msgnet --style styles/ --data photos/ --out runs/msg            # from scratch, styles cycled per batch
    deepshop-train msgnet --init 21styles.model --style sand.png --freeze encoder --lr 1e-4 ...

As upstream (Zhang & Dana's ``main.py train``): the style of step s is style s mod n (sorted
file names), set as the network's target (its Gram through the shared encoder); the loss is
content weight x MSE of the loss network's relu2_2 features + style weight x the sum over
relu1_2..relu4_3 of the MSE of Gram matrices (C h w normalised), content 1 and style 5 with a
Caffe-style VGG16 (upstream's was converted from Caffe; here by default the ImageNet VGG19, which
takes the same input, else HED's).  MSG-Net takes BGR 0..255;
the loss network RGB 0..255: the batch is flipped on the way in and out.

``--freeze encoder`` keeps the siamese encoder (model1: its 18 parameter tensors) fixed;
``--freeze N`` the first N parameter tensors in the network's registration order (model1's,
then ins.weight, then the residual blocks'), as the PaddleHub users' ``stop_gradient`` on the
first 26 did (PaddleHub counts InstanceNorm scale/bias tensors too, which this network has not).

The loop, checkpoints, data and reports are the shared ones (deepshop_export.training).  The run
folder is the style trainer's: checkpoint.pt (resumable with --resume), model.pth
(the 21styles.model layout, which ``deepshop-export msgnet`` reads), model.json, log.jsonl,
losses.png, samples.png (top row: styles; bottom: a fixed photo in each of them).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image

from deepshop_native.core.errors import ImageError, OptionError
from deepshop_native.core.files import sha256_of

from ...training import data, perceptual, report, settings as run_settings
from ...training.errors import TrainError
from ...training.loop import Trainer, run_command
from ...training.losses import PerceptualLoss
from . import network as mn

CHECKPOINT_FORMAT = "deepshop-train-msgnet-checkpoint-1"
#: Upstream's content/style weights (1 and 5) are for a Caffe ImageNet VGG16 (BGR minus the mean,
#: 0..255): kept for the ImageNet VGG19, which takes the same input and was trained on the same data
#: (docs/guides/vgg19.md), and for HED's VGG16 as before.  With a torchvision VGG (pixels / 255 /
#: std, ~58x smaller activations) the MSE terms shrink by ~58^2 and ~58^4: the torchvision
#: defaults are scaled by those factors.
DEFAULT_WEIGHTS = {"keras_imagenet": {"content_weight": 1.0, "style_weight": 5.0},
                   "torchvision": {"content_weight": 3.4e3, "style_weight": 5.6e7},
                   "hed": {"content_weight": 1.0, "style_weight": 5.0}}
DEFAULTS = dict(
    run_settings.RUN_DEFAULTS, **perceptual.LOSS_DEFAULTS,
    style=None, style_license="unknown", style_source=None, style_size=512, init=None, ngf=128, freeze=None,
    sample_images=None,
)
RUN_CONTROL = run_settings.RUN_CONTROL


def build_parser() -> argparse.ArgumentParser:
    p = run_settings.new_parser(
        "deepshop-train msgnet",
        "Train MSG-Net (multi-style, the style image given at run time) on a folder of style images, "
        "or fine-tune a model on one style (--init ... --freeze encoder).")
    a = p.add_argument
    run_settings.add_style_arguments(
        p, style_help="a style image, or a folder of them (cycled one per batch)",
        license_help="licence of the style image(s), recorded in the model",
        source_help="where the style image(s) come from, recorded in the model",
        size_help="longer side of the style images in training, at least 16 (default 512, as upstream)")
    a("--init", help="start from these weights (21styles.model, PaddleHub .pdparams, an earlier model.pth): "
                     "fine-tuning; default: random weights")
    a("--ngf", type=int, help="network width without --init (default 128, as published)")
    a("--freeze", help="'encoder' (the siamese encoder model1) or N (the first N parameter tensors) are not trained")
    perceptual.add_loss_arguments(p, DEFAULTS, DEFAULT_WEIGHTS)
    run_settings.add_run_arguments(
        p, DEFAULTS, data_help="folder of training photos, searched recursively; broken files are skipped and counted",
        out_help="run folder", image_size_help="training crop size, a multiple of 4")
    a("--sample-images", nargs="+", help="photos for samples.png (default: the first of --data)")
    return p


def resolve_settings(argv) -> dict:
    settings = run_settings.resolve(build_parser(), argv, DEFAULTS, RUN_CONTROL, CHECKPOINT_FORMAT,
                                    required=("style", "data", "out"), legacy=perceptual.legacy_loss_settings)
    if settings["image_size"] % 4 or settings["image_size"] < 16:
        raise TrainError(f"--image-size {settings['image_size']}: must be a multiple of 4, at least 16")
    if settings["style_size"] < 16:
        raise TrainError(f"--style-size {settings['style_size']}: at least 16")
    if settings["ngf"] < 1:
        raise OptionError(f"--ngf {settings['ngf']}: must be at least 1")
    freeze = settings["freeze"]
    if freeze is not None and freeze != "encoder" and not (str(freeze).isdigit()):
        raise TrainError(f"--freeze {freeze!r}: 'encoder' or a number of parameter tensors")
    perceptual.check_loss_settings(settings)
    return settings


def style_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = data.find_images(path)
        if not files:
            raise TrainError(f"{path}: no style images in this folder")
        return sorted(files)
    if not os.path.isfile(path):
        raise ImageError(f"{path}: style image not found")
    return [path]


def load_style_image(path: str, size: int) -> Image.Image:
    """The style at ``size`` on its longer side, both sides multiples of 4 (the encoder's stride)."""
    try:
        img = data.load_rgb(path)
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


class MSGNetTrainer(Trainer):
    prog = "deepshop-train msgnet"
    family = "msgnet"
    checkpoint_format = CHECKPOINT_FORMAT
    progress_label = "train msgnet"
    log_keys = ("total", "content", "style")

    def build(self) -> None:
        s, device = self.settings, self.device
        loss_net = perceptual.make_loss_network(s, DEFAULT_WEIGHTS)
        loss_net.to(device)
        self.files = style_files(s["style"])
        styles_rgb = [data.to_tensor255(load_style_image(f, s["style_size"])).unsqueeze(0) for f in self.files]
        # One criterion per style: the loss network's Gram targets of that style (buffers).
        self.criteria = [PerceptualLoss(loss_net, st.to(device), s["content_layer"], perceptual.style_layers(s),
                                        s["content_weight"], s["style_weight"], 0.0).to(device)
                         for st in styles_rgb]
        self.styles_bgr = [st.flip(1).to(device) for st in styles_rgb]
        try:
            self.dataset = data.ImageFolderCrops(s["data"], s["image_size"])
        except FileNotFoundError as e:
            raise TrainError(str(e)) from e
        self.total = self.planned_steps(len(self.dataset))
        if s["init"]:
            from ...importers.msgnet import load_msgnet_file
            net = load_msgnet_file(s["init"])
        else:
            net = mn.MSGNet(ngf=s["ngf"])
        self.net = net.to(device)
        self.frozen = set(frozen_parameters(net, s["freeze"]))
        for name, p in net.named_parameters():
            p.requires_grad_(name not in self.frozen)
        self.opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=s["lr"])
        sample_size = min(s["image_size"], 256)
        self.samples = data.fixed_samples(s["sample_images"], self.dataset, sample_size)
        self.style_thumbs = [data.center_square(Image.fromarray(st[0].permute(1, 2, 0).byte().numpy()), sample_size)
                             for st in styles_rgb[:6]]
        self.info = {
            "styles": [{"file": os.path.basename(f), "sha256": sha256_of(f)} for f in self.files],
            "style_license": s["style_license"], "style_source": s["style_source"], "style_size": s["style_size"],
            "init": os.path.basename(s["init"]) if s["init"] else None,
            "init_sha256": sha256_of(s["init"]) if s["init"] else None,
            "freeze": s["freeze"], "frozen_tensors": len(self.frozen),
            "loss": perceptual.loss_record(s, loss_net),
        }

    def loss(self, x):
        k = self.step % len(self.files)               # styles cycled per batch, as upstream
        self.net.set_target(self.styles_bgr[k])
        y = self.net(x.flip(1)).flip(1)               # MSG-Net: BGR; the loss network: RGB
        loss, terms = self.criteria[k](y, x)
        values = {"total": loss.item(), "content": terms["content"].item(), "style": terms["style"].item()}
        return loss, values, {"style_index": k}

    def provenance(self) -> dict:
        s = self.settings
        return {"trainer": self.prog, "family": self.family, "ngf": self.net.ngf, **self.info,
                "training": self.training_record(),
                "data": {"folder": os.path.abspath(s["data"]), "images": len(self.dataset.files),
                         "broken_skipped": len(self.broken)},
                "device": self.device_record(), "wall_time_s": round(self.elapsed, 1), "torch": str(torch.__version__)}

    def write_reports(self) -> None:
        net, samples = self.net, self.samples
        net.eval()
        outs = []
        with torch.no_grad():
            for j, _thumb in enumerate(self.style_thumbs):
                photo = samples[j % len(samples)]
                x = torch.from_numpy(np.array(photo, dtype=np.float32)).permute(2, 0, 1)[None].flip(1).to(self.device)
                net.set_target(self.styles_bgr[j])
                outs.append(net(x).flip(1).clamp(0, 255).round().byte()[0].permute(1, 2, 0).cpu().numpy())
        net.train()
        report.output_grid([np.asarray(t) for t in self.style_thumbs], outs, os.path.join(self.out, "samples.png"))
        report.plot_losses(report.read_jsonl(os.path.join(self.out, "log.jsonl")), os.path.join(self.out, "losses.png"),
                           keys=("total", "content", "style"))

    def finish(self) -> dict:
        return self.write_model_pth()


def run(settings: dict) -> dict:
    return MSGNetTrainer(settings).run()


def main(argv=None) -> int:
    def done(settings, prov):
        print(f"trained {prov['training']['iterations']} steps in {prov['wall_time_s']:.0f} s; "
              f"model: {os.path.join(settings['out'], 'model.pth')} (deepshop-export msgnet it)")
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command("deepshop-train msgnet", resolve_settings, MSGNetTrainer, argv, done)
