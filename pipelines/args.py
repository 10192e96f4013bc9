"""Typed step settings as dataclasses, turned into command-line flags.

A step's settings are one dataclass; each field's ``help`` metadata is its flag's help,
and ``--field-name`` is its flag. The CLI and the MLflow Project entry points build the
same dataclass, so a setting means the same thing everywhere.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with a default, a help line and optional choices."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        meta = {"help": f.metadata.get("help", ""), "dest": f.name}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, **meta)
            continue
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        default = f.default if f.default is not dataclasses.MISSING else None
        # a field typed without None (``organism: str``) whose default is None has no usable default
        required = f.default is dataclasses.MISSING or (f.default is None and type(None) not in typing.get_args(kind))
        parser.add_argument(flag, type=base, default=default, required=required,
                            choices=f.metadata.get("choices"), **meta)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``mo <step>: error: …``) and exit code 2, like mo's own."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build(cls: type[T], ns: argparse.Namespace) -> T:
    """The dataclass ``cls`` from parsed flags (its ``__post_init__`` validates)."""
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})
