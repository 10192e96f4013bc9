"""Reading a user's YAML file (a grid config, a search space) into a mapping, or one clear error."""
from __future__ import annotations

from pathlib import Path

import yaml

from mlproject.errors import UserError, require


def mapping(path: Path, field: str, shown: str) -> dict:
    """The top-level mapping of the YAML file ``path``; an empty file gives ``{}``.

    ``field`` and ``shown`` name the file in the error (``--config`` and what the user typed).
    """
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())  # a YAML error spans several lines; the CLI shows one
        raise UserError(field, shown, f"not valid YAML ({reason})") from None
    require(isinstance(spec, dict), field, shown, f"must hold a mapping of settings, not a {type(spec).__name__}")
    return spec
