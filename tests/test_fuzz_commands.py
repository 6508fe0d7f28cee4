"""Fuzz suite, part 2: every subcommand and pipeline besides stylize and posterize's option values
(tests/test_fuzz.py): gatys, edges, colorize, info, MSG-Net (StyleNet, stylize --style) and
deepshop-export with its gatys, hed and msgnet subcommands.  Hostile input ends in exit status 1
(2 for argparse's usage errors) or a DeepshopError, never a traceback, a crash or a changed input.

* Malformed images (a seeded sample of test_fuzz's corpus: truncated, bit-flipped, wrong headers,
  huge declared sizes, tiny) as the input of every subcommand and as style images (gatys -s,
  stylize --style, posterize --palette-from, StyleNet.set_style), in a crash-isolated worker.
* Malformed models (`deepshop info`, colorize --model) and checkpoints (deepshop-export and each
  subcommand: garbage, truncated, bit-flipped, wrong contents).
* Output paths equal to an input (the same path, a hard link): refused, the input unchanged.
* Hypothesis strategies for the option values of each command line and of the pipelines.

Counts go into the same report as test_fuzz.py's (tests/fuzz_harness.py).
"""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import deepshop_native as ds  # noqa: E402
from deepshop_native.image import max_pixels_scope  # noqa: E402
from fuzz_harness import (FUZZ, _check_results, _cli_outcome, _model_corpus, _outcome,  # noqa: E402
                          _record, _run_worker, corpus_sample, write_report)

#: What every gatys run of the suite is bounded by: tiny outputs, so that no option value is slow.
GATYS_PIXELS = 20000


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    write_report()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with a small photo, a second one, and the sample of malformed images."""
    d = tmp_path_factory.mktemp("fuzz_commands")
    rng = np.random.default_rng(11)
    Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(d / "photo.png")
    Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(d / "style.png")
    return d, corpus_sample(d / "corpus")


@pytest.fixture(scope="module")
def gatys_graph(tmp_path_factory):
    """A Gatys graph of a random VGG16 (relu2_2 / relu1_1, relu2_1), exported without validation
    (its own tests check it): a fraction of a second."""
    pytest.importorskip("torch")
    from deepshop_export.families.gatys.export import export_gatys
    from test_gatys_export import random_torchvision_vgg

    d = tmp_path_factory.mktemp("fuzz_gatys")
    weights = random_torchvision_vgg(str(d / "vgg16.pth"), arch="vgg16")
    export_gatys(d / "gatys-vgg16-max.onnx", model="vgg16", weights=weights, content_layers=["relu2_2"],
                 style_layers=["relu1_1", "relu2_1"], validate=False)
    return str(d / "gatys-vgg16-max.onnx")


@pytest.fixture(scope="module")
def msgnet_pair(tmp_path_factory):
    """An MSG-Net pair (ngf 8, one block), exported without validation: half a minute, so the
    tests using it are marked slow."""
    torch = pytest.importorskip("torch")
    from deepshop_export.families.msgnet.export import export_msgnet
    from deepshop_export.families.msgnet.network import MSGNet

    d = tmp_path_factory.mktemp("fuzz_msgnet")
    torch.manual_seed(5)
    export_msgnet(MSGNet(ngf=8, n_blocks=1).eval(), d / "msg.onnx", name="fuzz", provenance={}, validate=False)
    return str(d / "msg.onnx")


def _gatys(content, style, model, out, *more):
    return ["gatys", "-c", str(content), "-s", str(style), "-m", model, "-n", "1", "-l", "32", "-q", "--device",
            "cpu", "--max-pixels", str(GATYS_PIXELS), "--out", str(out), "--overwrite", *more]


# ------------------------------------------------------------------ malformed images everywhere

def _image_cases(sample, commands, category_prefix="images as input"):
    cases = []
    for n, (category, path) in enumerate(sample):
        for name, argv in commands.items():
            case = {"id": f"{n}-{name}".replace(" ", "_"), "category": f"{category_prefix}: {name}", "file": category}
            if name == "StyleNet.set_style":
                case.update(kind="style", model=argv, path=str(path))
            else:
                case.update(kind="cli", prog="deepshop", argv=argv(str(path)), unchanged=[str(path)])
            cases.append(case)
    return cases


def _run_image_cases(cases):
    results = _run_worker(cases, timeout=900, category="images as input")
    _check_results(cases, results, lambda c: c["category"])
    # every declared size beyond the pixel limit (or zero) is refused by every entry point
    assert all(results[c["id"]] != "ok" for c in cases if c["file"] == "huge declared size")


def test_malformed_images_as_inputs_of_every_subcommand(work, identity_onnx):
    d, sample = work
    photo, out = str(d / "photo.png"), str(d / "out.png")
    _run_image_cases(_image_cases(sample, {
        "edges": lambda f: ["edges", f, "-o", out, "--overwrite"],
        "colorize": lambda f: ["colorize", f, "-o", out, "--overwrite"],
        "posterize": lambda f: ["posterize", f, "--levels", "3", "--out", out, "--overwrite"],
        "posterize --palette-from": lambda f: ["posterize", photo, "--palette-from", f, "-k", "4", "--out", out,
                                               "--overwrite"],
        "stylize": lambda f: ["stylize", f, "-m", identity_onnx, "-o", out, "--overwrite", "-q"],
    }))


def test_malformed_images_as_gatys_inputs_and_styles(work, gatys_graph):
    d, sample = work
    photo, out = str(d / "photo.png"), str(d / "out.png")
    _run_image_cases(_image_cases(sample, {
        "gatys -c": lambda f: _gatys(f, photo, gatys_graph, out),
        "gatys -s": lambda f: _gatys(photo, f, gatys_graph, out),
    }))


@pytest.mark.slow      # the MSG-Net pair's export
def test_malformed_images_as_msgnet_styles(work, msgnet_pair):
    d, sample = work
    photo, out = str(d / "photo.png"), str(d / "out.png")
    _run_image_cases(_image_cases(sample, {
        "stylize --style (MSG-Net)": lambda f: ["stylize", photo, "-m", msgnet_pair, "--style", f, "--style-size",
                                                "64", "--device", "cpu", "-o", out, "--overwrite", "-q"],
        "StyleNet.set_style": msgnet_pair,
    }))


# ------------------------------------------------------------------ malformed models and checkpoints

def _checkpoint_corpus(folder: Path):
    """(category, path, deepshop-export argv) for checkpoints that are not what they claim."""
    import torch
    from model_factory import random_transformer_net

    folder.mkdir()
    rng = random.Random(99)
    valid = folder / "tn.pth"
    torch.save(random_transformer_net(1).state_dict(), valid)
    data = valid.read_bytes()
    made = []

    def add(category, name, content, argv=lambda p: [p]):
        p = folder / name
        p.write_bytes(content)
        made.append((category, str(p), argv(str(p))))

    for ext in (".pth", ".t7", ".caffemodel", ".pdparams"):
        for k in range(2):
            add("checkpoints: garbage", f"garbage{k}{ext}", rng.randbytes(rng.choice([0, 1, 100, 5000])))
    for k in range(4):
        add("checkpoints: truncated", f"trunc{k}.pth", data[:rng.randrange(1, len(data))])
    for k in range(6):   # flips in the archive's headers and pickle, not in the weights' bytes
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(0, 512) if k % 2 else len(b) - 1 - rng.randrange(0, 512)
            b[i] ^= 1 << rng.randrange(8)
        add("checkpoints: bit-flipped", f"flip{k}.pth", bytes(b))
    buf = io.BytesIO()
    torch.save({"not": torch.zeros(3)}, buf)
    add("checkpoints: wrong contents", "other.pth", buf.getvalue())
    buf = io.BytesIO()
    torch.save(torch.zeros(4), buf)
    add("checkpoints: wrong contents", "tensor.pth", buf.getvalue())
    add("checkpoints: wrong contents", "text.pth", b"a text file\n" * 20)
    for name, argv in (("msgnet", lambda p: ["msgnet", p]),
                       ("gatys --weights", lambda p: ["gatys", "--model", "vgg16", "--weights", p]),
                       ("gatys --model FILE", lambda p: ["gatys", "--model", p]),
                       ("hed --weights", lambda p: ["hed", "--weights", p])):
        add(f"checkpoints: {name}", f"garbage_{name.split()[0]}.pth", rng.randbytes(300), argv)
        add(f"checkpoints: {name}", f"trunc_{name.split()[0]}.pth", data[:1000], argv)
    return made


def _checkpoint_cases(folder: Path, flipped: bool):
    out = str(folder / "out.onnx")
    return [{"id": f"ck{n}", "kind": "cli", "prog": "deepshop-export", "category": category, "unchanged": [path],
             "argv": argv + ["-o", out, "--overwrite", "--no-validate"]}
            for n, (category, path, argv) in enumerate(_checkpoint_corpus(folder / "checkpoints"))
            if (category == "checkpoints: bit-flipped") == flipped]


def test_malformed_checkpoints_and_models(work, tmp_path):
    pytest.importorskip("torch")
    d, _ = work
    cases = _checkpoint_cases(tmp_path, flipped=False)
    for n, (category, path) in enumerate(_model_corpus_dir(tmp_path / "models")):
        cases.append({"id": f"info{n}", "kind": "info", "path": str(path), "category": f"info: {category}"})
        if n % 2 == 0:
            cases.append({"id": f"colorize{n}", "kind": "cli", "prog": "deepshop", "category": f"colorize --model: {category}",
                          "argv": ["colorize", str(d / "photo.png"), "--model", str(path), "-o", str(tmp_path / "c.png"),
                                   "--overwrite"], "unchanged": [str(path)]})
    results = _run_worker(cases, timeout=600, category="checkpoints and models")
    _check_results(cases, results, lambda c: c["category"])
    assert all(results[c["id"]] != "ok" for c in cases if c.get("prog") == "deepshop-export"), results


@pytest.mark.slow      # a flip the archive does not notice exports a whole network (half a minute)
def test_bit_flipped_checkpoints(tmp_path):
    pytest.importorskip("torch")
    cases = _checkpoint_cases(tmp_path, flipped=True)
    results = _run_worker(cases, timeout=900, category="checkpoints: bit-flipped")
    _check_results(cases, results, lambda c: c["category"])


def _model_corpus_dir(folder: Path):
    folder.mkdir()
    return _model_corpus(folder)


# ------------------------------------------------------------------ outputs equal to inputs

def _inputs_folder(work, tmp_path):
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    for name in ("photo.png", "style.png"):
        (tmp_path / name).write_bytes((work[0] / name).read_bytes())
    os.link(photo, tmp_path / "photo_link.png")
    (tmp_path / "weights.pth").write_bytes(b"weights")
    (tmp_path / "w.encoder.onnx").write_bytes(b"weights")
    return str(photo), str(style), str(tmp_path / "photo_link.png"), str(tmp_path / "weights.pth")


def _run_output_cases(tmp_path, deepshop, export=()):
    p, s, c = str(tmp_path / "photo.png"), str(tmp_path / "style.png"), str(tmp_path / "weights.pth")
    cases = [{"id": f"d{n}", "kind": "cli", "prog": "deepshop", "argv": argv + ["--overwrite"],
              "unchanged": [p, s], "category": "output is an input: deepshop " + argv[0]} for n, argv in enumerate(deepshop)]
    cases += [{"id": f"e{n}", "kind": "cli", "prog": "deepshop-export", "argv": argv + ["--overwrite"],
               "unchanged": [c, str(tmp_path / "w.encoder.onnx")],
               "category": "output is an input: deepshop-export" + (" " + argv[0] if argv[0] != c else "")}
              for n, argv in enumerate(export)]
    results = _run_worker(cases, timeout=300, category="output is an input")
    _check_results(cases, results, lambda c: c["category"])
    assert all(out.startswith("error:") for out in results.values()), results


def test_no_subcommand_writes_over_an_input(work, identity_onnx, tmp_path):
    p, s, link, c = _inputs_folder(work, tmp_path)
    _run_output_cases(tmp_path, [
        ["stylize", p, "-m", identity_onnx, "-o", p], ["stylize", p, "-m", identity_onnx, "-o", link],
        ["posterize", p, "--levels", "3", "--out", link], ["posterize", p, "--palette-from", s, "-k", "3", "--out", s],
        ["edges", p, "-o", p], ["edges", p, "-o", link], ["colorize", p, "-o", link],
    ], [[c, "-o", c], ["gatys", "--model", "vgg16", "--weights", c, "-o", c], ["hed", "--weights", c, "-o", c],
        ["msgnet", c, "-o", c], ["msgnet", str(tmp_path / "w.encoder.onnx"), "-o", str(tmp_path / "w.onnx")]])


def test_gatys_never_writes_over_an_input(work, gatys_graph, tmp_path):
    p, s, link, _ = _inputs_folder(work, tmp_path)
    _run_output_cases(tmp_path, [_gatys(p, s, gatys_graph, p), _gatys(p, s, gatys_graph, s),
                                 _gatys(s, p, gatys_graph, link)])


@pytest.mark.slow      # the MSG-Net pair's export
def test_msgnet_never_writes_over_a_style_image(work, msgnet_pair, tmp_path):
    p, s, _, _ = _inputs_folder(work, tmp_path)
    _run_output_cases(tmp_path, [["stylize", p, "-m", msgnet_pair, "--style", s, "-o", s, "--device", "cpu"]])


# ------------------------------------------------------------------ hypothesis: command lines

_TEXT = st.one_of(st.integers(-2**70, 2**70).map(str), st.integers(-3, 600).map(str), st.integers(0, 9).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8),
                  st.sampled_from(["0,255", "1,0", "nan", "-1", "cuda:7", "openvino", "x.gif", "/..", "", "0.5,0.5"]))
_FLAG = st.just(None)


def _argv(base, opts):
    argv = list(base)
    for name, value in opts:
        argv.append(name if value is None else f"{name}={value}")
    return argv


def _in(folder):
    """Run in ``folder``: a fuzzed --out names files relative to the working directory."""
    class _Chdir:
        def __enter__(self):
            self.saved = os.getcwd()
            os.chdir(folder)

        def __exit__(self, *exc):
            os.chdir(self.saved)
    return _Chdir()


_GATYS_OPTS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["-r", "-l", "--init", "--pooling", "--tv-weight", "--style-scale", "--optimizer",
                               "--learning-rate", "--coarse-length", "--tile", "--save-every", "--seed", "--device",
                               "--precision", "--threads", "--quality", "--style-weights", "--out"]), _TEXT),
    st.tuples(st.sampled_from(["--original-colors", "--overwrite"]), _FLAG)), max_size=4)


@settings(FUZZ, max_examples=60)
@given(opts=_GATYS_OPTS)
def test_gatys_command_lines_never_give_a_traceback(work, gatys_graph, opts):
    from deepshop_native.cli import main
    d, _ = work
    base = _gatys(d / "photo.png", d / "style.png", gatys_graph, d / "gatys_out" / "o.png")
    with _in(d / "corpus"):
        _record("command lines: gatys", _cli_outcome(main, _argv(base, opts)))


_EDGES_OPTS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["--sigma", "--low", "--high", "--thickness", "--method", "--threshold", "--model",
                               "--device", "--tile", "--max-pixels", "-o"]), _TEXT),
    st.tuples(st.sampled_from(["--no-smooth", "--invert", "--no-thin", "--overwrite"]), _FLAG)), max_size=4)
_COLORIZE_OPTS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["--temperature", "--input", "--threshold", "--device", "--tile", "--model",
                               "--max-pixels", "-o"]), _TEXT),
    st.tuples(st.just("--overwrite"), _FLAG)), max_size=4)


@settings(FUZZ, max_examples=80)
@given(command=st.sampled_from(["edges", "colorize"]), edges_opts=_EDGES_OPTS, colorize_opts=_COLORIZE_OPTS)
def test_edges_and_colorize_command_lines_never_give_a_traceback(work, command, edges_opts, colorize_opts):
    pytest.importorskip("cv2")
    from deepshop_native.cli import main
    d, _ = work
    base = [command, str(d / "photo.png"), "-o", str(d / f"{command}_out.png"), "--overwrite"]
    with _in(d / "corpus"):
        _record(f"command lines: {command}",
                _cli_outcome(main, _argv(base, edges_opts if command == "edges" else colorize_opts)))


@settings(FUZZ, max_examples=40)
@given(model=st.one_of(st.none(), st.text(max_size=10), st.sampled_from(["identity", "corpus", "/dev/null", "."])),
       opts=st.lists(st.one_of(st.tuples(st.sampled_from(["--device", "--precision"]), _TEXT),
                               st.tuples(st.just("--json"), _FLAG)), max_size=3))
def test_info_command_lines_never_give_a_traceback(work, identity_onnx, model, opts):
    from deepshop_native.cli import main
    d, _ = work
    where = {"identity": identity_onnx, "corpus": str(d / "corpus")}
    argv = ["info"] + ([] if model is None else [where.get(model, model)])
    with _in(d / "corpus"):
        _record("command lines: info", _cli_outcome(main, _argv(argv, opts)))


_EXPORT_OPTS = {
    "": ["--name", "--license", "--opset", "--pooling", "--provenance", "-o"],
    "gatys": ["--model", "--pooling", "--content-layers", "--style-layers", "--name", "--license", "-o"],
    "hed": ["--name", "-o"],
    "msgnet": ["--ngf", "--name", "--license", "--opset", "-o"],
}
_EXPORT_FLAGS = ["--fp16", "--statistics", "--no-validate", "--overwrite", "--tiled"]


@settings(FUZZ, max_examples=80)
@given(sub=st.sampled_from(sorted(_EXPORT_OPTS)), data=st.data())
def test_export_command_lines_never_give_a_traceback(work, sub, data):
    """Option values against a checkpoint that cannot load: every check before the load is met."""
    pytest.importorskip("torch")
    from deepshop_export.cli import main
    d, _ = work
    bad = d / "corpus" / "not_weights.pth"
    if not bad.exists():
        bad.write_bytes(b"\x00not a checkpoint" * 10)
    opts = data.draw(st.lists(st.one_of(st.tuples(st.sampled_from(_EXPORT_OPTS[sub]), _TEXT),
                                        st.tuples(st.sampled_from(_EXPORT_FLAGS), _FLAG)), max_size=4))
    base = {"": [str(bad)], "gatys": ["gatys", "--weights", str(bad)], "hed": ["hed", "--weights", str(bad)],
            "msgnet": ["msgnet", str(bad)]}[sub] + ["-o", str(d / "export_out.onnx")]
    with _in(d / "corpus"):
        _record(f"command lines: deepshop-export {sub}".rstrip(), _cli_outcome(main, _argv(base, opts)))


# ------------------------------------------------------------------ hypothesis: pipelines

_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.integers(-2, 2000),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                 st.sampled_from(["auto", "exact", "off", "thumbnail", "hed", "content", "noise", "adam"]))


@pytest.mark.slow      # the MSG-Net pair's export
@settings(FUZZ, max_examples=40)
@given(kwargs=st.dictionaries(st.sampled_from(["style_size", "style_tile", "style_statistics", "statistics",
                                               "harmonize", "statistics_size", "tile"]), _ANY, max_size=3))
def test_stylenet_options_run_or_refuse(work, msgnet_pair, kwargs):
    d, _ = work
    photo = np.asarray(Image.open(d / "photo.png"))

    def run():
        with max_pixels_scope(1 << 20):
            net = ds.StyleNet(msgnet_pair, device="cpu", **kwargs)
            net.set_style(d / "style.png")
            assert net(photo).shape == photo.shape
    _record("pipelines: StyleNet options", _outcome(run))


@settings(FUZZ, max_examples=40)
@given(kwargs=st.dictionaries(st.sampled_from(["ratio", "length", "init", "tv_weight", "style_scale", "optimizer",
                                               "learning_rate", "seed", "coarse_to_fine", "coarse_length",
                                               "original_colors", "style_weights", "tile"]), _ANY, max_size=3))
def test_gatys_options_run_or_refuse(work, gatys_graph, kwargs):
    d, _ = work
    net = _gatys_model(gatys_graph)
    photo = np.asarray(Image.open(d / "photo.png"))

    def run():
        with max_pixels_scope(GATYS_PIXELS):
            r = ds.gatys(photo, photo, model=net, iterations=1, refine_iterations=1, **{"length": 32, **kwargs})
            assert r.image.dtype == np.uint8 and r.image.ndim == 3
    with np.errstate(all="ignore"):
        _record("pipelines: gatys options", _outcome(run))


_GATYS_MODELS: dict = {}


def _gatys_model(path):
    if path not in _GATYS_MODELS:
        _GATYS_MODELS[path] = ds.GatysModel(path, device="cpu")
    return _GATYS_MODELS[path]


@settings(FUZZ, max_examples=80)
@given(method=st.sampled_from(["canny", "hed", "other"]),
       kwargs=st.dictionaries(st.sampled_from(["sigma", "low", "high", "smooth", "thickness", "invert", "threshold",
                                               "thin", "tile"]), _ANY, max_size=3))
def test_edges_options_run_or_refuse(work, method, kwargs):
    pytest.importorskip("cv2")
    photo = np.asarray(Image.open(work[0] / "photo.png"))
    _record("pipelines: edges options", _outcome(lambda: ds.edges(photo, method, **kwargs)))


@settings(FUZZ, max_examples=50)
@given(kwargs=st.dictionaries(st.sampled_from(["temperature", "input", "threshold", "palette", "tile"]),
                              st.one_of(_ANY, st.lists(st.integers(-5, 300), max_size=3)), max_size=3))
def test_colorize_options_run_or_refuse(work, kwargs):
    pytest.importorskip("cv2")
    photo = np.asarray(Image.open(work[0] / "photo.png"))
    with np.errstate(all="ignore"):
        _record("pipelines: colorize options", _outcome(lambda: ds.colorize(photo, **kwargs)))
