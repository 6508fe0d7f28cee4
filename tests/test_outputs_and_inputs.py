"""No writer replaces one of its own inputs, whatever --overwrite says: the one shared check
(deepshop_native.core.files.check_not_an_input: the same path, or the same file through a hard or
symbolic link) in every subcommand and API call that writes a file from files it reads.  The Gatys,
MSG-Net and export cases are in test_gatys.py, test_msgnet.py and test_export.py."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import deepshop_native as ds
from deepshop_native.cli import main
from deepshop_native.core.errors import OutputError
from deepshop_native.core.files import check_not_an_input, replaced_input, same_file


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(p)
    return p


def _fails(argv, capsys, *needles):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_same_file_by_path_and_by_link(tmp_path, photo, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert same_file("photo.png", photo)                         # relative and absolute
    assert same_file(tmp_path / "sub" / ".." / "photo.png", photo)
    os.link(photo, tmp_path / "hard.png")
    os.symlink(photo, tmp_path / "soft.png")
    assert same_file(tmp_path / "hard.png", photo) and same_file(tmp_path / "soft.png", photo)
    assert not same_file(tmp_path / "missing.png", photo)
    assert not same_file("a\0b.png", photo)                       # no exception for what cannot be a path
    Image.new("RGB", (4, 4)).save(tmp_path / "other.png")
    assert not same_file(tmp_path / "other.png", photo)


def test_check_not_an_input_names_output_and_input(tmp_path, photo):
    os.link(photo, tmp_path / "hard.png")
    arrays = [np.zeros((4, 4, 3), np.uint8), b"bytes", None]
    assert replaced_input(tmp_path / "new.png", [photo, *arrays]) is None
    check_not_an_input(tmp_path / "new.png", [photo, *arrays])
    assert replaced_input(tmp_path / "hard.png", arrays + [photo]) == photo
    with pytest.raises(OutputError, match=r"hard\.png.*photo\.png"):
        check_not_an_input(tmp_path / "hard.png", [photo])
    with pytest.raises(OutputError, match="photo.png"):
        check_not_an_input(str(photo), [str(photo)], what="snapshot")


def test_posterize_refuses_to_replace_the_palette_image(tmp_path, photo, capsys):
    palette = tmp_path / "palette.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(palette)
    before = palette.read_bytes()
    _fails(["posterize", photo, "--palette-from", palette, "-k", "4", "--out", palette, "--overwrite"], capsys,
           "palette.png")
    assert palette.read_bytes() == before


@pytest.mark.parametrize("command", ["edges", "colorize"])
def test_edges_and_colorize_refuse_an_output_linked_to_the_input(tmp_path, photo, capsys, command):
    pytest.importorskip("cv2")
    link = tmp_path / "link.png"
    os.link(photo, link)
    before = photo.read_bytes()
    _fails([command, photo, "-o", link, "--overwrite"], capsys, "link.png", "photo.png")
    assert photo.read_bytes() == before


def test_api_stylize_refuses_to_replace_its_input(tmp_path, photo, identity_onnx):
    before = photo.read_bytes()
    with pytest.raises(OutputError, match="photo.png"):
        ds.stylize(str(photo), identity_onnx, str(photo), overwrite=True)
    assert photo.read_bytes() == before
    # the model and a style file are inputs too, checked before the model is opened
    model_before = open(identity_onnx, "rb").read()
    with pytest.raises(OutputError, match="the output is the input itself"):
        ds.stylize(str(photo), identity_onnx, identity_onnx, overwrite=True)
    with pytest.raises(OutputError, match="painting.png"):
        ds.stylize(str(photo), output=str(tmp_path / "painting.png"), style=[str(tmp_path / "painting.png")],
                   overwrite=True)
    assert open(identity_onnx, "rb").read() == model_before


def test_api_colorize_refuses_to_replace_its_input(tmp_path, photo):
    before = photo.read_bytes()
    with pytest.raises(OutputError, match="photo.png"):
        ds.colorize(str(photo), out=str(photo), overwrite=True)
    assert photo.read_bytes() == before


# ------------------------------------------------------------------ a NUL byte in a path

NUL = "a\x00b"


@pytest.mark.parametrize("call, error", [
    (lambda m: ds.edges(NUL + ".png"), "ImageError"),
    (lambda m: ds.edges(np.zeros((16, 16, 3), np.uint8), method="hed", model=NUL + ".onnx"), "ModelError"),
    (lambda m: ds.Stylizer(NUL + ".onnx"), "ModelError"),
    (lambda m: ds.Stylizer(m)(NUL + ".png"), "ImageError"),
    (lambda m: ds.colorize(NUL + ".png"), "ImageError"),
    (lambda m: ds.colorize(np.zeros((16, 16, 3), np.uint8), model=NUL + ".onnx"), "ModelError"),
    (lambda m: ds.colorize(np.zeros((16, 16, 3), np.uint8), out=NUL + ".png"), "OutputError"),
    (lambda m: ds.Colorizer(NUL + ".onnx"), "ModelError"),
    (lambda m: ds.stylize(NUL + ".png", m), "ImageError"),
    (lambda m: ds.stylize(np.zeros((8, 8, 3), np.uint8), m, NUL + ".png"), "OutputError"),
    (lambda m: ds.model_info(NUL + ".onnx"), "ModelError"),
    (lambda m: ds.gatys(NUL + ".png", NUL + ".png", model=NUL + ".onnx"), "ModelError"),
])
def test_a_nul_byte_in_a_path_is_a_deepshop_error_naming_it(identity_onnx, call, error):
    pytest.importorskip("cv2")
    with pytest.raises(ds.DeepshopError, match=r"a\\x00b.*NUL byte") as info:
        call(identity_onnx)
    assert type(info.value).__name__ == error


def test_write_image_with_a_nul_byte_is_an_image_error():
    from deepshop_native.image import write_image
    with pytest.raises(ds.ImageError, match=r"a\\x00b\.png.*NUL byte"):
        write_image(NUL + ".png", np.zeros((4, 4, 3), np.uint8))
