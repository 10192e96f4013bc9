"""Tags on one registry version written by several processes at once: no write fails on another's, and a record
of several tags ends one writer's whole."""
from __future__ import annotations

import threading

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlproject import tracking
from registry import tag_writes
from tests import servers

MINE = {"robustness.pirate.auc": "0.61", "robustness.pirate.points": "[[1,0]]", "robustness.pirate.run_id": "a"}
THEIRS = {"robustness.pirate.auc": "0.74", "robustness.pirate.points": "[[1,0.5]]", "robustness.pirate.run_id": "b"}


def _version(client: MlflowClient) -> tuple[str, str]:
    run = client.create_run(client.create_experiment("x")).info  # a version's source lies in a run's artifacts
    client.create_registered_model("mo-x")
    return "mo-x", client.create_model_version("mo-x", f"{run.artifact_uri}/model", run_id=run.run_id).version


def test_a_record_interleaved_with_another_ends_one_writer_s_whole(workdir, monkeypatch):
    client = MlflowClient(tracking.tracking_uri())
    name, version = _version(client)
    real = MlflowClient.set_model_version_tag
    writes = []

    def another_attack_between(self, *args):  # the other process writes its whole record after this one's first tag
        real(self, *args)
        writes.append(args)
        if len(writes) == 1:
            for key, value in THEIRS.items():
                real(client, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", another_attack_between)
    tag_writes.set_record(client, name, version, MINE)
    now = client.get_model_version(name, version).tags
    assert {k: now[k] for k in MINE} == MINE  # read back as a mix (its auc, their points): written again
    assert len(writes) == 2 * len(MINE)


def test_a_record_that_stays_mixed_is_an_error_not_a_silent_mix(workdir, monkeypatch):
    client = MlflowClient(tracking.tracking_uri())
    name, version = _version(client)
    real = MlflowClient.set_model_version_tag

    def always_another_after(self, *args):  # another writer's tag lands after each of this one's
        real(self, *args)
        real(client, name, version, "robustness.pirate.auc", THEIRS["robustness.pirate.auc"])

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", always_another_after)
    monkeypatch.setattr(tag_writes, "RECORD_WAIT", 1.0)
    with pytest.raises(MlflowException, match="stayed a mix of several writers'"):
        tag_writes.set_record(client, name, version, MINE)


@pytest.mark.slow
def test_threads_setting_the_same_tags_at_once_on_a_postgresql_server_all_succeed(workdir):
    # MLflow's server looks for a tag and then inserts it: eight writers of one new tag at once collided
    # ("duplicate key value violates unique constraint"), which failed one of eight load-test attacks
    with servers.postgres_database() as db, servers.tracking_server(db, str(workdir / "artifacts"), workdir) as url:
        client = MlflowClient(url)
        name, version = _version(client)
        errors, start = [], threading.Barrier(8)

        def write(i: int) -> None:
            try:
                start.wait()
                tag_writes.set_record(client, name, version, {f"t{k}": str(i) for k in range(12)})
            except Exception as err:  # noqa: BLE001 -- every failure is the finding
                errors.append(err)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors[:2]
        tags = client.get_model_version(name, version).tags
        assert len({tags[f"t{k}"] for k in range(12)}) == 1  # one writer's record, whole
