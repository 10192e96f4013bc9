"""Credentials out of what mo prints and logs: URIs are shown and logged, their passwords never."""
from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(://[^/:@\s]*:)[^@/\s]+@")  # the password of scheme://user:password@host


def redact(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` in it replaced by ``***``
    (URIs are printed and logged; credentials never are)."""
    return _CREDENTIALS.sub(r"\1***@", text)
