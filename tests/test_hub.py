"""How ``mlproject.hub`` decides whether the hub can be reached: a real connection attempt on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _reachable(env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items()
            if "PROXY" not in k.upper() and k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    code = "from mlproject import hub; print(hub.reachable())"
    out = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture()
def ports():
    """A port nothing listens on, and one that accepts connections (a stand-in proxy)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield closed_port, listening.getsockname()[1]


def test_an_endpoint_that_refuses_is_unreachable_and_one_that_listens_is_reachable(ports):
    closed, open_ = ports
    assert _reachable({"HF_ENDPOINT": f"http://127.0.0.1:{closed}"}) == "False"
    assert _reachable({"HF_ENDPOINT": f"http://127.0.0.1:{open_}"}) == "True"
    assert _reachable({"HF_ENDPOINT": f"http://127.0.0.1:{open_}", "HF_HUB_OFFLINE": "1"}) == "False"


def test_behind_a_proxy_the_proxy_is_what_must_answer(ports):
    closed, proxy = ports
    endpoint = {"HF_ENDPOINT": f"http://127.0.0.1:{closed}"}
    assert _reachable(endpoint | {"HTTP_PROXY": f"http://127.0.0.1:{proxy}"}) == "True"
    assert _reachable(endpoint | {"HTTP_PROXY": f"http://127.0.0.1:{closed}"}) == "False"
    assert _reachable(endpoint | {"HTTP_PROXY": f"http://127.0.0.1:{proxy}", "NO_PROXY": "127.0.0.1"}) == "False"
    assert _reachable(endpoint | {"ALL_PROXY": f"http://127.0.0.1:{proxy}"}) == "True"
