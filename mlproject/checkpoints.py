"""Checkpoint evaluation during an attack: each evaluated step is a frontier point.

The probes are tokenised once and asked at every checkpoint, through the LoRA merged into the
weights, with the previous checkpoint's answers as drafts (a few training steps leave most of
them unchanged, and one parallel pass keeps what greedy decoding still produces).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mlproject import distributed, evaluation, frontier, generation, organism, organism_eval, tracking


@contextlib.contextmanager
def merged(model) -> Iterator[object]:
    """LoRA adapters merged into the weights for the block, unmerged after.

    Generation through unmerged LoRA layers runs every adapter's extra matmuls at every
    decoding step (~40% slower on the toy model); merging for the evaluation and unmerging
    for training gives the same outputs at the cost of two small additions per layer.
    """
    if not hasattr(model, "merge_adapter") or not getattr(model, "active_adapters", None):
        yield model
        return
    model.merge_adapter()
    try:
        yield model
    finally:
        model.unmerge_adapter()


@dataclass
class Checkpoints:
    """Evaluates the model in memory at chosen steps and keeps the frontier points.

    ``rows[0]`` is the organism before the attack; every row has the step, the raw metrics,
    and the point (relative ``capability``, ``removal``) against ``rows[0]``. Each row is
    logged as step metrics to the active MLflow run and handed to ``on_point``.
    """

    tokenizer: object
    spec: organism.OrganismSpec
    probes: list
    world: object  # the World the probes were drawn from: it grades them
    rows: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    on_point: Callable[[dict], None] | None = None
    phase_ends: list = field(default_factory=list)
    prompts: list | None = None  # the probes tokenised once (at the first checkpoint), asked at every checkpoint
    batch_size: int = 128  # set with ``prompts``: all probes in one batch where their KV cache fits
    drafts: list | None = None  # the last checkpoint's answers: a few steps on, most are unchanged
    refined: list = field(default_factory=list)  # rows evaluated when a stretch was re-traced (``refine``)

    def __call__(self, model, step: int, refined: bool = False) -> dict:
        if self.prompts is None:
            self.prompts = evaluation.tokenize(self.tokenizer, self.probes)
            tokens = organism_eval.answer_tokens(self.spec, self.world)
            self.batch_size = generation.one_batch(model, self.prompts, tokens)
        was_training = model.training
        model.eval()
        with distributed.for_generation(model) as lockstep, contextlib.nullcontext() if lockstep else merged(model):
            answers = organism_eval.answer(model, self.tokenizer, self.probes, self.spec, self.world, progress=False,
                                           prompts=self.prompts, drafts=self.drafts, batch_size=self.batch_size)
        self.drafts = list(answers.token_ids)
        model.train(was_training)
        m = organism_eval.checkpoint_metrics(answers, self.spec)
        self.outcomes.append(frontier.Outcomes(m.pop("outcomes_capability"), m.pop("outcomes_rate")))
        before = self.rows[0] if self.rows else m
        point = frontier.to_point(m["capability_value"], before["capability_value"], m["rate"], before["rate"])
        row = {"step": step, **m, "capability": point.capability, "removal": point.removal}
        (self.refined if refined else self.rows).append(row | ({"refined": True} if refined else {}))
        tracking.log_metrics({k: v for k, v in row.items() if k != "step" and v == v}, step=step)
        if self.on_point is not None:
            self.on_point(row)
        return row

    def traced(self) -> list[dict]:
        """Every evaluated row, refined ones (marked ``refined``) in step order among the others."""
        return sorted(self.rows + self.refined, key=lambda r: r["step"])

    def points(self) -> list[frontier.Point]:
        """The frontier points of the evaluated checkpoints after step 0, refined ones included."""
        return [frontier.Point(r["capability"], r["removal"]) for r in self.rows[1:] + self.refined]
