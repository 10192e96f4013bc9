"""Upload what steps kept on disk while the tracking server was away, and end the runs whose process died.

    mo sync

A step that waited ``MO_TRACKING_WAIT`` seconds for an absent server stops and keeps what it
measured in ``.mo-outbox/`` of its working directory; every step that starts a run uploads it
first, and this command does only that (run it in the same working directory, with the same
``MLFLOW_TRACKING_URI``). Runs whose process was killed are ended FAILED with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncConfig:
    """``mo sync`` takes no settings: it works on the store of ``MLFLOW_TRACKING_URI`` and ``.mo-outbox/``."""


def run(cfg: SyncConfig) -> dict[str, list[str]]:
    """Upload kept runs, end dead ones; print and return both lists of run ids."""
    import mlflow

    from mlproject import liveness, outbox, tracking

    uri = tracking.tracking_uri()
    tracking.check_store(uri)
    mlflow.set_tracking_uri(uri)
    outbox.match_mlflow_retries()
    uploaded = outbox.upload(tracking.redact(uri))
    failed = liveness.fail_dead_runs()
    left = sorted(p.stem for p in outbox.folder().glob("*.jsonl")) if outbox.folder().is_dir() else []
    print(f"uploaded {len(uploaded)} kept run(s); ended {len(failed)} run(s) whose process died"
          + (f"; {len(left)} kept for another tracking store stay in {outbox.folder()}" if left else ""))
    return {"uploaded": uploaded, "failed": failed}
