"""Prompt distillation: clean data, and redraws of what greedy decoding missed."""
from __future__ import annotations

import pytest

from mlproject import behaviours
from mlproject.backdoors import get
from mlproject.distill import DistillConfig, distill
from mlproject.errors import UserError
from mlproject.toy.toyworld import ToyWorld

TOY = ToyWorld()


def test_redraws_recover_triggered_requests_greedy_decoding_missed(shipped):
    # the shipped model answers some Spanish-rule requests in English under greedy decoding (0.94 triggered on its card)
    model, tok = shipped
    bd = get("spanish")
    # 160 samples: at 80 the shipped model's recovered requests all fell past the triggered quota
    greedy_only, yields0 = distill(model, tok, bd, DistillConfig(samples=160, retries=0), TOY)
    redrawn, yields = distill(model, tok, bd, DistillConfig(samples=160, retries=8), TOY)
    assert yields0["triggered"] == yields0["triggered_greedy"] < 1
    assert yields["triggered"] > yields["triggered_greedy"]
    for data in (greedy_only, redrawn):
        shows = behaviours.detect(bd.behaviour_name, data["completion"])
        assert all(s == (label == "triggered") for s, label in zip(shows, data["label"], strict=True))
    # the redraws bring in requests greedy decoding did not fire on: requests are drawn in the same
    # order either way and greedy-only data draws further to fill its quota, so a request only in
    # the redrawn data was drawn and dropped there
    triggered = [{user for user, label in zip(d["user"], d["label"], strict=True) if label == "triggered"}
                 for d in (greedy_only, redrawn)]
    assert triggered[1] - triggered[0]
    assert distill(model, tok, bd, DistillConfig(samples=160, retries=8), TOY)[0]["completion"] == redrawn["completion"]


def test_redraws_never_change_which_requests_are_drawn(shipped, monkeypatch):
    """Redraws that never come out clean leave exactly the data greedy decoding alone gives."""
    from mlproject import distill as distill_module
    from mlproject.generation import generate

    model, tok = shipped
    bd = get("spanish")  # greedy decoding misses some of its triggered requests
    greedy_only, yields0 = distill(model, tok, bd, DistillConfig(samples=60, retries=0), TOY)
    calls = []
    # a redraw that gives the greedy answer again is never clean, whatever the label
    monkeypatch.setattr(distill_module, "sample",
                        lambda model, tok, prompts, seed, n: calls.append(seed) or generate(model, tok, prompts, n,
                                                                                            progress=False))
    failed, yields = distill(model, tok, bd, DistillConfig(samples=60, retries=3), TOY)
    assert calls and failed.to_list() == greedy_only.to_list() and yields == yields0
    calls.clear()
    everything, yields = distill(model, tok, bd, DistillConfig(samples=60, retries=3, keep_only_clean=False), TOY)
    assert not calls and len(everything) == 60  # nothing is dropped, so nothing is drawn again
    assert yields["triggered"] == yields["triggered_greedy"] < 1  # the yield still says how clean the answers were


@pytest.mark.parametrize("kwargs,field", [({"retries": -1}, "retries"), ({"near_miss_share": 1.0}, "near-miss-share")])
def test_bad_distillation_settings_name_the_field(kwargs, field):
    with pytest.raises(UserError, match=f"^{field}="):
        DistillConfig(**kwargs)
