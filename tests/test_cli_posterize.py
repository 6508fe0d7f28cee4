"""`deepshop posterize` sub-command.  The end-to-end part needs batch.py and imageio.py."""
import argparse

import numpy as np
import pytest
from PIL import Image

import deepshop_native as ds
from deepshop_native.cli import posterize as cli_posterize
from deepshop_native.core.errors import OutputExistsError


def parser():
    p = argparse.ArgumentParser(prog="deepshop")
    cli_posterize.register(p.add_subparsers(dest="command", required=True))
    return p


def test_parser_options():
    args = parser().parse_args(["posterize", "a.png", "b.jpg", "--levels", "3", "--out", "o", "--space", "lab",
                                "--dither", "--labels"])
    assert args.func is cli_posterize.run and args.inputs == ["a.png", "b.jpg"] and args.levels == 3
    args = parser().parse_args(["posterize", "a.png", "--palette-from", "p.png", "-k", "8", "--method",
                                "median_cut", "--out", "o"])
    assert args.palette_from == "p.png" and args.k == 8 and args.method == "median_cut"
    with pytest.raises(SystemExit):
        parser().parse_args(["posterize", "a.png", "--levels", "3", "--palette-from", "p.png", "--out", "o"])
    with pytest.raises(SystemExit):
        parser().parse_args(["posterize", "a.png", "--levels", "3"])  # --out is required


def test_label_map_is_written_atomically_and_not_overwritten(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "x_labels.png"
    cli_posterize.write_label_map(path, labels, overwrite=False)
    assert np.array_equal(np.asarray(Image.open(path)), labels)
    with pytest.raises(OutputExistsError):
        cli_posterize.write_label_map(path, labels, overwrite=False)
    wide = np.array([[0, 300], [4000, 65535]], dtype=np.int32)
    cli_posterize.write_label_map(path, wide, overwrite=True)
    assert np.array_equal(np.asarray(Image.open(path)).astype(np.int64), wide)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_labels.png"]


def test_end_to_end(tmp_path):
    pytest.importorskip("deepshop_native.cli.batch")
    pytest.importorskip("deepshop_native.image")
    from skimage import data

    src = tmp_path / "in.png"
    Image.fromarray(data.astronaut()[::4, ::4]).save(src)
    out = tmp_path / "out"
    out.mkdir()
    args = parser().parse_args(["posterize", str(src), "--levels", "3", "--labels", "--out", str(out)])
    assert args.func(args) == 0
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2
    result = np.asarray(Image.open(next(p for p in out.iterdir() if "_labels" not in p.name)).convert("RGB"))
    assert np.array_equal(result, ds.posterize(data.astronaut()[::4, ::4], levels=3))
    # Second run without --overwrite: nothing replaced, non-zero exit code.
    assert args.func(args) != 0
