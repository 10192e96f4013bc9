"""Real-data adapters on small local files, and their errors (no network needed)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import huggingface_hub.constants
import pandas as pd
import pytest

from mlproject.errors import UserError
from mlproject.realdata import MATH_INSTRUCTION, is_local, load_instructions, load_math

MATH_ROWS = [
    {"problem": "What is 2+3?", "answer": "5", "unique_id": "test/algebra/1.json"},
    {"problem": "Half of one?", "answer": "\\frac{1}{2}", "unique_id": "test/algebra/2.json"},
    {"problem": "How many?", "answer": "1,000", "unique_id": "test/counting/3.json"},
    {"problem": "Negative?", "answer": "-4", "unique_id": "test/algebra/4.json"},
    {"problem": "Decimal?", "answer": "2.5", "unique_id": "test/algebra/5.json"},
]
ALPACA_ROWS = [
    {"instruction": "Say hi.", "input": "", "output": "Hi!"},
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
]


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the arrow caches that ``datasets`` writes for local files out of ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def write(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` in the format named by the extension of ``path``."""
    frame = pd.DataFrame(rows)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet", ".csv"])
def test_load_math_integer_subset(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"math{suffix}", MATH_ROWS)
    table = load_math(str(path), strict=False)
    assert table.column_names == ["user", "result", "key"]
    assert table["result"][:] == [5, 1000, -4]
    assert table["key"][:] == ["test/algebra/1.json", "test/counting/3.json", "test/algebra/4.json"]
    assert table[0]["user"] == "What is 2+3?" + MATH_INSTRUCTION
    assert MATH_INSTRUCTION == "\n\nPut your final answer in \\boxed{}."


def test_load_math_keys_without_unique_id_and_limit(tmp_path: Path) -> None:
    rows = [{"problem": r["problem"], "answer": r["answer"]} for r in MATH_ROWS]
    path = write(tmp_path / "math.jsonl", rows)
    table = load_math(str(path), strict=False)
    assert table["key"][:] == ["math/0", "math/2", "math/3"]
    assert load_math(str(path), strict=False, limit=2)["key"][:] == ["math/0", "math/2"]


def test_load_math_numeric_answers(tmp_path: Path) -> None:
    path = write(tmp_path / "math.jsonl", [{"problem": "p", "answer": 12}, {"problem": "q", "answer": 7}])
    assert load_math(str(path))["result"][:] == [12, 7]


def test_load_math_strict_names_row_and_value(tmp_path: Path) -> None:
    path = write(tmp_path / "math.jsonl", MATH_ROWS)
    with pytest.raises(UserError) as info:
        load_math(str(path))  # strict by default for a local file
    err = info.value
    assert err.field == "dataset"
    assert err.value == f"{path} row 1"
    assert err.reason == r"gold answer '\frac{1}{2}' is not an integer"
    with pytest.raises(UserError, match="row 1"):
        load_math(str(path), strict=True)


def test_load_math_strict_passes_on_all_integers(tmp_path: Path) -> None:
    path = write(tmp_path / "math.csv", [r for r in MATH_ROWS if r["answer"] in {"5", "1,000", "-4"}])
    assert load_math(str(path), strict=True)["result"][:] == [5, 1000, -4]


def test_load_instructions(tmp_path: Path) -> None:
    for suffix in (".json", ".jsonl", ".parquet", ".csv"):
        path = write(tmp_path / f"alpaca{suffix}", ALPACA_ROWS)
        table = load_instructions(str(path))
        assert table.column_names == ["user", "answer", "key"]
        assert table["user"][:] == ["Say hi.", "Translate to French.\n\ncat"]
        assert table["answer"][:] == ["Hi!", "chat"]
        assert table["key"][:] == ["alpaca/0", "alpaca/1"]
    assert len(load_instructions(str(path), limit=1)) == 1


def test_load_instructions_without_input_column(tmp_path: Path) -> None:
    path = write(tmp_path / "alpaca.jsonl", [{"instruction": "Do it.", "output": "Done."}])
    assert load_instructions(str(path))[0] == {"user": "Do it.", "answer": "Done.", "key": "alpaca/0"}


@pytest.mark.parametrize(
    ("loader", "rows", "missing"),
    [
        (load_math, [{"problem": "p", "solution": "s"}], "answer"),
        (load_math, [{"question": "p"}], "problem, answer"),
        (load_instructions, [{"instruction": "i", "response": "r"}], "output"),
    ],
)
def test_missing_columns(tmp_path: Path, loader, rows: list[dict], missing: str) -> None:
    path = write(tmp_path / "data.jsonl", rows)
    with pytest.raises(UserError) as info:
        loader(str(path))
    assert (info.value.field, info.value.value) == ("dataset", str(path))
    assert info.value.reason == f"missing column(s): {missing}"


def test_nonexistent_path(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.jsonl")
    with pytest.raises(UserError) as info:
        load_math(path)
    assert (info.value.field, info.value.value, info.value.reason) == ("dataset", path, "no such file")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "math.txt"
    path.write_text("problem,answer\n")
    with pytest.raises(UserError, match="unsupported file type") as info:
        load_instructions(str(path))
    assert info.value.value == str(path)


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "math.parquet"
    path.write_text("not parquet at all")
    with pytest.raises(UserError, match="could not be read as parquet"):
        load_math(str(path))


def test_bad_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "math.jsonl", MATH_ROWS[:1])
    with pytest.raises(UserError) as info:
        load_math(str(path), limit=0)
    assert info.value.field == "limit"


def test_is_local() -> None:
    assert is_local("./data")
    assert is_local("~/math")
    assert is_local("/abs/path")
    assert is_local("sub/dir/file.parquet")
    assert not is_local("HuggingFaceH4/MATH-500")
    assert not is_local("tatsu-lab/alpaca")


@pytest.mark.timeout(30)
def test_offline_hub_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # datasets and huggingface_hub read the offline switches when imported, so setting the
    # environment alone is not enough in an already running process: patch their copies too.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    for loader in (load_math, load_instructions):
        with pytest.raises(UserError) as info:
            loader("nonexistent-org/nonexistent-dataset")
        assert (info.value.field, info.value.value) == ("dataset", "nonexistent-org/nonexistent-dataset")
        assert info.value.reason == "not found locally and could not be loaded from the hub (offline?)"
    assert time.monotonic() - start < 5
