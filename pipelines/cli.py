"""The ``mo`` command: one subcommand per step, each a typed function.

    mo --help
    mo <step> --help

Relative paths (outputs such as ``organisms/``, ``mlflow.db``, ``optuna.db``) are taken from
the working directory, or from ``$MO_WORKDIR`` when it is set. A user mistake prints one line,
``mo: error: <field>=<value>: <reason>``, and exits with code 2; nothing else is printed as a
traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType

from mlproject import stopping
from mlproject.errors import TrackingLost, UserError, require
from pipelines import args

# subcommand -> (settings module under pipelines/, its settings dataclass, module of its ``run``, one-line help).
# A step whose work needs torch, transformers or MLflow keeps it in a module of its own (``<step>_run``),
# imported once the settings module's ``check`` has passed: together those libraries take seconds to
# import, which `mo backdoors`, `mo --help` and a mistyped flag or path do not need.
STEPS: dict[str, tuple[str, str, str, str]] = {
    "base": ("base", "BaseConfig", "base_run", "train the toy base model and write its model card"),
    "evaluate": ("evaluate", "EvalConfig", "evaluate", "evaluate a model (toy or Hugging Face)"),
    "insert": ("insert", "InsertConfig", "insert_run", "make a model organism: insert a backdoor and measure it"),
    "attack": ("attack", "AttackConfig", "attack_run",
               "attack an organism with untargeted training; trace its frontier"),
    "sweep": ("sweep", "SweepConfig", "sweep_run",
              "search the blue team's hyperparameters with Optuna; trace the frontier"),
    "promote": ("promote", "PromoteConfig", "promote", "set registry aliases from robustness tags by a policy"),
    "report": ("report", "ReportConfig", "report", "print and log the robustness table and overlaid frontiers"),
    "grid": ("grid", "GridConfig", "grid", "run a grid of a step from a YAML config (configs/)"),
    "server": ("server", "ServerConfig", "server",
               "start an MLflow tracking server (SQLite/PostgreSQL, local/S3 artifacts, basic auth)"),
    "sync": ("sync", "SyncConfig", "sync", "upload what steps kept while the tracking server was away"),
    "backdoors": ("backdoors_cmd", "CatalogueConfig", "backdoors_cmd", "print the backdoor catalogue"),
    "demo": ("demo", "DemoConfig", "demo_run", "run the flow on the embedded default"),
}


def settings(name: str) -> tuple[ModuleType, type]:
    """``(settings module, settings dataclass)`` of the subcommand ``name``."""
    module_name, config, _, _ = STEPS[name]
    module = importlib.import_module(f"pipelines.{module_name}")
    return module, getattr(module, config)


def runner(name: str) -> Callable:
    """The ``run`` function of the subcommand ``name``, importing the module that holds the work."""
    return importlib.import_module(f"pipelines.{STEPS[name][2]}").run


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``mo`` and its subcommands.

    With ``only``, the flags of that subcommand alone are built (the others are listed by name
    and help), so only its module is imported.
    """
    p = args.Parser(prog="mo", description="Model organisms: insert, attack, evaluate, trace, keep.")
    sub = p.add_subparsers(dest="step", required=True)
    for name, (_, _, _, help_) in STEPS.items():
        flags = sub.add_parser(name, help=help_, description=help_)
        if only is None or name == only:
            args.add_flags(flags, settings(name)[1])
    return p


# What the libraries read from the environment when they are imported: set before a step imports
# them, so that one importing them only when it runs (``mo evaluate``) is as quiet as the rest.
# A value the user has set is kept.
QUIET_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # MLflow sets its loggers' level when imported: "creating tables …" lines
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # "Generating train split" when a data file is read
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # and transformers' own bars, which follow the hub's setting
}


def _quiet() -> None:
    """Keep the terminal for progress bars and results: library chatter goes to the log level.

    Runs once the step's module is imported, for the libraries it imported; :data:`QUIET_ENV`
    covers the ones it imports later.
    """
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "creating experiment …" lines
    # peft reads an attribute that transformers has renamed: a note between the two libraries mo pins
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if "optuna" in sys.modules:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial: MLflow has them
        stopping.quiet_while_stopping("optuna")
        # APIs mo pins, not the user's concern
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if "transformers" in sys.modules:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


def _dashed(arg: str) -> str:
    """``--near_miss_share`` as ``--near-miss-share``: the spelling ``mlflow run -P near_miss_share=…`` passes.

    MLflow appends a parameter its entry point does not declare as ``--<name> <value>``, with
    the settings' own underscores; values (after ``=`` or as the next word) are left alone.
    """
    if not arg.startswith("--"):
        return arg
    flag, eq, value = arg.partition("=")
    return flag.replace("_", "-") + eq + value


def _close_bars() -> None:
    """Progress bars a stopped step left open are closed, so that its last line stands alone."""
    if "tqdm" in sys.modules:  # no bar was ever shown otherwise (and mo's start stays free of the import)
        from mlproject import progress

        progress.close_all()


def _tag_project_run(reason: str) -> None:
    """Inside ``mlflow run`` the run exists before mo starts: a mistake found before mo's own run began
    is written on it too, as ``mo.error``, so that its FAILED status says why."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    import mlflow

    try:
        mlflow.MlflowClient().set_tag(run_id, "mo.error", reason[:5000])
    except Exception:  # the store is the problem: the line above said so
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mo`` console script."""
    argv = [_dashed(a) for a in (sys.argv[1:] if argv is None else argv)]
    step = argv[0] if argv and argv[0] in STEPS else ""
    # before the step's settings are imported: huggingface_hub reads its progress-bar switch once, at import
    if step != "server":  # the tracking server keeps MLflow's own log lines: its operator reads them
        for name, value in QUIET_ENV.items():
            os.environ.setdefault(name, value)
    ns = parser(only=step).parse_args(argv)
    module, cls = settings(ns.step)
    # SIGTERM ends a step as Ctrl-C does (the server supervises mlflow's and handles its own)
    with stopping.on_signals() if ns.step != "server" else contextlib.nullcontext():
        code = _run(ns, module, cls)
    # a launch's processes leave it together (distributed.launched(), read here without importing torch for the
    # steps that never need it)
    if code == 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from mlproject import distributed

        distributed.finish()
    return code


def _run(ns: argparse.Namespace, module: ModuleType, cls: type) -> int:
    """Build the settings, check them, run the step and print its summary; returns the exit code."""
    try:
        workdir = os.environ.get("MO_WORKDIR")
        if workdir:  # `mlflow run` starts entry points in the project folder: outputs go here instead
            require(os.path.isdir(workdir), "MO_WORKDIR", workdir, "no such folder")
            os.chdir(workdir)
        cfg = args.build(cls, ns)
        if STEPS[ns.step][2] != STEPS[ns.step][0]:  # its work imports torch: check paths and references first
            module.check(cfg)
        fn = runner(ns.step)
        _quiet()
        result = fn(cfg)
    except UserError as err:
        _close_bars()
        print(f"mo: error: {err}", file=sys.stderr)
        _tag_project_run(str(err))
        return 2
    except TrackingLost as lost:  # not the user's mistake, and nothing is lost: one line says where it waits
        _close_bars()
        print(f"mo: {lost}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: everything has unwound, and the run ended FAILED
        _close_bars()
        print(f"mo: {stop or 'stopped by SIGINT'}; the run is marked FAILED with that reason", file=sys.stderr)
        return stopping.exit_code(stop)
    if os.environ.get("RANK", "0") != "0":  # one summary for a launch of several processes: the main one's
        return 0
    if ns.step in ("evaluate", "insert"):  # their own readable summary
        print(module.summary(result))
    if ns.step == "sweep":
        print({k: v for k, v in result.items() if k not in ("pareto", "frontier", "convergence")})
        print(result["convergence"])
    if ns.step == "attack":
        print({k: round(v, 3) for k, v in result.items() if k != "points"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
