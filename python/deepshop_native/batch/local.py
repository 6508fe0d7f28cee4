"""The local engine: one pipeline in this process, the images one after another (each on all the
cores the engine is given): ``deepshop stylize``'s folder batch, with the manifest."""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

from .naming import Item
from .spec import PaintSpec
from .storage import Storage
from .work import Outcome, Painter, do_item, read_item

__all__ = ["run_local"]


def run_local(todo: List[Tuple[Item, bool]], spec: PaintSpec, stores: Sequence[Storage], dest_store: Storage,
              dest: str, on_result: Callable[[Outcome], None]) -> None:
    """Paint ``todo`` ((item, replace an existing output)) in order; ``on_result`` gets each
    :class:`Outcome` as it is done.  The pipeline is opened first: a model or style that cannot
    be opened stops the batch before any image (a DeepshopError)."""
    painter = Painter(spec)
    for index, (item, overwrite) in enumerate(todo):
        source = item.source
        data, read_error = read_item(stores[source.store], source.path, source.name)
        on_result(do_item(painter, index, source.name, data, read_error, dest_store,
                          dest_store.join(dest, item.output), overwrite))
