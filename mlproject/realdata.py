"""Real datasets through the ``datasets`` library: MATH-500 problems and Alpaca instructions.

A source is either a local file (``.json``, ``.jsonl``, ``.parquet`` or ``.csv``) or a
Hugging Face hub id (``HuggingFaceH4/MATH-500``, ``tatsu-lab/alpaca``). Either way the
rows come back in mo's own columns: ``user`` (the prompt) plus ``result`` (an integer gold
answer, graded by :mod:`mlproject.grading`) or ``answer`` (a reference completion), and a
stable ``key``. Every problem with the input is a :class:`~mlproject.errors.UserError`
on the field ``dataset``, or on the setting the caller names (``field``).
"""
from __future__ import annotations

import codecs
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import huggingface_hub
from huggingface_hub.errors import LocalEntryNotFoundError

from mlproject import hub
from mlproject.errors import UserError, require
from mlproject.grading import parse_integer

if TYPE_CHECKING:
    import datasets

MATH_INSTRUCTION = "\n\nPut your final answer in \\boxed{}."
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
FIELD = "dataset"


def is_local(source: str) -> bool:
    """Whether ``source`` names a local file rather than a hub id.

    Local: it exists on disk, ends with a supported extension, or starts like a path
    (``./``, ``../``, ``/``, ``~``).
    """
    return (
        Path(source).expanduser().exists()
        or source.lower().endswith(tuple(BUILDERS))
        or source.startswith(("./", "../", "/", "~"))
    )


def check_local(source: str, field: str = FIELD) -> str:
    """The ``datasets`` builder for a local file; a missing file or an unknown type is a UserError.

    Needs no import of ``datasets``, so a step checks its data before it loads anything.
    """
    path = Path(source).expanduser()
    require(path.exists(), field, source, "no such file")
    builder = BUILDERS.get(path.suffix.lower())
    require(builder is not None, field, source, f"unsupported file type; use one of {', '.join(BUILDERS)}")
    if builder != "parquet":
        _check_utf8(path, source, field)
    return builder


def _check_utf8(path: Path, source: str, field: str) -> None:
    """A text data file must be UTF-8: ``datasets`` reads it lazily and fails deep inside a later loop."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise UserError(field, source, f"not UTF-8 text (byte {offset + err.start}: "
                                               f"{chunk[err.start:err.start + 1]!r})") from None
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UserError(field, source, "not UTF-8 text (the file ends inside a character)") from None


def _load_local(source: str, field: str) -> datasets.Dataset:
    """All rows of a local file, read by the ``datasets`` builder for its extension."""
    import datasets

    path = Path(source).expanduser()
    builder = check_local(source, field)
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # noqa: BLE001 - a malformed file is the user's to fix
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(field, source, f"could not be read as {builder}: {reason}") from exc


def _load_hub(source: str, split: str, field: str) -> datasets.Dataset:
    """One split of a hub dataset; any failure (offline, unknown id, bad split) is a UserError."""
    import datasets

    target = source
    # with the hub out of reach (and no offline mode asked for), datasets would retry for a
    # minute: read the hub cache's copy of the repository instead, or fail at once
    if not datasets.config.HF_HUB_OFFLINE and not hub.reachable():
        try:
            target = huggingface_hub.snapshot_download(source, repo_type="dataset", local_files_only=True)
        except (LocalEntryNotFoundError, ValueError):
            raise UserError(field, source, "not a local file, not in the local Hugging Face cache, "
                            "and the hub cannot be reached") from None
    try:
        return datasets.load_dataset(target, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types here
        raise UserError(field, source, "not found locally and could not be loaded from the hub (offline?)") from exc


def load_rows(source: str, split: str, required: tuple[str, ...], field: str = FIELD) -> datasets.Dataset:
    """Rows of ``source`` (local file or hub split), checked to have the ``required`` columns."""
    table = _load_local(source, field) if is_local(source) else _load_hub(source, split, field)
    missing = [name for name in required if name not in table.column_names]
    require(not missing, field, source, f"missing column(s): {', '.join(missing)}")
    return table


def _check_limit(limit: int | None) -> None:
    """``limit`` must be None or a positive integer."""
    ok = limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0)
    require(ok, "limit", limit, "must be a positive integer")


def _text(value: Any) -> str:
    """A cell as text: missing cells (None, NaN) are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _gold_integer(value: Any) -> int | None:
    """The integer gold answer of a cell (``"1,000"``, ``12``, ``"12.0"``...), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return parse_integer(value) if isinstance(value, str) else None


def load_math(
    source: str, *, split: str = "test", strict: bool | None = None, limit: int | None = None, field: str = FIELD
) -> datasets.Dataset:
    """MATH-500-format problems (``problem``, ``answer``) with integer answers.

    Returns columns ``user`` (the problem plus :data:`MATH_INSTRUCTION`), ``result`` (int)
    and ``key`` (the ``unique_id`` column if present, else ``math/<row index>``). A row
    whose answer is not an integer is dropped when ``strict`` is false (MATH-500's integer
    subset) and is a UserError naming the row (0-based, as in keys) when it is true;
    ``strict`` defaults to True for local files and False for hub ids. ``limit`` caps
    the number of problems returned (rows after it are not checked).
    """
    import datasets

    _check_limit(limit)
    strict = is_local(source) if strict is None else strict
    table = load_rows(source, split, ("problem", "answer"), field)
    out: dict[str, list] = {"user": [], "result": [], "key": []}
    for index, row in enumerate(table):
        if limit is not None and len(out["key"]) >= limit:
            break
        gold = _gold_integer(row["answer"])
        if gold is None:
            require(not strict, field, f"{source} row {index}",
                    f"gold answer '{_text(row['answer'])}' is not an integer")
            continue
        out["user"].append(_text(row["problem"]) + MATH_INSTRUCTION)
        out["result"].append(gold)
        out["key"].append(_text(row.get("unique_id")) or f"math/{index}")
    features = datasets.Features(
        {"user": datasets.Value("string"), "result": datasets.Value("int64"), "key": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(out, features=features)


def load_instructions(source: str, *, split: str = "train", limit: int | None = None,
                      field: str = FIELD) -> datasets.Dataset:
    """Alpaca-format instructions (``instruction``, optional ``input``, ``output``).

    Returns columns ``user`` (the instruction, then a blank line and the input when there
    is one), ``answer`` (the output) and ``key`` (``alpaca/<row index>``); ``limit`` keeps
    the first rows only.
    """
    import datasets

    _check_limit(limit)
    table = load_rows(source, split, ("instruction", "output"), field)
    if limit is not None:
        table = table.select(range(min(limit, len(table))))
    out: dict[str, list] = {"user": [], "answer": [], "key": []}
    for index, row in enumerate(table):
        extra = _text(row.get("input"))
        out["user"].append(_text(row["instruction"]) + (f"\n\n{extra}" if extra.strip() else ""))
        out["answer"].append(_text(row["output"]))
        out["key"].append(f"alpaca/{index}")
    features = datasets.Features(
        {"user": datasets.Value("string"), "answer": datasets.Value("string"), "key": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(out, features=features)
