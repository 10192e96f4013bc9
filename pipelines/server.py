"""Start an MLflow tracking server for a team: SQLite or PostgreSQL, local or S3 artifacts, basic auth.

    mo server                                    # sqlite:///mlflow.db, ./mlartifacts, 127.0.0.1:5000
    mo server --backend postgresql://mo@db:5432/mlflow --artifacts s3://bucket/mlflow --host 0.0.0.0
    mo server --auth                             # basic auth (see below)

Then point every ``mo`` command at it: ``export MLFLOW_TRACKING_URI=http://<host>:<port>``.

Artifacts are served through the server (``mlflow-artifacts:/``), so only the server needs S3
credentials: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and, for MinIO or another
S3-compatible store, ``MLFLOW_S3_ENDPOINT_URL``. Basic auth needs
``MLFLOW_FLASK_SERVER_SECRET_KEY`` and, on first start, ``MLFLOW_AUTH_ADMIN_PASSWORD`` (12+
characters); clients then set ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.

This is ``mlflow server`` with the flags above; ``--dry-run`` prints the exact command.
Credentials in URIs are never printed.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import sys
from dataclasses import dataclass

from mlproject.errors import UserError, require
from mlproject.options import opt
from mlproject.tracking import redact

# a host name (letters, digits, '-' and '.'), an IPv4 address, or an IPv6 one (hex digits and colons)
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")

_BACKENDS = ("sqlite", "postgresql", "mysql", "mssql")


@dataclass(frozen=True)
class ServerConfig:
    """Settings of ``mo server``."""

    backend: str = opt("sqlite:///mlflow.db", "backend store URI: sqlite:///FILE or postgresql://user@host:port/db")
    artifacts: str = opt("./mlartifacts", "artifact destination: a directory or s3://bucket/prefix")
    host: str = opt("127.0.0.1", "interface to listen on (0.0.0.0 for every interface)")
    port: int = opt(5000, "port to listen on")
    workers: int = opt(2, "server worker processes")
    allowed_hosts: str | None = opt(None, "Host headers the server accepts beyond localhost and private IPs "
                                          "(mlflow.example.com,…)")
    auth: bool = opt(False, "basic auth (MLflow's basic-auth app)")
    dry_run: bool = opt(False, "print the mlflow server command and exit")

    def __post_init__(self) -> None:
        scheme = self.backend.split(":", 1)[0].split("+", 1)[0]
        require(scheme in _BACKENDS, "backend", redact(self.backend),
                f"must be a database URI ({', '.join(_BACKENDS)})")
        require(0 < self.port < 65536, "port", self.port, "must be in 1..65535")
        require(HOST.fullmatch(self.host) is not None, "host", self.host,
                "not a host name or an IP address (127.0.0.1, 0.0.0.0, ::, mlflow.example.com)")
        require(self.workers > 0, "workers", self.workers, "must be > 0")
        require(not self.artifacts.startswith("s3:/") or self.artifacts.startswith("s3://") and len(self.artifacts) > 5,
                "artifacts", self.artifacts, "an S3 destination is s3://bucket[/prefix]")


def command(cfg: ServerConfig) -> list[str]:
    """The ``mlflow server`` command line for ``cfg``; the backend store goes in :func:`environment`.

    A command line is world-readable (``ps`` shows it to every user of the machine), so the
    backend URI, which may hold the database's password, is passed in the environment, which
    only its owner can read.
    """
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--artifacts-destination", cfg.artifacts, "--host", cfg.host, "--port", str(cfg.port),
           "--workers", str(cfg.workers)]
    if cfg.allowed_hosts:
        # MLflow's host-header check admits localhost and private IPs; a server reached by name needs its name here.
        cmd += ["--allowed-hosts", cfg.allowed_hosts]
    return cmd + (["--app-name", "basic-auth"] if cfg.auth else [])


def environment(cfg: ServerConfig) -> dict[str, str]:
    """The server's environment: this one, and the backend store (``mlflow server`` reads it from there)."""
    return {**os.environ, "MLFLOW_BACKEND_STORE_URI": cfg.backend}


def check(cfg: ServerConfig) -> None:
    """Fail early, in one line, on what would otherwise be a server traceback."""
    _check_port(cfg.host, cfg.port)
    if cfg.auth:
        require(bool(os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")), "auth", True,
                "set MLFLOW_FLASK_SERVER_SECRET_KEY (and MLFLOW_AUTH_ADMIN_PASSWORD on first start)")
    if not cfg.backend.startswith("sqlite"):
        import sqlalchemy

        try:
            with sqlalchemy.create_engine(cfg.backend, connect_args={"connect_timeout": 5}).connect():
                pass
        except Exception as err:
            raise UserError("backend", redact(cfg.backend), f"database unreachable ({type(err).__name__})") from None
    if cfg.artifacts.startswith("s3://"):
        require(bool(os.environ.get("AWS_ACCESS_KEY_ID")), "artifacts", cfg.artifacts,
                "an S3 destination needs AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY on the server")


def run(cfg: ServerConfig) -> None:
    """Run the tracking server until this process ends (or print its command with ``--dry-run``)."""
    cmd = command(cfg)
    shown = " ".join([f"MLFLOW_BACKEND_STORE_URI={shlex.quote(redact(cfg.backend))}", "mlflow"]
                     + [shlex.quote(redact(c)) for c in cmd[3:]])
    if cfg.dry_run:
        print(shown)
        return
    check(cfg)
    print(f"mo server: {shown}\nclients:   export MLFLOW_TRACKING_URI=http://{cfg.host}:{cfg.port}", flush=True)
    # this process becomes the supervisor, under a command line without the backend URI (``ps`` shows command lines
    # to every user; the URI, which may hold the database's password, travels in the environment)
    os.execve(sys.executable, [sys.executable, "-m", "pipelines.server", *cmd], environment(cfg))


# A watchdog beside the server: when mo's process is gone (even by SIGKILL, which no handler sees), it ends the
# server's whole process group, so no uvicorn worker or job runner is left answering on the port.
WATCHDOG = """
import os, signal, sys, time
parent, group = int(sys.argv[1]), int(sys.argv[2])
while os.getppid() == parent:
    time.sleep(0.5)
try:
    os.killpg(group, signal.SIGTERM)
    time.sleep(5)
    os.killpg(group, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def supervise(cmd: list[str], env: dict[str, str]) -> None:
    """Run ``cmd`` (``mlflow server`` and the workers it starts) in a process group of its own, until it ends; a
    SIGTERM or Ctrl-C to mo ends the group, and so does mo's death by any signal (the watchdog)."""
    import signal
    import subprocess

    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    # in a session of its own too: a kill of mo's whole process group (kill -9 -<pgid>) must not take it along
    watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(server.pid)],
                                start_new_session=True)

    def stop(signum, frame) -> None:  # ends the group; the wait below then returns
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        code = server.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # its workers, if the server itself went first
        watchdog.kill()
        watchdog.wait()
    if code not in (0, -signal.SIGTERM):
        raise SystemExit(code)


def _check_port(host: str, port: int) -> None:
    """One line, not a server that hangs on "address already in use", when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError("port", port, f"cannot listen on {host}:{port} ({err.strerror}): another server "
                                          "holds it, or choose another --port") from None


if __name__ == "__main__":  # the supervisor that `mo server` becomes
    supervise(sys.argv[1:], dict(os.environ))
