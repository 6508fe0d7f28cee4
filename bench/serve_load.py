"""A bounded load test of `deepshop serve` on 127.0.0.1: throughput, latency, failures, server memory,
then a burst beyond the queue that must get 503s (with Retry-After) and a server that recovers.

    python bench/serve_load.py [--requests 200] [--clients 4] [--size 512] [--workers 2] [--queue 4]
                               [--burst 24] [--burst-size N] [--burst-style NAME] [--baseline 12]
                               [--device auto] [--tile N] [--style NAME] [--model M.onnx] [--json out.json]

It starts `python -m deepshop_native serve` on a free port of 127.0.0.1 (nothing else is contacted),
sends ``--requests`` POST /v1/stylize of a ``--size`` square photo (scikit-image's astronaut as a
JPEG) from ``--clients`` threads, each on its own keep-alive connection, and stops by itself.  The
baseline is the same work without HTTP: the same model called in this process from ``--workers``
threads on ``--baseline`` photos, so the served throughput is given as a ratio to it.  The server's
resident memory is sampled every half second.  Then ``--burst`` requests at once: those beyond the
workers and the queue must be refused with 503 and Retry-After, and a request after the burst must
succeed.  Prints a table; ``--json`` saves the figures.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_jpeg(size: int, seed: int = 0) -> bytes:
    from PIL import Image
    from skimage import data
    im = Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def form(fields: dict, photo: bytes) -> tuple:
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in fields.items())
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"photo.jpg\"\r\n"
             "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Server:
    """`deepshop serve` in a subprocess on 127.0.0.1."""

    def __init__(self, args, port: int):
        cmd = [sys.executable, "-m", "deepshop_native", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(args.workers), "--queue", str(args.queue), "--device", args.device]
        for model in args.model:
            cmd += ["--model", model]
        if args.tile is not None:
            cmd += ["--tile", str(args.tile)]
        self.port = port
        self.log = open(args.log, "w") if args.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 120
        while True:
            try:
                if self.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"deepshop serve did not start (status {self.proc.poll()})")
            time.sleep(0.3)

    def get(self, path: str):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def post(conn: http.client.HTTPConnection, body: bytes, ctype: str):
    """(status, seconds, Retry-After or None, response bytes)."""
    t0 = time.perf_counter()
    conn.request("POST", "/v1/stylize", body=body, headers={"Content-Type": ctype})
    r = conn.getresponse()
    data = r.read()
    return r.status, time.perf_counter() - t0, r.getheader("Retry-After"), data


def steady_load(server: Server, body: bytes, ctype: str, requests: int, clients: int) -> dict:
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies, failures, retries = [], [], []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                break
            while True:
                try:
                    status, seconds, retry_after, data = post(conn, body, ctype)
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        failures.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
                    break
                if status == 503 and retry_after:          # the queue was full: wait as told, then again
                    with lock:
                        retries.append(int(retry_after))
                    time.sleep(min(int(retry_after), 5))
                    continue
                with lock:
                    if status == 200 and data[:2] == b"\xff\xd8":
                        latencies.append(seconds)
                    else:
                        failures.append(f"{status}: {data[:200]!r}")
                break
        conn.close()

    rss, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            rss.append((time.monotonic(), rss_mb(server.proc.pid)))
            stop.wait(0.5)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    mb = [m for _, m in rss]
    quarter = max(1, len(mb) // 4)
    lat = sorted(latencies)
    return {"requests": requests, "clients": clients, "ok": len(lat), "failed": len(failures),
            "failures": failures[:10], "retried_503": len(retries), "wall_s": wall,
            "throughput_rps": len(lat) / wall if wall else float("nan"),
            "p50_s": statistics.median(lat) if lat else float("nan"),
            "p95_s": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else float("nan"),
            "max_s": lat[-1] if lat else float("nan"),
            "rss_first_quarter_mb": float(np.median(mb[:quarter])) if mb else float("nan"),
            "rss_last_quarter_mb": float(np.median(mb[-quarter:])) if mb else float("nan"),
            "rss_max_mb": max(mb) if mb else float("nan")}


def burst(server: Server, body: bytes, ctype: str, count: int) -> dict:
    results, lock = [], threading.Lock()
    start = threading.Barrier(count)

    def one():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        start.wait()
        try:
            status, _, retry_after, _ = post(conn, body, ctype)
        except (OSError, http.client.HTTPException) as e:
            status, retry_after = type(e).__name__, None
        with lock:
            results.append((status, retry_after))
        conn.close()
    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t0 = time.perf_counter()
    while json.loads(server.get("/healthz")[1])["queued"] or json.loads(server.get("/healthz")[1])["running"]:
        time.sleep(0.1)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    after, seconds, _, _ = post(conn, body, ctype)
    conn.close()
    refused = [r for r in results if r[0] == 503]
    return {"sent": count, "ok": sum(1 for s, _ in results if s == 200), "refused_503": len(refused),
            "refused_with_retry_after": sum(1 for _, ra in refused if ra and ra.isdigit()),
            "other": [s for s, _ in results if s not in (200, 503)],
            "after_burst_status": after, "after_burst_s": seconds, "drain_s": time.perf_counter() - t0 - seconds}


def baseline(args, photo: bytes, count: int) -> dict:
    """The same model and photo without HTTP: decoded once, stylized by ``workers`` threads."""
    import deepshop_native as ds
    from deepshop_native.image import read_image
    cores = len(os.sched_getaffinity(0))
    threads = 0 if args.workers == 1 else max(1, cores // args.workers)     # as deepshop serve shares them
    model = args.model[0] if args.style and args.model and Path(args.model[0]).stem == args.style else None
    st = ds.Stylizer(model, device=args.device, threads=threads, **({"tile": args.tile} if args.tile else {}))
    pixels = read_image(photo).pixels
    st(pixels)                                                               # warm-up
    counter, lock = iter(range(count)), threading.Lock()

    def work():
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            st(pixels)
    t0 = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(args.workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    return {"images": count, "wall_s": wall, "throughput_ips": count / wall, "device": st.device_used,
            "precision": st.precision}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "?"
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit or "?", "cpu": cpu, "cores": os.cpu_count(),
            "flags": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
            "python": platform.python_version(), "load": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--queue", type=int, default=4, help="waiting jobs per worker (deepshop serve --queue)")
    p.add_argument("--burst", type=int, default=24)
    p.add_argument("--burst-size", type=int, default=None, help="photo side of the burst (default: --size)")
    p.add_argument("--burst-style", default=None, help="style of the burst (default: --style)")
    p.add_argument("--baseline", type=int, default=12, help="photos of the in-process baseline (0: none)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--style", default=None, help="the style to request (default: the server's first)")
    p.add_argument("--log", default=None, help="write the server's log here")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    for name in ("requests", "clients", "size", "workers", "queue", "burst"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")

    before = machine()
    photo = photo_jpeg(args.size)
    fields = {"format": "jpeg", "quality": "90", **({"style": args.style} if args.style else {})}
    body, ctype = form(fields, photo)
    base = baseline(args, photo, args.baseline) if args.baseline else None
    server = Server(args, free_port())
    try:
        warm = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        post(warm, body, ctype)                                            # warm-up
        warm.close()
        load = steady_load(server, body, ctype, args.requests, args.clients)
        capacity = args.workers * (1 + args.queue)
        burst_fields = {**fields, **({"style": args.burst_style} if args.burst_style else {})}
        burst_body, burst_ctype = form(burst_fields, photo_jpeg(args.burst_size or args.size))
        spike = burst(server, burst_body, burst_ctype, args.burst)
    finally:
        server.stop()
    after = machine()
    report = {"machine": before, "load_after": after["load"], "args": vars(args), "baseline": base,
              "steady": load, "burst": spike, "capacity": capacity}
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    ok = load["failed"] == 0 and spike["after_burst_status"] == 200 and not spike["other"]
    return 0 if ok else 1


def print_table(r: dict) -> None:
    m, s, b, base = r["machine"], r["steady"], r["burst"], r["baseline"]
    a = r["args"]
    print(f"\ndeepshop serve load test, {m['date']}, commit {m['commit']}, {m['cpu']} ({m['cores']} cores; "
          f"{', '.join(m['flags']) or 'no avx2'}), load {m['load'][0]:.2f} before / {r['load_after'][0]:.2f} after")
    print(f"{a['requests']} requests of a {a['size']}x{a['size']} JPEG from {a['clients']} clients; server: "
          f"{a['workers']} workers, queue {a['workers'] * a['queue']}, device {a['device']}\n")
    rows = [("throughput", f"{s['throughput_rps']:.3f} requests/s"),
            ("latency p50 / p95 / max", f"{s['p50_s']:.2f} / {s['p95_s']:.2f} / {s['max_s']:.2f} s"),
            ("succeeded / failed", f"{s['ok']} / {s['failed']}" + (f"  {s['failures']}" if s["failures"] else "")),
            ("503 (then retried) in steady load", str(s["retried_503"])),
            ("server RSS first / last quarter, max", f"{s['rss_first_quarter_mb']:.0f} / {s['rss_last_quarter_mb']:.0f}, "
                                                     f"{s['rss_max_mb']:.0f} MB")]
    if base:
        rows.insert(1, ("in-process baseline", f"{base['throughput_ips']:.3f} images/s ({base['images']} images, "
                                                f"{a['workers']} threads, {base['device']} {base['precision']}); served / "
                                                f"baseline = {s['throughput_rps'] / base['throughput_ips']:.2f}"))
    rows += [("burst: sent / 200 / 503", f"{b['sent']} / {b['ok']} / {b['refused_503']} (capacity {r['capacity']}: "
                                         f"workers + queue)"),
             ("burst: 503 with Retry-After", f"{b['refused_with_retry_after']} of {b['refused_503']}"),
             ("burst: other outcomes", str(b["other"] or "none")),
             ("after the burst", f"status {b['after_burst_status']} in {b['after_burst_s']:.2f} s")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    sys.exit(main())
