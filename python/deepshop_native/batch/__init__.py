"""Batch stylization of collections: many photos, one destination, on this machine or on a Ray
cluster, resumable.

    import deepshop_native.batch as batch
    result = batch.run(["photos/", "s3://bucket/scans/*.tif"], "s3://bucket/styled",
                       style="stained-glass", engine="ray", address="auto", gpus_per_worker=1)
    result.print_summary()

One job per module:

* :mod:`.storage` -- local paths and URLs (``pyarrow.fs``, ``fsspec``): listing, reading, atomic
  or verified writing;
* :mod:`.naming` -- the inputs of a command line and each one's output path (``deepshop stylize``'s
  naming);
* :mod:`.spec` -- the painting options, checked and hashed (:class:`~.spec.PaintSpec`);
* :mod:`.work` -- one image: bytes in, the painted file's bytes out, written (both engines);
* :mod:`.manifest` -- the JSON-lines manifest in the destination, and what a rerun skips;
* :mod:`.local` / :mod:`.ray_engine` -- the engines (Ray Data's actor pool for ``ray``);
* :mod:`.result` -- counts, failures, each worker's pace, the failure report;
* :mod:`.runner` -- :func:`run`, which puts them together.

The ``ray`` engine needs ``pip install 'deepshop-native[ray]'``; nothing imports Ray before it runs.
"""
from __future__ import annotations

from .result import BatchResult, Failure
from .runner import ENGINES, run

__all__ = ["run", "ENGINES", "BatchResult", "Failure"]
