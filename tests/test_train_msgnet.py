"""deepshop-train msgnet on a tiny generated set with a random-weight VGG16 (torchvision layout):
the loss falls, styles are cycled per batch, --freeze keeps the encoder fixed, --init fine-tunes,
and the model.pth it writes is read back by the MSG-Net importer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepshop_export.training import cli
from deepshop_export.importers.msgnet import load_msgnet_file

from test_train import torchvision_layout_vgg16, write_photos


@pytest.fixture()
def setup(tmp_path):
    torch.manual_seed(0)
    vgg_path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in torchvision_layout_vgg16().state_dict().items()}, vgg_path)
    write_photos(tmp_path / "data", n=4)
    rng = np.random.default_rng(1)
    (tmp_path / "styles").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((64, 48), Image.NEAREST) \
            .save(tmp_path / "styles" / f"s{i}.png")
    common = ["--data", str(tmp_path / "data"), "--vgg", str(vgg_path), "--style-layers", "relu1_2,relu2_2",
              "--image-size", "32", "--style-size", "32", "--batch-size", "2", "--workers", "0", "--threads", "1",
              "--log-interval", "1", "--no-progress", "--content-weight", "1e3", "--style-weight", "1e7"]
    return tmp_path, common


def test_loss_falls_on_a_style_folder_and_fine_tune_freezes_the_encoder(setup):
    tmp_path, common = setup
    rc = cli.main(["msgnet", "--style", str(tmp_path / "styles"), "--out", str(tmp_path / "run"), "--ngf", "4",
                     "--iterations", "40", "--lr", "5e-3", *common])
    assert rc == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["style_index"] for r in log[:4]] == [0, 1, 0, 1]          # cycled per batch
    totals = [r["total"] for r in log]
    assert np.mean(totals[-10:]) < 0.8 * np.mean(totals[:10])
    for name in ("model.pth", "model.json", "losses.png", "samples.png", "checkpoint.pt"):
        assert (tmp_path / "run" / name).is_file()
    first = load_msgnet_file(tmp_path / "run" / "model.pth")             # the 21styles layout
    assert first.ngf == 4

    rc = cli.main(["msgnet", "--style", str(tmp_path / "styles" / "s0.png"), "--out", str(tmp_path / "tune"),
                     "--init", str(tmp_path / "run" / "model.pth"), "--freeze", "encoder", "--iterations", "3",
                     "--lr", "1e-3", *common])
    assert rc == 0
    tuned = load_msgnet_file(tmp_path / "tune" / "model.pth")
    before, after = dict(first.named_parameters()), dict(tuned.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("model1."))
    assert not torch.equal(before["ins.weight"], after["ins.weight"])
    prov = json.loads((tmp_path / "tune" / "model.json").read_text())
    assert prov["freeze"] == "encoder" and prov["frozen_tensors"] == 18 and prov["init"] == "model.pth"


def test_bad_settings(setup, capsys):
    tmp_path, common = setup
    assert cli.main(["msgnet", "--style", str(tmp_path / "styles"), "--out", str(tmp_path / "x"),
                       "--freeze", "some", *common]) == 1
    assert "--freeze 'some'" in capsys.readouterr().err
