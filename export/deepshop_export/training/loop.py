"""The training loop every trainer shares, and the command line around it.

A family subclasses ``Trainer`` and gives its network, optimiser, data and loss (``build``,
``loss``), what its checkpoints carry beyond the common state (``checkpoint_extra``), its pictures
(``write_reports``), its record (``provenance``) and what happens at the end (``finish``).  The
loop does the rest, the same for all: resume (model, optimiser, step, time, broken files, RNG
state), the step (zero_grad, loss, finite check, backward, step), the averaged log lines
(``log.jsonl``, TensorBoard when installed), the progress bar, checkpoints at an interval (atomic;
``checkpoints/step_N.pt`` kept on request), the deadline (``--max-minutes``, training time counted
over resumes, report writing not counted) and the closing summary of skipped files."""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

from deepshop_native.core.errors import DeepshopError
from deepshop_native.core.files import atomic_write

from . import report
from .checkpoint import rng_state, save_atomically, set_rng_state
from .data import make_loader
from .errors import NoUsableImagesError, TrainError
from .settings import start_run


class Trainer:
    """One run of a family's training with resolved settings; ``run()`` returns the provenance."""

    #: the command (provenance "trainer"), the family, the checkpoint format, the progress bar's label
    prog = "deepshop-train"
    family = ""
    checkpoint_format = ""
    progress_label = "train"
    #: values ``loss`` returns that the log averages over each interval (the first is the loss)
    log_keys: tuple = ("total",)
    #: what the error of a non-finite loss suggests
    nonfinite_hint = "lower --lr or the loss weights"

    def __init__(self, settings: dict):
        self.settings = settings
        self.ckpt, self.out, self.device = start_run(settings)
        self.step, self.elapsed, self.broken = 0, 0.0, set()
        self.net: torch.nn.Module | None = None
        self.opt: torch.optim.Optimizer | None = None
        self.dataset = None
        self.total = 0                              # planned steps

    # ------------------------------------------------------------------ what a family gives

    def build(self) -> None:
        """Make ``net``, ``opt``, ``dataset`` and ``total`` (and whatever the loss needs)."""
        raise NotImplementedError

    def loss(self, *batch) -> tuple[torch.Tensor, dict, dict]:
        """(loss to minimise, {log key: float} for the averaged keys, {other log fields})."""
        raise NotImplementedError

    def checkpoint_extra(self) -> dict:
        return {}

    def write_reports(self) -> None:
        """Refresh the pictures of the run folder (samples, curves); at every checkpoint."""

    def provenance(self) -> dict:
        raise NotImplementedError

    def finish(self) -> dict:
        """After the last step (the final checkpoint is written): the final files; returns the provenance."""
        return self.provenance()

    def loader(self):
        s = self.settings
        return make_loader(self.dataset, s["batch_size"], s["workers"], s["seed"], self.step, self.total)

    # ------------------------------------------------------------------ shared parts

    def planned_steps(self, n_items: int) -> int:
        """--iterations, else --epochs passes over ``n_items``."""
        s = self.settings
        return s["iterations"] or s["epochs"] * max(1, n_items // s["batch_size"])

    def device_record(self) -> dict:
        d = self.device
        return {"type": d.type,
                "name": torch.cuda.get_device_name(d) if d.type == "cuda" else platform.processor() or platform.machine(),
                "cpu_threads": torch.get_num_threads()}

    def training_record(self, **extra) -> dict:
        s = self.settings
        return {"image_size": s["image_size"], "batch_size": s["batch_size"], "iterations": self.step,
                "planned_iterations": self.total, "lr": s["lr"], "optimizer": "Adam", **extra, "seed": s["seed"]}

    def restore(self) -> None:
        """Continue from the checkpoint being resumed, if any."""
        ckpt = self.ckpt
        if ckpt is not None:
            self.net.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            self.step, self.elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
            self.broken = set(ckpt.get("broken_files", []))
            set_rng_state(ckpt["rng"])
        self.dataset.broken.update(self.broken)

    def save_checkpoint(self) -> None:
        state = {"format": self.checkpoint_format, "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                 "step": self.step, "elapsed_s": self.elapsed,
                 "settings": {k: v for k, v in self.settings.items() if k != "resume"},
                 "rng": rng_state(), "broken_files": sorted(self.broken), **self.checkpoint_extra(),
                 "provenance": self.provenance()}
        save_atomically(state, os.path.join(self.out, "checkpoint.pt"))
        if self.settings.get("keep_checkpoints"):
            os.makedirs(os.path.join(self.out, "checkpoints"), exist_ok=True)
            save_atomically(state, os.path.join(self.out, "checkpoints", f"step_{self.step:06d}.pt"))
        self.write_reports()

    def write_model_json(self, prov: dict) -> None:
        text = json.dumps(prov, indent=2).encode()
        atomic_write(os.path.join(self.out, "model.json"), lambda f: f.write(text), overwrite=True)

    def write_model_pth(self) -> dict:
        """``model.pth`` (the network's state_dict alone) and ``model.json`` (its provenance)."""
        save_atomically({k: v.cpu() for k, v in self.net.state_dict().items()}, os.path.join(self.out, "model.pth"))
        prov = self.provenance()
        self.write_model_json(prov)
        return prov

    def before_step(self) -> None:
        """Called before each step's loss (a schedule, e.g. the style ramp)."""

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict:
        self.build()
        self.restore()
        s = self.settings
        log = report.JsonlLog(os.path.join(self.out, "log.jsonl"), resume_step=self.step)
        tb = _tensorboard(self.out, self.step)
        bar = None
        if s["progress"]:
            from tqdm import tqdm
            bar = tqdm(total=self.total, initial=self.step, desc=self.progress_label, unit="it", dynamic_ncols=True)
        self.net.train()
        deadline = s["max_minutes"] * 60 if s["max_minutes"] else None
        sums, count, waited = dict.fromkeys(self.log_keys, 0.0), 0, 0.0
        t_last = time.perf_counter()
        try:
            for *batch, newly_broken in _batches(self.loader(), self.dataset):
                waited += time.perf_counter() - t_last
                self.broken.update(self.dataset.files[i] for i in newly_broken)
                self.opt.zero_grad(set_to_none=True)
                self.before_step()
                loss, values, extra = self.loss(*(b.to(self.device, non_blocking=True) for b in batch))
                if not torch.isfinite(loss):
                    raise TrainError(f"loss became {loss.item()} at step {self.step}; {self.nonfinite_hint}")
                loss.backward()
                self.opt.step()
                self.step += 1
                now = time.perf_counter()
                self.elapsed += now - t_last
                t_last = now
                for k in sums:
                    sums[k] += values[k]
                count += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)
                if self.step % s["log_interval"] == 0 or self.step == self.total:
                    # data_wait_s: time the step loop waited for the loader (0 when workers keep up).
                    rec = {"step": self.step, **{k: v / count for k, v in sums.items()}, **extra,
                           "elapsed_s": round(self.elapsed, 2), "data_wait_s": round(waited, 2),
                           "broken": len(self.broken)}
                    log.write(rec)
                    if tb is not None:
                        for k in sums:
                            tb.add_scalar(f"loss/{k}", rec[k], self.step)
                    sums, count, waited = dict.fromkeys(sums, 0.0), 0, 0.0
                if self.step % s["checkpoint_interval"] == 0 and self.step < self.total:
                    self.save_checkpoint()
                    t_last = time.perf_counter()   # report writing is not training time
                if deadline is not None and self.elapsed >= deadline:
                    break
        finally:
            if bar is not None:
                bar.close()
            log.close()
            if tb is not None:
                tb.close()
        self.save_checkpoint()
        prov = self.finish()
        if self.broken:
            print(f"skipped {len(self.broken)} unreadable, too small or single-colour image(s), "
                  f"e.g. {sorted(self.broken)[0]}", file=sys.stderr)
        return prov


def _batches(loader, dataset):
    """The loader's batches; a data folder with nothing usable becomes one TrainError saying why
    (counted here: from a worker process the error arrives wrapped in its traceback)."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except NoUsableImagesError:
            raise TrainError(dataset.describe_unusable()) from None
        yield batch


def _tensorboard(out: str, step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(os.path.join(out, "tensorboard"), purge_step=step)
    except Exception:    # tensorboard not installed: the JSONL log and PNG plot remain
        return None


def run_command(prog: str, resolve, trainer_class, argv, done=None) -> int:
    """A trainer's command line: settings, run, one-line errors (exit 1) and interruptions (130),
    then ``done(settings, provenance)`` or the standard summary line."""
    try:
        settings = resolve(argv)
        prov = trainer_class(settings).run()
    except DeepshopError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the last checkpoint.pt can be resumed with --resume", file=sys.stderr)
        return 130
    if done is not None:
        done(settings, prov)
    else:
        print(f"trained {prov['training']['iterations']} steps in {prov['wall_time_s']:.0f} s; "
              f"model: {os.path.join(settings['out'], 'model.pth')}")
    return 0
