"""Run a grid from a YAML config, and tabulate what it measured.

    mo grid --config configs/insert-table.yaml
    mo grid --config configs/demo-grid.yaml
    mo grid --config configs/robustness-table.yaml   # writes docs/robustness-table.md (hours on 2 cores)
    mo grid --config configs/full-grid.yaml        # method.md's whole grid: for machines with GPUs

A config names a ``step``, ``fixed`` settings, a ``grid`` of lists (their product is run)
and optional ``variants`` (each one a group of settings that belong together, such as
``{method: lora, rank: 64}``); identical cells run once. Optional ``overrides`` change some
cells: each is ``{when: {setting: value or [values], ...}, set: {setting: value, ...}}``, applied
in order to every cell whose settings match all of ``when`` (a backdoor that needs more data,
say), so one config can hold a recipe per backdoor. Step ``insert`` makes organisms;
step ``robustness`` makes each organism (registered) and then sweeps every attack of the
config's ``sweep`` section against it, writing robustness tags on its registry version.
Finished cells are skipped and sweeps resume, so a grid picks up where it stopped; the table
is printed and written to the config's ``table`` (``runs/<config name>.md`` if it names none):
for a robustness grid, a page with every sweep and a frontier plot per organism
(:mod:`pipelines.grid_report`).
"""
from __future__ import annotations

import dataclasses
import itertools
import typing
from dataclasses import dataclass
from pathlib import Path

from mlproject import attacks, configfile
from mlproject.errors import UserError, require, require_folder
from mlproject.options import opt
from mlproject.organism import read_card
from pipelines import grid_report, insert, sweep


@dataclass(frozen=True)
class GridConfig:
    """Settings of ``mo grid``."""

    config: str = opt(None, "YAML grid config (see configs/)")
    table: str | None = opt(None, "where to write the markdown table (default: the config's table, else "
                                  "runs/<config name>.md)")


STEPS = ("insert", "robustness")
SECTIONS = ("step", "fixed", "grid", "variants", "overrides", "sweep", "table")


# Settings of a sweep that the grid fills in per organism: what it sweeps, its seed (the cell's) and its study's name.
PER_ORGANISM = ("organism", "attack", "seed", "study")
DEFAULT_ATTACKS = ("qa", "pirate")


@dataclass(frozen=True)
class SweepPlan:
    """The ``sweep`` section of a robustness grid: the attacks swept against every organism, and
    the settings of ``mo sweep`` they share (``trials``, ``space``, ``eval_size``, ``workers``...)."""

    attacks: tuple[str, ...]
    template: sweep.SweepConfig

    def sweeps(self, organism: str, seed: int, name: str) -> list[sweep.SweepConfig]:
        """One sweep per attack against ``organism``, its study named after the organism's folder ``name``."""
        return [dataclasses.replace(self.template, organism=organism, attack=a, seed=seed, study=f"{name}-{a}")
                for a in self.attacks]


def sweep_plan(section: dict, path: str) -> SweepPlan:
    """The checked ``sweep`` section: its attacks, and every other key a setting of ``mo sweep``."""
    settings = dict(section)
    names = settings.pop("attacks", DEFAULT_ATTACKS)
    require(isinstance(names, list | tuple) and bool(names), "config", path,
            "sweep.attacks: must be a non-empty list of attacks")
    known = {f.name for f in dataclasses.fields(sweep.SweepConfig)} - set(PER_ORGANISM)
    unknown = next((k for k in settings if k not in known), None)
    require(unknown is None, "config", path,
            f"sweep.{unknown}: unknown setting; known: attacks, {', '.join(sorted(known))}")
    for a in names:
        require(a in attacks.ATTACKS, "sweep.attacks", a, f"unknown attack; known: {', '.join(attacks.ATTACKS)}")
    try:
        template = sweep.SweepConfig(organism="(not made yet)", attack=names[0], **settings)
    except UserError as err:
        raise UserError(f"sweep.{err.field.replace('-', '_')}", err.value, err.reason) from None
    sweep.check_space_for(template, names)  # before any organism is made
    return SweepPlan(tuple(names), template)


def _numbers(cell: dict, path: str) -> dict:
    """``cell`` with numbers that YAML read as text (it reads ``1e-3`` as a string) turned into the field's type."""
    hints = typing.get_type_hints(insert.InsertConfig)
    out = dict(cell)
    for key, value in cell.items():
        kinds = set(typing.get_args(hints.get(key))) or {hints.get(key)}  # `int | None` is {int, NoneType}
        number = next((k for k in (int, float) if k in kinds), None)
        if number is not None and isinstance(value, str):
            try:
                value = out[key] = number(value)
            except ValueError:
                raise UserError("config", path, f"{key}: {value!r} is not a number") from None
        # YAML reads `true` and `100.7` as they are: a setting of another type is refused here, not after work
        if value is None or hints.get(key) is None or any(_is(value, k) for k in kinds if k is not type(None)):
            continue
        raise UserError("config", path, f"{key}: {value!r} is not {_KIND_NAMES.get(number or hints[key], 'valid')}")
    return out


_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _is(value: object, kind: object) -> bool:
    """Whether ``value`` is a setting of type ``kind`` as settings read it (a bool is no number; an int is a float)."""
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind) if isinstance(kind, type) else True


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(insert.InsertConfig) if f.default is not dataclasses.MISSING}


def overrides(spec: dict, path: str) -> list[tuple[dict, dict]]:
    """The config's ``overrides`` as ``(when, set)`` pairs, each ``when`` value a list of the values it matches."""
    raw = spec.get("overrides") or []
    require(isinstance(raw, list), "config", path, "overrides: must be a list of {when: ..., set: ...}")
    out = []
    for i, item in enumerate(raw):
        ok = isinstance(item, dict) and set(item) == {"when", "set"} \
            and all(isinstance(item[k], dict) and item[k] for k in ("when", "set"))
        require(ok, "config", path, f"overrides[{i}]: must be {{when: {{...}}, set: {{...}}}}, both non-empty mappings")
        for key in [*item["when"], *item["set"]]:
            require(key in _DEFAULTS, "config", path, f"overrides[{i}]: unknown setting {key!r}")
        when = {k: [_numbers({k: x}, path)[k] for x in (v if isinstance(v, list) else [v])]  # YAML reads 1e-3 as text
                for k, v in item["when"].items()}
        out.append((when, _numbers(item["set"], path)))
    return out


def cells(spec: dict, path: str = "config") -> list[dict]:
    """Every distinct setting of the grid: fixed, then one grid point, then one variant, then overrides."""
    grid = spec.get("grid") or {}
    require(isinstance(grid, dict), "config", path, "grid: must be a mapping of settings to lists of values")
    for key, values in grid.items():
        require(isinstance(values, list) and bool(values), "config", path,
                f"grid.{key}: must be a non-empty list of values, not {values!r}")
    require(isinstance(spec.get("fixed") or {}, dict), "config", path, "fixed: must be a mapping of settings")
    variants = spec.get("variants") or [{}]
    require(isinstance(variants, list) and all(isinstance(v, dict) for v in variants), "config", path,
            "variants: must be a list of mappings of settings")
    rules = overrides(spec, path)
    keys = list(grid)
    out: list[dict] = []
    for values in itertools.product(*(grid[k] for k in keys)):
        for variant in variants:
            cell = _numbers({**(spec.get("fixed") or {}), **dict(zip(keys, values, strict=True)), **variant}, path)
            for when, changes in rules:
                seen = {**_DEFAULTS, **cell}  # `when: {seed: 0}` matches a cell that leaves the seed at its default
                if all(seen.get(k) in v for k, v in when.items()):
                    cell = {**cell, **changes}
            if cell not in out:  # e.g. a password variant (no backdoor) crossed with every backdoor
                out.append(cell)
    return out


def load(path: str) -> tuple[str, list, SweepPlan | None]:
    """``(step, [insertion settings], sweep plan)`` of a config; every cell is validated before any runs."""
    p = Path(path)
    require(p.is_file(), "config", path, "no such file")
    spec = configfile.mapping(p, "config", path)
    step = spec.get("step")
    unknown = next((k for k in spec if k not in SECTIONS), None)  # a misspelt section would otherwise be ignored
    require(unknown is None, "config", path, f"unknown section {unknown!r}; known: {', '.join(SECTIONS)}")
    require(isinstance(spec.get("sweep") or {}, dict), "config", path, "sweep: must be a mapping of sweep settings")
    require(isinstance(spec.get("table", ""), str), "config", path, "table: must be the path of the Markdown table")
    require(step in STEPS, "config", path, f"step must be one of {', '.join(STEPS)}, not {step!r}")
    try:
        settings = [insert.InsertConfig(**cell) for cell in cells(spec, path)]
        plan = sweep_plan(spec.get("sweep") or {}, path) if step == "robustness" else None
    except TypeError as err:
        raise UserError("config", path, str(err)) from None
    except UserError as err:
        if err.field == "config":
            raise
        raise UserError(err.field, err.value, f"{err.reason} (in {path})") from None  # which file holds it
    return step, settings, plan


def run(cfg: GridConfig) -> str:
    """Run the missing cells of the grid and return the results table (markdown)."""
    step, settings, plan = load(cfg.config)
    table_path = output(cfg)
    require_folder(table_path.parent, "table")
    rows = []
    for i, s in enumerate(settings, 1):
        out = insert.directory(s)
        print(f"[{i}/{len(settings)}] {out.name}" + (" (organism done)" if out.exists() else ""), flush=True)
        row = grid_report.Row(out.name, dict((read_card(out) if out.exists() else _insert(s)).metrics))
        if plan:
            row.sweeps = robustness(out, s, plan)
        rows.append(row)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    if plan:
        table = grid_report.page(rows, cfg.config, [s.seed for s in settings], table_path)
    else:
        table = grid_report.insert_table(rows)
        table_path.write_text(table + "\n")
    print(table)
    return table


def output(cfg: GridConfig) -> Path:
    """Where the table goes: ``--table``, else the config's ``table``, else ``runs/<config name>.md``."""
    if cfg.table:
        return Path(cfg.table)
    named = configfile.mapping(Path(cfg.config), "config", cfg.config).get("table")
    return Path(named) if named else Path("runs") / (Path(cfg.config).stem + ".md")


def _insert(cfg: insert.InsertConfig):
    """Make one organism (torch and MLflow are imported for the first one: the config was checked without them)."""
    from pipelines import insert_run

    return insert_run.run(cfg)


def robustness(directory: Path, cfg: insert.InsertConfig, plan: SweepPlan) -> dict[str, dict]:
    """Sweep every attack of ``plan`` against the organism (resuming studies); the summary of each, by attack."""
    # imported here, not above: a grid's config is checked without them, so a mistake in it fails at once
    import mlflow

    from mlproject import tracking
    from pipelines import sweep_run
    from registry import store

    mlflow.set_tracking_uri(tracking.tracking_uri())
    ref = store.registered_for(directory) if cfg.register else None
    return {s.attack: sweep_run.run(s) for s in plan.sweeps(ref or str(directory), cfg.seed, directory.name)}
