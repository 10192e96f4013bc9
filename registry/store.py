"""Keep organisms in the MLflow model registry, and get them back as directories.

- :func:`register` logs an organism directory as a pyfunc model (``registry/organism_model.py``,
  the directory as its ``organism`` artifact) and registers it as a new version of the
  registered model of its kind (see ``registry.naming``), with what it is and what was
  measured on it as version tags, set at creation, so a version is never half-tagged.
- :func:`resolve` turns ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` into a
  local organism directory, so every step that takes an organism directory also takes a
  registry reference. Downloads are cached (see :func:`cache_root`).
- :func:`set_robustness` writes what an attack measured back onto the version, which is
  what promotion (``registry.promote``) reads.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlproject import paths
from mlproject.errors import UserError
from mlproject.organism import CARD, OrganismSpec, read_card
from registry import card, refs, tag_writes
from registry.naming import registered_name, version_tags

MODEL_CODE = Path(__file__).with_name("organism_model.py")
REQUIREMENTS = ["mlflow==3.17.2", "torch", "transformers>=5.23,<6", "peft>=0.21,<0.22", "safetensors>=0.6"]
MAX_TAG_VALUE = 100_000  # MLflow's limit on a model version tag's value


def register(directory: Path, spec: OrganismSpec) -> ModelVersion:
    """Log ``directory`` as a model in the active run and register it as a new version.

    Call it last in the insertion run, once everything succeeded. If the registered model
    already holds another kind of organism, nothing is logged and a :class:`UserError` says so.
    The returned version's ``version`` is an int here (MLflow is not consistent): use ``str()``.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("registry.register must be called inside an active MLflow run")
    read_card(directory)  # a UserError unless it is an organism directory
    name, tags, client = registered_name(spec), version_tags(spec), MlflowClient()
    check_kind(client, name, spec)
    info = mlflow.pyfunc.log_model(name="organism", python_model=str(MODEL_CODE),
                                   artifacts={"organism": str(Path(directory).resolve())},
                                   pip_requirements=REQUIREMENTS)
    created = not _exists(client, name)
    try:
        version = mlflow.register_model(info.model_uri, name, tags=tags)
    except Exception:
        if created and _exists(client, name) and not _versions(client, name, 1):
            client.delete_registered_model(name)  # leave no empty registered model behind
        raise
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=card.backdoor_line(spec.backdoor, spec.method))
    write_card(client, name, str(version.version))
    return version


def write_card(client: MlflowClient, name: str, version: str) -> None:
    """(Re)write the version's description: its card, rendered from its tags (:mod:`registry.card`)."""
    tags = client.get_model_version(name, version).tags
    runs = {}
    for key, run_id in tags.items():
        if key.startswith("robustness.") and key.endswith(".run_id"):
            try:
                runs[run_id] = f"#/experiments/{client.get_run(run_id).info.experiment_id}/runs/{run_id}"
            except MlflowException:  # a run deleted since: the card names it without a link
                pass
    client.update_model_version(name, version, description=card.render(name, version, tags, runs))


def registered_for(directory: Path) -> str | None:
    """``models:/<name>/<version>`` of the organism in ``directory``, found by its latest finished insertion run."""
    made = mlflow.search_runs(experiment_names=["organisms"], output_format="list", max_results=1,
                              filter_string=f"tags.`mo.organism.dir` = '{Path(directory).resolve()}' "
                                            "and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    found = MlflowClient().search_model_versions(f"run_id = '{made[0].info.run_id}'") if made else []
    return f"models:/{found[0].name}/{found[0].version}" if found else None


def check_kind(client: MlflowClient, name: str, spec: OrganismSpec) -> None:
    latest = _versions(client, name, 1)
    if not latest:
        return
    tags = latest[0].tags
    held = f"{tags.get('backdoor')}/{tags.get('method')}"
    if held != f"{spec.backdoor}/{spec.method}":
        raise UserError("registered-model", name, f"holds {held} organisms, not {spec.backdoor}/{spec.method}")


def _versions(client: MlflowClient, name: str, limit: int) -> list[ModelVersion]:
    """The newest ``limit`` versions of ``name`` (none if it does not exist)."""
    return list(client.search_model_versions(f"name = '{name}'", max_results=limit,
                                             order_by=["version_number DESC"]))


def _exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def version_of(ref: str, field: str = "organism") -> tuple[str, str] | None:
    """``(registered model, version)`` a registry reference points at now; None for a path."""
    m = refs.parse(ref, field)
    if not m:
        return None
    mv = _lookup(m, ref, field)
    return mv.name, str(mv.version)


def resolve(ref: str, field: str = "organism") -> Path:
    """The local organism directory of ``ref`` (a registry reference or a path).

    A path comes back unchanged. A reference (``models:/<name>/<version>``, ``.../latest``
    or ``models:/<name>@<alias>``) is looked up (an alias resolves to the version it points
    at now) and the version's artifacts are downloaded once into the cache.
    """
    m = refs.parse(ref, field)
    if not m:
        return Path(ref)
    mv = _lookup(m, ref, field)
    target = _cache_dir(mv)
    if not target.is_dir():
        _download(mv, target, ref, field)
    return _organism_dir(target, ref, field)


def _lookup(m: re.Match, ref: str, field: str) -> ModelVersion:
    """The version a parsed reference names; a one-line :class:`UserError` if there is none."""
    name, version, alias = m["name"], m["version"], m["alias"]
    client = MlflowClient()
    if not _exists(client, name):
        raise UserError(field, ref, f"no registered model named {name!r}")
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        if version == "latest":
            newest = _versions(client, name, 1)
            if not newest:
                raise UserError(field, ref, f"registered model {name!r} has no versions")
            return newest[0]
        if not version.isdigit():
            raise UserError(field, ref, f"version must be a number, 'latest' or @<alias>, not {version!r}")
        return client.get_model_version(name, version)
    except MlflowException:
        known = sorted(client.get_registered_model(name).aliases)
        what = f"alias {alias!r}" if alias else f"version {version}"
        hint = f" (aliases: {', '.join(known)})" if alias and known else ""
        raise UserError(field, ref, f"registered model {name!r} has no {what}{hint}") from None


def cache_root() -> Path:
    """Where registry downloads are kept: ``registry/`` in mo's cache (``$MO_CACHE_DIR``, else ``~/.cache/mo``)."""
    return paths.cache_home() / "registry"


def _cache_dir(mv: ModelVersion) -> Path:
    """One folder per version, keyed by store, name, version and source.

    A version's artifacts never change, but the same name and number can mean another
    model in another store, or after a registered model was deleted and made again.
    """
    key = "|".join([mlflow.get_registry_uri(), mv.name, str(mv.version), mv.source, str(mv.creation_timestamp)])
    return cache_root() / f"{mv.name}-v{mv.version}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _download(mv: ModelVersion, target: Path, ref: str, field: str) -> None:
    """Download into a private folder, then rename: the cache never holds half a download."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{mv.name}/{mv.version}", dst_path=str(partial))
        partial.rename(target)
    except MlflowException as err:
        raise UserError(field, ref, f"could not download ({str(err).splitlines()[0]})") from None
    except OSError:
        if not target.is_dir():  # another process finished the same download first: use theirs
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _organism_dir(model_dir: Path, ref: str, field: str) -> Path:
    """The ``organism`` artifact of a downloaded pyfunc model (named after the logged folder)."""
    try:
        conf = mlflow.models.Model.load(str(model_dir)).flavors["python_function"]["artifacts"]["organism"]
        found = model_dir / conf["path"]
    except (MlflowException, OSError, KeyError, TypeError):
        found = next((p.parent for p in sorted(model_dir.rglob(CARD))), model_dir)
    if not (found / CARD).is_file():
        raise UserError(field, ref, f"this model version holds no organism (no {CARD})")
    return found


def set_robustness(name: str, version: str, attack: str, metrics: dict) -> None:
    """Record what ``attack`` measured on a version as ``robustness.<attack>.<key>`` tags.

    ``metrics["points"]`` (checkpoint rows with ``capability`` and ``removal``, or pairs)
    becomes a compact JSON list of ``[capability, removal]``; the id of the active run, if
    any, is kept as ``robustness.<attack>.run_id`` so the numbers lead back to the attack run.
    """
    client = MlflowClient()
    tags = {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            for k, v in metrics.items() if k != "points" and v is not None}
    if metrics.get("points") is not None:
        tags["points"] = _points_json([_pair(p) for p in metrics["points"]])
    if mlflow.active_run() is not None:
        tags.setdefault("run_id", mlflow.active_run().info.run_id)
    # two attacks of one kind on one version at once (a team's clients): the record ends one of theirs, not a mix
    tag_writes.set_record(client, name, str(version), {f"robustness.{attack}.{k}": v for k, v in tags.items()})
    write_card(client, name, str(version))


def _pair(point: object) -> list[float]:
    if isinstance(point, dict):
        return [round(float(point["capability"]), 4), round(float(point["removal"]), 4)]
    if isinstance(point, (list, tuple)):
        return [round(float(point[0]), 4), round(float(point[1]), 4)]
    return [round(float(point.capability), 4), round(float(point.removal), 4)]


def _points_json(pairs: list[list[float]]) -> str:
    """Compact JSON; thinned evenly (first and last kept) if it would pass the tag size limit."""
    text = json.dumps(pairs, separators=(",", ":"))
    while len(text) > MAX_TAG_VALUE and len(pairs) > 2:
        pairs = pairs[:-1:2] + [pairs[-1]]
        text = json.dumps(pairs, separators=(",", ":"))
    return text
