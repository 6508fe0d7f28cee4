"""``deepshop-train``: the dispatcher of the trainers.

    deepshop-train [OPTIONS]            a TransformerNet for one style (families/transformer_net/train.py)
    deepshop-train msgnet [OPTIONS]     MSG-Net (families/msgnet/train.py)
    deepshop-train lineart [OPTIONS]    the line-art colouriser (families/lineart/train.py)
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["msgnet"]:
        from ..families.msgnet.train import main as msgnet_main
        return msgnet_main(argv[1:])
    if argv[:1] == ["lineart"]:
        from ..families.lineart.train import main as lineart_main
        return lineart_main(argv[1:])
    from ..families.transformer_net.train import main as transformer_main
    return transformer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
