"""Bad input to every `deepshop` subcommand: each option or file mistake is one line naming the
option or the file, no traceback, exit status 1 (2 only for argparse's own usage errors).
Regression tests of issue 14's Python-side items (options, FIFOs, posterize label maps,
reruns, pixel limit, SIGTERM, minor CLI behaviour) live here too."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepshop_native.cli import main

BIG = str(2**63 - 1)


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "in" / "photo.png"
    p.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(p)
    return p


def _fails(argv, capsys, *needles, code=1):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


# ------------------------------------------------------------------ stylize: option values

@pytest.mark.parametrize("option, value, needle", [
    ("--tile", "-5", "--tile"), ("--overlap", "-1", "--overlap"), ("--threads", "-1", "--threads"),
    ("--batch", "0", "--batch"), ("--harmonize", "-1", "--harmonize"), ("--device", "gpu", "--device"),
    ("--device", "cuda:99999999999999999999", "--device"), ("--threads", "2147483647", "--threads"),
    ("--threads", "100000", "at most"), ("--halo", str(2**63 - 4), "--halo"), ("--overlap", BIG, "--overlap"),
    ("--stride-multiple", BIG, "--stride-multiple"), ("--tile", str(2**31), "--tile"),
    ("--max-side", "0", "--max-side"), ("--strength", "2", "--strength"), ("--strength", "nan", "--strength"),
    ("--quality", "101", "--quality"), ("--value-range", "0,inf", "--value-range"),
    ("--value-range", "1,0", "--value-range"), ("--value-range", "0,1e-45", "--value-range"),
    ("--mean", "nan,nan,nan", "--mean"), ("--max-pixels", "-1", "--max-pixels"), ("--suffix", "/../x", "--suffix"),
])
def test_stylize_bad_option_values(tmp_path, photo, transformer_onnx, capsys, option, value, needle):
    out = tmp_path / "out.png"
    _fails(["stylize", photo, "-m", transformer_onnx, "-o", out, "-q", f"{option}={value}"], capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--tile", "abc"], ["--channel-order", "XYZ"], ["--value-range", "1"],
                                  ["--mean", "a,b,c"], ["--bogus"]])
def test_stylize_usage_errors_are_argparses(photo, transformer_onnx, capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["stylize", str(photo), "-m", transformer_onnx, *argv])
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------ stylize: files

def test_stylize_model_file_mistakes(tmp_path, photo, capsys):
    out = tmp_path / "o.png"
    _fails(["stylize", photo, "-m", tmp_path / "nope.onnx", "-o", out], capsys, "nope.onnx", "no such model file")
    _fails(["stylize", photo, "-m", tmp_path, "-o", out], capsys, "is a directory")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(300))
    _fails(["stylize", photo, "-m", garbage, "-o", out], capsys, "garbage.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _fails(["stylize", photo, "-m", empty, "-o", out], capsys, "empty.onnx", "empty")
    # Regression (issue 14, item 15): a symlink loop was reported as "no such model file".
    loop = tmp_path / "loop.onnx"
    os.symlink(loop, loop)
    _fails(["stylize", photo, "-m", loop, "-o", out], capsys, "loop.onnx", "symbolic links")
    assert not out.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_fifo_as_model_and_inside_a_folder_does_not_hang(tmp_path, photo, transformer_onnx):
    # Regression (issue 14, item 5): a FIFO hung the model loader and the whole batch.  Run in a
    # subprocess with a time limit, so that a regression fails instead of hanging the suite.
    os.mkfifo(tmp_path / "model.onnx")
    os.mkfifo(photo.parent / "pipe.png")
    code = ("import sys; from deepshop_native.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "stylize", str(photo), "-m", str(tmp_path / "model.onnx"),
                        "-o", str(tmp_path / "o1.png"), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "named pipe" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-c", code, "stylize", str(photo.parent), "-m", transformer_onnx,
                        "-o", str(tmp_path / "out"), "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "pipe.png: is a named pipe" in r.stderr, r.stderr
    assert (tmp_path / "out" / "photo.png").is_file()        # the rest of the batch was done


def test_missing_input_is_reported_and_the_batch_goes_on(tmp_path, photo, transformer_onnx, capsys):
    # Regression (issue 14, item 15): one missing input or an empty glob aborted the whole batch.
    err = _fails(["stylize", photo, tmp_path / "missing.jpg", tmp_path / "none*.png", "-m", transformer_onnx,
                  "-o", tmp_path / "out", "-q"], capsys, "missing.jpg: no such file", "none*.png: matched nothing")
    assert "1 of 3 image(s) done" in err
    assert (tmp_path / "out" / "photo.png").is_file()


def test_output_named_like_an_unwritable_format_is_refused(tmp_path, photo, transformer_onnx, capsys):
    # Regression (issue 14, item 15): --out x.gif created a folder x.gif/.
    _fails(["stylize", photo, "-m", transformer_onnx, "-o", tmp_path / "x.gif"], capsys, "x.gif", "cannot write .gif")
    assert not (tmp_path / "x.gif").exists()


def test_reruns_do_not_feed_on_their_own_outputs(tmp_path, photo, transformer_onnx, capsys):
    # Regression (issue 14, item 13): x_styled_styled.png, and --out p/styled nesting p/styled/styled.
    folder = photo.parent
    for _ in range(3):
        main(["stylize", str(folder), "-m", transformer_onnx, "-q"])
    assert sorted(p.name for p in folder.iterdir()) == ["photo.png", "photo_styled.png"]
    (folder / "photo_styled.png").unlink()
    for _ in range(2):
        main(["stylize", str(folder), "-m", transformer_onnx, "-q", "-o", str(folder / "styled")])
    assert sorted(p.relative_to(folder / "styled").as_posix() for p in (folder / "styled").rglob("*")) == ["photo.png"]
    capsys.readouterr()


def test_default_pixel_limit_refuses_a_small_file_declaring_a_huge_image(tmp_path, transformer_onnx, capsys,
                                                                          monkeypatch):
    # Regression (issue 14, item 14): a tiny file declaring 16000 x 16000 pixels was decoded
    # (768 MB).  The stylize default (2^26 pixels) refuses it from the header, before decoding.
    monkeypatch.delenv("DEEPSHOP_MAX_PIXELS", raising=False)
    bomb = tmp_path / "bomb.png"
    import zlib

    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + (zlib.crc32(kind + body) & 0xFFFFFFFF).to_bytes(4, "big")
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (16000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
                     + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))
    assert bomb.stat().st_size < 200
    _fails(["stylize", bomb, "-m", transformer_onnx, "-o", tmp_path / "o.png", "-q"], capsys,
           "16000x16000", "--max-pixels")


def test_non_utf8_file_names_are_printed_as_their_bytes(tmp_path, transformer_onnx):
    # Regression (issue 14, item 15): such names were printed as "\udcff".
    raw = os.fsencode(str(tmp_path)) + b"/bad\xff.png"
    with open(raw, "wb") as f:
        f.write(b"not an image")
    code = "import sys; from deepshop_native.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([os.fsencode(sys.executable), b"-c", code.encode(), b"stylize", raw, b"-m",
                        os.fsencode(transformer_onnx), b"-o", os.fsencode(str(tmp_path / "out")), b"-q"],
                       capture_output=True, timeout=120)
    assert r.returncode == 1
    assert b"bad\xff.png" in r.stderr and b"udcff" not in r.stderr


def test_sigterm_is_handled_like_ctrl_c_and_leaves_no_temporary(tmp_path, photo, transformer_onnx):
    # Regression (issue 14, item 9): SIGTERM left a hidden partial ".NAME.XXXX.part".  The
    # encoder is made to write half a file, then the process terminates itself.
    code = f"""
import os, signal, sys, time
from deepshop_native.image import write
def half_then_term(f, *args):
    f.write(b"half a file" * 1000)
    f.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
write._encode_pillow = half_then_term
from deepshop_native.cli import main
sys.exit(main(sys.argv[1:]))
"""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, "stylize", str(photo), "-m", transformer_onnx, "-o", str(out),
                        "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    assert "terminated" in r.stderr and "Traceback" not in r.stderr
    assert list(out.iterdir()) == []                          # neither output nor temporary


def test_stale_temporaries_of_our_pattern_are_removed_on_the_next_write(tmp_path, photo, transformer_onnx):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".photo.png.k3j_9x2a.part"                  # what a SIGKILLed run leaves
    stale.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    foreign = out / ".photo.png.notours.part"                 # not our pattern: kept
    foreign.write_bytes(b"y")
    os.utime(foreign, (old, old))
    code = "import sys; from deepshop_native.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "stylize", str(photo), "-m", transformer_onnx, "-o", str(out),
                        "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [".photo.png.notours.part", "photo.png"]


# ------------------------------------------------------------------ info

def test_info_bad_device_and_model(tmp_path, transformer_onnx, capsys):
    _fails(["info", transformer_onnx, "--device", "bogus"], capsys, "--device", "bogus")
    _fails(["info", tmp_path / "nope.onnx"], capsys, "nope.onnx")


# ------------------------------------------------------------------ posterize

@pytest.mark.parametrize("argv, needle", [
    (["--levels", "1"], "--levels"), (["--levels", "300"], "--levels"), (["--levels", "50", "--labels"], "65536"),
    (["--levels", "3", "--quality", "500"], "--quality"), (["--levels", "3", "--seed", "-1"], "--seed"),
    (["--palette-from", "PHOTO", "-k", "0"], "-k"), (["--palette-from", "PHOTO", "-k", BIG], "-k"),
])
def test_posterize_bad_option_values(tmp_path, photo, capsys, argv, needle):
    argv = [str(photo) if a == "PHOTO" else a for a in argv]
    _fails(["posterize", photo, "--out", tmp_path / "o.png", *argv], capsys, needle)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("argv", [["--palette-from", "PHOTO"], ["--levels", "3", "-k", "4"], ["--levels", "x"],
                                  []])
def test_posterize_usage_errors_are_argparses(tmp_path, photo, capsys, argv):
    argv = [str(photo) if a == "PHOTO" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main(["posterize", str(photo), "--out", str(tmp_path / "o.png"), *argv])
    assert e.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_posterize_file_mistakes(tmp_path, photo, capsys):
    _fails(["posterize", photo, "--palette-from", tmp_path / "nope.png", "-k", "4", "--out", tmp_path / "o"],
           capsys, "nope.png")
    text = tmp_path / "text.png"
    text.write_text("not an image")
    err = _fails(["posterize", text, "--levels", "3", "--out", tmp_path / "o"], capsys, "not an image file")
    # Regression (issue 14, item 15): posterize repeated the path in its messages.
    assert err.count(str(text)) == 1, err


def test_posterize_labels_never_replace_an_input(tmp_path, capsys):
    # Regression (issue 14, item 8): input x_labels.png, output x.png: the label map of x.png
    # was written over the input with --labels --overwrite.
    d = tmp_path / "p"
    d.mkdir()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(d / "x_labels.png")
    before = (d / "x_labels.png").read_bytes()
    _fails(["posterize", d / "x_labels.png", "--levels", "3", "--labels", "--overwrite", "--out", d / "x.png"],
           capsys, "would replace the input itself")
    assert (d / "x_labels.png").read_bytes() == before and not (d / "x.png").exists()
    # y.jpg and y_labels.png into one folder: y.jpg's label map and y_labels.png's output collide.
    Image.new("RGB", (8, 8)).save(d / "y.jpg")
    Image.new("RGB", (8, 8)).save(d / "y_labels.png")
    _fails(["posterize", d / "y.jpg", d / "y_labels.png", "--levels", "3", "--labels", "--out", tmp_path / "out"],
           capsys, "would both be written to")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ every console command, as users run it

@pytest.mark.parametrize("argv, needle", [
    (["deepshop_native", "stylize", "NOFILE.png", "--tile", "-5"], "--tile"),
    (["deepshop_native", "info", "NOFILE.onnx"], "NOFILE.onnx"),
    (["deepshop_native", "posterize", "NOFILE.png", "--levels", "1", "--out", "o.png"], "--levels"),
    (["deepshop_export", "NOFILE.pth", "-o", "x.onnx"], "NOFILE.pth"),
    (["deepshop_export", "NOFILE.pth", "-o", "x.onnx", "--opset", "3"], "--opset"),
])
def test_console_commands_print_one_line_without_traceback(tmp_path, argv, needle):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=180, cwd=tmp_path,
                       env=env)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
