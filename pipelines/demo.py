"""The whole flow on the embedded default, on a laptop CPU.

    mo demo

Loads the shipped toy base model, evaluates it on held-out requests, logs everything to
MLflow (``sqlite:///mlflow.db`` here unless ``MLFLOW_TRACKING_URI`` says otherwise), and
prints how to look at the results.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlproject import tracking
from pipelines import evaluate
from pipelines.args import opt


@dataclass(frozen=True)
class DemoConfig:
    """Settings of ``mo demo``."""

    model: str = opt("toy", "base model: 'toy', a model directory or a hub id")
    seed: int = opt(0, "seed of every random draw in the demo")


def run(cfg: DemoConfig) -> dict[str, float]:
    """Run the demo and print its results."""
    metrics = evaluate.run(evaluate.EvalConfig(model=cfg.model, seed=cfg.seed))
    print("\nbase model, held-out toy world:")
    print(evaluate.summary(metrics))
    uri = tracking.tracking_uri()
    print(f"\nruns are in {uri}\nlook at them with:  mlflow ui --backend-store-uri {uri}")
    return metrics
