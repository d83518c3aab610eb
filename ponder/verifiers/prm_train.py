"""Training a process reward model with Math-Shepherd-style automatic labels ("Math-Shepherd:
Verify and Reinforce LLMs Step-by-step without Human Annotations", Wang et al. 2024).

For each training problem the policy samples solutions; for every step prefix of a solution,
`rollouts` completions are sampled from it and the step's label is the share that reach the
correct answer (the last step's label is whether the solution itself is right). A value head
is then fit on a small LM with its body frozen (the policy's own, or another model's): the
model reads the question and the steps, each followed by a separator token, and the head reads
the hidden state at each separator. The head's L2 penalty and the body's depth (the head may
read an earlier layer, and the body is then cut there: cheaper to score) are chosen by
cross-validation over problems, and held-out problems measure the result (step accuracy, and
AUC with a bootstrap interval).

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


def rollout_labels(
    model,
    task,
    problems,
    samples: int,
    rollouts: int,
    delimiter: str,
    max_new_tokens: int,
    max_steps: int,
    temperature: float,
    seed: int,
    progress: bool = True,
    cache: Path | None = None,
    batch_problems: int = 1,
) -> list[dict]:
    """One record per sampled solution of `problems`: its steps, a label in [0, 1] per step and
    the seconds its problem took to label (its group's time shared out equally).

    Problems are labelled `batch_problems` at a time in two backend calls: one samples the
    solutions of the whole group, one all their rollouts, so the backend decodes many rows per
    forward pass. With `cache` (a JSONL file), each group's records are appended as it
    finishes and a rerun with the same settings labels only the problems not yet there (the
    group size is not a setting: it changes which random draws are made, not what a label is)."""
    check_number("batch_problems", batch_problems, minimum=1, integer=True)
    settings = {
        "model": getattr(model, "name", type(model).__name__),
        "samples": samples,
        "rollouts": rollouts,
        "delimiter": delimiter,
        "max_new_tokens": max_new_tokens,
        "max_steps": max_steps,
        "temperature": temperature,
        "seed": seed,
    }
    cached = resume_cache(cache, settings, "labels") if cache is not None else []
    done = {r["problem"] for r in cached}
    todo = [(n, p) for n, p in enumerate(problems) if p.id not in done]
    with tqdm(
        total=len(problems),
        initial=len(problems) - len(todo),
        desc="rollout labels",
        unit="problem",
        disable=not progress,
    ) as bar:
        for g in range(0, len(todo), batch_problems):
            group = todo[g : g + batch_problems]
            mine = _label_group(
                model, task, group, samples, rollouts, delimiter, max_new_tokens, max_steps, temperature, seed
            )
            cached += mine
            if cache is not None and mine:
                with open(cache, "a") as f:
                    f.write("".join(json.dumps(r) + "\n" for r in mine))
            bar.update(len(group))
    order = {p.id: n for n, p in enumerate(problems)}
    return sorted((r for r in cached if r["problem"] in order), key=lambda r: order[r["problem"]])


def _label_group(
    model, task, group, samples, rollouts, delimiter, max_new_tokens, max_steps, temperature, seed
) -> list[dict]:
    """The records of `group` ((index, problem) pairs), labelled in two backend calls."""
    t0 = time.perf_counter()
    first = group[0][0]  # the group's seed: a group of one draws what one problem at a time always drew
    prompts = [model.chat(p.question) for _, p in group]
    sols = model.generate(
        prompts,
        SamplingParams(n=samples, temperature=temperature, seed=seed + first, max_new_tokens=max_new_tokens),
        Budget(),
    )
    # the label of a solution's real last step is whether the solution is right; every other
    # step's is the share of rollouts from it that reach the right answer
    todo, rows = [], []  # (problem, solution, steps, number of rolled prefixes); (prompt, prefix, problem)
    for (_, problem), prompt, comps in zip(group, prompts, sols):
        for sol in comps:
            every = split_steps(sol.text, delimiter)
            steps = every[:max_steps]
            rolled = max(0, len(steps) - (len(steps) == len(every)))  # the solution's own end is not rolled
            todo.append((problem, sol, steps, rolled))
            rows += [(prompt, delimiter.join(steps[: i + 1]) + delimiter, problem) for i in range(rolled)]
    outs = (
        model.generate(
            [prompt + prefix for prompt, prefix, _ in rows],
            SamplingParams(n=rollouts, temperature=temperature, seed=seed + first, max_new_tokens=max_new_tokens),
            Budget(),
        )
        if rows
        else []
    )
    shares = [
        sum(task.check(prefix + c.text, problem) for c in comps) / len(comps)
        for (_, prefix, problem), comps in zip(rows, outs)
    ]
    records, seconds = [], round((time.perf_counter() - t0) / len(group), 1)
    for problem, sol, steps, rolled in todo:
        labels, shares = shares[:rolled], shares[rolled:]
        if not steps:
            continue
        if rolled < len(steps):
            labels.append(float(task.check(sol.text, problem)))
        records.append(
            {"problem": problem.id, "question": problem.question, "steps": steps, "labels": labels, "seconds": seconds}
        )
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


DEPTH_SHARES = (0.125, 0.25, 0.5, 0.75, 1.0)  # of the body's layers: the depths tried by default


def depth_grid(layers: int) -> list[int]:
    return sorted({max(1, round(share * layers)) for share in DEPTH_SHARES})


@torch.inference_mode()
def features(net, tokenizer, records, system: str | None, depths) -> dict[int, list[torch.Tensor]]:
    """At every separator, the frozen body's hidden state after each of `depths` layers, through
    the body's final norm (what the body cut to that depth gives): per depth, a [steps, hidden]
    tensor per record."""
    sep = tokenizer.convert_tokens_to_ids(SEPARATOR)
    body = net.base_model
    out = {d: [] for d in depths}
    for r in records:
        ids = torch.tensor(
            [render_separated(tokenizer, r["question"], r["steps"], SEPARATOR, system)], device=net.device
        )
        # the embeddings, then each layer's output; the last one is the normed last_hidden_state
        hidden = body(input_ids=ids, output_hidden_states=True).hidden_states
        at = ids[0] == sep
        for d in depths:
            h = hidden[d][0][at]
            out[d].append((h if d == len(hidden) - 1 else body.norm(h)).float().cpu())
    return out


def cut(net, depth: int):
    """The token-classification network with only the body's first `depth` layers (saved so)."""
    if depth < len(net.base_model.layers):
        net.base_model.layers = net.base_model.layers[:depth]
        net.config.num_hidden_layers = depth
        if getattr(net.config, "layer_types", None):
            net.config.layer_types = net.config.layer_types[:depth]
    return net


def auc(scores: torch.Tensor, good: torch.Tensor) -> float | None:
    """ROC AUC: the chance that a good step scores above a bad one (ties count half); None
    when either kind is missing."""
    pos, neg = scores[good], scores[~good]
    if not len(pos) or not len(neg):
        return None
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


def within_auc(scores: torch.Tensor, good: torch.Tensor, groups: list) -> float | None:
    """The mean over problems holding both kinds of step of each one's own `auc`: how well the
    scores rank the steps of one problem, which is what a search compares (a pooled AUC also
    credits telling easy problems from hard ones). None when no problem holds both kinds."""
    rows = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    values = [a for idx in rows.values() if (a := auc(scores[idx], good[idx])) is not None]
    return sum(values) / len(values) if values else None


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
    steps on a body's ~1,000 features are fit perfectly without it. Returns it, the loss of each
    strength, and the out-of-fold logits at the chosen one. With fewer than two problems there is
    nothing to validate on: the strongest penalty, no losses and no logits."""
    names = list(dict.fromkeys(groups))
    folds = min(folds, len(names))
    if folds < 2:
        return grid[-1], {}, None
    fold_of = {g: i % folds for i, g in enumerate(names)}
    fold = torch.tensor([fold_of[g] for g in groups])
    losses, logits = {}, {}
    for l2 in grid:
        logits[l2] = torch.zeros(len(y))
        for f in range(folds):
            head, _ = fit_head(x[fold != f], y[fold != f], l2, steps, lr, seed)
            with torch.no_grad():
                logits[l2][fold == f] = head(x[fold == f])[:, 0]
        losses[l2] = torch.nn.functional.binary_cross_entropy_with_logits(logits[l2], y).item()
    best = min(losses, key=losses.get)
    return best, losses, logits[best]


def choose_depth(x_by_depth: dict, y, groups: list, steps: int, lr: float, seed: int) -> tuple[int, dict]:
    """Each depth's features (unstandardised) with the L2 its cross-validation picks; the depth
    kept is the one whose out-of-fold scores rank the steps within a problem best (what a
    search compares), the shallower (cheaper) on a tie, the deepest when nothing validates.
    Returns it and each depth's cross-validation record."""
    cv, good = {}, y > 0
    for d, x in sorted(x_by_depth.items()):
        l2, losses, oof = choose_l2((x - x.mean(0)) / x.std(0).clamp_min(1e-4), y, groups, steps, lr, seed)
        cv[d] = {
            "l2": l2,
            "cv_loss_by_l2": losses,
            "cv_step_auc": None if oof is None else auc(oof, good),
            "cv_step_auc_ci95": None if oof is None else auc_ci95(oof, good, groups, seed=seed),
            "cv_within_problem_auc": None if oof is None else within_auc(oof, good, groups),
        }
    ranked = [d for d in cv if cv[d]["cv_within_problem_auc"] is not None]
    return (max(ranked, key=lambda d: (cv[d]["cv_within_problem_auc"], -d)) if ranked else max(cv)), cv


def train_prm(
    model,
    out: str | Path,
    task,
    problems,
    samples: int = 2,
    rollouts: int = 4,
    delimiter: str = "\n\n",
    max_new_tokens: int = 256,
    max_steps: int = 8,
    temperature: float = 0.8,
    heldout: float = 0.2,
    steps: int = 300,
    lr: float = 0.01,
    seed: int = 0,
    system: str | None = QWEN_SYSTEM,
    progress: bool = True,
    batch_problems: int = 4,
    body=None,
    depths=None,
) -> dict:
    """Label with `model` (the policy), fit and save a PRM whose body is `body`'s (an HFModel;
    default the policy's own, a smaller one makes every scoring cheaper); returns the metrics
    saved beside it (prm_train.json), held-out step-label accuracy among them."""
    from ponder.protocols import require

    require(body or model, "local_network", "ponder train-prm (the PRM's body)")
    check_number("samples", samples, minimum=1, integer=True)
    check_number("rollouts", rollouts, minimum=1, integer=True)
    check_number("heldout", heldout, minimum=0.05, maximum=0.9)
    problems = list(problems)
    n_eval = max(1, int(len(problems) * heldout))
    if len(problems) - n_eval < 1:
        raise ConfigError(f"train-prm needs at least 2 problems (some held out), got {len(problems)}")
    t0 = time.perf_counter()
    out = Path(out)
    records = rollout_labels(
        model,
        task,
        problems,
        samples,
        rollouts,
        delimiter,
        max_new_tokens,
        max_steps,
        temperature,
        seed,
        progress,
        cache=out / "labels.jsonl",
        batch_problems=batch_problems,
    )
    held = {p.id for p in problems[-n_eval:]}
    body = body or model
    net, tokenizer = prm_network(body)
    layers = len(net.base_model.layers)
    depths = sorted(
        {
            check_number(f"depths (layers of {body.name}'s {layers} read)", d, minimum=1, maximum=layers, integer=True)
            for d in depths or depth_grid(layers)
        }
    )
    feats = features(net, tokenizer, records, system, depths)
    split = {
        "train": [i for i, r in enumerate(records) if r["problem"] not in held],
        "heldout": [i for i, r in enumerate(records) if r["problem"] in held],
    }
    # per split: the label of every step and the problem it belongs to; features per depth
    labels = {k: torch.tensor([x for i in idx for x in records[i]["labels"]]) for k, idx in split.items()}
    problem_of = {k: [records[i]["problem"] for i in idx for _ in records[i]["labels"]] for k, idx in split.items()}

    def stacked(depth, k):
        return torch.cat([feats[depth][i] for i in split[k]]) if split[k] else torch.zeros(0, feats[depth][0].shape[1])

    y, groups = labels["train"], problem_of["train"]
    if not len(y):
        raise ConfigError("no training steps: the model produced no solutions; raise problems or max_new_tokens")
    train_x = {d: stacked(d, "train") for d in depths}
    depth, cv = choose_depth(train_x, y, groups, steps, lr, seed)
    l2, x = cv[depth]["l2"], train_x[depth]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)  # standardise features, folded into the head afterwards
    head, loss = fit_head((x - mean) / std, y, l2, steps, lr, seed)
    with torch.no_grad():
        w = head.weight[0] / std
        b = head.bias[0] - (w * mean).sum()
        score = cut(net, depth).score
        score.weight.zero_()
        score.bias.zero_()
        score.weight[1] = w.to(score.weight.dtype)
        score.bias[1] = b.to(score.bias.dtype)
    scores = {k: stacked(depth, k) @ w + b for k in split}  # the value head's logit per step
    hy, held_groups = labels["heldout"], problem_of["heldout"]

    def accuracy(k):
        return float(((scores[k] > 0) == (labels[k] > 0.5)).float().mean()) if len(labels[k]) else None

    metrics = {
        "base_model": body.name,
        "policy": model.name,
        "problems": len(problems),
        "heldout_problems": n_eval,
        "solutions": len(records),
        "train_steps": len(y),
        "heldout_steps": len(hy),
        "samples": samples,
        "rollouts": rollouts,
        "body_layers": layers,
        "depth": depth,
        "l2": l2,
        "cv_by_depth": cv,
        "final_train_loss": loss,
        "train_step_accuracy": accuracy("train"),
        "heldout_step_accuracy": accuracy("heldout"),
        # ranking quality, which a search uses and a skewed label share does not flatter: how well
        # the scores separate steps from which some rollout reached the answer (Math-Shepherd's
        # hard label) from steps from which none did, pooled and within a problem
        "train_step_auc": auc(scores["train"], y > 0),
        "heldout_step_auc": auc(scores["heldout"], hy > 0),
        "heldout_step_auc_ci95": auc_ci95(scores["heldout"], hy > 0, held_groups, seed=seed),
        "heldout_within_problem_auc": within_auc(scores["heldout"], hy > 0, held_groups),
        "heldout_majority_baseline": (
            None if not len(hy) else float(max((hy > 0.5).float().mean(), (hy <= 0.5).float().mean()))
        ),
        "positive_share": float((y > 0.5).float().mean()),
        "system": system,
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
    folder's name, the policy, body and training size, and a digest of its fit: sizes, depth,
    L2 and metrics (a PRM retrained in place on other labels or settings gets a new digest).
    Metrics are rounded to 4 decimals and wall seconds and the depth search's diagnostics left
    out, so that the same training rerun (another machine's float rounding, a later version's
    diagnostics) keeps its digest. None for any other path (a hub id, a PRM trained elsewhere)."""
    metrics_file = Path(str(path or "")) / "prm_train.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text(), parse_float=lambda x: round(float(x), 4))
    fit = {k: v for k, v in metrics.items() if not k.startswith("seconds") and k != "cv_by_depth"}
    return {
        "folder": metrics_file.parent.resolve().name,
        **{k: metrics.get(k) for k in ("base_model", "policy", "problems", "solutions", "train_steps")},
        "metrics_sha1": hashlib.sha1(json.dumps(fit, sort_keys=True).encode()).hexdigest()[:12],
    }
