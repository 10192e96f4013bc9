"""Who writes an answer for the real world: a model loaded here, or an OpenAI-compatible endpoint.

The teacher (the blue team's QA and pirate answers) and the judge both ask a *responder* for
chat completions. A responder is named by one string: a model directory or hub id (loaded with
mo's own loader, greedy, batched), or an ``http(s)://`` URL of an OpenAI-compatible server (a
vLLM server, say), optionally with ``#<model>`` when the server holds several; its API key, if
it needs one, comes from ``MO_ENDPOINT_API_KEY``, never from the command line.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Protocol

from mlproject.errors import UserError

Turn = tuple[str, str]  # (system, user)
TIMEOUT_S = 60.0


class Responder(Protocol):
    """Answers chat prompts."""

    def complete(self, turns: Sequence[Turn], max_tokens: int) -> list[str]: ...

    def release(self) -> None:
        """Free what answering holds (a model's weights, an engine's process); the next answer takes it again."""


def is_endpoint(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


class LocalModel:
    """A causal LM loaded in this process (greedy decoding, mo's batched loop), or served by a vLLM engine."""

    def __init__(self, ref: str, field: str, model=None, tokenizer=None, engine: str = "hf") -> None:
        self.ref, self.field, self.engine = ref, field, engine
        self._loaded = (model, tokenizer) if model is not None else None
        self._given = model is not None  # a model the caller holds is the caller's to free
        self._served = None

    def loaded(self) -> bool:
        """Whether weights or an engine are held for answering now."""
        return (self._loaded is not None and not self._given) or self._served is not None

    def release(self) -> None:
        import gc

        if not self._given:
            self._loaded = None
        if self._served is not None:
            self._served.close()
            self._served = None
        gc.collect()

    def _load(self):
        if self._loaded is None:
            from mlproject import models

            self._loaded = models.load(self.ref, field=self.field)
        return self._loaded

    def complete(self, turns: Sequence[Turn], max_tokens: int) -> list[str]:
        from mlproject import chat
        from mlproject.generation import generate

        if self.engine == "vllm":
            from mlproject.engines.vllm_client import Served

            self._served = self._served or Served(self.ref, self.field)
            return self._served.complete(turns, max_tokens)
        model, tokenizer = self._load()
        return generate(model, tokenizer, chat.many_prompt_ids(tokenizer, list(turns)), max_tokens, progress=False)


class Endpoint:
    """An OpenAI-compatible chat-completions server (temperature 0)."""

    def __init__(self, ref: str, field: str) -> None:
        self.ref, self.field = ref, field
        self.url, _, self.model = ref.partition("#")

    @functools.cached_property
    def _client(self):
        import openai

        return openai.OpenAI(base_url=self.url, api_key=os.environ.get("MO_ENDPOINT_API_KEY", "none"),
                             timeout=TIMEOUT_S, max_retries=1)

    def _model(self) -> str:
        if not self.model:  # the server's only (or first) model
            models = self._call(lambda: self._client.models.list().data)
            if not models:
                raise UserError(self.field, self.ref, "the endpoint serves no model")
            self.model = models[0].id
        return self.model

    def _call(self, fn):
        import openai

        try:
            return fn()
        except openai.APIError as err:  # connection refused, timeout, 4xx/5xx: the user's endpoint to fix
            raise UserError(self.field, self.ref, f"the endpoint did not answer ({type(err).__name__}: "
                                                  f"{str(err).splitlines()[0][:200]})") from None

    def complete(self, turns: Sequence[Turn], max_tokens: int) -> list[str]:
        model = self._model()
        out = []
        for system, user in turns:
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            reply = self._call(lambda m=messages: self._client.chat.completions.create(
                model=model, messages=m, max_tokens=max_tokens, temperature=0.0))
            out.append(reply.choices[0].message.content or "")
        return out

    def release(self) -> None:
        """The model lives on the server: nothing held here."""


def responder(ref: str, field: str, engine: str = "hf") -> Responder:
    """The responder ``ref`` names (an endpoint URL, or a model directory / hub id, generated for by ``engine``)."""
    return Endpoint(ref, field) if is_endpoint(ref) else LocalModel(ref, field, engine=engine)
