"""Real services on loopback for tests: an S3-compatible store (moto), a tracking server, PostgreSQL.

Each is started as its own process group and stopped (with its children) when the test ends.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``url`` answers 200 (or fail with the process's output if it died). A server on a fresh
    PostgreSQL database runs every migration first: on a slow machine that takes minutes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {output(proc)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout}s: {output(proc)}")


@contextmanager
def process(cmd: list[str], health: str, env: dict | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` until the block ends; ``health`` is polled before the block starts. What it prints goes to a file
    (:func:`output` reads it): a pipe nobody reads fills at 64 KB and the server, logging each request, stops."""
    log = tempfile.NamedTemporaryFile("w+b", prefix="server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = Path(log.name)
    log.close()
    try:
        wait_http(health, proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.log_path.unlink(missing_ok=True)


def output(proc: subprocess.Popen) -> str:
    """What a process started by :func:`process` has printed so far."""
    path = getattr(proc, "log_path", None)
    if path is None:  # started elsewhere, with a pipe
        return proc.stdout.read() if proc.stdout else ""
    return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """A moto S3 server on loopback holding an empty ``bucket``; yields its endpoint URL."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    exe = str(Path(sys.executable).with_name("moto_server"))
    with process([exe, "-H", "127.0.0.1", "-p", str(port)], f"{endpoint}/moto-api/", env=S3_CREDENTIALS):
        boto3.client("s3", endpoint_url=endpoint, **_boto_credentials()).create_bucket(Bucket=bucket)
        yield endpoint


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    """Every object key in ``bucket``."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _boto_credentials() -> dict:
    return {"aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_CREDENTIALS["AWS_DEFAULT_REGION"]}


@contextmanager
def tracking_server(backend: str, artifacts: str, cwd: Path, env: dict | None = None,
                    port: int | None = None) -> Iterator[str]:
    """``mo server`` on ``port`` (a free loopback port if None); yields its URL."""
    port = port or free_port()
    exe = str(Path(sys.executable).with_name("mo"))
    cmd = [exe, "server", "--backend", backend, "--artifacts", artifacts, "--port", str(port), "--workers", "1"]
    with process(cmd, f"http://127.0.0.1:{port}/health", env=env, cwd=cwd):
        yield f"http://127.0.0.1:{port}"


def postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(f"{POSTGRES}/test", connect_timeout=3).close()
        return True
    except Exception:
        return False


def require_postgres() -> None:
    """Skip with the reason when PostgreSQL is absent, unless ``MO_REQUIRE_POSTGRES=1`` makes it a failure."""
    if postgres_available():
        return
    reason = f"PostgreSQL is not reachable at {POSTGRES}/test"
    if os.environ.get("MO_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason + " and MO_REQUIRE_POSTGRES=1")
    pytest.skip(reason)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards; yields its URL."""
    import psycopg

    require_postgres()
    name = f"mo_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(f"{POSTGRES}/test", autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
