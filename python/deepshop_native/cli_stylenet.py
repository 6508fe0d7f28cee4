"""`deepshop stylize --style IMAGE`: the style image of an MSG-Net model (deepshop_native.stylenet)
on the command line.  register() adds the options to the stylize parser; open_stylizer() gives the
object _cmd_stylize runs: a Stylizer, or a StyleNet with its style set, after checking that model
and options fit (a style for a model without a style input, an MSG-Net model without one)."""
from __future__ import annotations

import argparse

from .errors import ModelError, OptionError


def register(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("style image (MSG-Net models, deepshop-export msgnet)")
    g.add_argument("--style", action="append", default=None, metavar="IMAGE",
                   help="style image for an MSG-Net model; repeat to blend several")
    g.add_argument("--style-weights", default=None, metavar="W1,W2",
                   help="weights of the --style images in the blend (default: equal)")
    g.add_argument("--style-size", type=int, default=None,
                   help="longer side the style image is resized to before the encoder (default 512)")
    g.add_argument("--style-tile", type=int, default=None,
                   help="style images larger than this run the encoder in windows of at most this many px, the "
                        "Gram summed over them (default 1024; 0: always whole)")
    g.add_argument("--style-statistics", choices=("auto", "exact", "off"), default="auto",
                   help="how those windows are normalised: the whole style image's statistics (exact: one pass "
                        "per encoder layer; encoders exported with --statistics), or each its own (off)")


def _weights(text, count: int):
    if text is None:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise OptionError(f"--style-weights: expected comma-separated numbers, got {text!r}") from None
    if len(values) != count:
        raise OptionError(f"--style-weights: {len(values)} weights for {count} --style images")
    return values


def open_stylizer(args, engine: dict):
    from .stylenet import DEFAULT_STYLE_SIZE, StyleNet, is_msgnet
    from .stylizer import Stylizer, resolve_model

    styles = args.style or []
    path = resolve_model(args.model)
    if not is_msgnet(path):
        given = [o for o, v in (("--style", styles), ("--style-weights", args.style_weights is not None),
                                ("--style-size", args.style_size is not None),
                                ("--style-tile", args.style_tile is not None)) if v]
        if given:
            option = given[0]
            raise ModelError(f"{path}: {option}: this model has no style input (family is not msgnet); "
                             "a style image needs an MSG-Net model (deepshop-export msgnet)")
        return Stylizer(args.model, **engine)
    if not styles:
        raise OptionError(f"--style: {path} is an MSG-Net model, which takes the style image at run time: "
                          "give --style IMAGE")
    weights = _weights(args.style_weights, len(styles))
    if getattr(args, "harmonize", None) is None:
        engine = {k: v for k, v in engine.items() if k != "harmonize"}    # StyleNet's own default (off)
    size = DEFAULT_STYLE_SIZE if args.style_size is None else args.style_size
    try:
        net = StyleNet(path, style_size=size, style_tile="auto" if args.style_tile is None else args.style_tile,
                       style_statistics=args.style_statistics, **engine)
    except OptionError as e:
        if str(e).startswith(("style_size", "style_tile", "style_statistics")):
            raise OptionError("--" + str(e).replace("_", "-", 1)) from None
        raise
    return net.set_style(styles if len(styles) > 1 else styles[0], weights)
