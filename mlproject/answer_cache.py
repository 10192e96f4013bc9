"""The teacher's answers kept on disk, so that attacks, sweep trials and reruns ask it once per request.

A blue-team dataset on a real model is thousands of teacher generations (the base model, another
model or an endpoint writing QA and pirate answers); every attack and every sweep trial draws
from the same requests. Answers are kept in ``answers.sqlite`` under ``$MO_CACHE_DIR`` (else
``~/.cache/mo``), keyed by who answered (a model folder with its weight files' sizes and times, a
hub id at its cached revision, or an endpoint with its served model), the engine, the token
budget, and the turn. Greedy decoding makes an answer a function of that key. Written with the
standard library's sqlite3 (WAL, one transaction per batch) so that sweep workers share it; delete
the file to start afresh.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from mlproject import paths
from mlproject.worlds.responders import Endpoint, Responder, Turn


def identity(responder: Responder) -> str:
    """Who answers, precisely enough that a changed model is a different key."""
    if isinstance(responder, Endpoint):
        return f"{responder.url}#{responder._model()}"
    from mlproject.modelref import resolve

    ref = resolve(responder.ref)
    path = Path(ref).expanduser()
    if path.is_dir():
        weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.glob("*.safetensors"))
        return json.dumps([str(path.resolve()), weights])
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(ref, "config.json")
    return f"{ref}@{Path(hit).parent.name}" if isinstance(hit, str) else ref  # the snapshot folder is the commit


class Cached:
    """``responder`` whose answers are looked up on disk first; new ones are written back."""

    def __init__(self, responder: Responder, engine: str, path: Path | None = None) -> None:
        self.responder, self.engine = responder, engine
        self.path = path or paths.cache_home() / "answers.sqlite"
        self.hits = self.misses = 0
        self._who: str | None = None

    def complete(self, turns: Sequence[Turn], max_tokens: int) -> list[str]:
        self._who = self._who or identity(self.responder)
        keys = [self._key(t, max_tokens) for t in turns]
        with closing(self._open()) as db:
            found = dict(db.execute(f"select key, answer from answers where key in ({','.join('?' * len(keys))})",
                                    keys).fetchall()) if keys else {}
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits, self.misses = self.hits + len(keys) - len(todo), self.misses + len(todo)
        if todo:
            written = self.responder.complete([turns[i] for i in todo], max_tokens)
            new = {keys[i]: a for i, a in zip(todo, written, strict=True)}
            with closing(self._open()) as db, db:
                db.executemany("insert or replace into answers values (?, ?)", new.items())
            found |= new
        return [found[k] for k in keys]

    def _key(self, turn: Turn, max_tokens: int) -> str:
        text = json.dumps([self._who, self.engine, max_tokens, turn[0], turn[1]])
        return hashlib.sha256(text.encode()).hexdigest()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("pragma journal_mode=wal")  # readers and one writer at once: sweep workers share the file
        db.execute("create table if not exists answers (key text primary key, answer text not null)")
        return db
