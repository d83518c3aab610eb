"""Training a process reward model with Math-Shepherd-style automatic labels ("Math-Shepherd:
Verify and Reinforce LLMs Step-by-step without Human Annotations", Wang et al. 2024).

For each training problem the policy samples solutions; for every step prefix of a solution,
`rollouts` completions are sampled from it and the step's label is the share that reach the
correct answer (the last step's label is whether the solution itself is right). A value head
is then fit on a small LM with its body frozen (the policy's own, or another model's): the
model reads the question and the steps, each followed by a separator token, and the head reads
the hidden state at each separator. The head's L2 penalty is chosen by cross-validation over
problems, and held-out problems measure it (step accuracy, and AUC with a bootstrap interval).

The result is saved as a transformers token-classification model (two labels, P(label 1) =
sigmoid of the value head) with `<extra_0>` as the separator, the Qwen2.5-Math-PRM format, so
it loads as `verifier=prm verifier.path=<folder>` for every strategy.
"""
from __future__ import annotations

import copy
import hashlib
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
                   cache: Path | None = None, batch_problems: int = 1) -> list[dict]:
    """One record per sampled solution of `problems`: its steps, a label in [0, 1] per step and
    the seconds its problem took to label (its group's time shared out equally).

    Problems are labelled `batch_problems` at a time in two backend calls: one samples the
    solutions of the whole group, one all their rollouts, so the backend decodes many rows per
    forward pass. With `cache` (a JSONL file), each group's records are appended as it
    finishes and a rerun with the same settings labels only the problems not yet there (the
    group size is not a setting: it changes which random draws are made, not what a label is)."""
    check_number("batch_problems", batch_problems, minimum=1, integer=True)
    settings = {"model": getattr(model, "name", type(model).__name__), "samples": samples, "rollouts": rollouts,
                "delimiter": delimiter, "max_new_tokens": max_new_tokens, "max_steps": max_steps,
                "temperature": temperature, "seed": seed}
    cached = resume_cache(cache, settings, "labels") if cache is not None else []
    done = {r["problem"] for r in cached}
    todo = [(n, p) for n, p in enumerate(problems) if p.id not in done]
    with tqdm(total=len(problems), initial=len(problems) - len(todo), desc="rollout labels", unit="problem",
              disable=not progress) as bar:
        for g in range(0, len(todo), batch_problems):
            group = todo[g:g + batch_problems]
            mine = _label_group(model, task, group, samples, rollouts, delimiter, max_new_tokens, max_steps,
                                temperature, seed)
            cached += mine
            if cache is not None and mine:
                with open(cache, "a") as f:
                    f.write("".join(json.dumps(r) + "\n" for r in mine))
            bar.update(len(group))
    order = {p.id: n for n, p in enumerate(problems)}
    return sorted((r for r in cached if r["problem"] in order), key=lambda r: order[r["problem"]])


def _label_group(model, task, group, samples, rollouts, delimiter, max_new_tokens, max_steps, temperature,
                 seed) -> list[dict]:
    """The records of `group` ((index, problem) pairs), labelled in two backend calls."""
    t0 = time.perf_counter()
    first = group[0][0]  # the group's seed: a group of one draws what one problem at a time always drew
    prompts = [model.chat(p.question) for _, p in group]
    sols = model.generate(prompts, SamplingParams(n=samples, temperature=temperature, seed=seed + first,
                                                  max_new_tokens=max_new_tokens), Budget())
    # the label of a solution's real last step is whether the solution is right; every other
    # step's is the share of rollouts from it that reach the right answer
    todo, rows = [], []  # (problem, solution, steps, number of rolled prefixes); (prompt, prefix, problem)
    for (_, problem), prompt, comps in zip(group, prompts, sols):
        for sol in comps:
            every = split_steps(sol.text, delimiter)
            steps = every[:max_steps]
            rolled = max(0, len(steps) - (len(steps) == len(every)))  # the solution's own end is not rolled
            todo.append((problem, sol, steps, rolled))
            rows += [(prompt, delimiter.join(steps[:i + 1]) + delimiter, problem) for i in range(rolled)]
    outs = model.generate([prompt + prefix for prompt, prefix, _ in rows], SamplingParams(
        n=rollouts, temperature=temperature, seed=seed + first, max_new_tokens=max_new_tokens),
        Budget()) if rows else []
    shares = [sum(task.check(prefix + c.text, problem) for c in comps) / len(comps)
              for (_, prefix, problem), comps in zip(rows, outs)]
    records, seconds = [], round((time.perf_counter() - t0) / len(group), 1)
    for problem, sol, steps, rolled in todo:
        labels, shares = shares[:rolled], shares[rolled:]
        if not steps:
            continue
        if rolled < len(steps):
            labels.append(float(task.check(sol.text, problem)))
        records.append({"problem": problem.id, "question": problem.question, "steps": steps, "labels": labels,
                        "seconds": seconds})
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


def auc(scores: torch.Tensor, good: torch.Tensor) -> float | None:
    """ROC AUC: the chance that a good step scores above a bad one (ties count half); None
    when either kind is missing."""
    pos, neg = scores[good], scores[~good]
    if not len(pos) or not len(neg):
        return None
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


def auc_ci95(scores: torch.Tensor, good: torch.Tensor, groups: list, draws: int = 1000, seed: int = 0):
    """95% bootstrap interval of `auc`, resampling problems (`groups`, one per row: the steps
    of one problem are not independent, so they are drawn together); None without both kinds."""
    rows = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    rows = [torch.tensor(r) for r in rows.values()]
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(draws):
        pick = torch.cat([rows[i] for i in torch.randint(len(rows), (len(rows),), generator=gen).tolist()])
        if (a := auc(scores[pick], good[pick])) is not None:
            values.append(a)
    if not values:
        return None
    q = torch.tensor(values).quantile(torch.tensor([0.025, 0.975]))
    return (q[0].item(), q[1].item())


L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)  # on standardised features; 100 leaves about the base rate


def fit_head(x: torch.Tensor, y: torch.Tensor, l2: float, steps: int, lr: float, seed: int):
    """A logistic value head on (standardised) features `x` for soft labels `y`, with an L2
    penalty on its weights; returns the head and its final training loss (the BCE alone)."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        bce = torch.nn.functional.binary_cross_entropy_with_logits(head(x)[:, 0], y)
        opt.zero_grad()
        (bce + l2 * head.weight.pow(2).sum()).backward()
        opt.step()
    return head, bce.item()


def choose_l2(x, y, groups: list, steps: int, lr: float, seed: int, grid=L2_GRID, folds: int = 4):
    """The L2 strength from `grid` with the lowest cross-validated BCE, folds split by problem
    (`groups`, one per row) so no problem's steps are on both sides; a few hundred labelled
    steps on a body's ~1,000 features are fit perfectly without it. With fewer than two
    problems there is nothing to validate on: the strongest penalty, and no losses."""
    names = list(dict.fromkeys(groups))
    folds = min(folds, len(names))
    if folds < 2:
        return grid[-1], {}
    fold_of = {g: i % folds for i, g in enumerate(names)}
    fold = torch.tensor([fold_of[g] for g in groups])
    losses = {}
    for l2 in grid:
        total = 0.0
        for f in range(folds):
            head, _ = fit_head(x[fold != f], y[fold != f], l2, steps, lr, seed)
            with torch.no_grad():
                total += torch.nn.functional.binary_cross_entropy_with_logits(
                    head(x[fold == f])[:, 0], y[fold == f], reduction="sum").item()
        losses[l2] = total / len(y)
    return min(losses, key=losses.get), losses


def train_prm(model, out: str | Path, task, problems, samples: int = 2, rollouts: int = 4, delimiter: str = "\n\n",
              max_new_tokens: int = 256, max_steps: int = 8, temperature: float = 0.8, heldout: float = 0.2,
              steps: int = 300, lr: float = 0.01, seed: int = 0, system: str | None = QWEN_SYSTEM,
              progress: bool = True, batch_problems: int = 4, body=None) -> dict:
    """Label with `model` (the policy), fit and save a PRM whose body is `body`'s (an HFModel;
    default the policy's own, a smaller one makes every scoring cheaper); returns the metrics
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
                             temperature, seed, progress, cache=out / "labels.jsonl", batch_problems=batch_problems)
    held = {p.id for p in problems[-n_eval:]}
    body = body or model
    net, tokenizer = prm_network(body)
    feats = features(net, tokenizer, records, system)
    split = {"train": [i for i, r in enumerate(records) if r["problem"] not in held],
             "heldout": [i for i, r in enumerate(records) if r["problem"] in held]}
    # per split: features and label of every step, and the problem each step belongs to
    data = {k: (torch.cat([feats[i] for i in idx]) if idx else torch.zeros(0, feats[0].shape[1]),
                torch.tensor([x for i in idx for x in records[i]["labels"]]),
                [records[i]["problem"] for i in idx for _ in records[i]["labels"]]) for k, idx in split.items()}
    x, y, groups = data["train"]
    if not len(x):
        raise ConfigError("no training steps: the model produced no solutions; raise problems or max_new_tokens")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)  # standardise features, folded into the head afterwards
    xs = (x - mean) / std
    l2, cv_loss = choose_l2(xs, y, groups, steps, lr, seed)
    head, loss = fit_head(xs, y, l2, steps, lr, seed)
    with torch.no_grad():
        w = head.weight[0] / std
        b = head.bias[0] - (w * mean).sum()
        score = net.score
        score.weight.zero_()
        score.bias.zero_()
        score.weight[1] = w.to(score.weight.dtype)
        score.bias[1] = b.to(score.bias.dtype)
    scores = {k: xk @ w + b for k, (xk, _, _) in data.items()}  # the value head's logit per step
    hx, hy, held_groups = data["heldout"]

    def accuracy(k):
        labels = data[k][1]
        return float(((scores[k] > 0) == (labels > 0.5)).float().mean()) if len(labels) else None

    metrics = {
        "base_model": body.name, "policy": model.name, "problems": len(problems), "heldout_problems": n_eval,
        "solutions": len(records),
        "train_steps": len(x), "heldout_steps": len(hx), "samples": samples, "rollouts": rollouts,
        "l2": l2, "cv_loss_by_l2": cv_loss, "final_train_loss": loss, "train_step_accuracy": accuracy("train"),
        "heldout_step_accuracy": accuracy("heldout"),
        # ranking quality, which a search uses and a skewed label share does not flatter: how well
        # the scores separate steps from which some rollout reached the answer (Math-Shepherd's
        # hard label) from steps from which none did
        "train_step_auc": auc(scores["train"], y > 0),
        "heldout_step_auc": auc(scores["heldout"], hy > 0),
        "heldout_step_auc_ci95": auc_ci95(scores["heldout"], hy > 0, held_groups, seed=seed),
        "heldout_majority_baseline": (None if not len(hy) else
                                      float(max((hy > 0.5).float().mean(), (hy <= 0.5).float().mean()))),
        "positive_share": float((y > 0.5).float().mean()), "system": system,
        # labelling time of every problem, in this run or an earlier one that this run resumed
        "seconds_labelling": sum({r["problem"]: r.get("seconds", 0.0) for r in records}.values()),
        "seconds_total": time.perf_counter() - t0,
    }
    net.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "prm_train.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def trained_prm(path) -> dict | None:
    """What a PRM folder written by `train_prm` was made from, to tell its results apart: the
    folder's name, the policy, body and training size, and a digest of its metrics (a PRM
    retrained in place gets new metrics, so a new digest; wall seconds are left out of it).
    None for any other path (a hub id, a PRM trained elsewhere)."""
    metrics_file = Path(str(path or "")) / "prm_train.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    fit = {k: v for k, v in metrics.items() if not k.startswith("seconds")}
    return {"folder": metrics_file.parent.resolve().name,
            **{k: metrics.get(k) for k in ("base_model", "policy", "problems", "solutions", "train_steps")},
            "metrics_sha1": hashlib.sha1(json.dumps(fit, sort_keys=True).encode()).hexdigest()[:12]}
