"""The command line's conveniences: `-` as input (stdin) and --out - (stdout) with --format, --json
(one object per image on stdout, nothing else there), -q (nothing printed on success), and
`deepshop completion bash|zsh|fish` (the bash script sourced and asked for completions; zsh and
fish scripts checked by those shells where they are installed)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepshop_native.cli import main
from deepshop_native.core.session import PRECISIONS


def deepshop(*args, stdin: bytes = b"", cwd=None):
    """The command in its own process: real pipes for stdin and stdout."""
    return subprocess.run([sys.executable, "-m", "deepshop_native", *map(str, args)], input=stdin,
                          capture_output=True, timeout=300, cwd=cwd)


@pytest.fixture()
def photo(tmp_path, photos):
    path = tmp_path / "photo.png"
    Image.fromarray(photos["chelsea"][::4, ::4]).save(path)      # 113 x 75
    return path


def decoded(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        return im.format, np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------ stdin and stdout

def test_stylize_stdin_to_stdout_round_trip(photo, identity_onnx):
    """PNG bytes in, PNG bytes out (the input's format), the identity model's pixels unchanged."""
    r = deepshop("stylize", "-", "-m", identity_onnx, "--tile", "0", "--harmonize", "0", "-q",
                 stdin=photo.read_bytes())
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    fmt, pixels = decoded(r.stdout)
    assert fmt == "PNG"
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(photo).convert("RGB")))


def test_stdout_format_follows_format_option_or_the_input(tmp_path, photo, identity_onnx):
    jpeg = tmp_path / "photo.jpg"
    Image.open(photo).convert("RGB").save(jpeg, quality=95)
    r = deepshop("stylize", jpeg, "-m", identity_onnx, "--out", "-", "-q")
    assert r.returncode == 0, r.stderr
    assert decoded(r.stdout)[0] == "JPEG"
    r = deepshop("stylize", "-", "-m", identity_onnx, "--format", "webp", "-q", stdin=jpeg.read_bytes())
    assert r.returncode == 0, r.stderr
    fmt, pixels = decoded(r.stdout)
    assert fmt == "WEBP" and pixels.shape == (75, 113, 3)


def test_stdin_to_a_file_and_posterize_to_stdout(tmp_path, photo):
    out = tmp_path / "from_stdin.png"
    r = deepshop("posterize", "-", "--levels", "3", "--out", out, "-q", stdin=photo.read_bytes())
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", r.stderr
    # The same command from the file to stdout gives the same pixels, at most 27 colours.
    r = deepshop("posterize", photo, "--levels", "3", "--out", "-", "-q")
    assert r.returncode == 0, r.stderr
    fmt, pixels = decoded(r.stdout)
    assert fmt == "PNG"
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(out).convert("RGB")))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) <= 27


def test_edges_to_stdout_equal_opencv_auto_canny(photo, monkeypatch, capsysbinary):
    """In-process: stdout's bytes are PNG (edges' format) holding OpenCV's auto-Canny of the photo."""
    cv2 = pytest.importorskip("cv2")
    assert main(["edges", str(photo), "-o", "-", "-q"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b""
    fmt, pixels = decoded(captured.out)
    gray = cv2.bilateralFilter(cv2.cvtColor(np.asarray(Image.open(photo).convert("RGB")), cv2.COLOR_RGB2GRAY), 3, 60, 120)
    m = float(np.median(gray))
    expected = cv2.Canny(gray, int(max(0, 0.67 * m)), int(min(255, 1.33 * m)))
    assert fmt == "PNG"
    np.testing.assert_array_equal(pixels[..., 0], expected)


def test_colorize_reads_stdin(tmp_path, monkeypatch, capsysbinary):
    drawing = np.full((48, 64), 255, np.uint8)
    drawing[8:40, 30:32] = 0
    buffer = io.BytesIO()
    Image.fromarray(drawing).save(buffer, format="PNG")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(buffer.getvalue())))
    assert main(["colorize", "-", "-o", str(tmp_path / "painted.png"), "-q", "--device", "cpu"]) == 0
    assert capsysbinary.readouterr() == (b"", b"")
    with Image.open(tmp_path / "painted.png") as im:
        assert im.size == (64, 48) and im.mode == "RGB"


@pytest.mark.parametrize("argv, message", [
    (["stylize", "-", "PHOTO"], "standard input can be the only input"),
    (["stylize", "PHOTO", "PHOTO2", "--out", "-"], "standard output takes one image"),
    (["stylize", "PHOTO", "--out", "-", "--json"], "--json"),
    (["stylize", "-", "--json"], "--json"),
    (["stylize", "PHOTO", "-o", "OUT.png", "--format", "jpg"], "--format jpg"),
    (["posterize", "-", "--levels", "3", "--out", "OUT.png", "--labels"], "--labels"),
    (["posterize", "-", "--levels", "3", "--out", "FOLDER"], "standard input has no file name"),
])
def test_misuse_of_stdio_is_refused_before_anything_runs(tmp_path, photo, argv, message, capsys, monkeypatch):
    (tmp_path / "FOLDER").mkdir()
    Image.open(photo).save(tmp_path / "PHOTO2.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(photo.read_bytes())))
    argv = [str(photo) if a == "PHOTO" else "PHOTO2.png" if a == "PHOTO2" else a for a in argv]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert not (tmp_path / "OUT.png").exists()


# ------------------------------------------------------------------ --json

def test_stylize_json_one_object_per_image(tmp_path, photo, identity_onnx, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(photo).save(folder / "a.png")
    Image.open(photo).convert("RGB").resize((40, 30)).save(folder / "b.jpg")
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    assert main(["stylize", str(folder), "-m", identity_onnx, "-o", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    entries = [json.loads(line) for line in captured.out.splitlines()]     # nothing else on stdout
    assert [os.path.basename(e["input"]) for e in entries] == ["a.png", "b.jpg", "c.png"]
    for e, size in zip(entries[:2], [(113, 75), (40, 30)]):
        assert set(e) == {"input", "output", "size", "style", "provider", "precision", "seconds"}
        with Image.open(e["output"]) as im:
            assert im.size == size == tuple(e["size"])
        assert e["style"] == "identity.onnx" and e["provider"] == "CPUExecutionProvider" and e["precision"] == "fp32"
        assert e["seconds"] >= 0
    assert entries[2]["output"] is None and entries[2]["error"]
    assert "2 of 3 image(s) done, 1 failed" in captured.err


@pytest.mark.parametrize("command", ["posterize", "edges", "colorize"])
def test_json_of_the_other_image_commands(tmp_path, photo, command, capsys):
    if command == "edges":
        pytest.importorskip("cv2")
    out = tmp_path / "out.png"
    extra = {"posterize": ["--levels", "4", "--out"], "edges": ["-o"], "colorize": ["--device", "cpu", "-o"]}[command]
    assert main([command, str(photo), *extra, str(out), "--json", "-q"]) == 0
    captured = capsys.readouterr()
    (entry,) = [json.loads(line) for line in captured.out.splitlines()]
    assert entry["input"] == str(photo) and entry["output"] == str(out) and entry["size"] == [113, 75]
    assert set(entry) == {"input", "output", "size", "style", "provider", "precision", "seconds"}
    assert (entry["provider"] is None) == (command != "colorize")
    assert captured.err == ""


def test_info_and_styles_json_are_one_object_a_line(identity_onnx, capsys):
    assert main(["info", identity_onnx, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["model"] == identity_onnx


# ------------------------------------------------------------------ -q

@pytest.mark.parametrize("command", ["stylize", "posterize", "edges", "colorize"])
def test_quiet_prints_nothing_on_success_and_errors_still(tmp_path, photo, identity_onnx, command):
    if command == "edges":
        pytest.importorskip("cv2")
    argv = {"stylize": ["-m", identity_onnx, "-o"], "posterize": ["--levels", "3", "--out"], "edges": ["-o"],
            "colorize": ["--device", "cpu", "-o"]}[command]
    out = tmp_path / "out.png"
    r = deepshop(command, photo, *argv, out, "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    r = deepshop(command, photo, *argv, out, "-q")      # the output exists now: a failure, told
    assert r.returncode == 1 and b"exists" in r.stderr and r.stdout == b""


# ------------------------------------------------------------------ completion

def completion_script(shell: str, capsys) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def bash_complete(script_path, words, cword) -> list:
    """The words bash's completion function offers for COMP_WORDS=words, COMP_CWORD=cword."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    r = subprocess.run(["bash", "-c", f"source {script_path} && COMP_WORDS=({quoted}) && COMP_CWORD={cword} && "
                                      "_deepshop && printf '%s\\n' \"${COMPREPLY[@]}\""],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completion_is_sourced_and_completes(tmp_path, capsys):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = tmp_path / "deepshop.bash"
    script.write_text(completion_script("bash", capsys))
    r = subprocess.run(["bash", "-c", f"source {script} && complete -p deepshop"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.strip() == "complete -o default -F _deepshop deepshop"
    assert bash_complete(script, ["deepshop", "sty"], 1) == ["stylize", "styles"]
    assert "completion" in bash_complete(script, ["deepshop", ""], 1)
    assert bash_complete(script, ["deepshop", "stylize", "--prec"], 2) == ["--precision"]
    assert sorted(bash_complete(script, ["deepshop", "stylize", "--precision", ""], 3)) == sorted(PRECISIONS)
    assert bash_complete(script, ["deepshop", "stylize", "--precision", "=", "f"], 4) == ["fp32", "fp16"]
    assert bash_complete(script, ["deepshop", "completion", "z"], 2) == ["zsh"]
    assert "--levels" in bash_complete(script, ["deepshop", "posterize", "x.jpg", "--l"], 3)
    # A file-valued option and an input offer nothing themselves: bash's own file names (-o default).
    assert bash_complete(script, ["deepshop", "stylize", "--model", ""], 3) == []


@pytest.mark.parametrize("shell, check", [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])])
def test_zsh_and_fish_scripts_parse(tmp_path, shell, check, capsys):
    text = completion_script(shell, capsys)
    assert "stylize" in text and "precision" in text and "completion" in text
    if shutil.which(check[0]) is None:
        pytest.skip(f"{shell} is not installed: the script was made, not parsed")
    path = tmp_path / f"deepshop.{shell}"
    path.write_text(text)
    r = subprocess.run([*check, str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_fish_completes_subcommands_and_choices(tmp_path, capsys):
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    path = tmp_path / "deepshop.fish"
    path.write_text(completion_script("fish", capsys))
    r = subprocess.run(["fish", "-c", f"source {path}; complete -C 'deepshop sty'; echo ---; "
                                      f"complete -C 'deepshop stylize --precision '"],
                       capture_output=True, text=True, timeout=30)
    first, second = r.stdout.split("---\n")
    assert sorted(line.split("\t")[0] for line in first.splitlines()) == ["styles", "stylize"]
    assert sorted(line.split("\t")[0] for line in second.splitlines()) == sorted(PRECISIONS)


def test_completion_needs_a_known_shell(capsys):
    with pytest.raises(SystemExit) as e:
        main(["completion", "tcsh"])
    assert e.value.code == 2 and "tcsh" in capsys.readouterr().err
