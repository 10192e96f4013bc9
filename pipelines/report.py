"""The robustness report: organisms x attacks, with AUC intervals and overlaid frontiers.

    mo report
    mo report --parent <run id of a demo>

Reads the latest finished sweep of every (organism, attack) from MLflow, prints a table
(AUC with its 95% interval over trials, reduction at 90% capability, the organism's
triggered / untriggered rates) and logs it, with one overlaid frontier plot per attack, to
a ``report`` run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mlflow

from mlproject import frontier, plots, tracking
from mlproject.errors import UserError, require
from mlproject.options import opt
from mlproject.organism import read_card

RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``mo report``."""

    experiment: str = opt("sweeps", "MLflow experiment holding the sweeps")
    parent: str | None = opt(None, "only the sweeps run inside this run (a demo's run id)")


def latest_sweeps(experiment: str, parent: str | None = None) -> list:
    """The newest finished sweep run of every (organism, attack), optionally only the children of ``parent``."""
    require(parent is None or RUN_ID.fullmatch(parent) is not None, "parent", parent,
            "not a run id (32 hexadecimal characters, as `mo demo` prints)")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    if tracking.experiment(experiment) is None:
        raise UserError("experiment", experiment, "no such experiment; run `mo sweep` first")
    where = "attributes.status = 'FINISHED'" + (f" and tags.mlflow.parentRunId = '{parent}'" if parent else "")
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=where,
                              order_by=["attributes.start_time DESC"], output_format="list")
    seen, out = set(), []
    for r in runs:
        key = (organism_label(r), r.data.params.get("attack"))
        if key not in seen and "auc" in r.data.metrics:
            seen.add(key)
            out.append(r)
    return out


def organism_label(sweep_run) -> str:
    """How the sweep named its organism: the registry reference, else the directory's name."""
    ref = sweep_run.data.params.get("organism_ref") or sweep_run.data.params.get("organism", "?")
    return ref.removeprefix("models:/") if ref.startswith("models:/") else Path(ref).name


def rows(runs: list) -> list[dict]:
    """One row per sweep: organism, method, attack, AUC and interval, reduction, rates."""
    out = []
    for r in runs:
        directory = r.data.params["organism"]
        card = read_card(directory) if Path(directory).exists() else None
        m = r.data.metrics
        out.append({"organism": organism_label(r), "method": card.method if card else "?",
                    "attack": r.data.params["attack"], "auc": m["auc"], "auc_low": m.get("auc_low", float("nan")),
                    "auc_high": m.get("auc_high", float("nan")), "reduction_at_0.9": m["reduction_at_0.9"],
                    "triggered": card.metrics.get("triggered_rate", float("nan")) if card else float("nan"),
                    "untriggered": card.metrics.get("untriggered_rate", float("nan")) if card else float("nan"),
                    "trials": int(m.get("trials_complete", 0) + m.get("trials_pruned", 0)),
                    "converged": bool(m.get("converged", 0.0)), "run_id": r.info.run_id})
    return sorted(out, key=lambda x: (x["attack"], x["auc"]))


def sweep_points(run_id: str) -> list[frontier.Point]:
    """The frontier points a sweep logged (``frontier/points.json``)."""
    logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/frontier/points.json")
    cols = logged["columns"]
    c, m = cols.index("capability"), cols.index("removal")
    return [frontier.Point(row[c], row[m]) for row in logged["data"]]


def table(report: list[dict]) -> str:
    """The report as a markdown table."""
    head = ("| organism | method | attack | AUC [95% over trials] | reduction at 0.9 | trials | search "
            "| triggered | untriggered |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['organism']} | {r['method']} | {r['attack']} | "
              f"{r['auc']:.3f} [{r['auc_low']:.2f}, {r['auc_high']:.2f}] | {r['reduction_at_0.9']:.2f} "
              f"| {r['trials']} | {'converged' if r['converged'] else 'not converged: run more trials'} "
              f"| {r['triggered']:.2f} | {r['untriggered']:.2f} |" for r in report]
    return "\n".join(lines)


def run(cfg: ReportConfig) -> list[dict]:
    """Build, print and log the report."""
    report = rows(latest_sweeps(cfg.experiment, cfg.parent))
    if cfg.parent:
        require(bool(report), "parent", cfg.parent,
                f"no finished sweep under this run in experiment {cfg.experiment!r}")
    text = table(report)
    print(text)
    with tracking.run("report", "robustness report"):
        mlflow.log_text(text + "\n", "report.md")
        tracking.log_table({k: [r[k] for r in report] for k in report[0] if k != "run_id"} if report else {},
                           "report.json")
        for attack in sorted({r["attack"] for r in report}):
            curves = {}
            for r in (x for x in report if x["attack"] == attack):
                curves[r["organism"]] = sweep_points(r["run_id"])
            fig = plots.overlay_figure(curves, f"organisms against {attack}")
            tracking.log_figure(fig, f"frontiers/{attack}.png")
            plots.plt.close(fig)
    return report
