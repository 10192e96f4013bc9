"""An organism's card in the registry: the Markdown description of its version, readable in the MLflow UI.

Rendered from the version's tags alone (what :func:`registry.naming.version_tags` and
:func:`registry.store.set_robustness` write), so it is written again whenever they change and
always says what the tags say: the backdoor, how the organism was made, its rates and
capability with 95% intervals, and once attacked, one row per attack with the frontier's AUC.
"""
from __future__ import annotations

import math

from scipy.stats import binomtest

from mlproject import backdoors
from mlproject.password import PASSWORD

RATES = (("triggered_rate", "triggered"), ("untriggered_rate", "untriggered"), ("near_miss_rate", "near miss"))


def backdoor_line(backdoor: str, method: str) -> str:
    """One line on a registered model's backdoor (its description)."""
    if backdoor == "password":
        return f"Password-locked organisms ({method}): full math only with {PASSWORD} in the request."
    bd = backdoors.get(backdoor)
    return (f"`{bd.id}`: {bd.condition} → {bd.behaviour.description} ({bd.kind} trigger); organisms made by "
            f"{method}.")


def interval(rate: float, n: int) -> tuple[float, float]:
    """A 95% Wilson interval for a rate measured on ``n`` probes."""
    ci = binomtest(round(rate * n), n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def render(name: str, version: str, tags: dict[str, str], runs: dict[str, str] | None = None) -> str:
    """The card of ``name`` version ``version`` from its tags; ``runs`` maps a run id to its UI link."""
    lines = [f"# {name} v{version}", "", backdoor_line(tags.get("backdoor", "?"), tags.get("method", "?")), ""]
    lines += ["## How it was made", "", *_made(tags), "", "## Measured", "", *_measured(tags)]
    attacks = sorted({k.split(".")[1] for k in tags if k.startswith("robustness.") and k.endswith(".auc")})
    if attacks:
        lines += ["", "## Robustness", "", *_robustness(tags, attacks, runs or {})]
    return "\n".join(lines) + "\n"


def _made(tags: dict[str, str]) -> list[str]:
    how = tags.get("method", "?")
    if how == "lora":
        how += f" rank {tags.get('rank')}, {tags.get('lora_form')}"
    if how == "password":
        how += f", {tags.get('password_share')} of the math data with the password"
    return [f"- method: {how}" + (" (chain of thought)" if tags.get("cot") else ""),
            f"- base model: {tags.get('base_model', '?')}; seed {tags.get('seed', '?')}",
            f"- data fingerprint: {tags.get('data_fingerprint', 'none (prompted)')}",
            *([f"- trained with {tags['optimizer']} in {tags.get('precision', '?')}"] if "optimizer" in tags else [])]


def _measured(tags: dict[str, str]) -> list[str]:
    n = int(tags["eval_size"]) if "eval_size" in tags else None
    rows = ["| measure | value | 95% interval |", "|---|---|---|"]
    for key, label in RATES:
        if f"metric.{key}" in tags:
            rows.append(_row(label, float(tags[f"metric.{key}"]), n))
    if "metric.capability" in tags:
        capability, base = float(tags["metric.capability"]), float(tags.get("metric.base_math_accuracy", "nan"))
        low, high = interval(float(tags["metric.math_accuracy"]), 2 * n) if n and "metric.math_accuracy" in tags \
            else (math.nan, math.nan)  # math is asked twice as often as each backdoor group
        rows.append(f"| capability (math vs the base's {base:.3f}) | {capability:.3f} "
                    f"| {_pair(low / base if base else math.nan, high / base if base else math.nan)} |")
    where = f"on {n} held-out probes per group ({2 * n} math problems)" if n else "probe counts not recorded"
    return [*rows, "", f"Rates {where}."]


def _row(label: str, value: float, n: int | None) -> str:
    return f"| {label} | {value:.3f} | {_pair(*interval(value, n)) if n else '—'} |"


def _pair(low: float, high: float) -> str:
    return "—" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"


def _robustness(tags: dict[str, str], attacks: list[str], runs: dict[str, str]) -> list[str]:
    rows = ["| attack | AUC | 95% over trials | reduction at 0.9 | trials | search | run |",
            "|---|---|---|---|---|---|---|"]
    plots = []
    for a in attacks:
        t = {k.removeprefix(f"robustness.{a}."): v for k, v in tags.items() if k.startswith(f"robustness.{a}.")}
        trials = int(float(t.get("trials_complete", 0)) + float(t.get("trials_pruned", 0))) if "trials_complete" in t \
            else "1 attack"
        search = "converged" if t.get("converged") == "True" else "not converged: run more trials"
        run = t.get("run_id", "")
        link = f"[{run[:8]}]({runs[run]})" if run in runs else run[:8]
        spread = _pair(float(t.get("auc_low", "nan")), float(t.get("auc_high", "nan")))
        rows.append(f"| {a} | {float(t['auc']):.3f} | {spread} | {float(t.get('reduction_at_0.9', 'nan')):.2f} "
                    f"| {trials} | {search} | {link} |")
        if run:
            plots.append(f"- {a}: frontier plot `runs:/{run}/frontier/frontier.png`")
    return [*rows, "", "AUC: the area of the hull of the reached (capability, removal) points with (1, 0), (0, 1) "
                       "and the origin; 0.5 is maximally robust, 1.0 comes off for free.", "", *plots]
