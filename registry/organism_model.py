"""The pyfunc model that wraps a registered organism (MLflow "models from code").

MLflow copies this file into every logged organism model, and the organism directory
itself (``organism.json`` plus weights, an adapter, or nothing) into the model's
``artifacts/<directory name>`` (the ``organism`` artifact; MLmodel records where). What mo
needs from the registry is that directory (see ``registry.store.resolve``);
``mlflow.pyfunc.load_model`` additionally gives a model that answers chat prompts, for people
who only have MLflow at hand. The model loads lazily, on the first ``predict``, so loading the
pyfunc to inspect it costs nothing.

Input: a list of user messages (the type hint gives MLflow the signature; a one-column
DataFrame is converted). Each is answered under the organism's own evaluation system
prompt with one greedy completion of up to 48 tokens. Needs ``mo`` importable (not bundled).
"""
from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


class OrganismModel(PythonModel):
    """Greedy chat completions from the organism held in the ``organism`` artifact."""

    def load_context(self, context: Any) -> None:
        self.directory = context.artifacts["organism"]
        self._loaded: tuple | None = None

    def predict(self, context: Any, model_input: list[str], params: dict | None = None) -> list[str]:
        """One greedy completion per user message, under the organism's evaluation system prompt."""
        from mlproject import chat, generation
        from mlproject.organism import load

        if self._loaded is None:
            self._loaded = load(self.directory)
        model, tokenizer, spec = self._loaded
        ids = [chat.prompt_ids(tokenizer, spec.system_prompt, str(u)) for u in model_input]
        return generation.generate(model, tokenizer, ids, max_new_tokens=48, progress=False)


mlflow.models.set_model(OrganismModel())
