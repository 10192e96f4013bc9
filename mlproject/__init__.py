"""mo's library: worlds, training, evaluation, frontiers and the tracking around them."""
import logging

# torchao (the 8-bit AdamW) reports at import each optional CUDA extension it cannot load, and torch a deprecation
# of how torchao registers its enums; peft imports torchao whenever it is installed, so every command would print
# them. Errors still show.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
