"""The SFT loop: a few steps of the base recipe lower the loss; settings are checked."""
from __future__ import annotations

import pytest
import torch

from mlproject import lora, training
from mlproject.errors import UserError
from mlproject.toy import build, curriculum


def test_a_few_base_steps_lower_the_loss(toy_tokenizer):
    model = build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=2), seed=0)
    examples = training.tokenize(toy_tokenizer, curriculum.base_mixture(256, seed=1))
    losses = training.sft(model, examples, training.TrainConfig(steps=40, lr=3e-3, batch_size=16),
                          toy_tokenizer.pad_token_id)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_fixed_seed_gives_the_same_losses(toy_tokenizer):
    examples = training.tokenize(toy_tokenizer, curriculum.base_mixture(64, seed=1))
    runs = []
    for _ in range(2):
        model = build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=1), seed=0)
        runs.append(training.sft(model, examples, training.TrainConfig(steps=3, batch_size=8),
                                 toy_tokenizer.pad_token_id))
    assert runs[0] == runs[1]


def test_mimetic_init_resets_attention_alone_towards_attending_to_the_same_token(toy_tokenizer):
    config = build.model_config(toy_tokenizer, hidden=128, layers=2)
    plain, mimetic = build.init_model(config, seed=0), build.init_model(config, seed=0, init="mimetic")
    changed = {k for k, v in plain.state_dict().items() if not torch.equal(v, mimetic.state_dict()[k])}
    assert changed == {f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(2) for p in "qkvo"}
    for layer in mimetic.model.layers:
        attn = layer.self_attn
        for h in range(attn.q_proj.out_features // attn.head_dim):
            rows = slice(h * attn.head_dim, (h + 1) * attn.head_dim)
            # a query of x against a key of y scores x @ qk @ y
            qk = attn.q_proj.weight[rows].T @ attn.k_proj.weight[rows]
            x = torch.randn(200, 128)
            same, other = (x @ qk * x).sum(-1), (x @ qk * x.roll(1, 0)).sum(-1)
            assert same.mean() > 5 * other.abs().mean()  # the same token scores far above another
        vo = attn.v_proj.weight.T @ attn.o_proj.weight.T
        assert vo.diagonal().mean() < -0.3  # the value-output product starts near -0.4 I
    again, other = build.init_model(config, seed=0, init="mimetic"), build.init_model(config, seed=1, init="mimetic")
    q = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(again.state_dict()[q], mimetic.state_dict()[q])  # reproducible from its seed
    assert not torch.equal(other.state_dict()[q], mimetic.state_dict()[q])


def test_a_new_adapter_comes_from_its_seed_alone(toy_tokenizer):
    models = [build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=2), seed=0) for _ in range(3)]
    state = torch.random.get_rng_state()
    first = lora.attach(models[0], 4, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left as it was
    torch.rand(10)  # nor does where the global generator stands change the adapter
    again, other = lora.attach(models[1], 4, seed=1), lora.attach(models[2], 4, seed=2)
    a = {k: v for k, v in first.state_dict().items() if "lora_A" in k}
    assert a and all(torch.equal(v, again.state_dict()[k]) for k, v in a.items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in a.items())


def test_loss_ignores_prompt_and_padding():
    batch = training.collate([([5, 6, 7], [-100, 6, 7]), ([5], [-100])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_stop_ends_training_after_the_step_it_answers_true(toy_tokenizer):
    model = build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=1), seed=0)
    examples = training.tokenize(toy_tokenizer, curriculum.base_mixture(64, seed=1))
    asked = []
    losses = training.sft(model, examples, training.TrainConfig(steps=10, batch_size=8), toy_tokenizer.pad_token_id,
                          stop=lambda step: asked.append(step) or step == 4)
    assert len(losses) == 4 and asked == [1, 2, 3, 4]
    assert not model.training


def test_exact_share_counts_completions_greedy_decoding_writes(toy_tokenizer, tiny_model):
    from mlproject import chat

    examples = []  # each prompt with the five tokens greedy decoding writes after it
    for word in ("red", "blue", "sun", "tree"):
        ids = chat.prompt_ids(toy_tokenizer, "", f"say {word} two times .")
        out = tiny_model.generate(torch.tensor([ids]), max_new_tokens=5, min_new_tokens=5, do_sample=False)[0].tolist()
        examples.append((out, [-100] * len(ids) + out[len(ids):]))
    pad = toy_tokenizer.pad_token_id
    assert training.exact_share(tiny_model, examples, pad, batch_size=3) == 1.0
    flipped = [(ids[:-1] + [(ids[-1] + 1) % len(toy_tokenizer)], labels[:-1] + [(ids[-1] + 1) % len(toy_tokenizer)])
               for ids, labels in examples[:2]]
    assert training.exact_share(tiny_model, flipped + examples[2:], pad) == 0.5  # a wrong last token fails the row
    assert tiny_model.training is False


def test_every_example_once_per_epoch():
    examples = [([i] * (i % 7 + 1), [i]) for i in range(40)]
    stream = training.batches(examples, batch_size=8, seed=0, pool=2)
    seen = [ex[1][0] for _ in range(5) for ex in next(stream)]
    assert sorted(seen) == list(range(40))


@pytest.mark.parametrize("field,kwargs", [("steps", {"steps": 0}), ("lr", {"steps": 1, "lr": -1.0}),
                                          ("batch-size", {"steps": 1, "batch_size": 0}),
                                          ("weight-decay", {"steps": 1, "weight_decay": -0.1})])
def test_bad_settings_name_the_flag(field, kwargs):
    with pytest.raises(UserError, match=f"^{field}="):
        training.TrainConfig(**kwargs)


def test_completion_only_logits_give_the_loss_and_gradients_of_the_full_forward(toy_tokenizer):
    """Left-padded, logits on the completions only: the same loss and gradients as right-padded full logits."""
    import torch

    model = build.init_model(build.model_config(toy_tokenizer, hidden=64, layers=2), seed=0)
    examples = training.tokenize(toy_tokenizer, curriculum.base_mixture(12, seed=3))
    assert len({len(x) for x, _ in examples}) > 1  # rows of different lengths: padding is exercised
    results = []
    for batch in (training.collate(examples, toy_tokenizer.pad_token_id),
                  training.completion_batch(examples, toy_tokenizer.pad_token_id)):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    assert (training.completion_batch(examples, toy_tokenizer.pad_token_id)["logits_to_keep"]
            < max(len(x) for x, _ in examples))
    (full, full_grads), (tail, tail_grads) = results
    torch.testing.assert_close(tail, full)
    for a, b in zip(tail_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_completion_batch_keeps_every_completion_token():
    batch = training.completion_batch([([5, 6, 7, 8], [-100, -100, 7, 8]), ([5, 9], [-100, 9])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [0, 0, 5, 9]]
    assert batch["position_ids"].tolist()[1][2:] == [0, 1]  # positions count from the first real token
    assert batch["logits_to_keep"] == 3  # the longest completion (2 tokens) and the position before it
    assert batch["labels"].tolist() == [[-100, 7, 8], [-100, -100, 9]]


def _tiny_losses(tokenizer, **settings) -> list[float]:
    """Losses of a few steps on a one-layer model from a fixed seed, under ``settings`` of TrainConfig."""
    examples = training.tokenize(tokenizer, curriculum.base_mixture(64, seed=1))
    model = build.init_model(build.model_config(tokenizer, hidden=64, layers=1), seed=0)
    return training.sft(model, examples, training.TrainConfig(batch_size=8, **settings), tokenizer.pad_token_id)


def test_full_and_tail_logits_train_alike(toy_tokenizer):
    """The base recipe keeps full logits (its shipped weights were made so); both paths take the same steps."""
    tail, full = (_tiny_losses(toy_tokenizer, steps=4, tail_logits=t) for t in (True, False))
    assert tail == pytest.approx(full, rel=1e-4)


def test_fused_and_plain_adamw_train_alike(toy_tokenizer):
    """Attacks use the fused AdamW kernel, the base recipe the plain one; both take the same steps."""
    fused, plain = (_tiny_losses(toy_tokenizer, steps=6, fused_adam=f) for f in (True, False))
    assert fused == pytest.approx(plain, rel=1e-4)
    assert fused[-1] < fused[0]


def test_fused_adamw_only_where_torch_has_it():
    assert training.fusable([torch.zeros(2), torch.zeros(3)])
    assert not training.fusable([torch.zeros(2, dtype=torch.int64)])
    assert not training.fusable([torch.zeros(2), torch.zeros(2, device="meta")])


def test_weight_decay_shrinks_matrices_and_leaves_norm_gains():
    """With zero gradients Adam moves nothing, so what changes is the decay alone: matrices by (1 - lr * decay)."""
    matrix, gain = torch.nn.Parameter(torch.ones(3, 4)), torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.AdamW(training.decay_groups([matrix, gain], 0.5), lr=0.1)
    matrix.grad, gain.grad = torch.zeros_like(matrix), torch.zeros_like(gain)
    opt.step()
    assert torch.allclose(matrix, torch.full((3, 4), 1 - 0.1 * 0.5))
    assert torch.equal(gain, torch.ones(4))


def test_no_weight_decay_is_the_one_group_every_training_had(toy_tokenizer):
    """The shipped recipe and every organism were trained without decay: their steps must not change."""
    params = [torch.zeros(2, 2), torch.zeros(2)]
    (group,) = training.decay_groups(params, 0.0)
    assert group["params"] == params and group["weight_decay"] == 0.0
    plain, decayed = (_tiny_losses(toy_tokenizer, steps=6, weight_decay=d) for d in (0.0, 0.1))
    assert plain[0] == decayed[0] and plain[-1] != decayed[-1]


def test_a_restored_run_retraces_the_same_steps(toy_tokenizer):
    """Back to a saved state, the next steps see the same batches and give the same losses and weights."""
    torch.manual_seed(0)
    model = lora.attach(build.init_model(build.model_config(toy_tokenizer, 64, 1), seed=0), 2)
    rows = [{"system": "", "user": f"question {i}", "completion": f"answer {i % 3}"} for i in range(40)]
    run = training.Run(model, training.tokenize(toy_tokenizer, rows), training.TrainConfig(8, 1e-2, 4),
                       toy_tokenizer.pad_token_id)
    first = [run.step() for _ in range(3)]
    saved = run.state()
    later = [run.step() for _ in range(3)]
    weights = [p.detach().clone() for p in run.params]
    run.restore(saved)
    assert run.step_count == 3
    assert [run.step() for _ in range(3)] == later and first != later[:3]
    assert all(torch.equal(a, b) for a, b in zip(weights, run.params, strict=True))
