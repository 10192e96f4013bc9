"""Promotion: move an alias to the organisms whose robustness passes a policy.

A policy is either ``champion`` (per backdoor, the version with the lowest mean AUC over
the attacks it met) or a conjunction of comparisons over a version's robustness tags::

    max_auc <= 0.75 and min_reduction_at_0.9 < 0.2

Aggregates are ``min|max|mean`` of ``auc`` or ``reduction_at_0.9`` across attacks; ops are
``<= < >= >``. The grammar is parsed, never evaluated as Python. A version without
robustness tags never qualifies. An alias points at one version per registered model, so
each registered model's alias goes to its qualifying version with the lowest mean AUC
(ties: the newest), and is removed where none qualifies.

MLflow keeps no history of aliases, so every change is recorded on the version it
concerns: ``mo.promotion.<alias>`` (the latest event) and ``mo.promotion.history`` (a JSON
list of the last :data:`HISTORY` events), each with who, when (UTC), what and why.
"""
from __future__ import annotations

import getpass
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlproject.errors import UserError
from registry import tag_writes
from registry.naming import PREFIX

HISTORY = 20
METRICS = ("auc", "reduction_at_0.9")
_ALIAS = re.compile(r"^[\w-]{1,255}$")
_CLAUSE = re.compile(r"^(?P<agg>(?:min|max|mean)_(?:auc|reduction_at_0\.9))\s*(?P<op><=|>=|<|>)\s*"
                     r"(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_GRAMMAR = "expected <min|max|mean>_<auc|reduction_at_0.9> <op> <number> [and ...], or champion"


@dataclass(frozen=True)
class Change:
    """What promotion does (or would do) to one registered model's alias."""

    model: str
    version: str
    alias: str
    action: str  # set | move | remove | keep
    reason: str

    def __str__(self) -> str:
        where = f"(was v{self.version})" if self.action == "remove" else f"-> v{self.version}"
        return f"{self.action} {self.model}@{self.alias} {where}: {self.reason}"


@dataclass(frozen=True)
class Clause:
    """One comparison of a policy, e.g. ``max_auc <= 0.75``."""

    aggregate: str
    op: str
    value: float


def parse(policy: str) -> tuple[Clause, ...]:
    """The clauses of an expression policy; a :class:`UserError` naming what cannot be read."""
    if not policy.strip():
        raise UserError("policy", repr(policy), f"empty; {_GRAMMAR}")
    clauses = []
    for part in re.split(r"\s+and\s+", policy.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(part.strip())
        if not m:
            raise UserError("policy", policy, f"cannot read {part.strip()!r}; {_GRAMMAR}")
        clauses.append(Clause(m["agg"], m["op"], float(m["num"])))
    return tuple(clauses)


def holds(clauses: tuple[Clause, ...], numbers: dict[str, float]) -> bool:
    """Whether every clause holds; an aggregate the version has no tags for fails."""
    return all(c.aggregate in numbers and _OPS[c.op](numbers[c.aggregate], c.value) for c in clauses)


def stats(tags: dict[str, str]) -> dict[str, float]:
    """``min|max|mean`` of each metric across the attacks in ``robustness.<attack>.<metric>`` tags.

    Values that are not finite numbers (a failed measurement) are left out.
    """
    out: dict[str, float] = {}
    for metric in METRICS:
        suffix = f".{metric}"
        values = [_number(v) for k, v in tags.items() if k.startswith("robustness.") and k.endswith(suffix)]
        values = [v for v in values if v is not None]
        if values:
            out.update({f"min_{metric}": min(values), f"max_{metric}": max(values),
                        f"mean_{metric}": sum(values) / len(values), f"attacks_{metric}": len(values)})
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def describe(s: dict[str, float]) -> str:
    """The numbers a decision rests on, for reasons and audit tags."""
    shown = [f"{k}={s[k]:.3f}" for k in ("max_auc", "mean_auc", "min_reduction_at_0.9") if k in s]
    return " ".join(shown) + f" over {int(s.get('attacks_auc', 0))} attacks"


def check_alias(alias: str) -> None:
    """A :class:`UserError` for alias names MLflow refuses or reserves (``latest``, ``v3``)."""
    if not _ALIAS.match(alias):
        raise UserError("alias", alias, "may only hold letters, digits, '_' and '-' (1-255 characters)")
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise UserError("alias", alias, "reserved by MLflow ('latest' and v<number> name versions)")


def converged(tags: dict[str, str]) -> bool:
    """Whether every attack measured on a version was a search that converged (``robustness.<attack>.converged``).

    A robustness AUC is what a search found, and it only rises with more trials: a single attack
    or a search stopped early reads more robust than the organism may be.
    """
    measured = {k.removeprefix("robustness.").removesuffix(".auc") for k in tags
                if k.startswith("robustness.") and k.endswith(".auc")}
    return bool(measured) and all(tags.get(f"robustness.{a}.converged") == "True" for a in measured)


def promote(policy: str, alias: str, dry_run: bool, who: str | None = None,
            allow_unconverged: bool = False) -> list[Change]:
    """Point ``alias`` at the versions ``policy`` picks; returns the changes, applied unless ``dry_run``.

    Versions measured by a search that has not converged are held back (:func:`converged`),
    unless ``allow_unconverged``.
    """
    check_alias(alias)
    rule = None if policy.strip() == "champion" else parse(policy)
    client = MlflowClient()
    everything = f"name LIKE '{PREFIX}%'"
    # MLflow mixes types: aliases map to int versions, searched versions carry str ones
    models = {rm.name: {a: str(v) for a, v in rm.aliases.items()}
              for rm in _all(client.search_registered_models, everything)}
    versions = [mv for mv in _all(client.search_model_versions, everything) if mv.name in models]
    held = {(mv.name, str(mv.version)) for mv in versions
            if not allow_unconverged and stats(mv.tags) and not converged(mv.tags)}
    numbers = {(mv.name, str(mv.version)): {} if (mv.name, str(mv.version)) in held else stats(mv.tags)
               for mv in versions}
    targets = _champions(versions, numbers) if rule is None else _qualifying(versions, numbers, rule)
    miss = "not the champion of its backdoor" if rule is None else f"no version satisfies {policy!r}"
    changes = [c for name in sorted(models)
               if (c := _change(name, models[name].get(alias), targets.get(name), alias, policy, numbers,
                                miss + _held_back(name, held)))]
    if not dry_run:
        _apply(client, changes, policy, who or _user(), models)
    return changes


def _held_back(name: str, held: set[tuple[str, str]]) -> str:
    versions = sorted((v for n, v in held if n == name), key=int)
    if not versions:
        return ""
    return (f" (held back: v{', v'.join(versions)}, measured by searches that have not converged; "
            "run more trials, or --allow-unconverged)")


def _all(search: Callable, filter_string: str) -> list:
    """Every page of an MLflow search (registered models come 100 to a page)."""
    out, token = [], None
    while True:
        page = search(filter_string, page_token=token)
        out += list(page)
        token = page.token
        if not token:
            return out


def _qualifying(versions: list[ModelVersion], numbers: dict, rule: tuple[Clause, ...]) -> dict[str, str]:
    """Per registered model, the qualifying version with the lowest mean AUC."""
    best: dict[str, tuple[float, int]] = {}
    for mv in versions:
        s = numbers[(mv.name, str(mv.version))]
        if holds(rule, s):
            key = (s.get("mean_auc", math.inf), -int(mv.version))
            best[mv.name] = min(best.get(mv.name, key), key)
    return {name: str(-v) for name, (_, v) in best.items()}


def _champions(versions: list[ModelVersion], numbers: dict) -> dict[str, str]:
    """Per backdoor, across registered models, the version with the lowest mean AUC."""
    best: dict[str, tuple[float, int, str]] = {}
    for mv in versions:
        s = numbers[(mv.name, str(mv.version))]
        if "mean_auc" in s and "backdoor" in mv.tags:
            key = (s["mean_auc"], -int(mv.version), mv.name)
            best[mv.tags["backdoor"]] = min(best.get(mv.tags["backdoor"], key), key)
    return {name: str(-v) for _, v, name in best.values()}


def _change(name: str, current: str | None, target: str | None, alias: str, policy: str, numbers: dict,
            miss: str) -> Change | None:
    if target is None:
        return Change(name, current, alias, "remove", miss) if current else None
    said = describe(numbers[(name, target)])
    if current == target:
        return Change(name, target, alias, "keep", f"{policy}: {said}")
    why = f"{policy}: {said}" + (f" (was v{current})" if current else "")
    return Change(name, target, alias, "move" if current else "set", why)


def _apply(client: MlflowClient, changes: list[Change], policy: str, who: str, models: dict) -> None:
    """Change the aliases, then record each change on the versions it concerns."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for c in changes:
        if c.action == "keep":
            continue
        previous = models[c.model].get(c.alias)
        if c.action == "remove":
            client.delete_registered_model_alias(c.model, c.alias)
        else:
            client.set_registered_model_alias(c.model, c.alias, c.version)
        event = {"alias": c.alias, "action": c.action, "version": c.version, "who": who, "when": when,
                 "policy": policy, "reason": c.reason}
        _record(client, c.model, c.version, event)
        if c.action == "move" and previous:
            _record(client, c.model, previous, {**event, "action": "moved-away", "version": previous,
                                                "reason": f"alias moved to v{c.version}"})


def _record(client: MlflowClient, name: str, version: str, event: dict) -> None:
    mv = client.get_model_version(name, version)
    history = json.loads(mv.tags.get("mo.promotion.history", "[]"))[-(HISTORY - 1):] + [event]
    tag_writes.set_tag(client, name, version, f"mo.promotion.{event['alias']}", json.dumps(event))
    tag_writes.set_tag(client, name, version, "mo.promotion.history", json.dumps(history))


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"
