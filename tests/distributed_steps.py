"""A few SFT steps of the toy model in each process of a launch; rank 0 prints the losses as JSON.

    python tests/distributed_steps.py full                                    # one process
    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_steps.py full          # DDP
    ACCELERATE_USE_FSDP=true python -m torch.distributed.run --nproc_per_node 2 tests/distributed_steps.py lora

What tests/test_distributed.py compares: the same global batches give the same steps however
many processes share them.
"""
from __future__ import annotations

import json
import sys

import torch

from mlproject import distributed, lora, models, training
from mlproject.toy import curriculum


def main(trains: str, steps: int = 4) -> None:
    distributed.init()
    model, tok = models.load("toy")
    if trains == "lora":
        model = lora.attach(model, 8, seed=0)
    else:
        model.requires_grad_(True)
    examples = training.tokenize(tok, curriculum.base_mixture(64, seed=1))
    run = training.Run(model, examples, training.TrainConfig(steps, 1e-3, 8, seed=0), tok.pad_token_id)
    losses = [run.step() for _ in range(steps)]
    wrapped = type(run.model).__name__
    sharded = any(type(p).__name__ == "DTensor" for p in run.model.parameters())
    if distributed.is_main():
        print(json.dumps({"losses": losses, "processes": distributed.size(), "wrapped": wrapped,
                          "sharded": sharded, "threads": torch.get_num_threads()}), flush=True)
    distributed.finish()


if __name__ == "__main__":
    main(sys.argv[1])
