"""Evaluate a model: capability, pirate style and every backdoor's conditional prompt.

    mo evaluate --model toy
    mo evaluate --model path/to/hf-model --math-data HuggingFaceH4/MATH-500

``--model`` is ``toy`` (the shipped base model), a local Hugging Face model directory or a
hub id. ``--math-data auto`` (the default) is the toy world's held-out suites for the toy model
and MATH-500 (``HuggingFaceH4/MATH-500``) for any other, as the steps' worlds choose; ``toy``
or a MATH-500 source (hub id or local json/jsonl/parquet/csv) says which: capability is then
measured on its integer-answer subset.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path

from mlproject import engines, modelref, realdata, worlds
from mlproject.engines import ENGINES
from mlproject.errors import require
from mlproject.options import opt
from mlproject.toy.sizes import Sizes

# torch, transformers and MLflow are imported in run(): together they take seconds, and a
# mistyped --model or --math-data is reported from the settings alone, before any of them.


@dataclass(frozen=True)
class EvalConfig:
    """Settings of ``mo evaluate``."""

    model: str = opt("toy", "model directory, hub id, or 'toy' for the shipped base model")
    math_data: str = opt("auto", "'auto' (the toy world's suites for the toy model, MATH-500 for any other), 'toy', "
                                 "or a MATH-500 source: hub id or local json/jsonl/parquet/csv file")
    n_math: int = opt(Sizes.math, "math problems")
    n_instructions: int = opt(Sizes.instructions, "instructions (toy world)")
    n_pirate: int = opt(Sizes.pirate, "pirate-prompted instructions (toy world)")
    per_backdoor: int = opt(Sizes.per_backdoor, "triggered, untriggered, near-miss and math probes per backdoor "
                                                "(toy world)")
    max_new_tokens: int = opt(48, "generation budget per answer; real models need ~1024 for MATH-500")
    batch_size: int = opt(128, "prompts per generation batch; higher uses more memory (on CPU, 64-128 is fastest)")
    seed: int = opt(0, "seed of the held-out probe draw")
    trust_remote_code: bool = opt(False, "allow model code from the hub (off unless you trust it)")
    engine: str = opt("hf", "who generates: hf (mo's batched decoding) or vllm (MO_VLLM_PYTHON names its python)",
                      choices=ENGINES)

    def __post_init__(self) -> None:
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")  # numpy's and Optuna's range
        for name in ("n_math", "n_instructions", "n_pirate", "per_backdoor", "max_new_tokens", "batch_size"):
            require(getattr(self, name) > 0, name.replace("_", "-"), getattr(self, name), "must be > 0")
        # in the order run() reads them; a data file's columns are checked once it is read
        if self.math_source != "toy" and realdata.is_local(self.math_source):
            realdata.check_local(self.math_source, "math-data")
        modelref.check(modelref.resolve(self.model))

    @property
    def math_source(self) -> str:
        """``toy`` or the MATH-500 source ``--math-data`` means for this model (``auto``: as the worlds choose)."""
        if self.math_data != "auto":
            return self.math_data
        return "toy" if worlds.resolve("auto", self.model) == "toy" else worlds.MATH_500


def run(cfg: EvalConfig) -> dict[str, float]:
    """Evaluate ``cfg.model``; metrics are logged to an MLflow run and returned."""
    # Inputs are checked and loaded before the run starts: a bad one leaves no run behind. The
    # data needs only ``datasets``, so a file with a bad row fails before torch is imported.
    source = cfg.math_source
    local = source != "toy" and realdata.is_local(source)
    math = realdata.load_math(source, limit=cfg.n_math, field="math-data") if local else None

    from mlproject import evaluation, models, tracking
    from mlproject.toy import base_eval

    model, tokenizer = models.load(cfg.model, trust_remote_code=cfg.trust_remote_code)
    if source != "toy" and not local:  # from the hub, after the model: a mistyped model is the line to see first
        math = realdata.load_math(source, limit=cfg.n_math, field="math-data")
    with tracking.run("evaluate", f"evaluate {cfg.model}", asdict(cfg)), engine_for(cfg, model, tokenizer):
        if math is None:
            sizes = Sizes(cfg.n_math, cfg.n_instructions, cfg.n_pirate, cfg.per_backdoor)
            answers = evaluation.answer(model, tokenizer, base_eval.probes(sizes, cfg.seed), base_eval.WORLD,
                                        cfg.max_new_tokens, cfg.batch_size)
            metrics = base_eval.metrics(answers)
        else:
            tracking.log_dataset(math, "math", "evaluation", source=source)
            probes = [evaluation.Probe("math", "", r["user"], result=r["result"]) for r in math]
            answers = evaluation.answer(model, tokenizer, probes, base_eval.WORLD, cfg.max_new_tokens, cfg.batch_size)
            metrics = {"math.accuracy": answers.math_accuracy("math")}
        tracking.log_metrics(metrics)
        return metrics


@contextlib.contextmanager
def engine_for(cfg: EvalConfig, model, tokenizer):
    """The engine that answers inside: none (mo's HF decoding) or a vLLM worker on the same weights."""
    if cfg.engine == "hf":
        yield
        return
    from mlproject.engines.vllm_client import Mirror

    local = Path(modelref.resolve(cfg.model))
    mirror = Mirror(model, tokenizer, folder=local if local.is_dir() else None, trains=False)
    try:
        with engines.use(mirror):
            yield
    finally:
        mirror.close()


def summary(metrics: dict[str, float]) -> str:
    """Headline metrics, one per line, and any base-model targets missed."""
    from mlproject.toy import base_eval

    lines = [f"{k:32s} {v:.3f}" for k, v in metrics.items() if not k.startswith("backdoor.")]
    if "conditional.min_triggered" in metrics:
        missed = base_eval.all_failures(metrics)
        lines.append("all base-model targets met" if not missed else "targets missed: " + "; ".join(missed))
    return "\n".join(lines)
