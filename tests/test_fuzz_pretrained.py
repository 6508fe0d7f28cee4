"""Fuzz suite, part 3: the pretrained pipelines (the arbitrary-style network that takes any
painting, the multi-style network of the built-in styles) and what reaches them: `deepshop
stylize --style painting.jpg` / `--style NAME`, `deepshop styles --sheet`, and the pipelines'
own options.  Everything runs on the tiny stand-in networks of tests/conftest.py
(``tiny_pretrained``), so each case takes milliseconds.  Hostile input ends in exit status 1 (2
for argparse's usage errors) or a DeepshopError, never a traceback, a crash or a changed input.

Counts go into the same report as test_fuzz.py's (tests/fuzz_harness.py).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("hypothesis")
pytest.importorskip("torch")          # the stand-in networks are exported from torch modules
from hypothesis import given, settings, strategies as st  # noqa: E402

from deepshop_native.core.paths import PRETRAINED_ENV  # noqa: E402
from deepshop_native.image import max_pixels_scope  # noqa: E402
from deepshop_native.pipelines.arbitrary import ArbitraryStyle  # noqa: E402
from deepshop_native.pipelines.multistyle import MultiStyle  # noqa: E402
from conftest import TINY_STYLES  # noqa: E402
from fuzz_harness import (FUZZ, _check_results, _cli_outcome, _outcome, _record, _run_worker,  # noqa: E402
                          corpus_sample, write_report)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    write_report()


@contextlib.contextmanager
def _pretrained(folder):
    """The stand-in networks as the pretrained folder (for this process and the workers it starts)."""
    saved = os.environ.get(PRETRAINED_ENV)
    os.environ[PRETRAINED_ENV] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            del os.environ[PRETRAINED_ENV]
        else:
            os.environ[PRETRAINED_ENV] = saved


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_pretrained):
    """A photo, a painting, a sample of the malformed images, and the stand-ins' folder."""
    d = tmp_path_factory.mktemp("fuzz_pretrained")
    rng = np.random.default_rng(12)
    Image.fromarray(rng.integers(0, 256, (28, 36, 3), dtype=np.uint8)).save(d / "photo.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / "painting.png")
    return d, corpus_sample(d / "corpus"), tiny_pretrained[0]


#: Built-in style names of the stand-in (the real names), by number.
NAMES = [s["name"] for s in TINY_STYLES] or [f"style-{i}" for i in range(26)]

# ------------------------------------------------------------------ malformed images

def test_malformed_images_as_paintings_photos_and_sheets(work):
    """Each malformed image as the painting of `stylize --style` (the arbitrary-style network), as
    the photo of `stylize --style NAME` (the multi-style network) and as the photo of `styles --sheet`."""
    d, sample, folder = work
    photo, painting, out = str(d / "photo.png"), str(d / "painting.png"), str(d / "out.png")
    commands = {
        "stylize --style PAINTING": lambda f: ["stylize", photo, "--style", f, "-o", out],
        "stylize --style NAME": lambda f: ["stylize", f, "--style", NAMES[1], "-o", out],
        "stylize --style NAME PAINTING": lambda f: ["stylize", photo, "--style", painting, "--style", f, "-o", out],
        "styles --sheet": lambda f: ["styles", "--sheet", f, "-o", out, "--size", "16"],
    }
    cases = []
    for n, (category, path) in enumerate(sample):
        for name, argv in commands.items():
            cases.append({"id": f"{n}-{name}".replace(" ", "_"), "category": f"images as input: {name}",
                          "file": category, "kind": "cli", "prog": "deepshop", "unchanged": [str(path)],
                          "argv": argv(str(path)) + ["--overwrite", "-q", "--device", "cpu"]})
    with _pretrained(folder):
        results = _run_worker(cases, timeout=600, category="images as input")
    _check_results(cases, results, lambda c: c["category"])
    assert all(results[c["id"]] != "ok" for c in cases if c["file"] in ("huge declared size", "zero-byte and tiny"))
    assert any(results[c["id"]] == "ok" for c in cases if c["file"] == "valid"), "no valid image was painted"


def test_no_output_replaces_a_painting_or_photo(work, tmp_path):
    """Output paths equal to an input (the same path, a hard link): refused, the input unchanged."""
    d, _, folder = work
    p, s = tmp_path / "photo.png", tmp_path / "painting.png"
    p.write_bytes((d / "photo.png").read_bytes())
    s.write_bytes((d / "painting.png").read_bytes())
    link = tmp_path / "painting_link.png"
    os.link(s, link)
    p, s, link = str(p), str(s), str(link)
    argvs = [["stylize", p, "--style", s, "-o", s], ["stylize", p, "--style", s, "-o", link],
             ["stylize", p, "--style", NAMES[0], "--style", s, "-o", s], ["stylize", p, "--style", NAMES[2], "-o", p],
             ["styles", "--sheet", p, "-o", p]]
    cases = [{"id": f"o{n}", "kind": "cli", "prog": "deepshop", "argv": argv + ["--overwrite", "-q"],
              "unchanged": [p, s], "category": "output is an input: deepshop " + argv[0] + " (pretrained)"}
             for n, argv in enumerate(argvs)]
    with _pretrained(folder):
        results = _run_worker(cases, timeout=300, category="output is an input")
    _check_results(cases, results, lambda c: c["category"])
    assert all(out == "error:exit 1" for out in results.values()), results


# ------------------------------------------------------------------ hypothesis: command lines

_TEXT = st.one_of(st.integers(-2**70, 2**70).map(str), st.integers(-3, 600).map(str), st.integers(0, 9).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8),
                  st.sampled_from(["1,1", "1,0", "0,0", "-1,2", "nan,1", "1", NAMES[0], NAMES[4], NAMES[3].upper(), "5",
                                   "99", "exact", "off", "thumbnail", "", "x.gif", "/.."]))
_STYLIZE_OPTIONS = ["--style", "--style-weights", "--style-size", "--style-statistics", "--working-size",
                    "--strength", "--max-side", "--max-pixels", "--tile", "--device", "--quality", "--preserve-colors"]


@settings(FUZZ, max_examples=80)
@given(opts=st.lists(st.tuples(st.sampled_from(_STYLIZE_OPTIONS), _TEXT), max_size=4), named=st.booleans())
def test_stylize_with_a_painting_or_a_name_never_gives_a_traceback(work, opts, named):
    """`deepshop stylize --style painting.png` (or a built-in style's name) with hostile option values."""
    from deepshop_native.cli import main
    d, _, folder = work
    argv = ["stylize", str(d / "photo.png"), "--style", NAMES[1] if named else str(d / "painting.png"),
            "-o", str(d / "cli_out.png"), "--overwrite", "-q"]
    for name, value in opts:
        argv.append(name if name == "--preserve-colors" else f"{name}={value}")
    with _pretrained(folder), max_pixels_scope(1 << 20):
        _record("command lines: stylize --style (pretrained)", _cli_outcome(main, argv))


# ------------------------------------------------------------------ hypothesis: pipelines

_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.integers(-2, 2000),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                 st.sampled_from(["auto", "exact", "off", "thumbnail", "cpu", NAMES[0]]))
_PIPELINES: dict = {}


@settings(FUZZ, max_examples=60)
@given(kwargs=st.dictionaries(st.sampled_from(["style_size", "tile", "working_size", "statistics", "harmonize",
                                               "threads", "precision"]), _ANY, max_size=3),
       call=st.dictionaries(st.sampled_from(["strength", "preserve_colors", "max_side", "working_size",
                                             "style_weights"]),
                            st.one_of(_ANY, st.lists(st.floats(allow_nan=True), max_size=3)), max_size=3))
def test_arbitrary_style_options_run_or_refuse(work, kwargs, call):
    d, _, folder = work
    photo = np.asarray(Image.open(d / "photo.png"))

    def run():
        with _pretrained(folder), max_pixels_scope(1 << 20):
            net = ArbitraryStyle(device="cpu", **kwargs)
            out = net(photo, style=[str(d / "painting.png"), photo[::-1]], **call)
            assert out.shape == photo.shape and out.dtype == np.uint8
    with np.errstate(all="ignore"):
        _record("pipelines: ArbitraryStyle options", _outcome(run))


@settings(FUZZ, max_examples=60)
@given(styles=st.lists(st.one_of(st.integers(-3, 8), st.sampled_from([NAMES[0], NAMES[4].upper(), " 2 ", "tiny-9", "", "x"]),
                                 st.floats(allow_nan=True), st.none()), max_size=3),
       weights=st.one_of(st.none(), st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                                       st.integers(-2, 3)), max_size=4)),
       kwargs=st.dictionaries(st.sampled_from(["working_size", "strength", "max_side"]), _ANY, max_size=2))
def test_multistyle_styles_and_weights_run_or_refuse(work, styles, weights, kwargs):
    d, _, folder = work
    photo = np.asarray(Image.open(d / "photo.png"))
    if "multi" not in _PIPELINES:
        with _pretrained(folder):
            _PIPELINES["multi"] = MultiStyle(device="cpu")
    net = _PIPELINES["multi"]

    def run():
        with max_pixels_scope(1 << 20):
            out = net(photo, style=styles if styles else None, style_weights=weights, **kwargs)
            assert out.shape == photo.shape and out.dtype == np.uint8
    with np.errstate(all="ignore"):
        _record("pipelines: MultiStyle styles and options", _outcome(run))
