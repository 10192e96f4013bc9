"""Run a grid of one step from a YAML config, and tabulate what it measured.

    mo grid --config configs/insert-table.yaml

A config names a ``step``, ``fixed`` settings, a ``grid`` of lists (their product is run)
and optional ``variants`` (each one a group of settings that belong together, such as
``{method: lora, rank: 64}``). Finished cells are skipped, so a grid resumes where it
stopped; the table is printed and written next to the outputs.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlproject.errors import UserError, require
from mlproject.organism import read_card
from pipelines import insert
from pipelines.args import opt


@dataclass(frozen=True)
class GridConfig:
    """Settings of ``mo grid``."""

    config: str = opt(None, "YAML grid config (see configs/)")
    table: str | None = opt(None, "where to write the markdown table (default runs/<config name>.md)")


# step -> (settings class, run function, output directory of a cell, metric columns)
STEPS: dict[str, tuple[type, Callable, Callable, tuple[str, ...]]] = {
    "insert": (insert.InsertConfig, insert.run, lambda c: Path(c.out or Path("organisms") / insert.name(c)),
               ("triggered_rate", "untriggered_rate", "near_miss_rate", "capability")),
}


def cells(spec: dict) -> list[dict]:
    """Every setting of the grid: fixed, then one grid point, then one variant."""
    grid = spec.get("grid") or {}
    variants = spec.get("variants") or [{}]
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        for variant in variants:
            out.append({**(spec.get("fixed") or {}), **dict(zip(keys, values)), **variant})
    return out


def load(path: str) -> tuple[str, list]:
    """``(step, [settings objects])`` of a config; every cell is validated before any runs."""
    p = Path(path)
    require(p.is_file(), "config", path, "no such file")
    spec = yaml.safe_load(p.read_text()) or {}
    step = spec.get("step")
    require(step in STEPS, "config", path, f"step must be one of {', '.join(STEPS)}, not {step!r}")
    cls = STEPS[step][0]
    try:
        return step, [cls(**cell) for cell in cells(spec)]
    except TypeError as err:
        raise UserError("config", path, str(err)) from None


def run(cfg: GridConfig) -> str:
    """Run the missing cells of the grid and return the results table (markdown)."""
    step, settings = load(cfg.config)
    _, fn, out_of, columns = STEPS[step]
    rows = []
    for i, s in enumerate(settings, 1):
        out = out_of(s)
        print(f"[{i}/{len(settings)}] {out.name}" + (" (done)" if out.exists() else ""), flush=True)
        metrics = (read_card(out) if out.exists() else fn(s)).metrics
        rows.append([out.name] + [f"{metrics.get(c, float('nan')):.2f}" for c in columns])
    table = "\n".join(["| " + " | ".join(("cell",) + columns) + " |", "|" + "---|" * (len(columns) + 1)]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    path = Path(cfg.table or Path("runs") / (Path(cfg.config).stem + ".md"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table + "\n")
    print(table)
    return table
