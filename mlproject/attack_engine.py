"""The attack engine: what the blue team trains, training phase by phase, and the frontier it traces.

``mo attack`` runs one attack through it; a sweep worker (:mod:`tuning.worker`) runs one per
trial on an organism it loaded once. The blue team trains a new LoRA on the organism, the
organism's own adapter (``continued`` LoRA organisms), or every weight (``full_weight``), on
instructions that never carry the trigger; every ``eval_every`` steps the model is evaluated in
memory (:mod:`mlproject.checkpoints`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import mlflow
from peft import PeftModel

from mlproject import (
    attacks,
    engines,
    evaluation,
    frontier,
    lora,
    memory,
    organism,
    organism_eval,
    pausing,
    precision,
    progress,
    tracking,
    training,
    worlds,
)
from mlproject.attack_config import AttackConfig
from mlproject.checkpoints import Checkpoints
from mlproject.errors import UserError, require

DEFAULT_RANK = 64  # the blue LoRA's rank when the settings name none


class BlueTeam:
    """An organism loaded once, and what the blue team trains on it.

    With ``resettable``, :meth:`reset` puts the organism back as it was loaded after each
    attack, so one process runs many (a sweep's trials): a new adapter is dropped, and weights
    the attack trained in place (a continued adapter, or every weight) are restored from a copy.
    """

    def __init__(self, directory: str | Path, full_weight: bool = False, resettable: bool = False,
                 teacher: str = "", plan: AttackConfig | None = None) -> None:
        spec = organism.read_card(directory)
        # the world the organism was made in; the blue team may bring its own teacher
        world_cfg = worlds.from_record(spec.world)
        if teacher:
            world_cfg = replace(world_cfg, teacher=teacher)
        if plan is not None:  # a teacher model answers through the attack's engine
            world_cfg = replace(world_cfg, engine=plan.engine)
        self.world = worlds.make(world_cfg, spec.base_model)
        # a continued organism's red adapter keeps training, unless every weight trains anyway
        self.continued = spec.lora_form == "continued" and not full_weight
        self.full_weight = full_weight
        options = plan or AttackConfig(organism=str(directory))
        if plan is not None:  # the memory the attack plans to take, against what is free, before a weight loads
            trains = "full" if full_weight else "lora"
            # what it decodes: its own answers to the attack's requests (some attacks), a checkpoint's probes
            memory.check_training(str(directory) if spec.weights == "full" else spec.base_model, trains, options,
                                  plan.batch_size, plan.rank or spec.rank or DEFAULT_RANK, field="organism",
                                  probes=max(plan.samples, 6 * plan.eval_size))
        if plan is not None:
            answer_first(self.world, spec, plan)
        self.model, self.tokenizer, self.spec = organism.load(
            directory, trainable_adapter=self.continued,
            dtype=precision.weights_dtype(options.precision, trains_weights=full_weight or self.continued))
        if full_weight and isinstance(self.model, PeftModel):
            self.model = self.model.merge_and_unload()  # every weight trains: the adapter becomes weights
        self.trains_own_weights = self.continued or full_weight
        self._snapshot = ({n: p.detach().clone() for n, p in self.model.named_parameters()}
                          if resettable and self.trains_own_weights else None)
        self.engine = self._engine(directory, options) if options.engine == "vllm" else None

    def _engine(self, directory: str | Path, options: AttackConfig):
        """A vLLM engine on the organism as loaded (before any blue adapter): its own folder for full weights, the
        base model's for a continued adapter (the adapter trains and is handed over), else the merged weights."""
        from mlproject.engines.vllm_client import Mirror
        from mlproject.modelref import resolve

        folder = None
        if self.spec.weights == "full" and not self.full_weight:
            folder = Path(directory)
        elif self.continued or self.spec.weights == "none":
            folder = Path(resolve(self.spec.base_model))
        if self.continued and folder is not None and not folder.is_dir():
            raise UserError("engine", "vllm", f"a continued organism's base model must be a local folder, not {folder}")
        # full weights are loaded into the engine's own layers, which LoRA support would wrap
        rank = 0 if self.full_weight else max(options.rank or DEFAULT_RANK, self.spec.rank or 0)
        model = self.model.get_base_model() if self.continued else self.model
        local = folder if folder and folder.is_dir() else None
        return engines.on_main(lambda: Mirror(model, self.tokenizer, folder=local, max_lora_rank=rank))

    def close(self) -> None:
        """Stop the organism's generation engine, if it has one."""
        if self.engine is not None:
            self.engine.close()

    def check(self, cfg: AttackConfig) -> None:
        """Refuse settings that do not apply to this organism."""
        require(cfg.rank is None or not self.continued, "rank", cfg.rank,
                "continued organisms keep training their own adapter; drop --rank")

    def settings(self, params: dict) -> dict:
        """A trial's searched settings, less those that do not apply (no new adapter: no rank)."""
        return {k: v for k, v in params.items() if not (k == "rank" and self.trains_own_weights)}

    def trainable(self, cfg: AttackConfig):
        """The model holding what this attack trains: a new LoRA, the red adapter, or all weights."""
        self.check(cfg)
        if self.full_weight:
            for p in self.model.parameters():
                p.requires_grad_(True)
        if self.trains_own_weights:
            return self.model
        return lora.attach(self.model, cfg.rank or DEFAULT_RANK, adapter="blue", seed=cfg.seed)

    def reset(self, model) -> None:
        """Back to the organism as loaded: drop the blue adapter or restore the saved weights."""
        if self.trains_own_weights:
            require(self._snapshot is not None, "reset", "BlueTeam", "made without resettable=True")
            for name, p in self.model.named_parameters():
                p.data.copy_(self._snapshot[name])
            return
        self.model = model.unload()  # removes the blue LoRA layers without merging them


def answer_first(world: worlds.World, spec: organism.OrganismSpec, cfg: AttackConfig) -> None:
    """The teacher's answers to the attack's requests, written (or read from the cache) before the organism loads,
    then the teacher let go: a teacher model (the base model by default) and the organism are never in memory at
    once. A sweep's trials share the requests (only the blue team's training settings vary), so they ask nothing
    more; a trial that draws other requests loads the teacher again beside the organism."""
    reqs = attacks.requests(world, spec, cfg.samples, cfg.seed)
    for kind in attacks.teacher_kinds(cfg.attack):
        world.attack_completions(kind, reqs)
    world.release_teacher()


def trace(model, tokenizer, spec: organism.OrganismSpec, cfg: AttackConfig, world: worlds.World,
          on_point: Callable[[dict], None] | None = None) -> Checkpoints:
    """Train ``model`` (already holding what the blue team trains) phase by phase, evaluating as it goes.

    ``on_point(row)`` sees every evaluated checkpoint; raising there stops the attack
    (a sweep prunes hopeless trials this way).
    """
    plan = attacks.phases(cfg.attack, cfg.steps, cfg.second_steps)
    reqs = attacks.requests(world, spec, cfg.samples, cfg.seed)
    sizes = organism_eval.OrganismEvalSizes(cfg.eval_size, 2 * cfg.eval_size, cfg.eval_size)
    check = Checkpoints(tokenizer, spec, organism_eval.checkpoint_probes(spec, sizes, cfg.seed, world), world,
                        on_point=on_point)
    check(model, 0)
    own = own_answers(model, tokenizer, spec, reqs, world) if any(p.kind == "own" for p in plan) else None
    done = 0
    for phase in plan:
        examples = training.tokenize(tokenizer, attacks.rows(world, phase.kind, spec, reqs, own))
        examples, cut, dropped = training.truncate(examples, cfg.max_length)
        if cut and mlflow.active_run():
            tracking.log_metrics({f"data.{phase.kind}.truncated": cut, f"data.{phase.kind}.dropped": dropped})
        run = training.Run(model, examples, training.TrainConfig(
            phase.steps, cfg.lr, cfg.batch_size, seed=cfg.seed + done, optimizer=cfg.optimizer,
            precision=precision.resolve(cfg.precision), gradient_checkpointing=cfg.gradient_checkpointing),
            tokenizer.pad_token_id)
        log_loss = tracking.loss_logger(every=10, offset=done)
        before = run.state() if cfg.refine else None  # the last checkpoint's state: where a refined stretch starts
        for step in progress.bar(range(1, phase.steps + 1), f"attack {phase.kind}", leave=False, mininterval=2):
            log_loss(step, run.step())
            if (done + step) % cfg.eval_every and step != phase.steps:
                continue
            last = check.rows[-1]
            row = check(model, done + step)
            pausing.point(f"checkpoint-{done + step}")  # its point measured and logged
            if before is not None:
                if cliff(last, row, cfg.refine) and step - before["step"] > 1:
                    refine(run, before, check, model, done, cfg.refine_points)
                before = run.state()
        run.model.eval()
        done += phase.steps
        check.phase_ends.append(done)
    return check


def cliff(a: dict, b: dict, threshold: float) -> bool:
    """Whether two consecutive checkpoints differ by more than ``threshold`` in removal or capability."""
    return abs(b["removal"] - a["removal"]) > threshold or abs(b["capability"] - a["capability"]) > threshold


def refine(run: training.Run, before: dict, check: Checkpoints, model, offset: int, points: int) -> None:
    """Re-trace the steps from the ``before`` state to where ``run`` is now, evaluating ``points`` of them.

    The same batches follow the restored state, so the stretch is the one the attack took; once
    it is evaluated, the run is put back where it was.
    """
    after = run.state()
    start, end = before["step"], after["step"]
    targets = sorted({start + round(i * (end - start) / (points + 1)) for i in range(1, points + 1)} - {start, end})
    run.restore(before)
    for step in range(start + 1, targets[-1] + 1):
        run.step()
        if step in targets:
            check(model, offset + step, refined=True)
    run.restore(after)


def own_answers(model, tokenizer, spec: organism.OrganismSpec, reqs: list, world: worlds.World) -> dict[str, str]:
    """The organism's own answers before the attack (the data of reminder training)."""
    probes = [evaluation.Probe("own", spec.attack_system_prompt, r.user) for r in reqs]
    answers = evaluation.answer(model, tokenizer, probes, world, world.answer_tokens, progress=False)
    return {p.user: c for p, c in zip(probes, answers.completions, strict=True)}


def summarise(check: Checkpoints, cfg: AttackConfig) -> dict[str, float]:
    """AUC with a bootstrap interval, reduction at 90% capability, and (depirate) backdoor return."""
    lo, hi = frontier.bootstrap_auc(check.outcomes[1:], check.outcomes[0], n=300, seed=cfg.seed)
    out = frontier.summary(check.points()) | {"auc_low": lo, "auc_high": hi, "rate_before": check.rows[0]["rate"]}
    if cfg.attack == "depirate":  # rate after de-pirating minus rate right after pirate SFT
        end_pirate = next(r for r in check.rows if r["step"] == check.phase_ends[0])
        out["backdoor_return"] = check.rows[-1]["rate"] - end_pirate["rate"]
    return out
