"""The MLflow Project: every entry point parses, and one runs end to end with `mlflow run`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import yaml

from pipelines import cli
from tests.conftest import REPO


def test_every_step_is_an_entry_point():
    entries = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    assert set(entries) >= {"base", "insert", "attack", "evaluate", "sweep", "promote", "report", "demo"}
    for name, entry in entries.items():
        assert entry["command"].startswith(f"mo {name}")
        flags = {a.option_strings[0] for a in cli.parser()._subparsers._group_actions[0].choices[name]._actions
                 if a.option_strings}
        for param in entry.get("parameters", {}):
            assert "--" + param.replace("_", "-") in flags, (name, param)


def test_mlflow_run_evaluate(workdir):
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    exe = Path(sys.executable).with_name("mlflow")
    params = ["-P", "n_math=10", "-P", "n_instructions=10", "-P", "n_pirate=4", "-P", "per_backdoor=2"]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")}
    env |= {"MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1", "PATH": f"{exe.parent}{os.pathsep}{env['PATH']}"}
    result = subprocess.run([str(exe), "run", str(REPO), "-e", "evaluate", *params, "--env-manager", "local",
                             "--experiment-name", "evaluate"], cwd=workdir, capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["evaluate"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["n_math"] == "10" and "math.accuracy" in runs[0].data.metrics
