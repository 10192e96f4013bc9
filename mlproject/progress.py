"""Progress bars of long loops (training, generation), which an enclosing flow can silence.

``mo demo`` shows one bar for the whole flow; inside :func:`quiet` the steps' own bars
stay off. (tqdm reads its ``TQDM_*`` environment defaults once, at import, so they cannot
do this.)
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

_quiet = [0]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence :func:`bar` inside the block."""
    _quiet[0] += 1
    try:
        yield
    finally:
        _quiet[0] -= 1


def bar(iterable: Iterable, desc: str, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar over ``iterable``, off inside :func:`quiet`."""
    return tqdm(iterable, desc=desc, disable=disable or _quiet[0] > 0, **kwargs)
