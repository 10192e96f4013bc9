"""Tags on one registry version written by several processes at once (a team's attacks on one organism).

MLflow's server sets a version tag by looking for it and then inserting it, so two processes setting the
same tag at the same moment both insert and the second fails on the key ("duplicate key", "UNIQUE
constraint failed"); and a record of several tags written by two processes interleaved ends a mix of
both. :func:`set_tag` tries a collided write again (the row now exists: it is updated), and
:func:`set_record` reads the record back and writes it again until it is one writer's whole.
"""
from __future__ import annotations

import itertools
import random
import time

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

TRIES = 5
COLLIDED = ("UniqueViolation", "duplicate key", "UNIQUE constraint failed", "Duplicate entry")


def set_tag(client: MlflowClient, name: str, version: str, key: str, value: str) -> None:
    """Set one tag, trying again when another process's insert of the same tag collided with this one's."""
    for attempt in range(TRIES):
        try:
            client.set_model_version_tag(name, version, key, value)
            return
        except MlflowException as err:
            if attempt == TRIES - 1 or not any(word in str(err) for word in COLLIDED):
                raise
            time.sleep(random.uniform(0.05, 0.5))


def set_record(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    """Set ``tags`` so that they end as one writer's record: this one's whole, or another's written after it.

    Each round writes every tag and reads them back; a mix of this record and another's (two writers
    interleaved) is written again after a random pause that grows with each round, so that the
    writers fall out of step and one finishes last. A record still mixed after ``RECORD_WAIT``
    seconds is an error, not a silent mix.
    """
    deadline = time.monotonic() + RECORD_WAIT
    for attempt in itertools.count():
        if attempt:  # so that one of the interleaved writers finishes after the others
            time.sleep(random.uniform(0.1, 1.0) * min(2 ** (attempt - 1), 8))
        for key, value in tags.items():
            set_tag(client, name, version, key, value)
        now = client.get_model_version(name, version).tags
        ours = sum(now.get(key) == value for key, value in tags.items())
        if ours in (0, len(tags)):  # ours whole, or wholly another's (written after ours)
            return
        if time.monotonic() > deadline:
            raise MlflowException(f"the tags {sorted(tags)[0]}… of {name} version {version} stayed a mix of several "
                                  f"writers' for {RECORD_WAIT} s; write them again (mo report lists the runs)")


RECORD_WAIT = 120.0
