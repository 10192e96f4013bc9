"""Prompt distillation: clean data, and redraws of what greedy decoding missed."""
from __future__ import annotations

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


@pytest.mark.parametrize("kwargs,field", [({"retries": -1}, "retries"), ({"near_miss_share": 1.0}, "near-miss-share")])
def test_bad_distillation_settings_name_the_field(kwargs, field):
    with pytest.raises(UserError, match=f"^{field}="):
        DistillConfig(**kwargs)
