"""Training a process reward model with Math-Shepherd-style automatic labels ("Math-Shepherd:
Verify and Reinforce LLMs Step-by-step without Human Annotations", Wang et al. 2024).

For each training problem the policy samples solutions; for every step prefix of a solution,
`rollouts` completions are sampled from it and the step's label is the share that reach the
correct answer (the last step's label is whether the solution itself is right). A value head
is then fit on a small LM with its body frozen: the model reads the question and the steps,
each followed by a separator token, and the head reads the hidden state at each separator.

The result is saved as a transformers token-classification model (two labels, P(label 1) =
sigmoid of the value head) with `<extra_0>` as the separator, the Qwen2.5-Math-PRM format, so
it loads as `verifier=prm verifier.path=<folder>` for every strategy.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ponder.bench import resume_cache
from ponder.budget import Budget
from ponder.errors import ConfigError, check_number
from ponder.types import SamplingParams
from ponder.verifiers.prm import QWEN_SYSTEM, render_separated, split_steps

SEPARATOR = "<extra_0>"


def rollout_labels(model, task, problems, samples: int, rollouts: int, delimiter: str, max_new_tokens: int,
                   max_steps: int, temperature: float, seed: int, progress: bool = True,
                   cache: Path | None = None) -> list[dict]:
    """One record per sampled solution of `problems`: its steps, a label in [0, 1] per step and
    the seconds its problem took to label. With `cache` (a JSONL file), each problem's records
    are appended as it finishes and a rerun with the same settings labels only the problems
    not yet there."""
    settings = {"model": getattr(model, "name", type(model).__name__), "samples": samples, "rollouts": rollouts,
                "delimiter": delimiter, "max_new_tokens": max_new_tokens, "max_steps": max_steps,
                "temperature": temperature, "seed": seed}
    cached = resume_cache(cache, settings, "labels") if cache is not None else []
    records = []
    for n, problem in enumerate(tqdm(problems, desc="rollout labels", disable=not progress)):
        if mine := [r for r in cached if r["problem"] == problem.id]:
            records += mine
            continue
        t0 = time.perf_counter()
        prompt = model.chat(problem.question)
        sols = model.generate([prompt], SamplingParams(n=samples, temperature=temperature, seed=seed + n,
                                                       max_new_tokens=max_new_tokens), Budget())[0]
        # the label of a solution's real last step is whether the solution is right; every other
        # step's is the share of rollouts from it that reach the right answer. The rollouts of
        # all of a problem's solutions go to the backend as one batch.
        todo = []
        for sol in sols:
            every = split_steps(sol.text, delimiter)
            steps = every[:max_steps]
            rolled = len(steps) - (len(steps) == len(every))
            prefixes = [delimiter.join(steps[:i + 1]) + delimiter for i in range(rolled)]
            todo.append((sol, steps, prefixes))
        prefixes = [p for _, _, ps in todo for p in ps]
        outs = model.generate([prompt + p for p in prefixes], SamplingParams(
            n=rollouts, temperature=temperature, seed=seed + n, max_new_tokens=max_new_tokens),
            Budget()) if prefixes else []
        shares = [sum(task.check(p + c.text, problem) for c in comps) / len(comps)
                  for p, comps in zip(prefixes, outs)]
        mine, seconds = [], round(time.perf_counter() - t0, 1)
        for sol, steps, ps in todo:
            if not steps:
                continue
            labels, shares = shares[:len(ps)], shares[len(ps):]
            if len(ps) < len(steps):
                labels.append(float(task.check(sol.text, problem)))
            mine.append({"problem": problem.id, "question": problem.question, "steps": steps, "labels": labels,
                         "seconds": seconds})
        records += mine
        if cache is not None and mine:
            with open(cache, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in mine))
    return records


def prm_network(model):
    """A token-classification copy of the model's body (2 labels) and its tokenizer with the
    separator added (its embedding starts as the delimiter's, a natural end-of-step)."""
    from transformers import AutoModelForTokenClassification

    tokenizer = copy.deepcopy(model.tokenizer)
    tokenizer.add_tokens([SEPARATOR], special_tokens=True)
    cfg = copy.deepcopy(model.network.config)
    cfg.num_labels, cfg.architectures = 2, None
    for key in ("gguf_file", "_name_or_path"):
        cfg.__dict__.pop(key, None)
    net = AutoModelForTokenClassification.from_config(cfg, dtype=model.network.dtype)
    net.base_model.load_state_dict(model.network.base_model.state_dict())
    net.resize_token_embeddings(len(tokenizer))
    nl = model.encode("\n\n", special=False)[-1]
    with torch.no_grad():
        emb = net.get_input_embeddings().weight
        emb[tokenizer.convert_tokens_to_ids(SEPARATOR)] = emb[nl]
    return net.to(model.device).eval(), tokenizer


@torch.inference_mode()
def features(net, tokenizer, records, system: str | None) -> list[torch.Tensor]:
    """The frozen body's last hidden state at every separator, per record [steps, hidden]."""
    sep = tokenizer.convert_tokens_to_ids(SEPARATOR)
    out = []
    for r in records:
        ids = torch.tensor([render_separated(tokenizer, r["question"], r["steps"], SEPARATOR, system)], device=net.device)
        h = net.base_model(input_ids=ids).last_hidden_state[0].float()
        out.append(h[ids[0] == sep].cpu())
    return out


def train_prm(model, out: str | Path, task, problems, samples: int = 2, rollouts: int = 4, delimiter: str = "\n\n",
              max_new_tokens: int = 256, max_steps: int = 8, temperature: float = 0.8, heldout: float = 0.2,
              steps: int = 300, lr: float = 0.01, seed: int = 0, system: str | None = QWEN_SYSTEM, progress: bool = True
              ) -> dict:
    """Label, fit and save a PRM whose body is `model`'s (an HFModel); returns the metrics
    saved beside it (prm_train.json), held-out step-label accuracy among them."""
    check_number("samples", samples, minimum=1, integer=True)
    check_number("rollouts", rollouts, minimum=1, integer=True)
    check_number("heldout", heldout, minimum=0.05, maximum=0.9)
    problems = list(problems)
    n_eval = max(1, int(len(problems) * heldout))
    if len(problems) - n_eval < 1:
        raise ConfigError(f"train-prm needs at least 2 problems (some held out), got {len(problems)}")
    t0 = time.perf_counter()
    out = Path(out)
    records = rollout_labels(model, task, problems, samples, rollouts, delimiter, max_new_tokens, max_steps,
                             temperature, seed, progress, cache=out / "labels.jsonl")
    held = {p.id for p in problems[-n_eval:]}
    net, tokenizer = prm_network(model)
    feats = features(net, tokenizer, records, system)
    split = {"train": [i for i, r in enumerate(records) if r["problem"] not in held],
             "heldout": [i for i, r in enumerate(records) if r["problem"] in held]}
    data = {k: (torch.cat([feats[i] for i in idx]) if idx else torch.zeros(0, feats[0].shape[1]),
                torch.tensor([x for i in idx for x in records[i]["labels"]])) for k, idx in split.items()}
    x, y = data["train"]
    if not len(x):
        raise ConfigError("no training steps: the model produced no solutions; raise problems or max_new_tokens")
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], 1)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)  # standardise features, folded into the head afterwards
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head((x - mean) / std)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w = head.weight[0] / std
        b = head.bias[0] - (w * mean).sum()
        score = net.score
        score.weight.zero_()
        score.bias.zero_()
        score.weight[1] = w.to(score.weight.dtype)
        score.bias[1] = b.to(score.bias.dtype)

    def accuracy(xs, ys):
        if not len(xs):
            return None
        pred = (xs @ w + b) > 0
        return float((pred == (ys > 0.5)).float().mean())

    metrics = {
        "base_model": model.name, "problems": len(problems), "heldout_problems": n_eval, "solutions": len(records),
        "train_steps": len(x), "heldout_steps": len(data["heldout"][0]), "samples": samples, "rollouts": rollouts,
        "final_train_loss": loss.item(), "train_step_accuracy": accuracy(*data["train"]),
        "heldout_step_accuracy": accuracy(*data["heldout"]),
        "heldout_majority_baseline": (None if not len(data["heldout"][1]) else
                                      float(max((data["heldout"][1] > 0.5).float().mean(),
                                                (data["heldout"][1] <= 0.5).float().mean()))),
        "positive_share": float((y > 0.5).float().mean()), "system": system,
        # labelling time of every problem, in this run or an earlier one that this run resumed
        "seconds_labelling": sum({r["problem"]: r.get("seconds", 0.0) for r in records}.values()),
        "seconds_total": time.perf_counter() - t0,
    }
    net.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "prm_train.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
