"""The machine a run ran on: what decides whether two runs of one command give the same numbers.

On one machine, training on the CPU is bit-reproducible from its seed. Across machines it
need not be: torch's own kernels and MKL's matrix products pick their code by the CPU's
instruction set and vendor, which changes the order of floating-point sums. The shipped
recipe of ``mo base`` rebuilt its weights bit for bit on the kind of machine it was made
on, and gave other weights (and a model with other misses) on an Intel Xeon with AVX-512.
So every run records what it ran on.
"""
from __future__ import annotations

import functools
import platform


@functools.cache
def describe() -> dict[str, str]:
    """``cpu`` (model name), ``cpu_capability`` (the instruction set torch's kernels use), ``threads``, and ``gpu``
    where one is used."""
    import torch  # imported here: tracking imports this module, and commands that never train stay light

    info = {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": str(torch.get_num_threads())}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def cpu_name() -> str:
    """The CPU's model name, e.g. ``Intel(R) Xeon(R) Processor``.

    Read from ``/proc/cpuinfo`` by hand: ``py-cpuinfo`` gives the same line through a
    subprocess and another dependency, and ``platform.processor()`` is empty or only the
    architecture on Linux; that is the fallback elsewhere.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
