"""The `deepshop` command end to end, on sample photos that scikit-image ships."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepshop_native.cli import main


@pytest.fixture()
def photo_dir(tmp_path, photos):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(photos["astronaut"][::2, ::2]).save(d / "astronaut.jpg", quality=92)
    Image.fromarray(photos["chelsea"]).save(d / "sub" / "chelsea.png")
    return d


def test_stylize_one_file(tmp_path, photo_dir, transformer_onnx, capsys):
    out = tmp_path / "out.jpg"
    rc = main(["stylize", str(photo_dir / "astronaut.jpg"), "--model", transformer_onnx, "--out", str(out),
               "--tile", "128", "--quality", "80", "-q"])
    assert rc == 0
    with Image.open(out) as im:
        assert im.size == (256, 256) and im.format == "JPEG"
    # No temporary files left next to the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.jpg"]


def test_stylize_directory_keeps_layout_and_refuses_overwrite(tmp_path, photo_dir, transformer_onnx, capsys):
    out = tmp_path / "out"
    args = ["stylize", str(photo_dir), "--model", transformer_onnx, "--out", str(out), "--max-side", "200", "-q"]
    assert main(args) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["astronaut.jpg", os.path.join("sub", "chelsea.png")]
    with Image.open(out / "sub" / "chelsea.png") as im:
        assert max(im.size) == 200
    before = (out / "astronaut.jpg").read_bytes()
    assert main(args) == 1  # both exist: refused, reported
    err = capsys.readouterr().err
    assert "astronaut.jpg" in err and "overwrite" in err
    assert (out / "astronaut.jpg").read_bytes() == before
    assert main(args + ["--overwrite", "--strength", "0.5"]) == 0


def test_batch_goes_on_past_a_bad_file(tmp_path, photo_dir, transformer_onnx, capsys):
    (photo_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (photo_dir / "truncated.jpg").write_bytes((photo_dir / "astronaut.jpg").read_bytes()[:3000])
    out = tmp_path / "out"
    rc = main(["stylize", str(photo_dir), "--model", transformer_onnx, "--out", str(out), "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "truncated.jpg" in err
    assert (out / "astronaut.jpg").is_file() and (out / "sub" / "chelsea.png").is_file()
    assert not (out / "broken.png").exists() and not (out / "truncated.jpg").exists()


def test_rgba_png_keeps_alpha_and_16bit_stays_16bit(tmp_path, photos, identity_onnx):
    rgba = np.dstack([photos["coffee"][:64, :80], np.linspace(0, 255, 64 * 80).reshape(64, 80).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert main(["stylize", str(tmp_path / "a.png"), "-m", identity_onnx, "-o", str(tmp_path / "b.png"), "-q"]) == 0
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), rgba)
    cv2 = pytest.importorskip("cv2")
    deep = (np.random.default_rng(0).integers(0, 65536, (40, 50, 3))).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep[..., ::-1])
    assert main(["stylize", str(tmp_path / "d.png"), "-m", identity_onnx, "-o", str(tmp_path / "e.png"), "-q"]) == 0
    back = cv2.imread(str(tmp_path / "e.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, deep)


def test_errors_name_the_file(tmp_path, transformer_onnx, capsys):
    # one error policy: a user's mistake exits with 1 (2 is argparse's, for usage errors)
    assert main(["stylize", str(tmp_path / "missing*.jpg"), "-m", transformer_onnx, "-o", str(tmp_path / "o")]) == 1
    assert "missing*.jpg" in capsys.readouterr().err
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    assert main(["stylize", str(img), "-m", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "y.png")]) == 1
    assert "nope.onnx" in capsys.readouterr().err


def test_info_prints_metadata_and_runtime(transformer_onnx, capsys):
    assert main(["info", transformer_onnx]) == 0
    out = capsys.readouterr().out
    assert "deepshop.family" in out and "transformer_net" in out and "CPUExecutionProvider" in out
    assert main(["info", transformer_onnx, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["stride_multiple"] == 4 and info["metadata"]["deepshop.value_range"] == "0,255"


def test_console_entry_point_runs(transformer_onnx):
    r = subprocess.run([sys.executable, "-m", "deepshop_native", "info", transformer_onnx],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "onnxruntime_version" in r.stdout


def test_stylize_without_out_writes_next_to_the_input(tmp_path, photo_dir, transformer_onnx):
    assert main(["stylize", str(photo_dir / "astronaut.jpg"), "-m", transformer_onnx, "-q"]) == 0
    with Image.open(photo_dir / "astronaut_styled.jpg") as im:
        assert im.size == (256, 256)
    # Run again: the output exists and is kept.
    assert main(["stylize", str(photo_dir / "astronaut.jpg"), "-m", transformer_onnx, "-q"]) == 1


def test_decompression_bomb_limit_is_configurable(tmp_path, identity_onnx, capsys):
    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    rc = main(["stylize", str(tmp_path / "big.png"), "-m", identity_onnx, "-o", str(tmp_path / "o.png"),
               "--max-pixels", "10000", "-q"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "big.png" in err and "300x200" in err and "--max-pixels" in err
    assert not (tmp_path / "o.png").exists()


def test_main_job_with_the_default_style(tmp_path, photos):
    """The README's main job: `deepshop stylize photo.jpg`, no model, no --out: the default built-in
    style (the pretrained 26-style network, converted at set-up or made on first use)."""
    import deepshop_native as ds
    from deepshop_native.models.styles import DEFAULT_STYLE, open_styled

    Image.fromarray(photos["chelsea"]).save(tmp_path / "photo.jpg")
    assert main(["stylize", str(tmp_path / "photo.jpg"), "-q"]) == 0
    with Image.open(tmp_path / "photo_styled.jpg") as im:
        out = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert out.shape == photos["chelsea"].shape
    # Stylized, not copied: far from the photo, yet not flat; the default style's painting.
    assert np.abs(out - photos["chelsea"]).mean() > 20 and out.std() > 20
    # The same picture, losslessly, as the API's default style paints it (the JPEG above is lossy).
    assert main(["stylize", str(tmp_path / "photo.jpg"), "--out", str(tmp_path / "exact.png"), "-q"]) == 0
    with Image.open(tmp_path / "exact.png") as im:
        exact = np.asarray(im.convert("RGB"), dtype=np.int16)
    with Image.open(tmp_path / "photo.jpg") as im:
        decoded = np.asarray(im.convert("RGB"))
    want = open_styled(None, [DEFAULT_STYLE]).run(decoded).astype(np.int16)
    assert np.abs(exact - want).max() <= 1
    # The project's own style stays bundled, by name too.
    assert ds.DEFAULT_MODEL.is_file(), "the project's own style must be bundled with the package"
    meta = ds.Stylizer().metadata
    assert meta["deepshop.license"] == "CC0-1.0" and meta["deepshop.family"] == "transformer_net"


def test_gatys_help_says_what_precision_auto_does(capsys):
    """`deepshop gatys --help` names the precision that precision="auto" resolves to in the code, and
    the bf16 route it takes where the CPU has bf16 (pipelines.gatys.model.bf16_sibling)."""
    from deepshop_native.pipelines.gatys.model import gradient_precision

    resolved = gradient_precision("auto")
    try:
        rc = main(["gatys", "--help"])
    except SystemExit as e:
        rc = e.code
    assert rc == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"default: auto = {resolved}, but on OpenVINO's CPU device where the CPU has AVX512-BF16 or AMX: bf16" \
        in text
    assert "handing over to fp32 where bf16 stops making progress" in text
