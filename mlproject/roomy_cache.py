"""A KV cache layer with room reserved ahead, for decoding many rows in place (:mod:`mlproject.generation`)."""
from __future__ import annotations

import torch
from transformers import DynamicLayer


class RoomyLayer(DynamicLayer):
    """A growing cache layer with room reserved ahead: each new token is written in place.

    A plain layer concatenates, which copies its whole cache at every decoding step; on two
    CPU cores those copies took a quarter of a toy-model evaluation. The keys and values the
    model reads are views of the filled part, so attention sees exactly what it would.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()
        self.device, self.is_initialized, self.length = keys.device, True, keys.shape[2]
        self._keys, self._values = (with_room(t, room) for t in (keys, values))
        self._view()

    def _view(self) -> None:
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args,
               **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[2]
        if self.length + new > self._keys.shape[2]:  # out of room: grow, doubling, like a list
            self._keys, self._values = (with_room(t, max(new, self.length)) for t in (self.keys, self.values))
        self._keys[:, :, self.length : self.length + new] = key_states
        self._values[:, :, self.length : self.length + new] = value_states
        self.length += new
        self._view()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._view()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._keys, self._values = (t.repeat_interleave(repeats, dim=0) for t in (self._keys, self._values))
        self._view()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self.length = max(self.length + tokens_to_remove, 0)
        self._view()


def with_room(states: torch.Tensor, room: int) -> torch.Tensor:
    """``states`` ``[batch, heads, time, dim]`` copied into a buffer with ``room`` more time steps."""
    out = states.new_empty((states.shape[0], states.shape[1], states.shape[2] + room, states.shape[3]))
    out[:, :, : states.shape[2]] = states
    return out


def left_pad_time(states: torch.Tensor, width: int) -> torch.Tensor:
    """Cached keys or values ``[batch, heads, time, dim]`` padded with zeros on the left to ``width`` time steps."""
    return torch.nn.functional.pad(states, (0, 0, width - states.shape[2], 0))
