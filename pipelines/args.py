"""Typed step settings as dataclasses, turned into command-line flags.

A step's settings are one dataclass whose fields are made with :func:`mlproject.options.opt`;
each field's ``help`` metadata is its flag's help, and ``--field-name`` is its flag. The CLI and
the MLflow Project entry points build the same dataclass, so a setting means the same thing
everywhere.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def add_flags(parser: argparse.ArgumentParser, cls: type, hidden: bool = False) -> None:
    """One ``--flag`` per field of dataclass ``cls`` (fields declared ``hidden`` too, with ``hidden``)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("hidden") and not hidden:
            continue
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        meta = {"help": f.metadata.get("help", ""), "dest": f.name}
        if kind is bool:
            parser.add_argument(flag, action=Switch, default=f.default, **meta)
            continue
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        default = f.default if f.default is not dataclasses.MISSING else None
        # a field typed without None (``organism: str``) whose default is None has no usable default
        required = f.default is dataclasses.MISSING or (f.default is None and type(None) not in typing.get_args(kind))
        parser.add_argument(flag, type=base, default=default, required=required,
                            choices=f.metadata.get("choices"), **meta)


TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class Switch(argparse.Action):
    """A yes/no setting: ``--cot`` and ``--no-cot``, or ``--cot true`` / ``--cot false``.

    The spelled-out value is what ``mlflow run -P cot=true`` passes for a setting its entry
    point does not declare (``--cot true``); argparse's ``BooleanOptionalAction`` takes no value.
    """

    def __init__(self, option_strings: list[str], dest: str, default: bool = False, help: str | None = None) -> None:
        negated = ["--no-" + s[2:] for s in option_strings]
        super().__init__(option_strings + negated, dest, nargs="?", default=default, help=help, metavar="true|false")

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any,
                 flag: str | None = None) -> None:
        if flag and flag.startswith("--no-"):
            if value is not None:
                parser.error(f"argument {flag}: takes no value")
            setattr(ns, self.dest, False)
            return
        word = "true" if value is None else str(value).lower()
        if word not in TRUE + FALSE:
            parser.error(f"argument {flag}: expected true or false, not {value!r}")
        setattr(ns, self.dest, word in TRUE)



class Formatter(argparse.HelpFormatter):
    """Help that shows a :class:`Switch` as ``--cot [true|false], --no-cot``."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, Switch):
            return ", ".join(s if s.startswith("--no-") else f"{s} [true|false]" for s in action.option_strings)
        return super()._format_action_invocation(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``mo <step>: error: …``) and exit code 2, like mo's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        # no prefixes: `--init` must not quietly mean `--init-std`, and a command stays what it says as flags are added
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build(cls: type[T], ns: argparse.Namespace) -> T:
    """The dataclass ``cls`` from parsed flags (its ``__post_init__`` validates); fields without a flag keep their
    default."""
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)})
