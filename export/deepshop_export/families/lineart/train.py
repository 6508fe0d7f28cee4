"""Train the line-art colouriser: ``deepshop-train lineart --data photos/ --out runs/lineart``.

Photos become (auto-Canny edges, posterised class labels) pairs in worker processes (data.py);
a LineArtUNet (network.py; --arch tutorial: the tutorial-style baseline TutorialNet) learns
per-pixel classification with cross-entropy, optionally rebalanced by class frequency.  Every
Nth photo (--holdout-every, sorted by path) is held out of training and only evaluated on
(evaluate.py).  Options and their checks: settings.py.

The loop, checkpoints and reports are the shared ones (deepshop_export.training).  The run folder
gets ``checkpoint.pt`` (resumable with --resume: model, optimizer, step, RNG, settings, palette,
class weights), ``log.jsonl`` (loss and per-pixel accuracy), ``losses.png`` and
``accuracy.png``, ``samples.png`` (edges / target / prediction on fixed held-out crops),
``model.json`` (provenance) and the exported ``model.onnx`` (family ``lineart``).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

from ...training import data as train_data, report
from ...training.errors import TrainError
from ...training.loop import Trainer, run_command
from . import data, evaluate
from .export import export_lineart
from .network import build_network, parameter_count
from .settings import CHECKPOINT_FORMAT, resolve_settings  # noqa: F401  (the command's settings)


def make_palette(settings: dict, files) -> np.ndarray:
    from deepshop_native import uniform_palette
    if settings["palette"] == "uniform":
        return uniform_palette(settings["levels"])
    return data.learned_palette(files, settings["k"], settings["seed"])


class LineArtTrainer(Trainer):
    prog = "deepshop-train lineart"
    family = "lineart"
    checkpoint_format = CHECKPOINT_FORMAT
    progress_label = "train lineart"
    log_keys = ("loss", "accuracy")
    nonfinite_hint = "lower --lr"

    def build(self) -> None:
        s, device = self.settings, self.device
        try:
            self.files = train_data.find_images(s["data"])
        except FileNotFoundError as e:
            raise TrainError(str(e)) from e
        self.train_files, self.held_out = data.split_holdout(self.files, s["holdout_every"])
        if not self.train_files:
            raise TrainError(f"{s['data']}: no training photos left after holding out every "
                             f"{s['holdout_every']}th")
        if self.ckpt is not None:
            self.palette = np.asarray(self.ckpt["palette"], dtype=np.uint8)
            self.freq = np.asarray(self.ckpt["class_frequencies"], dtype=np.float64)
        else:
            self.palette = make_palette(s, self.train_files)
            self.freq = data.class_frequencies(self.train_files, self.palette, s["space"])
        weights = data.rebalancing_weights(self.freq) if s["rebalance"] else None
        self.dataset = data.LineArtCrops(self.train_files, s["image_size"], self.palette, s["space"],
                                         folder=s["data"])
        self.total = self.planned_steps(len(self.dataset))
        self.net = build_network(s, len(self.palette)).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=s["lr"])
        self.criterion = torch.nn.CrossEntropyLoss(weight=None if weights is None else
                                                   torch.from_numpy(weights).to(device))
        sample_files = self.held_out[:4] if self.held_out else self.train_files[:4]
        self.samples = evaluate.fixed_pairs(sample_files, 128, self.palette, s["space"])

    def loss(self, x, labels):
        scores = self.net(x)
        loss = self.criterion(scores, labels)
        with torch.no_grad():
            acc = (scores.argmax(1) == labels).float().mean().item()
        return loss, {"loss": loss.item(), "accuracy": acc}, {}

    def checkpoint_extra(self) -> dict:
        return {"palette": self.palette.tolist(), "class_frequencies": self.freq.tolist()}

    def provenance(self) -> dict:
        s = self.settings
        return {
            "trainer": self.prog, "family": self.family,
            "network": {"parameters": parameter_count(self.net), **self.net.config()},
            "targets": {"palette": s["palette"], "levels": s["levels"] if s["palette"] == "uniform" else None,
                        "k": len(self.palette), "space": s["space"], "rebalance": bool(s["rebalance"]),
                        "kernel": "deepshop_native.posterize"},
            "edges": {"method": "canny", "bilateral": [3, 60, 120], "thresholds": "median +- 0.33"},
            "training": self.training_record(loss="cross-entropy" + (" (rebalanced)" if s["rebalance"] else "")),
            "data": {"folder": os.path.abspath(s["data"]), "images": len(self.files),
                     "training_images": len(self.train_files), "held_out_images": len(self.held_out),
                     "holdout_every": s["holdout_every"], "broken_skipped": len(self.broken)},
            "device": self.device_record(), "wall_time_s": round(self.elapsed, 1), "torch": str(torch.__version__),
        }

    def write_reports(self) -> None:
        out, net = self.out, self.net
        recs = report.read_jsonl(os.path.join(out, "log.jsonl"))
        report.plot_losses(recs, os.path.join(out, "losses.png"), keys=("loss",), ylabel="cross-entropy")
        report.plot_losses(recs, os.path.join(out, "accuracy.png"), keys=("accuracy",), log_scale=False,
                           ylabel="per-pixel accuracy")
        net.eval()
        preds = [evaluate.predict_colours(net, e, self.palette, self.device) for e in self.samples["edges"]]
        net.train()
        report.rows_grid([self.samples["edges_rgb"], self.samples["target_rgb"], preds],
                         os.path.join(out, "samples.png"))

    def finish(self) -> dict:
        s = self.settings
        prov = self.provenance()
        if self.held_out:
            self.net.eval()
            prov["held_out"] = evaluate.evaluate(self.net, self.held_out, self.palette, s["space"], self.freq,
                                                 s["eval_size"], self.device)
        self.write_model_json(prov)
        if s["export"]:
            rep = export_lineart(self.net, os.path.join(self.out, "model.onnx"), self.palette, name=s["name"],
                                 provenance=prov, license=s["license"], space=s["space"], fp16=s["fp16"],
                                 overwrite=True)
            print(rep.summary())
        return prov


def run(settings: dict) -> dict:
    """Train with resolved settings; returns the provenance (with the held-out evaluation)."""
    return LineArtTrainer(settings).run()


def main(argv=None) -> int:
    def done(_settings, prov):
        if prov.get("held_out"):
            print(json.dumps(prov["held_out"], indent=2))
        print(f"trained {prov['training']['iterations']} steps in {prov['wall_time_s']:.0f} s")
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_command("deepshop-train lineart", resolve_settings, LineArtTrainer, argv, done)
