"""How long `deepshop` takes to exit after Ctrl-C (SIGINT) in the middle of a large image.

    python bench/ctrl_c_latency.py [--python PY ...] [--size 3000] [--commands stylize,colorize]
                                   [--device D] [--tile N] [--at 0.4] [--repeat 3]

For each interpreter (--python, repeatable: e.g. a venv of the baseline build and one of the
build under test; default: this one) and each subcommand, a SIZE x SIZE photo is processed once
without interruption to time the whole run, then --repeat times with SIGINT sent at --at of that
time (inside the network run: loading takes a small part of it).  Printed: the whole run, and the
latency from SIGINT to the process's exit (median, min, max), its exit status (130 expected) and
whether any output or temporary file was left.  The subcommands run with their defaults (device
auto: what users get, or --device), in subprocesses, on the bundled models.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def photo(path: Path, size: int) -> Path:
    """A smooth, colourful random picture (so that every model has something to draw)."""
    from PIL import Image
    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, (size // 64 + 2, size // 64 + 2, 3)).astype(np.uint8)
    big = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    noise = rng.normal(0, 8, (size, size, 3))
    Image.fromarray(np.clip(np.asarray(big) + noise, 0, 255).astype(np.uint8)).save(path)
    return path


def command(python: str, sub: str, src: Path, out: Path, device: str, tile) -> list:
    return ([python, "-m", "deepshop_native", sub, str(src), "-o", str(out), "--device", device]
            + ([] if tile is None else ["--tile", str(tile)]) + (["-q"] if sub == "stylize" else []))


def run_once(cmd: list, out_dir: Path, interrupt_after: float = None) -> tuple:
    """(seconds from start or from SIGINT to exit, exit status, files left in out_dir)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if interrupt_after is None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
        return time.perf_counter() - started, proc.returncode, sorted(os.listdir(out_dir))
    time.sleep(max(0.0, interrupt_after - (time.perf_counter() - started)))
    if proc.poll() is not None:
        raise SystemExit(f"{' '.join(cmd)} ended before the signal; give a larger --size or a smaller --at")
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.communicate()
    return time.perf_counter() - sent, proc.returncode, sorted(os.listdir(out_dir))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", action="append", help="interpreter whose deepshop_native is measured (repeatable)")
    p.add_argument("--size", type=int, default=3000)
    p.add_argument("--commands", default="stylize,colorize")
    p.add_argument("--device", default="auto", help="--device of the subcommands (default: auto)")
    p.add_argument("--tile", type=int, help="--tile of the subcommands (default: theirs; 0: the whole image in "
                                            "one network call, where only a stop within the call helps)")
    p.add_argument("--at", type=float, default=0.4, help="SIGINT at this fraction of the whole run (default 0.4)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    pythons = args.python or [sys.executable]
    print(f"--device {args.device} --tile {args.tile}; CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = photo(tmp / "photo.png", args.size)
        out_dir = tmp / "out"
        print(f"{'interpreter':40s} {'command':9s} {'whole run':>10s}  {'exit after SIGINT: median (min..max)':38s} "
              f"status  left")
        for python in pythons:
            for sub in args.commands.split(","):
                cmd = command(python, sub, src, out_dir / "out.png", args.device, args.tile)
                whole, _, _ = run_once(cmd, out_dir)
                latencies, codes, left = [], set(), set()
                for _ in range(args.repeat):
                    latency, code, files = run_once(cmd, out_dir, interrupt_after=args.at * whole)
                    latencies.append(latency)
                    codes.add(code)
                    left.update(files)
                print(f"{python[-40:]:40s} {sub:9s} {whole:9.1f}s  {statistics.median(latencies):6.2f} s "
                      f"({min(latencies):.2f}..{max(latencies):.2f}){'':18s} {','.join(map(str, sorted(codes))):6s}  "
                      f"{','.join(sorted(left)) or 'none'}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
