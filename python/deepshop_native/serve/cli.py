"""`deepshop serve`: the web page and the HTTP API on this machine.

    deepshop serve [--host 127.0.0.1] [--port 8000] [--workers N] [--queue N] [--max-upload-mb 50]
                   [--max-pixels N] [--timeout S] [--result-ttl S] [--model FILE ...]
                   [--device auto] [--threads N] [--tile N]

Listens on 127.0.0.1 (this machine only) unless --host says otherwise.  Needs the ``serve`` extra
(FastAPI, uvicorn, python-multipart); without it the command says how to install it and exits 1.
:func:`register` only adds the parser (nothing of FastAPI is imported until the command runs).
"""
from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys

import deepshop_native as ds

DEFAULT_PORT = 8000
INSTALL_HINT = ("deepshop serve needs FastAPI, uvicorn and python-multipart: "
                "pip install 'deepshop-native[serve]'")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="a web page and an HTTP API for stylizing photos (needs the serve extra)",
        description="Serve the page at / and the API under /v1 (OpenAPI: /docs).  Listens on 127.0.0.1 only, "
                    "unless --host says otherwise: any other address lets every machine that reaches it use "
                    "the server (no authentication, no TLS).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--workers", type=int, default=1, help="jobs run at once, each in its own thread (default 1)")
    p.add_argument("--queue", type=int, default=4, metavar="N",
                   help="jobs that may wait per worker; beyond them requests get 503 with Retry-After (default 4)")
    p.add_argument("--max-upload-mb", type=float, default=50.0,
                   help="largest request body (photo and style image together), MiB (default 50)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse images with more pixels than this, from their header (the one pixel limit of every "
                        "subcommand: default 2^26 = 67,108,864, e.g. 8192 x 8192, or $DEEPSHOP_MAX_PIXELS; 0: no limit)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds a request may run before it is stopped (checked after each tile; 0: no limit; "
                        "default 300)")
    p.add_argument("--result-ttl", type=float, default=600.0,
                   help="seconds a finished job's result is kept in memory (default 600)")
    p.add_argument("-m", "--model", action="append", default=[], metavar="FILE",
                   help="a style model (.onnx) to offer besides the built-in styles, named by its file stem; repeat "
                        "for more.  An MSG-Net model takes paintings as styles too")
    p.add_argument("--no-builtin", action="store_true",
                   help="offer only the bundled default style and the --model files, not the built-in styles and "
                        "paintings as styles (the pretrained networks)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, openvino... (default auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads per run (default: the cores shared out between the workers)")
    p.add_argument("--tile", type=int, default=None, help="network window in pixels per side (default: the provider's)")
    p.set_defaults(func=run, parser=p)
    return p


def _check(args) -> dict:
    """The options checked (OptionError naming the option), as ServerConfig and engine arguments."""
    from deepshop_native.image import effective_max_pixels

    def integer(name, value, lo, hi):
        if not lo <= value <= hi:
            raise ds.OptionError(f"--{name}: must be from {lo} to {hi}, got {value}")
        return value

    def seconds(name, value, zero_ok):
        if value != value or value < 0 or (value == 0 and not zero_ok) or value > 7 * 86400:
            raise ds.OptionError(f"--{name}: must be {'0 (no limit) or ' if zero_ok else ''}a number of seconds up to "
                              f"a week, got {value:g}")
        return value

    if not args.host or any(c.isspace() for c in args.host):
        raise ds.OptionError(f"--host: expected an address or a host name, got {args.host!r}")
    integer("port", args.port, 1, 65535)
    workers = integer("workers", args.workers, 1, 64)
    queue = integer("queue", args.queue, 1, 1000)
    mb = args.max_upload_mb
    if mb != mb or not 0 < mb <= 4096:
        raise ds.OptionError(f"--max-upload-mb: must be more than 0 and at most 4096, got {mb:g}")
    if args.max_pixels is None:
        max_pixels = effective_max_pixels()   # $DEEPSHOP_MAX_PIXELS, else the default (2^26)
    else:
        if args.max_pixels < 0:
            raise ds.OptionError(f"--max-pixels: must be >= 0 (0 = no limit), got {args.max_pixels}")
        max_pixels = args.max_pixels or None
    timeout = seconds("timeout", args.timeout, True)
    ttl = seconds("result-ttl", args.result_ttl, False)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = args.threads if args.threads is not None else (0 if workers == 1 else max(1, cores // workers))
    integer("threads", threads, 0, 4 * cores)
    engine = {"device": args.device, "threads": threads}
    if args.tile is not None:
        engine["tile"] = integer("tile", args.tile, 0, 1 << 20)
    return {"workers": workers, "queue_size": workers * queue, "max_upload_bytes": int(mb * 2**20),
            "max_pixels": max_pixels, "time_limit": timeout or None, "result_ttl": ttl, "engine": engine}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    settings = _check(args)             # options first: a typo is told before anything loads
    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise ds.DeepshopError(INSTALL_HINT)
    import uvicorn

    from .app import ServerConfig, create_app
    from .catalogue import default_catalogue
    from .errors import hide_folder

    engine = settings.pop("engine")
    catalogue = default_catalogue(args.model, builtin=not args.no_builtin, **engine)
    for path in args.model:
        hide_folder(os.path.dirname(os.path.abspath(path)))
    config = ServerConfig(catalogue=catalogue, prewarm_thumbnails=True, **settings)
    app = create_app(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if not is_loopback(args.host):
        print(f"deepshop serve: listening on {args.host}: every machine that can reach this one may use the server "
              "(no authentication, no TLS); use 127.0.0.1 to keep it to this machine", file=sys.stderr)
    names = ", ".join(m.name + (" (takes a style image)" if m.takes_style_image else "") for m in catalogue.models)
    print(f"deepshop serve: http://{shown}:{args.port}/  models: {names}; {config.workers} worker(s), "
          f"queue {config.queue_size}; Ctrl-C stops it", file=sys.stderr)
    # Connections beyond this are answered 503 by uvicorn itself: bodies held in memory stay bounded.
    limit = 4 * (config.workers + config.queue_size) + 16
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", limit_concurrency=limit,
                timeout_keep_alive=5, server_header=False)
    return 0
