"""Train a TransformerNet for one style with the perceptual losses of Johnson et al. 2016:
``deepshop-train`` (training/cli.py dispatches here).

    deepshop-train --style style.png --data photos/ --out runs/mystyle --iterations 20000

The run folder gets:

* ``checkpoint.pt`` (the latest) and ``checkpoints/step_NNNNNN.pt``: model, optimizer, step,
  settings, RNG states and provenance, so ``--resume`` continues exactly where it stopped;
* ``model.pth``: the final model alone, a fast_neural_style state_dict that ``deepshop-export``
  converts, and ``model.json``: its provenance (style image, licence, losses, data, device, time);
* ``log.jsonl`` (the loss terms), ``losses.png`` (their curves) and ``samples.png`` (the current
  model on a few fixed images), refreshed at each checkpoint; TensorBoard events when
  ``torch.utils.tensorboard`` works.

The loop, checkpoints, data and reports are the shared ones (deepshop_export.training); this
module gives the network, its settings and its loss.
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
from .network import TransformerNet

CHECKPOINT_FORMAT = "deepshop-train-checkpoint-1"

#: Loss weights by loss network (loss_networks.SOURCES).  The torchvision values are those of the
#: PyTorch fast_neural_style example.  Caffe-style nets (HED, the ImageNet VGG19) see pixels not
#: divided by 255*std (about 58x larger activations), so content MSE is ~58^2 and Gram MSE ~58^4
#: larger; HED's values were tuned by eye on the bundled stained-glass style.  The ImageNet VGG19's
#: are HED's times the ratio of HED's loss terms to the VGG19's on the same photos and styles
#: (tools/loss_weight_scale.py: content 0.0111, style 0.00714), so content and style keep HED's
#: balance (docs/guides/vgg19.md).
DEFAULT_WEIGHTS = {
    "keras_imagenet": {"content_weight": 0.33, "style_weight": 14.0, "tv_weight": 0.0},
    "torchvision": {"content_weight": 1e5, "style_weight": 1e10, "tv_weight": 0.0},
    "hed": {"content_weight": 30.0, "style_weight": 2e3, "tv_weight": 0.0},
}

DEFAULTS = dict(
    run_settings.RUN_DEFAULTS, **perceptual.LOSS_DEFAULTS,
    style=None, style_license="unknown", style_source=None, style_size=None, tv_weight=None, style_delay=0,
    style_warmup=0, sample_images=None,
)
RUN_CONTROL = run_settings.RUN_CONTROL


def build_parser() -> argparse.ArgumentParser:
    p = run_settings.new_parser(
        "deepshop-train",
        "Train a fast style-transfer network (TransformerNet) on a style image and a "
        "folder of photos with perceptual losses (Johnson et al. 2016).  Other families: "
        "deepshop-train msgnet --help, deepshop-train lineart --help, deepshop-train finetune --help (a pretrained network on a new style).")
    a = p.add_argument
    run_settings.add_style_arguments(
        p, style_help="style image (any format Pillow reads)",
        license_help="licence of the style image, recorded in the model (default: unknown)",
        source_help="where the style image comes from (URL, author, generator), recorded in the model",
        size_help="resize the style image so its longer side has this many pixels, at least 16 (default: as is)")
    perceptual.add_loss_arguments(p, DEFAULTS, DEFAULT_WEIGHTS)
    a("--tv-weight", type=float, help="total-variation weight (default: 0)")
    a("--style-delay", type=int,
      help="steps trained on the content loss alone before the style comes in: the network first "
           "learns to reproduce the photo, which short (CPU) runs need (default: 0)")
    a("--style-warmup", type=int,
      help="steps (after --style-delay) over which the style weight rises linearly to its value (default: 0)")
    run_settings.add_run_arguments(
        p, DEFAULTS, data_help="folder of training photos, searched recursively (COCO train2014 works as is)",
        out_help="run folder for checkpoints, logs and the final model.pth",
        image_size_help="training crop size in pixels, a multiple of 4")
    a("--sample-images", nargs="+", help="images for the samples.png grid (default: first 4 of --data)")
    return p


def resolve_settings(argv) -> dict:
    """Command line + defaults, or on --resume the checkpoint's settings with the run-control
    options of the command line on top.  TrainError/OptionError on a conflict or a bad value."""
    settings = run_settings.resolve(build_parser(), argv, DEFAULTS, RUN_CONTROL, CHECKPOINT_FORMAT,
                                    required=("style", "data", "out"), legacy=perceptual.legacy_loss_settings)
    if settings["image_size"] % 4 or settings["image_size"] < 16:
        raise TrainError(f"--image-size {settings['image_size']}: must be a multiple of 4, at least 16")
    if settings["style_size"] is not None and settings["style_size"] < 16:
        raise OptionError(f"--style-size {settings['style_size']}: must be at least 16")
    for key in ("style_delay", "style_warmup"):
        if settings[key] < 0:
            raise OptionError(f"--{key.replace('_', '-')} {settings[key]}: must be at least 0")
    perceptual.check_loss_settings(settings)
    return settings


def load_style(path: str, style_size: int | None) -> Image.Image:
    if not os.path.isfile(path):
        raise ImageError(f"{path}: style image not found")
    try:
        img = data.load_rgb(path)
    except Exception as e:
        raise ImageError(f"{path}: cannot read the style image ({e})") from e
    if style_size:
        s = style_size / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.LANCZOS)
    return img


class TransformerNetTrainer(Trainer):
    prog = "deepshop-train"
    family = "transformer_net"
    checkpoint_format = CHECKPOINT_FORMAT
    progress_label = "train"
    log_keys = ("total", "content", "style", "tv")

    def build(self) -> None:
        s, device = self.settings, self.device
        loss_net = perceptual.make_loss_network(s, DEFAULT_WEIGHTS)
        style_img = load_style(s["style"], s["style_size"])
        try:
            self.dataset = data.ImageFolderCrops(s["data"], s["image_size"])
        except FileNotFoundError as e:     # no such folder, or no images in it
            raise TrainError(str(e)) from e
        self.total = self.planned_steps(len(self.dataset))
        loss_net.to(device)
        self.criterion = PerceptualLoss(loss_net, data.to_tensor255(style_img).unsqueeze(0).to(device),
                                        s["content_layer"], perceptual.style_layers(s), s["content_weight"],
                                        s["style_weight"], s["tv_weight"]).to(device)
        self.net = TransformerNet().to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=s["lr"])
        self.samples = data.fixed_samples(s["sample_images"], self.dataset, min(s["image_size"], 256))
        self.style_info = {"file": os.path.basename(s["style"]), "sha256": sha256_of(s["style"]),
                           "license": s["style_license"], "source": s["style_source"], "size": list(style_img.size)}
        self.loss_info = {**perceptual.loss_record(s, loss_net), "tv_weight": s["tv_weight"],
                          "style_delay_steps": s["style_delay"], "style_warmup_steps": s["style_warmup"]}

    def before_step(self) -> None:
        # A fresh network's output is nearly constant, so its Gram matrices are far from the
        # style's and the style gradient swamps the content one: without a content-only start
        # short runs spend hundreds of steps producing colour blobs.
        s = self.settings
        ramp = (self.step + 1 - s["style_delay"]) / max(1, s["style_warmup"])
        self.criterion.style_weight = s["style_weight"] * min(1.0, max(0.0, ramp))

    def loss(self, x):
        loss, terms = self.criterion(self.net(x), x)
        return loss, {"total": loss.item(), **{k: v.item() for k, v in terms.items()}}, {}

    def provenance(self) -> dict:
        s = self.settings
        return {
            "trainer": self.prog, "family": self.family, "style_image": self.style_info, "loss": self.loss_info,
            "training": self.training_record(),
            "data": {"folder": os.path.abspath(s["data"]), "images": len(self.dataset.files),
                     "broken_skipped": len(self.broken)},
            "device": self.device_record(), "wall_time_s": round(self.elapsed, 1), "torch": str(torch.__version__),
        }

    def write_reports(self) -> None:
        net = self.net
        net.eval()
        with torch.no_grad():
            x = torch.from_numpy(np.stack(self.samples)).permute(0, 3, 1, 2).float().to(self.device)
            y = net(x).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        net.train()
        report.output_grid(self.samples, list(y), os.path.join(self.out, "samples.png"))
        report.plot_losses(report.read_jsonl(os.path.join(self.out, "log.jsonl")), os.path.join(self.out, "losses.png"))

    def finish(self) -> dict:
        return self.write_model_pth()


def run(settings: dict) -> dict:
    """Train with resolved ``settings``; returns the final provenance dict."""
    return TransformerNetTrainer(settings).run()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command("deepshop-train", resolve_settings, TransformerNetTrainer, argv)
