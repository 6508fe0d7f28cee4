"""deepshop batch: images per second of the local engine against Ray Data with 1 and 2 workers,
on the same photos and options, in one run (docs/results/batch.md).

    python bench/batch_engines.py PHOTOS... [--max-side 1024] [--count 12] [--out results.json]

PHOTOS: image files or folders (the first --count images, sorted by path).  Each configuration
paints them all into a fresh folder with ``deepshop_native.batch.run`` and the default built-in
style at --max-side; the Ray runs start and stop their own local Ray instance, as
``deepshop batch --engine ray`` does, so their wall time includes Ray's start.  Configurations:

* ``local``: this process, the engine's threads on every core (the baseline, run first and last);
* ``ray-1x2``: one Ray worker with 2 CPUs (2 engine threads): the local engine's work plus Ray;
* ``ray-2x1``: two Ray workers with 1 CPU each (1 engine thread each), images in parallel.

Printed per configuration: wall seconds, images per second, the ratio to the first local run, and
the mean seconds per image inside the workers (painting and writing, without Ray's scheduling).
``ray start`` is timed on its own (init and shutdown of an empty local instance).  Every Ray run's
files are compared with the local run's, byte for byte.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")     # Ray on 127.0.0.1 only (before import)

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


def photos(paths, count):
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXT)
        else:
            found.append(p)
    return found[:count]


def tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--out", default=None, help="write the figures as JSON here too")
    args = ap.parse_args(argv)

    import deepshop_native.batch as batch
    import ray

    chosen = photos(args.photos, args.count)
    if not chosen:
        ap.error("no photos")
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    src = work / "photos"
    src.mkdir()
    for i, p in enumerate(chosen):                   # flat, distinct names: the same set for every engine
        shutil.copyfile(p, src / f"{i:03d}-{p.name}")

    t = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    ray_start = time.perf_counter() - t

    configs = [("local", {}), ("ray-1x2", {"engine": "ray", "workers": 1, "cpus_per_worker": 2}),
               ("ray-2x1", {"engine": "ray", "workers": 2, "cpus_per_worker": 1}), ("local (again)", {})]
    rows, reference = [], None
    for name, kw in configs:
        dest = work / name.replace(" ", "_").replace("(", "").replace(")", "")
        result = batch.run(src, dest, max_side=args.max_side, progress=False, **kw)
        if result.failed or result.done != len(chosen):
            print(f"{name}: {result.done} done, failures: {result.failed}", file=sys.stderr)
            return 1
        files = tree(dest)
        reference = reference or files
        busy = sum(s for _, s in result.workers.values()) / result.done
        rows.append({"config": name, "workers": len(result.workers), "seconds": round(result.seconds, 2),
                     "images_per_second": round(result.images_per_second, 4),
                     "seconds_per_image_in_worker": round(busy, 3), "same_bytes_as_local": files == reference})
    base = rows[0]["images_per_second"]
    for r in rows:
        r["ratio_to_local"] = round(r["images_per_second"] / base, 3)
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": _cpu(), "load": os.getloadavg(),
            "photos": [p.as_posix() for p in chosen], "max_side": args.max_side, "ray": ray.__version__,
            "python": platform.python_version(), "ray_start_and_stop_seconds": round(ray_start, 2), "rows": rows}
    print(f"{len(chosen)} photos at --max-side {args.max_side}; load {info['load'][0]:.1f}; "
          f"empty Ray start+stop {ray_start:.1f} s")
    print(f"{'config':<15}{'workers':>8}{'seconds':>9}{'img/s':>8}{'x local':>9}{'s/img in worker':>17}  same bytes")
    for r in rows:
        print(f"{r['config']:<15}{r['workers']:>8}{r['seconds']:>9.1f}{r['images_per_second']:>8.3f}"
              f"{r['ratio_to_local']:>9.2f}{r['seconds_per_image_in_worker']:>17.2f}  {r['same_bytes_as_local']}")
    if args.out:
        Path(args.out).write_text(json.dumps(info, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return f"{model}, {os.cpu_count()} cores, " + " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile")
                                                            if f in flags)


if __name__ == "__main__":
    sys.exit(main())
