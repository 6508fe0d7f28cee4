"""What the fuzz suite's files share (tests/test_fuzz.py: images, models, options, arrays, stylize
and posterize command lines; tests/test_fuzz_commands.py: every other subcommand and pipeline):
the outcome counts per category and their report, the crash-isolated worker, and the corpora of
malformed images and models made on the fly from small valid files."""
from __future__ import annotations

import collections
import io
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

from deepshop_native.core.errors import DeepshopError
from image_factory import jpeg_with_size
from model_factory import TRANSFORMER_META, export_plain, identity_model

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
#: category -> outcome -> count over every fuzz module of the session, printed and saved at the
#: end of each (the last one's report holds them all).
STATS: "dict[str, collections.Counter]" = collections.defaultdict(collections.Counter)


def write_report() -> None:
    """Print the counts per category, and write them as JSON to $DEEPSHOP_FUZZ_REPORT when set."""
    lines = ["", "fuzz cases per category (outcome: count)"]
    for category in sorted(STATS):
        counts = STATS[category]
        lines.append(f"  {category:28s} {sum(counts.values()):5d}  "
                     + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print("\n".join(lines))
    target = os.environ.get("DEEPSHOP_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps({k: dict(v) for k, v in sorted(STATS.items())}, indent=2) + "\n")


def _record(category: str, outcome: str) -> None:
    STATS[category][outcome] += 1


def _outcome(call) -> str:
    """Run ``call``: "ok", or the DeepshopError class name; anything else fails the test."""
    try:
        call()
    except DeepshopError as e:
        return type(e).__name__
    return "ok"


# ------------------------------------------------------------------ the worker (crash-isolated)

_WORKER = textwrap.dedent(r'''
    import json, sys, traceback
    import numpy as np
    import deepshop_native as ds
    from deepshop_native.core.errors import DeepshopError
    from deepshop_native.image import read_image

    def check_image(img):
        p, a = img.pixels, img.alpha
        assert p.ndim == 3 and p.shape[2] == 3 and p.dtype in (np.uint8, np.uint16) and p.flags.c_contiguous
        assert a is None or (a.shape == p.shape[:2] and a.dtype == p.dtype)

    def run(case):
        kind, path = case["kind"], case.get("path")
        if kind == "image":
            check_image(read_image(path, max_pixels=case["max_pixels"]))
        elif kind == "image_bytes":
            with open(path, "rb") as f:
                data = f.read()
            check_image(read_image(data, max_pixels=case["max_pixels"]))
        elif kind == "model":
            st = ds.Stylizer(path, tile=64, overlap=8, harmonize=0)
            out = st(np.full((40, 36, 3), 120, np.uint8))
            assert out.shape == (40, 36, 3)
        elif kind == "info":
            ds.model_info(path, device="cpu")
        elif kind == "style":
            if case["model"] not in NETS:
                NETS[case["model"]] = ds.StyleNet(case["model"], device="cpu", style_size=64)
            NETS[case["model"]].set_style(path)
        elif kind == "cli":
            return cli(case)
        else:
            raise AssertionError(kind)

    NETS = {}

    def cli(case):
        """A command line run in this process: its exit status (0, 1, 2) as the outcome; a
        traceback, another status or a changed input file is wrong."""
        import contextlib, io
        if case["prog"] == "deepshop":
            from deepshop_native.cli import main
        else:
            from deepshop_export.cli import main
        before = {p: open(p, "rb").read() for p in case.get("unchanged", [])}
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(case["argv"])
            except SystemExit as e:
                rc = e.code
        for p, data in before.items():
            if open(p, "rb").read() != data:
                raise AssertionError(f"{p} was changed by {case['argv']}")
        if rc not in (0, 1, 2) or "Traceback" in err.getvalue():
            raise AssertionError(f"status {rc}: {err.getvalue()[-300:]}")
        return {0: "ok", 1: "error:exit 1", 2: "error:usage (exit 2)"}[rc]

    for case in json.load(sys.stdin):
        print("START", case["id"], flush=True)
        try:
            outcome = run(case) or "ok"
        except DeepshopError as e:
            outcome = "error:" + type(e).__name__
        except BaseException as e:
            outcome = "WRONG:" + type(e).__name__ + ":" + str(e).replace("\n", " ")[:300]
        print("RESULT", case["id"], outcome, flush=True)
''')


def _run_worker(cases, timeout=150, category="worker"):
    """Run the cases in one worker process: {id: outcome}.  A crash or a hang fails the test,
    naming the case that was running (and is counted as CRASH under ``category``)."""
    r = subprocess.run([sys.executable, "-c", _WORKER], input=json.dumps(cases), capture_output=True, text=True,
                       timeout=timeout)
    results, started = {}, None
    for line in r.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "START":
            started = rest
        elif word == "RESULT":
            case_id, _, outcome = rest.partition(" ")
            results[case_id] = outcome
            started = None
    if r.returncode != 0:
        _record(category, "CRASH")
        pytest.fail(f"worker died with status {r.returncode} on case {started!r}\n{r.stderr[-3000:]}")
    return results


def _check_results(cases, results, category_of):
    wrong = {cid: out for cid, out in results.items() if out.startswith("WRONG:")}
    for case in cases:
        outcome = results[case["id"]]
        _record(category_of(case), "ok" if outcome == "ok" else outcome.split(":")[1] if not outcome.startswith("WRONG")
                else "WRONG")
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in list(wrong.items())[:20])




def corpus_sample(folder: Path, per_category: int = 4, seed: int = 2024) -> list:
    """A seeded sample of the malformed-image corpus made in ``folder``: [(category, path)], up to
    ``per_category`` files of each category and every "huge declared size" file (the pixel limit
    must refuse each of them at every entry point)."""
    pick = random.Random(seed)
    by_category: dict = {}
    for category, path in _image_corpus(folder):
        by_category.setdefault(category, []).append(path)
    sample = []
    for category, paths in sorted(by_category.items()):
        n = len(paths) if category == "huge declared size" else per_category
        sample += [(category, p) for p in pick.sample(paths, min(n, len(paths)))]
    return sample


def _base_images(folder: Path) -> "dict[str, Path]":
    """Small valid files of every format and flavour read_image handles."""
    from skimage import data
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.ascontiguousarray(data.astronaut()[::16, ::12][:24, :32])
    rng = np.random.default_rng(7)
    rgb16 = rng.integers(0, 65536, rgb.shape, dtype=np.uint16)
    alpha = rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    made = {}

    def pil(name, im, **kw):
        made[name] = folder / name
        im.save(made[name], **kw)

    pil("rgb.png", Image.fromarray(rgb))
    pil("rgba.png", Image.fromarray(np.dstack([rgb, alpha])))
    pil("gray.png", Image.fromarray(rgb[..., 0]))
    pil("palette.png", Image.fromarray(rgb).quantize(16))
    pil("base.jpg", Image.fromarray(rgb), quality=90)
    pil("progressive.jpg", Image.fromarray(rgb), quality=80, progressive=True)
    pil("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"))
    pil("rgb.tif", Image.fromarray(rgb))
    pil("lzw.tif", Image.fromarray(np.dstack([rgb, alpha])), compression="tiff_lzw")
    pil("lossy.webp", Image.fromarray(rgb), quality=70)
    pil("lossless.webp", Image.fromarray(np.dstack([rgb, alpha])), lossless=True)
    pil("rgb.bmp", Image.fromarray(rgb))
    pil("anim.gif", Image.fromarray(rgb).quantize(32))
    for name, arr in (("rgb16.png", rgb16), ("rgba16.png", np.dstack([rgb16, rgb16[..., 0]])),
                      ("rgb16.tif", rgb16)):
        made[name] = folder / name
        ds_write(made[name], arr)
    return made


def ds_write(path, arr):
    from deepshop_native.image import write_image
    write_image(path, arr, overwrite=True)


_SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0", "tiff_le": b"II*\x00", "tiff_be": b"MM\x00*",
               "webp": b"RIFF\x00\x00\x00\x00WEBP", "bmp": b"BM", "gif": b"GIF89a"}


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR declaring another size (CRC fixed, so the header is believed)."""
    ihdr = bytearray(data[12:29])                   # "IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF) + data[33:]


def _tiff_with_size(data: bytes, width: int, height: int) -> bytes:
    """The little-endian TIFF with its ImageWidth/ImageLength entries replaced (as LONGs)."""
    b = bytearray(data)
    ifd = struct.unpack_from("<I", b, 4)[0]
    for k in range(struct.unpack_from("<H", b, ifd)[0]):
        e = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", b, e)[0]
        if tag in (256, 257):
            struct.pack_into("<HII", b, e + 2, 4, 1, width if tag == 256 else height)
    return bytes(b)


def _bmp_with_size(data: bytes, width: int, height: int) -> bytes:
    return data[:18] + struct.pack("<ii", width, height) + data[26:]


def _image_corpus(folder: Path):
    """(case, category) pairs; every file is read from its path and from its bytes."""
    bases = _base_images(folder / "base")
    out = folder / "cases"
    out.mkdir()
    rng = random.Random(1414)
    files = []

    def add(category, name, content):
        p = out / name
        p.write_bytes(content)
        files.append((category, p))

    for name, path in bases.items():
        data = path.read_bytes()
        files.append(("valid", path))
        for k in range(12):
            cut = rng.randrange(0, len(data)) if k else len(data) - 1
            add("truncated", f"trunc{k}_{name}", data[:cut])
        for k in range(24):
            b = bytearray(data)
            for _ in range(rng.randint(1, 16)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            add("bit-flipped", f"flip{k}_{name}", bytes(b))
        for sig_name, sig in _SIGNATURES.items():
            add("wrong header", f"{sig_name}_{name}", sig + data[len(sig):])
    for sig_name, sig in _SIGNATURES.items():
        for k in range(6):
            add("wrong header", f"garbage{k}_{sig_name}", sig + rng.randbytes(rng.choice([1, 16, 300, 5000])))
        add("zero-byte and tiny", f"sig_only_{sig_name}", sig)
    add("zero-byte and tiny", "empty.png", b"")
    add("zero-byte and tiny", "one.jpg", b"\xff")
    sizes = [(2**31 - 1, 1), (1, 2**31 - 1), (65535, 65535), (16000, 16000), (0, 10), (10, 0), (2**32 - 1, 2**32 - 1)]
    png, jpg, tif = (bases[n].read_bytes() for n in ("rgb.png", "base.jpg", "rgb.tif"))
    bmp = bases["rgb.bmp"].read_bytes()
    for w, h in sizes:
        add("huge declared size", f"huge_{w}x{h}.png", _png_with_size(png, w, h))
        add("huge declared size", f"huge_{w}x{h}.tif", _tiff_with_size(tif, w, h))
        if w < 65536 and h < 65536:
            add("huge declared size", f"huge_{w}x{h}.jpg", jpeg_with_size(jpg, w, h))
        if w < 2**31 and h < 2**31:
            add("huge declared size", f"huge_{w}x{h}.bmp", _bmp_with_size(bmp, w, h))
            add("huge declared size", f"huge_neg{w}x{h}.bmp", _bmp_with_size(bmp, w, -h))
    return files



def _model_corpus(folder: Path):
    import onnx
    from onnx import TensorProto, helper
    from model_factory import random_transformer_net
    rng = random.Random(77)
    ident = Path(identity_model(folder / "identity.onnx")).read_bytes()
    tnet = Path(export_plain(random_transformer_net(seed=3), folder / "tnet.onnx",
                             {**TRANSFORMER_META, "deepshop.receptive_field": "109"})).read_bytes()
    made = []

    def add(category, name, content):
        p = folder / name
        p.write_bytes(content)
        made.append((category, p))

    for k in range(10):
        add("garbage", f"garbage{k}.onnx", rng.randbytes(rng.choice([1, 7, 64, 1000, 100000])))
    for base_name, data in (("identity", ident), ("tnet", tnet)):
        for k in range(10):
            add("truncated", f"trunc{k}_{base_name}.onnx", data[:rng.randrange(1, len(data))])
        for k in range(15):
            b = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            add("bit-flipped", f"flip{k}_{base_name}.onnx", bytes(b))

    def graph(inputs, outputs, nodes, meta=None):
        model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                                  opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
        for key, value in ({"deepshop.value_range": "0,255"} if meta is None else meta).items():
            model.metadata_props.add(key=key, value=value)
        return model.SerializeToString()

    f = TensorProto.FLOAT
    vi = helper.make_tensor_value_info
    add("wrong graph", "two_d.onnx", graph([vi("x", f, ["N", "C"])], [vi("y", f, ["N", "C"])],
                                          [helper.make_node("Identity", ["x"], ["y"])]))
    add("wrong graph", "int_input.onnx", graph([vi("x", TensorProto.INT64, ["N", 3, "H", "W"])],
                                              [vi("y", TensorProto.INT64, ["N", 3, "H", "W"])],
                                              [helper.make_node("Identity", ["x"], ["y"])]))
    add("wrong graph", "two_inputs.onnx", graph([vi("a", f, ["N", 3, "H", "W"]), vi("b", f, ["N", 3, "H", "W"])],
                                               [vi("y", f, ["N", 3, "H", "W"])],
                                               [helper.make_node("Add", ["a", "b"], ["y"])]))
    add("wrong graph", "four_channels.onnx", graph([vi("x", f, ["N", 4, "H", "W"])], [vi("y", f, ["N", 4, "H", "W"])],
                                                  [helper.make_node("Identity", ["x"], ["y"])]))
    add("wrong graph", "no_nodes.onnx", graph([vi("x", f, ["N", 3, "H", "W"])], [vi("y", f, ["N", 3, "H", "W"])], []))
    add("wrong graph", "fixed_shape.onnx", graph([vi("x", f, [1, 3, 8, 8])], [vi("y", f, [1, 3, 8, 8])],
                                                [helper.make_node("Identity", ["x"], ["y"])]))
    add("wrong graph", "unknown_op.onnx", graph([vi("x", f, ["N", 3, "H", "W"])], [vi("y", f, ["N", 3, "H", "W"])],
                                               [helper.make_node("NoSuchOp", ["x"], ["y"])]))
    add("wrong graph", "no_metadata.onnx", graph([vi("x", f, ["N", 3, "H", "W"])], [vi("y", f, ["N", 3, "H", "W"])],
                                                [helper.make_node("Identity", ["x"], ["y"])], meta={}))
    assert onnx is not None
    return made



def _cli_outcome(main, argv, stderr=None) -> str:
    """main() returns a status or argparse exits with 2; any exception escaping is a traceback.
    ``stderr``: a list that gets what was written there."""
    err = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), err
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    finally:
        sys.stdout, sys.stderr = saved
    assert rc in (0, 1, 2), (argv, rc, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if stderr is not None:
        stderr.append(err.getvalue())
    return {0: "ok", 1: "error (exit 1)", 2: "usage (exit 2)"}[rc]
