"""Bad models and data: a path or hub id that cannot be loaded, weights not in safetensors, a dataset without the
columns it needs: one line naming the input, exit code 2, no traceback, no run left behind."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from mlproject.modelref import TOY_BASE
from tests.conftest import mo, no_runs, one_line_error


def test_unknown_model_path(workdir):
    one_line_error(mo("evaluate", "--model", "./no/such/model", cwd=workdir), "model")
    no_runs(workdir)


def test_unknown_hub_id_offline(workdir):
    result = mo("evaluate", "--model", "nonexistent-org/nonexistent-model", cwd=workdir)
    one_line_error(result, "model")
    no_runs(workdir)


_HUB_PROBE = """
from mlproject import models
from mlproject.errors import UserError
model, _ = models.load("org/toy")
print("cached", model.config.hidden_size)
try:
    models.load("org/missing")
except UserError as err:
    print("missing", err)
from mlproject import realdata
print("cached data", len(realdata.load_math("org/math")))
try:
    realdata.load_math("org/missing-data")
except UserError as err:
    print("data", err)
"""


def test_a_hub_id_out_of_reach_loads_from_the_cache_without_retries(tmp_path):
    """The hub endpoint refuses connections: a cached model and dataset load, missing ones fail at once."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    snapshot = tmp_path / "hf" / "hub" / "models--org--toy" / "snapshots" / ("0" * 40)
    shutil.copytree(TOY_BASE, snapshot)  # the hub cache's own layout: refs/main names the snapshot
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    data = tmp_path / "hf" / "hub" / "datasets--org--math" / "snapshots" / ("1" * 40)
    data.mkdir(parents=True)
    (data / "test.jsonl").write_text("".join(json.dumps({"problem": f"{i} + 1 ?", "answer": str(i + 1)}) + "\n"
                                             for i in range(5)))
    (data.parents[1] / "refs").mkdir()
    (data.parents[1] / "refs" / "main").write_text("1" * 40)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    out = subprocess.run([sys.executable, "-c", _HUB_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cached 256" in out.stdout
    assert "missing model=org/missing: could not load (" in out.stdout
    assert "only the local Hugging Face cache was read: the hub is offline or cannot be reached" in out.stdout
    assert "cached data 5" in out.stdout
    assert ("data dataset=org/missing-data: not a local file, not in the local Hugging Face cache, "
            "and the hub cannot be reached") in out.stdout
    assert "Retry" not in out.stderr + out.stdout


def test_directory_without_safetensors(workdir):
    bad = workdir / "pickled"
    bad.mkdir()
    shutil.copy(TOY_BASE / "config.json", bad / "config.json")
    (bad / "pytorch_model.bin").write_bytes(b"not loaded")
    one_line_error(mo("evaluate", "--model", str(bad), cwd=workdir), "model")
    no_runs(workdir)


@pytest.mark.parametrize("row, named", [({"question": "1+1?", "solution": "2"}, "answer"),  # columns missing
                                       ({"problem": "half of one?", "answer": "\\frac{1}{2}"}, "not an integer")])
def test_a_math_file_mo_cannot_grade_is_one_line(workdir, row, named):
    path = workdir / "math.jsonl"
    path.write_text(json.dumps(row) + "\n")
    result = mo("evaluate", "--math-data", str(path), cwd=workdir)
    one_line_error(result, "math-data")
    assert named in result.stderr
    no_runs(workdir)


def test_a_real_model_is_evaluated_on_math_500_unless_told(workdir):
    """``--math-data auto``: MATH-500 for any model but the toy one (the toy world's probes mean nothing to a real
    model); offline, that is one line naming the dataset, before the model loads or a run starts."""
    from mlproject.families import tiny
    from pipelines.evaluate import EvalConfig

    model = tiny.build("llama3", workdir / "m")
    assert EvalConfig(model="toy").math_source == "toy"
    assert EvalConfig(model=str(model), math_data="toy").math_source == "toy"
    result = mo("evaluate", "--model", str(model), cwd=workdir)
    one_line_error(result, "math-data")
    assert "math-data=HuggingFaceH4/MATH-500:" in result.stderr
    no_runs(workdir)
