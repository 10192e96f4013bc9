"""What a ``--model`` reference names, checked without loading anything.

``toy`` is the shipped base model; anything else is a local directory or a Hugging Face hub
id. This module imports neither torch nor transformers, so a mistyped path is reported in
well under a second, before a step pays for importing them (:mod:`mlproject.models` loads).
"""
from __future__ import annotations

from pathlib import Path

from mlproject.errors import UserError

TOY_BASE = Path(__file__).parent / "toy" / "base_model"


def resolve(model: str) -> str:
    """``toy`` names the shipped toy base model; anything else is a path or a hub id."""
    return str(TOY_BASE) if model in ("toy", "") else model


def looks_local(ref: str) -> bool:
    """A path rather than a hub id (``org/name``): it exists, or starts like a path."""
    return ref.startswith((".", "/", "~")) or Path(ref).expanduser().exists()


def check(ref: str, field: str = "model") -> None:
    """Fail early, with one line, on a local model reference that cannot load."""
    path = Path(ref).expanduser()
    if not looks_local(ref):
        return  # a hub id: loading tells whether it exists (offline: only if cached)
    if not path.is_dir():
        raise UserError(field, ref, "no such model directory")
    if not any(path.glob("*.safetensors")):
        raise UserError(field, ref, "directory has no *.safetensors weights (other formats are not loaded)")
    if not (path / "config.json").exists():
        raise UserError(field, ref, "directory has no config.json")
