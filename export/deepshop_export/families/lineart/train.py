"""Train the line-art colouriser: ``deepshop-train lineart --data photos/ --out runs/lineart``.

Photos become (auto-Canny edges, posterised class labels) pairs in worker processes (data.py);
a LineArtUNet (network.py; --arch tutorial: the tutorial-style baseline TutorialNet) learns
per-pixel classification with cross-entropy, optionally
rebalanced by class frequency.  Every Nth photo (--holdout-every, sorted by path) is held out of
training and only evaluated on (evaluate.py).

The run folder gets, as deepshop-train's style runs do (train.py, train_report.py):
``checkpoint.pt`` (resumable with --resume: model, optimizer, step, RNG, settings, palette,
class weights), ``log.jsonl`` (loss and per-pixel accuracy), ``losses.png`` and
``accuracy.png``, ``samples.png`` (edges / target / prediction on fixed held-out crops),
``model.json`` (provenance) and the exported ``model.onnx`` (family ``lineart``).
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

from deepshop_native.core.files import atomic_write

from ... import train_data, train_report
from ...train import (TrainError, command, load_checkpoint, resumed_settings, rng_state, save_atomically, set_rng_state,
                      start_run)
from . import data, evaluate
from .export import export_lineart
from .network import ARCHITECTURES, TUTORIAL_SIZE, build_network, parameter_count

CHECKPOINT_FORMAT = "deepshop-train-lineart-1"

DEFAULTS = dict(
    data=None, out=None, levels=3, palette="uniform", k=16, space="rgb", rebalance=False, base=24, depth=3,
    image_size=128, batch_size=8, lr=2e-3, iterations=None, epochs=4, max_minutes=None, seed=42,
    holdout_every=10, checkpoint_interval=200, log_interval=10, workers=2, threads=None, device="auto",
    resume=None, overwrite=False, progress=True, name="lineart", license="unknown", fp16=False,
    eval_size=256, export=True, arch="unet", width=1.0,
)
RUN_CONTROL = {"out", "iterations", "epochs", "max_minutes", "checkpoint_interval", "log_interval", "device",
               "workers", "threads", "resume", "progress", "overwrite", "name", "license", "fp16", "eval_size", "export"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepshop-train lineart",
        description="Train a line-drawing colouriser: auto-Canny edges of photos in, posterised colour "
                    "classes out (a fully convolutional U-Net), and export it to ONNX.")
    a = p.add_argument
    a("--data", help="folder of training photos, searched recursively")
    a("--out", help="run folder (checkpoints, logs, plots, samples, model.onnx)")
    a("--levels", type=int, help="uniform palette: this many values per channel, levels^3 classes (default 3: 27)")
    a("--palette", choices=["uniform", "kmeans"], help="uniform levels, or K colours learned from the photos "
      "by k-means in CIELAB (default: uniform)")
    a("-k", type=int, help="number of learned colours with --palette kmeans (default 16)")
    a("--space", choices=["rgb", "lab"], help="colour distance of the posterised targets (default: rgb)")
    a("--rebalance", action="store_const", const=True,
      help="weight the loss by inverse class frequency (rare colours otherwise vanish)")
    a("--arch", choices=ARCHITECTURES, help="unet (default: ours) or tutorial (the baseline: the tutorial's fixed "
      "128 x 128 network squeezed to 1 x 1 x 2187, for comparison only; needs --image-size 128 --no-export)")
    a("--width", type=float, help="--arch tutorial: channel multiplier of every layer but the 2187-channel "
      "bottleneck (default 1: 233 M parameters; 0.125: 19 M)")
    a("--base", type=int, help="channels of the U-Net's first level (default 24: ~1.0 M parameters)")
    a("--depth", type=int, help="U-Net levels (default 3: inputs multiples of 8)")
    a("--image-size", type=int, help="training crop size, a multiple of 2^depth (default 128)")
    a("--batch-size", type=int, help="crops per step (default 8)")
    a("--lr", type=float, help="Adam learning rate (default 2e-3)")
    a("--iterations", type=int, help="number of steps (overrides --epochs)")
    a("--epochs", type=int, help="passes over the training photos when --iterations is not given (default 4)")
    a("--max-minutes", type=float, help="stop (and save, evaluate, export) once training time reaches this")
    a("--seed", type=int, help="seed of weights, data order and crops (default 42)")
    a("--holdout-every", type=int, help="hold out every Nth photo (sorted by path) for evaluation; 0: none "
      "(default 10)")
    a("--checkpoint-interval", type=int, help="steps between checkpoints (default 200)")
    a("--log-interval", type=int, help="steps between log lines (default 10)")
    a("--workers", type=int, help="data-loading worker processes (edges and posterising run there; default 2)")
    a("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    a("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto)")
    a("--name", help="model name in the metadata (default: lineart)")
    a("--license", help="licence of the weights, recorded in the model (default: unknown)")
    a("--fp16", action="store_const", const=True, help="store the exported weights in float16")
    a("--eval-size", type=int, help="held-out evaluation: centre squares of this size (default 256)")
    a("--no-export", dest="export", action="store_const", const=False,
      help="do not export model.onnx at the end (deepshop-export-free runs, tests)")
    a("--resume", help="checkpoint.pt to continue from; its settings are used")
    a("--overwrite", action="store_const", const=True, help="reuse an --out folder that has a run in it")
    a("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")
    return p


def resolve_settings(argv) -> dict:
    given = {k: v for k, v in vars(build_parser().parse_args(argv)).items() if v is not None}
    if "resume" in given:
        return resumed_settings(given, DEFAULTS, RUN_CONTROL, load_checkpoint(given["resume"], CHECKPOINT_FORMAT))
    settings = dict(DEFAULTS, **given)
    for k in ("data", "out"):
        if settings[k] is None:
            raise TrainError(f"--{k} is required (unless resuming with --resume)")
    if settings["arch"] == "tutorial":
        if settings["image_size"] != TUTORIAL_SIZE:
            raise TrainError(f"--arch tutorial: the network's input is fixed at {TUTORIAL_SIZE} x {TUTORIAL_SIZE}; "
                             f"use --image-size {TUTORIAL_SIZE}")
        if settings["export"]:
            raise TrainError("--arch tutorial is a baseline for comparison, not exported (a fixed-size network "
                             "cannot be tiled by the engine): add --no-export")
        if not 0 < settings["width"] <= 1:
            raise TrainError(f"--width {settings['width']}: must be in (0, 1]")
    stride = 2 ** settings["depth"]
    if settings["depth"] < 1 or settings["depth"] > 6:
        raise TrainError(f"--depth {settings['depth']}: must be 1..6")
    if settings["arch"] == "unet" and (settings["image_size"] % stride or settings["image_size"] < 2 * stride):
        raise TrainError(f"--image-size {settings['image_size']}: must be a multiple of {stride} (2^depth), "
                         f"at least {2 * stride}")
    if settings["batch_size"] < 1 or settings["base"] < 1:
        raise TrainError("--batch-size and --base must be at least 1")
    if settings["palette"] == "uniform" and not 2 <= settings["levels"] <= 8:
        raise TrainError(f"--levels {settings['levels']}: must be 2..8 (8: 512 classes)")
    if settings["palette"] == "kmeans" and not 2 <= settings["k"] <= 256:
        raise TrainError(f"-k {settings['k']}: must be 2..256")
    return settings


def make_palette(settings: dict, files) -> np.ndarray:
    from deepshop_native import uniform_palette
    if settings["palette"] == "uniform":
        return uniform_palette(settings["levels"])
    return data.learned_palette(files, settings["k"], settings["seed"])


def run(settings: dict) -> dict:
    """Train with resolved settings; returns the provenance (with the held-out evaluation)."""
    ckpt, out, device = start_run(settings)

    try:
        files = train_data.find_images(settings["data"])
    except FileNotFoundError as e:
        raise TrainError(str(e)) from e
    train_files, held_out = data.split_holdout(files, settings["holdout_every"])
    if not train_files:
        raise TrainError(f"{settings['data']}: no training photos left after holding out every "
                         f"{settings['holdout_every']}th")
    if ckpt is not None:
        palette = np.asarray(ckpt["palette"], dtype=np.uint8)
        freq = np.asarray(ckpt["class_frequencies"], dtype=np.float64)
    else:
        palette = make_palette(settings, train_files)
        freq = data.class_frequencies(train_files, palette, settings["space"])
    weights = data.rebalancing_weights(freq) if settings["rebalance"] else None
    classes = len(palette)

    dataset = data.LineArtCrops(train_files, settings["image_size"], palette, settings["space"])
    steps_per_epoch = max(1, len(dataset) // settings["batch_size"])
    total = settings["iterations"] or settings["epochs"] * steps_per_epoch

    net = build_network(settings, classes).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=settings["lr"])
    criterion = torch.nn.CrossEntropyLoss(weight=None if weights is None else torch.from_numpy(weights).to(device))
    step, elapsed, broken = 0, 0.0, set()
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
        broken = set(ckpt.get("broken_files", []))
        set_rng_state(ckpt["rng"])
    dataset.broken.update(broken)

    sample_files = held_out[:4] if held_out else train_files[:4]
    samples = evaluate.fixed_pairs(sample_files, 128, palette, settings["space"])

    def provenance() -> dict:
        return {
            "trainer": "deepshop-train lineart", "family": "lineart",
            "network": {"parameters": parameter_count(net), **net.config()},
            "targets": {"palette": settings["palette"], "levels": settings["levels"] if settings["palette"] == "uniform"
                        else None, "k": classes, "space": settings["space"], "rebalance": bool(settings["rebalance"]),
                        "kernel": "deepshop_native.posterize"},
            "edges": {"method": "canny", "bilateral": [3, 60, 120], "thresholds": "median +- 0.33"},
            "training": {"image_size": settings["image_size"], "batch_size": settings["batch_size"],
                         "iterations": step, "planned_iterations": total, "lr": settings["lr"], "optimizer": "Adam",
                         "loss": "cross-entropy" + (" (rebalanced)" if settings["rebalance"] else ""),
                         "seed": settings["seed"]},
            "data": {"folder": os.path.abspath(settings["data"]), "images": len(files),
                     "training_images": len(train_files), "held_out_images": len(held_out),
                     "holdout_every": settings["holdout_every"], "broken_skipped": len(broken)},
            "device": {"type": device.type, "name": platform.processor() or platform.machine(),
                       "cpu_threads": torch.get_num_threads()},
            "wall_time_s": round(elapsed, 1), "torch": str(torch.__version__),
        }

    def report() -> None:
        recs = train_report.read_jsonl(os.path.join(out, "log.jsonl"))
        train_report.plot_losses(recs, os.path.join(out, "losses.png"), keys=("loss",), ylabel="cross-entropy")
        train_report.plot_losses(recs, os.path.join(out, "accuracy.png"), keys=("accuracy",), log_scale=False,
                                 ylabel="per-pixel accuracy")
        net.eval()
        preds = [evaluate.predict_colours(net, e, palette, device) for e in samples["edges"]]
        net.train()
        train_report.rows_grid([samples["edges_rgb"], samples["target_rgb"], preds], os.path.join(out, "samples.png"))

    def checkpoint() -> None:
        state = {"format": CHECKPOINT_FORMAT, "model": net.state_dict(), "optimizer": opt.state_dict(),
                 "step": step, "elapsed_s": elapsed, "settings": {k: v for k, v in settings.items() if k != "resume"},
                 "rng": rng_state(), "broken_files": sorted(broken), "palette": palette.tolist(),
                 "class_frequencies": freq.tolist(), "provenance": provenance()}
        save_atomically(state, os.path.join(out, "checkpoint.pt"))
        report()

    log = train_report.JsonlLog(os.path.join(out, "log.jsonl"), resume_step=step)
    loader = data.make_loader(dataset, settings["batch_size"], settings["workers"], settings["seed"], step, total)
    bar = None
    if settings["progress"]:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, desc="train lineart", unit="it", dynamic_ncols=True)
    net.train()
    deadline = settings["max_minutes"] * 60 if settings["max_minutes"] else None
    sums, count, waited = {"loss": 0.0, "accuracy": 0.0}, 0, 0.0
    t_last = time.perf_counter()
    try:
        for x, labels, newly_broken in loader:
            t_data = time.perf_counter()
            waited += t_data - t_last
            broken.update(dataset.files[i] for i in newly_broken)
            x, labels = x.to(device), labels.to(device)
            opt.zero_grad(set_to_none=True)
            scores = net(x)
            loss = criterion(scores, labels)
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {loss.item()} at step {step}; lower --lr")
            loss.backward()
            opt.step()
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            with torch.no_grad():
                acc = (scores.argmax(1) == labels).float().mean().item()
            sums["loss"] += loss.item()
            sums["accuracy"] += acc
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.3f}", refresh=False)
            if step % settings["log_interval"] == 0 or step == total:
                # data_wait_s: time the step loop waited for the loader (0 when workers keep up).
                log.write({"step": step, **{k: v / count for k, v in sums.items()}, "elapsed_s": round(elapsed, 2),
                           "data_wait_s": round(waited, 2), "broken": len(broken)})
                sums, count, waited = dict.fromkeys(sums, 0.0), 0, 0.0
            if step % settings["checkpoint_interval"] == 0 and step < total:
                checkpoint()
                t_last = time.perf_counter()
            if deadline is not None and elapsed >= deadline:
                break
    finally:
        if bar is not None:
            bar.close()
    log.close()
    checkpoint()
    prov = provenance()
    if held_out:
        net.eval()
        prov["held_out"] = evaluate.evaluate(net, held_out, palette, settings["space"], freq, settings["eval_size"],
                                             device)
    atomic_write(os.path.join(out, "model.json"), lambda f: f.write(json.dumps(prov, indent=2).encode()),
                 overwrite=True)
    if settings["export"]:
        rep = export_lineart(net, os.path.join(out, "model.onnx"), palette, name=settings["name"], provenance=prov,
                             license=settings["license"], space=settings["space"], fp16=settings["fp16"],
                             overwrite=True)
        print(rep.summary())
    if broken:
        print(f"skipped {len(broken)} unreadable or too small image(s), e.g. {sorted(broken)[0]}", file=sys.stderr)
    return prov


def main(argv=None) -> int:
    def done(_settings, prov):
        if prov.get("held_out"):
            print(json.dumps(prov["held_out"], indent=2))
        print(f"trained {prov['training']['iterations']} steps in {prov['wall_time_s']:.0f} s")
    return command("deepshop-train lineart", resolve_settings, run, argv, done)


if __name__ == "__main__":
    sys.exit(main())
