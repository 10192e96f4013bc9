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
_shown = [False]  # whether a bar was drawn: a final message may then follow one on the same line


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence :func:`bar` inside the block."""
    _quiet[0] += 1
    try:
        yield
    finally:
        _quiet[0] -= 1


def close_all() -> None:
    """Close every open bar (a step stopped mid-loop leaves its own open) and end the line a bar may have left, so
    that a final message starts on a line of its own (on a terminal: the line is cleared instead)."""
    import sys

    for open_bar in list(getattr(tqdm, "_instances", ())):
        open_bar.close()
    if _shown[0]:
        sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "\n")
        sys.stderr.flush()


def bar(iterable: Iterable, desc: str, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar over ``iterable``, off inside :func:`quiet`."""
    off = disable or _quiet[0] > 0
    _shown[0] = _shown[0] or not off
    return tqdm(iterable, desc=desc, disable=off, **kwargs)
