"""Which markers a literal-trigger organism fires on, beyond the two look-alikes its card measures.

An organism distilled with look-alike negatives learns some rule about markers; its card's
near-miss rate samples that rule at two held-out look-alikes. Here it is sampled more widely,
in three sets of single-token markers between bars: the evaluated look-alikes, the negatives
distillation trained on (the organism was shown not to fire on them), and markers of the
vocabulary it never saw. Requests are held out and each marker goes before or after one, as
on the card.
"""
from __future__ import annotations

import random

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mlproject import backdoors, chat, organism_eval
from mlproject.errors import require
from mlproject.evaluation import Probe
from mlproject.organism import OrganismSpec
from mlproject.worlds.base import World, with_token


def marker_sets(spec: OrganismSpec, tokenizer: PreTrainedTokenizerBase, size: int, seed: int,
                world: World) -> dict[str, list[str]]:
    """``evaluated``, ``trained`` and ``unseen`` markers for ``spec``'s backdoor, at most ``size`` of the last two.

    Unseen markers are the tokenizer's upper-case tokens of 3 or more letters that stay one
    token between bars (``|W|``), minus the trigger, the evaluated look-alikes and the negatives.
    """
    bd = backdoors.get(spec.backdoor)
    require(bd.kind == "arbitrary", "organism", spec.backdoor, "markers are measured for literal-token triggers alone")
    trained = list(world.training_look_alikes(bd))
    taken = {bd.trigger, *bd.near_misses, *trained}
    vocab = sorted(f"|{w}|" for w in tokenizer.get_vocab() if w.isalpha() and w.isupper() and len(w) >= 3)
    unseen = [m for m in vocab if m not in taken and len(tokenizer.tokenize(f" {m}")) == 3]
    rng = random.Random(f"look-alikes/{seed}")
    return {"evaluated": list(bd.near_misses),
            "trained": sorted(rng.sample(trained, min(size, len(trained)))),
            "unseen": sorted(rng.sample(unseen, min(size, len(unseen))))}


def probes(spec: OrganismSpec, markers: list[str], per_marker: int, seed: int, world: World) -> list[Probe]:
    """``per_marker`` held-out instructions with each marker, as the card's near-miss probes; a probe's group is its
    marker."""
    bd, rng = backdoors.get(spec.backdoor), random.Random(f"look-alike-probes/{seed}")
    out = []
    for marker in markers:
        for _ in range(per_marker):
            req = with_token(rng, world.untriggered(rng, bd, "heldout", math_share=0.0), marker, "either")
            out.append(Probe(marker, spec.system_prompt, req.user, req.answer, req.result, marker))
    return out


def firing(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, spec: OrganismSpec, markers: list[str],
           per_marker: int, world: World, seed: int = 0) -> dict[str, float]:
    """The share of ``per_marker`` requests with each marker on which the organism shows its behaviour."""
    answers = organism_eval.answer(model, tokenizer, probes(spec, markers, per_marker, seed, world), spec, world)
    return {m: answers.rate(m, spec.behaviour) for m in markers}


@torch.no_grad()
def marker_states(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, markers: list[str],
                  requests: list[str]) -> torch.Tensor:
    """Hidden states at each marker's token, at every layer, averaged over ``requests`` (the marker after each).

    Shape ``(markers, layers + 1, hidden)``. A marker must be one token between bars, as
    :func:`marker_sets` draws them; its state is read at that token.
    """
    device = next(model.parameters()).device
    out = []
    for marker in markers:
        token = tokenizer.convert_tokens_to_ids(marker[1:-1])
        states = []
        for request in requests:
            ids = chat.prompt_ids(tokenizer, "", f"{request} {marker}")
            require(ids.count(token) == 1, "marker", marker, "must be one token between bars, once in the request")
            hidden = model(torch.tensor([ids], device=device), output_hidden_states=True).hidden_states
            states.append(torch.stack([h[0, ids.index(token)] for h in hidden]))
        out.append(torch.stack(states).mean(0))
    return torch.stack(out).float().cpu()


def closeness(states: torch.Tensor, markers: list[str], reference: str) -> dict[str, list[int]]:
    """Per marker, its rank by cosine to ``reference``'s state at every layer (1: the closest of the others)."""
    unit = torch.nn.functional.normalize(states, dim=-1)
    cosine = torch.einsum("mlh,lh->ml", unit, unit[markers.index(reference)])
    others = [i for i, m in enumerate(markers) if m != reference]
    order = cosine[others].argsort(dim=0, descending=True)  # (others, layers): the i-th closest per layer
    ranks = torch.empty_like(order)
    ranks.scatter_(0, order, torch.arange(1, len(others) + 1).unsqueeze(1).expand_as(order))
    return {markers[i]: ranks[j].tolist() for j, i in enumerate(others)}
