"""The options every trainer takes: their definitions (one wording, each family's defaults), their
checks (a bad value is an OptionError naming the option: one line, exit status 1), ``--resume``
(the checkpoint's settings with the run-control options of the command line on top) and the start
of a run (run folder, threads, seeds)."""
from __future__ import annotations

import argparse
import math
import os
import tempfile

import torch

from deepshop_native.core.errors import DeviceError, OptionError, OutputError, OutputExistsError

from .checkpoint import load_checkpoint, seed_everything
from .errors import TrainError

#: Defaults of the options below; a family overrides some (line art: smaller crops, more epochs).
RUN_DEFAULTS = dict(
    data=None, out=None, lr=1e-3, batch_size=4, image_size=256, iterations=None, epochs=2, max_minutes=None,
    seed=42, checkpoint_interval=500, log_interval=10, keep_checkpoints=False, device="auto", workers=2,
    threads=None, resume=None, overwrite=False, progress=True,
)
#: Settings that may change when resuming (how long and where it runs, not what it learns);
#: a different --out continues the run into a new folder and leaves the old one as it was.
RUN_CONTROL = frozenset({"out", "iterations", "epochs", "max_minutes", "checkpoint_interval", "log_interval",
                         "device", "workers", "threads", "resume", "progress", "keep_checkpoints", "overwrite"})


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A trainer's command-line parser."""
    return argparse.ArgumentParser(prog=prog, description=description)


def add_style_arguments(p: argparse.ArgumentParser, *, style_help: str, license_help: str, source_help: str,
                        size_help: str) -> None:
    """--style, --style-license, --style-source and --style-size, in this order."""
    a = p.add_argument
    a("--style", help=style_help)
    a("--style-license", help=license_help)
    a("--style-source", help=source_help)
    a("--style-size", type=int, help=size_help)


def add_run_arguments(p: argparse.ArgumentParser, defaults: dict, *, data_help: str, out_help: str,
                      image_size_help: str, batch_help: str = "images per step") -> None:
    """The options of how a run is fed, how long it runs and where it writes."""
    a = p.add_argument
    d = defaults
    a("--data", help=data_help)
    a("--out", help=out_help)
    a("--lr", type=float, help=f"Adam learning rate (default: {d['lr']:g})")
    a("--batch-size", type=int, help=f"{batch_help} (default: {d['batch_size']})")
    a("--image-size", type=int, help=f"{image_size_help} (default: {d['image_size']})")
    a("--iterations", type=int, help="number of steps, at least 1 (overrides --epochs)")
    a("--epochs", type=int, help=f"passes over the data folder when --iterations is not given (default: {d['epochs']})")
    a("--max-minutes", type=float, help="stop (and save) once the training time, counted over resumes, reaches this")
    a("--seed", type=int, help=f"random seed of weights, data order and crops (default: {d['seed']})")
    a("--checkpoint-interval", type=int, help=f"steps between checkpoints (default: {d['checkpoint_interval']})")
    a("--log-interval", type=int, help=f"steps between log lines (default: {d['log_interval']})")
    a("--keep-checkpoints", action="store_const", const=True,
      help="keep every checkpoint under checkpoints/ (default: only checkpoint.pt, the latest)")
    a("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto = CUDA if available)")
    a("--workers", type=int, help=f"data-loading worker processes, 0: none (default: {d['workers']})")
    a("--threads", type=int, help="torch CPU threads, at least 1 (default: torch's choice)")
    a("--resume", help="checkpoint.pt to continue from; its settings are used")
    a("--overwrite", action="store_const", const=True, help="reuse an --out folder that has a run in it")
    a("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")


def _at_least(settings: dict, key: str, low: int, also: str = "") -> None:
    v = settings.get(key)
    if v is not None and v < low:
        raise OptionError(f"--{key.replace('_', '-')} {v}: must be at least {low}{also}")


def _positive_finite(settings: dict, key: str, zero_ok: bool = False) -> None:
    v = settings.get(key)
    if v is not None and not (math.isfinite(v) and (v >= 0 if zero_ok else v > 0)):
        raise OptionError(f"--{key.replace('_', '-')} {v}: must be a finite number "
                          f"{'of at least 0' if zero_ok else 'above 0'}")


def check_run_settings(settings: dict) -> None:
    """OptionError for a value no run can use (the image size is the family's to check)."""
    _positive_finite(settings, "lr")
    _positive_finite(settings, "max_minutes")
    _at_least(settings, "iterations", 1, " (leave it out to train --epochs passes)")
    for key in ("batch_size", "epochs", "checkpoint_interval", "log_interval", "threads"):
        _at_least(settings, key, 1)
    _at_least(settings, "workers", 0)
    seed = settings.get("seed")
    if seed is not None and not -2**63 < seed < 2**63:
        raise OptionError(f"--seed {seed}: must fit in 64 bits")


def resumed_settings(given: dict, defaults: dict, run_control, ckpt: dict) -> dict:
    """Every trainer's --resume: the checkpoint's settings, with the command line's run-control
    options (how long and where it runs) on top; TrainError for any other option that differs."""
    settings = dict(defaults, **ckpt["settings"])
    for k, v in given.items():
        if k in run_control:
            settings[k] = v
        elif settings.get(k) != v:
            raise TrainError(f"{given['resume']}: cannot change --{k.replace('_', '-')} when resuming "
                             f"(checkpoint has {settings.get(k)!r}, command line {v!r})")
    settings["_checkpoint"] = ckpt
    return settings


def resolve(parser: argparse.ArgumentParser, argv, defaults: dict, run_control, checkpoint_format: str,
            required=("data", "out"), legacy=None) -> dict:
    """Command line + defaults, or on --resume the checkpoint's settings with the run-control
    options of the command line on top, checked (check_run_settings).  ``legacy(ckpt_settings)``:
    values of options a checkpoint written before they existed implies (what the run used)."""
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    if "resume" in given:
        ckpt = load_checkpoint(given["resume"], checkpoint_format)
        if legacy is not None:
            ckpt["settings"] = {**legacy(ckpt["settings"]), **ckpt["settings"]}
        settings = resumed_settings(given, defaults, run_control, ckpt)
    else:
        settings = dict(defaults, **given)
        for k in required:
            if settings[k] is None:
                raise TrainError(f"--{k} is required (unless resuming with --resume)")
    check_run_settings(settings)
    return settings


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA device is available to torch here")
    return torch.device(name)


def prepare_run_folder(out: str, overwrite: bool, resuming: bool) -> None:
    """Refuse to start over an earlier run unless resuming or told to overwrite; make the folder
    and check that files can be written in it (OutputError naming it, before any training)."""
    if not resuming and os.path.exists(os.path.join(out, "checkpoint.pt")) and not overwrite:
        raise OutputExistsError(f"{out}: holds a run already (checkpoint.pt); pass --resume {out}/checkpoint.pt "
                                f"to continue it or --overwrite to start over")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the run folder ({e.strerror or e})") from e
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise OutputError(f"{out}: cannot write in the run folder ({e.strerror or e})") from e


def start_run(settings: dict):
    """What every trainer does first: the run folder (prepare_run_folder), the threads and a seed
    for every generator.  Returns (checkpoint to resume or None, out, device)."""
    ckpt = settings.pop("_checkpoint", None)
    out = settings["out"]
    prepare_run_folder(out, bool(settings.get("overwrite")), ckpt is not None)
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    device = pick_device(settings["device"])
    seed_everything(settings["seed"])
    return ckpt, out, device
