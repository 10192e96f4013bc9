"""A world's settings: which world, and for the real one its sources (torch-free, checked at once)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from mlproject.errors import require

WORLDS = ("auto", "toy", "real")
ALPACA = "tatsu-lab/alpaca"
MATH_500 = "HuggingFaceH4/MATH-500"


@dataclass(frozen=True)
class WorldConfig:
    """Which world, and for the real one its sources: torch-free, so settings are checked at once."""

    name: str = "toy"  # toy | real (``auto`` is resolved by :func:`resolve` before a config is made)
    instructions: str = ALPACA  # Alpaca-format instructions: hub id or local json/jsonl/parquet/csv
    math_data: str = MATH_500  # MATH-500-format problems: hub id or local file (its integer subset is used)
    split_seed: int = 0  # which requests are held out
    teacher: str = ""  # who writes the blue team's answers: "" the base model, a model, or an http(s) endpoint
    judge: str = ""  # a model or http(s) endpoint that judges insult, compliment and refuse; "" rules alone
    answer_tokens: int = 512  # the most tokens an answer may take (MATH-500 solutions run long)
    engine: str = "hf"  # who generates for a teacher or judge model: hf (mo's decoding) or vllm

    def __post_init__(self) -> None:
        require(self.name in ("toy", "real"), "world", self.name, "must be toy or real")
        require(self.engine in ("hf", "vllm"), "engine", self.engine, "must be hf or vllm")
        require(0 < self.answer_tokens <= 32768, "answer-tokens", self.answer_tokens, "must be in 1..32768")

    def record(self) -> dict:
        """What an organism's card keeps: everything for the real world, the name alone for the toy one."""
        return asdict(self) if self.name == "real" else {"name": "toy"}
