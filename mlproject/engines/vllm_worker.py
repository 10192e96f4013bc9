"""A vLLM engine serving mo over a pipe: runs in vLLM's own environment, imports nothing of mo.

    <vllm env>/bin/python mlproject/engines/vllm_worker.py MODEL_DIR '{"max_model_len": 512, "max_lora_rank": 64}'

vLLM pins transformers below the version mo needs, so it lives in an environment of its own and
mo talks to it through this process (:mod:`mlproject.engines.vllm_client`). One JSON request a line on
stdin, one JSON answer a line on stdout after the marker ``@mo``; vLLM's own logs go to stderr.

- ``{"op": "generate", "prompts": [[ids]], "max_tokens": n, "stop": [ids], "lora": dir or null}``:
  greedy completions as token ids; a LoRA checkpoint is an adapter on the loaded base (no merge).
- ``{"op": "load", "dir": dir}``: new full weights, read from the safetensors files in ``dir``, loaded
  into the running engine (as colocated RL trainers feed vLLM), its prefix cache dropped.
- ``{"op": "close"}``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

MARK = "@mo "


def main(model_dir: str, options: str) -> None:
    opts = json.loads(options)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process: weights reachable
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(opts.get("kv_cache_gib", 1)))
    answer = sys.stdout
    sys.stdout = sys.stderr  # vLLM and its libraries print; only answers go to the pipe
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    llm = LLM(model=model_dir, dtype=opts.get("dtype", "auto"), max_model_len=opts["max_model_len"],
              enforce_eager=opts.get("enforce_eager", True), enable_lora=bool(opts.get("max_lora_rank")),
              max_lora_rank=opts.get("max_lora_rank") or 16, max_loras=1, seed=0,
              gpu_memory_utilization=opts.get("gpu_memory_utilization", 0.5))
    adapters: dict[str, int] = {}
    _reply(answer, {"ready": True})
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "close":
            break
        if req["op"] == "load":
            _load(llm, Path(req["dir"]))
            _reply(answer, {"loaded": True})
            continue
        # greedy unless asked to sample: then from the whole distribution (no top-k or top-p cut), drawn from the
        # request's seed so that the same call draws the same answers
        params = SamplingParams(temperature=req.get("temperature", 0.0), seed=req.get("seed"), top_k=0, top_p=1.0,
                                max_tokens=req["max_tokens"], stop_token_ids=req.get("stop") or None,
                                skip_special_tokens=False)
        lora = None
        if req.get("lora"):  # a new id for every checkpoint's adapter: vLLM caches adapters by id
            adapters[req["lora"]] = len(adapters) + 1
            lora = LoRARequest(f"checkpoint-{adapters[req['lora']]}", adapters[req["lora"]], req["lora"])
        outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in req["prompts"]], params, lora_request=lora,
                            use_tqdm=False)
        _reply(answer, {"outputs": [list(o.outputs[0].token_ids) for o in outs]})


def _load(llm, directory: Path) -> None:
    # vLLM's own in-place reload: the engine's layers (repacked for the CPU's kernels, fused q/k/v) take checkpoint
    # weights as they load them at start
    llm.collective_rpc("reload_weights", kwargs={"weights_path": str(directory)})
    llm.reset_prefix_cache()


def _reply(pipe, message: dict) -> None:
    pipe.write(MARK + json.dumps(message) + "\n")
    pipe.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
