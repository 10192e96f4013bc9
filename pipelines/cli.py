"""The ``mo`` command: one subcommand per step, each a typed function.

    mo --help
    mo <step> --help

Relative paths (outputs such as ``organisms/``, ``mlflow.db``, ``optuna.db``) are taken from
the working directory, or from ``$MO_WORKDIR`` when it is set. A user mistake prints one line, ``mo: error: <field>=<value>: <reason>``, and exits with
code 2; nothing else is printed as a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from mlproject.errors import UserError, require
from pipelines import args, attack, backdoors_cmd, base, demo, evaluate, grid, insert, promote, report, server, sweep

# subcommand -> (settings dataclass, function, one-line help)
STEPS: dict[str, tuple[type, Callable, str]] = {
    "base": (base.BaseConfig, base.run, "train the toy base model and write its model card"),
    "evaluate": (evaluate.EvalConfig, evaluate.run, "evaluate a model (toy or Hugging Face)"),
    "insert": (insert.InsertConfig, insert.run, "make a model organism: insert a backdoor and measure it"),
    "attack": (attack.AttackConfig, attack.run, "attack an organism with untargeted training; trace its frontier"),
    "sweep": (sweep.SweepConfig, sweep.run, "search the blue team's hyperparameters with Optuna; trace the frontier"),
    "promote": (promote.PromoteConfig, promote.run, "set registry aliases from robustness tags by a policy"),
    "report": (report.ReportConfig, report.run, "print and log the robustness table and overlaid frontiers"),
    "grid": (grid.GridConfig, grid.run, "run a grid of a step from a YAML config (configs/)"),
    "server": (server.ServerConfig, server.run, "start an MLflow tracking server (SQLite/PostgreSQL, local/S3 artifacts, basic auth)"),
    "backdoors": (backdoors_cmd.CatalogueConfig, backdoors_cmd.run, "print the backdoor catalogue"),
    "demo": (demo.DemoConfig, demo.run, "run the flow on the embedded default"),
}


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``mo`` and its subcommands."""
    p = args.Parser(prog="mo", description="Model organisms: insert, attack, evaluate, trace, keep.")
    sub = p.add_subparsers(dest="step", required=True)
    for name, (cls, _, help_) in STEPS.items():
        args.add_flags(sub.add_parser(name, help=help_, description=help_), cls)
    return p


def _quiet() -> None:
    """Keep the terminal for progress bars and results: library chatter goes to the log level."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "creating experiment …" lines
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial: MLflow has them
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # APIs mo pins, not the user's concern
    # peft reads an attribute that transformers has renamed: a note between the two libraries mo pins
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mo`` console script."""
    ns = parser().parse_args(argv)
    cls, fn, _ = STEPS[ns.step]
    _quiet()
    try:
        workdir = os.environ.get("MO_WORKDIR")
        if workdir:  # `mlflow run` starts entry points in the project folder: outputs go here instead
            require(os.path.isdir(workdir), "MO_WORKDIR", workdir, "no such folder")
            os.chdir(workdir)
        result = fn(args.build(cls, ns))
    except UserError as err:
        print(f"mo: error: {err}", file=sys.stderr)
        return 2
    if ns.step == "evaluate":
        print(evaluate.summary(result))
    if ns.step == "insert":
        print(insert.summary(result))
    if ns.step == "sweep":
        print({k: v for k, v in result.items() if k != "pareto"})
    if ns.step == "attack":
        print({k: round(v, 3) for k, v in result.items() if k != "points"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
