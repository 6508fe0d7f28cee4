"""Tests of deepshop_native.cli.batch: inputs, outputs, batch runs and progress."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepshop_native.cli.batch import (
    IMAGE_EXTENSIONS, BatchReport, InputPath, expand_inputs, plan_outputs, run_batch,
    tile_progress)
from deepshop_native.core.errors import DeepshopError, ImageError
from deepshop_native.core.files import output_exists_message
from deepshop_native.image import read_image, write_image


def _img(path, value=0, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


@pytest.fixture
def tree(tmp_path):
    """in/a.jpg in/b.PNG in/notes.txt in/sub/c.png in/sub/deeper/d.tif in/.hidden/e.png
    in/.f.png in/z.webp"""
    root = tmp_path / "in"
    for rel in ["a.jpg", "b.PNG", "sub/c.png", "sub/deeper/d.tif", ".hidden/e.png", ".f.png",
                "z.webp"]:
        _img(root / rel)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(autouse=True)
def _chdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def rel(paths, root):
    return [Path(os.path.abspath(p)).relative_to(root).as_posix() for p in paths]


# ----------------------------------------------------------------------------------------------
# expand_inputs
# ----------------------------------------------------------------------------------------------

def test_extensions():
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


def test_directory_recursive_sorted(tree):
    got = expand_inputs([tree])
    # hidden files and folders and non-images left out; sorted by path below the directory
    assert rel(got, tree) == ["a.jpg", "b.PNG", "sub/c.png", "sub/deeper/d.tif", "z.webp"]
    assert all(isinstance(p, InputPath) and p.base == tree for p in got)
    keys = [p.relative_to(tree).parts for p in got]
    assert keys == sorted(keys)


def test_globs(tree):
    assert rel(expand_inputs(["in/*.jpg"]), tree) == ["a.jpg"]
    assert rel(expand_inputs(["in/**/*.png"]), tree) == ["sub/c.png"]     # hidden not matched
    assert rel(expand_inputs(["in/?.jpg"]), tree) == ["a.jpg"]
    assert rel(expand_inputs(["in/[ab].*"]), tree) == ["a.jpg", "b.PNG"]
    got = expand_inputs(["in/**"])          # everything below, images only, sorted
    assert set(rel(got, tree)) == {"a.jpg", "b.PNG", "z.webp", "sub/c.png", "sub/deeper/d.tif"}
    assert rel(got, tree) == sorted(rel(got, tree))
    assert all(p.base == Path("in") for p in got)


def test_explicit_file_any_extension(tree):
    got = expand_inputs([tree / "notes.txt", tree / "a.jpg"])
    assert rel(got, tree) == ["notes.txt", "a.jpg"]
    assert all(p.base is None for p in got)
    # a file whose name looks like a glob is taken literally when it exists
    weird = _img(tree / "x[1].png")
    assert expand_inputs([weird]) == [weird]


def test_nothing_matched_is_reported(tree):
    with pytest.raises(DeepshopError) as info:
        expand_inputs(["in/a.jpg", "missing.jpg", "in/*.gif", "in/*.txt", "empty_dir"])
    msg = str(info.value)
    assert "missing.jpg" in msg and "in/*.gif" in msg and "in/*.txt" in msg
    assert "in/a.jpg" not in msg
    (Path("empty_dir")).mkdir()
    with pytest.raises(DeepshopError, match="empty_dir.*no images"):
        expand_inputs(["empty_dir"])


def test_dedup_keeps_order(tree):
    got = expand_inputs(["in/sub/c.png", tree, "in/*.jpg", "./in/a.jpg"])
    assert rel(got, tree) == ["sub/c.png", "a.jpg", "b.PNG", "sub/deeper/d.tif", "z.webp"]
    assert got[0].base is None         # first occurrence wins


# ----------------------------------------------------------------------------------------------
# plan_outputs
# ----------------------------------------------------------------------------------------------

def test_single_file_output(tree):
    [src] = expand_inputs(["in/a.jpg"])
    assert plan_outputs([src], "out.png") == [(src, Path("out.png"))]
    # an existing directory with an image-like name is a directory
    Path("dir.png").mkdir()
    assert plan_outputs([src], "dir.png") == [(src, Path("dir.png/a.jpg"))]


def test_directory_output_keeps_sub_paths(tree):
    srcs = expand_inputs([tree])
    pairs = plan_outputs(srcs, "out", suffix="_styled")
    assert [d.as_posix() for _, d in pairs] == [
        "out/" + r for r in ["a_styled.jpg", "b_styled.PNG", "sub/c_styled.png",
                             "sub/deeper/d_styled.tif", "z_styled.webp"]]
    pairs = plan_outputs(srcs, "out", ext="png")
    assert all(d.suffix == ".png" for _, d in pairs)
    pairs = plan_outputs(srcs, "out", ext=".jpg")
    assert pairs[2][1].as_posix() == "out/sub/c.jpg"
    assert not Path("out").exists()          # created when written, not when planned
    with pytest.raises(DeepshopError, match=r"\.gif"):
        plan_outputs(srcs, "out", ext="gif")


def test_explicit_files_are_flat(tree):
    srcs = expand_inputs(["in/a.jpg", "in/sub/c.png"])
    pairs = plan_outputs(srcs, "out")
    assert [d.as_posix() for _, d in pairs] == ["out/a.jpg", "out/c.png"]
    # plain Paths (not from expand_inputs) work too
    pairs = plan_outputs([Path("in/a.jpg")], "out/")
    assert pairs[0][1].as_posix() == "out/a.jpg"


def test_unwritable_input_format_gets_png(tmp_path):
    _img(tmp_path / "x.bmp")
    pairs = plan_outputs(expand_inputs(["x.bmp", tmp_path / "x.bmp"]), "out")
    assert [d.as_posix() for _, d in pairs] == ["out/x.png"]


def test_duplicate_outputs(tree):
    _img(tree / "a.png")
    srcs = expand_inputs(["in/a.jpg", "in/a.png"])
    with pytest.raises(DeepshopError) as info:
        plan_outputs(srcs, "out", ext="png")
    assert "in/a.jpg" in str(info.value) and "in/a.png" in str(info.value)
    assert "out/a.png" in str(info.value)
    # explicit files from two directories with the same name
    _img(tree / "sub" / "a.jpg")
    with pytest.raises(DeepshopError, match="both"):
        plan_outputs(expand_inputs(["in/a.jpg", "in/sub/a.jpg"]), "out")


def test_output_must_not_replace_input(tree):
    with pytest.raises(DeepshopError, match="replace the input"):
        plan_outputs(expand_inputs(["in/a.jpg"]), "in")
    with pytest.raises(DeepshopError, match="replace the input"):
        plan_outputs(expand_inputs(["in/a.jpg"]), "in/a.jpg")
    assert plan_outputs(expand_inputs(["in/a.jpg"]), "in", suffix="_x")[0][1] == Path("in/a_x.jpg")


def test_several_inputs_and_a_file_name(tree):
    with pytest.raises(DeepshopError, match="names a file"):
        plan_outputs(expand_inputs(["in/*.jpg", "in/z.webp"]), "out.png")
    Path("afile").write_text("x")
    with pytest.raises(DeepshopError, match="not a directory"):
        plan_outputs(expand_inputs(["in/*.jpg", "in/z.webp"]), "afile")


# ----------------------------------------------------------------------------------------------
# run_batch
# ----------------------------------------------------------------------------------------------

def _copy_as_png(src, dst):
    img = read_image(src)
    write_image(dst, img.pixels, alpha=img.alpha)


def test_batch_continues_after_a_broken_file(tree):
    broken = tree / "sub" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    jobs = plan_outputs(expand_inputs([tree, tree / "notes.txt"]), "out", ext="png")
    stream = io.StringIO()
    report = run_batch(jobs, _copy_as_png, desc="copy", stream=stream)
    assert report.exit_code == 1
    failed = {Path(p).name for p, _ in report.failed}
    assert failed == {"broken.png", "notes.txt"}
    assert len(report.succeeded) == 5
    for src, dst in report.succeeded:
        assert dst.is_file()
        np.testing.assert_array_equal(read_image(dst).pixels, read_image(src).pixels)
    assert not Path("out/sub/broken.png").exists()
    out = io.StringIO()
    report.print_summary(out)
    text = out.getvalue()
    for path, reason in report.failed:
        assert f"{path}: {reason}" in text
        assert not reason.startswith(str(path))      # the path is not repeated
    assert "5 of 7" in text and "2 failed" in text
    assert stream.getvalue() == ""       # not a terminal: tqdm shows no bar


def test_existing_output_not_processed(tree):
    jobs = plan_outputs(expand_inputs(["in/a.jpg", "in/z.webp"]), "out", ext="png")
    _img(Path("out/a.png"), value=123)
    calls = []

    def process(src, dst):      # passes --overwrite on to write_image, as a command does
        calls.append(src)
        img = read_image(src)
        write_image(dst, img.pixels, overwrite=True)
    report = run_batch(jobs, process, progress=False)
    assert calls == [jobs[1][0]]
    assert report.failed == [(jobs[0][0], output_exists_message(str(jobs[0][1])))]
    assert report.exit_code == 1
    assert read_image("out/a.png").pixels[0, 0, 0] == 123
    report = run_batch(jobs, process, overwrite=True, progress=False)
    assert report.exit_code == 0 and len(report.succeeded) == 2
    assert read_image("out/a.png").pixels[0, 0, 0] == 0


@pytest.mark.parametrize("exc", [DeepshopError("x: bad"), OSError(5, "I/O error"),
                                 ValueError("nope"), RuntimeError("engine failed"),
                                 ImageError("in/a.jpg: truncated"), MemoryError()])
def test_recorded_exceptions(tree, exc):
    def process(src, dst):
        raise exc
    report = run_batch([("in/a.jpg", "out/a.jpg"), ("in/z.webp", "out/z.webp")], process,
                       progress=False)
    assert len(report.failed) == 2 and report.exit_code == 1
    reason = report.failed[0][1]
    assert reason and not reason.startswith("in/a.jpg:")


def test_bugs_propagate(tree):
    def process(src, dst):
        raise TypeError("a bug")
    with pytest.raises(TypeError):
        run_batch([("in/a.jpg", "out/a.jpg")], process, progress=False)


def test_keyboard_interrupt(tree):
    done = []

    def process(src, dst):
        if len(done) == 1:
            raise KeyboardInterrupt
        _copy_as_png(src, dst)
        done.append(src)
    jobs = plan_outputs(expand_inputs([tree]), "out", ext="png")
    with pytest.raises(KeyboardInterrupt) as info:
        run_batch(jobs, process, progress=False)
    report = info.value.batch_report
    assert report.interrupted and len(report.succeeded) == 1 and report.failed == []
    assert sorted(p.name for p in Path("out").rglob("*")) == ["a.png"]


def test_empty_batch_and_report():
    report = run_batch([], lambda s, d: None, progress=False)
    assert report.exit_code == 0 and report.succeeded == [] and report.failed == []
    r = BatchReport(failed=[(Path("x.png"), "broken")])
    out = io.StringIO()
    r.print_summary(out)
    assert "x.png: broken" in out.getvalue() and r.exit_code == 1


def test_progress_bar_drawn_when_asked(tree):
    stream = io.StringIO()
    jobs = plan_outputs(expand_inputs([tree]), "out", ext="png")

    class Tty(io.StringIO):
        def isatty(self):
            return True
    stream = Tty()
    run_batch(jobs, _copy_as_png, desc="styling", stream=stream)
    assert "styling" in stream.getvalue() and "5/5" in stream.getvalue()
    quiet = Tty()
    run_batch(jobs, _copy_as_png, overwrite=True, progress=False, stream=quiet)
    assert quiet.getvalue() == ""


def test_tile_progress():
    stream = io.StringIO()
    with tile_progress(4, "tiles", stream=stream, disable=False) as update:
        for i in range(1, 5):
            update(i, 4)
        update(6, 6)            # the engine may announce another total
    text = stream.getvalue()
    assert "tiles" in text and "0/4" in text and "/6" in text
    with tile_progress(3, stream=io.StringIO()) as update:   # not a terminal: silent, no error
        update(1, 3)
