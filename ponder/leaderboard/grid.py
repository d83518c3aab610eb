"""The compute-matched grid: strategies x budgets x seeds on one task and model, one results file
per cell (`<out>/cells/<strategy>-b<budget>-s<seed>.jsonl`), each written by `ponder.bench`'s
`run_benchmark` as its problems finish, so a killed grid loses nothing and a rerun goes on where
it stopped; a cell whose file was made with other settings (or on another machine set-up: the
row identity is part of the settings) is refused before any cell runs."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ponder.errors import ConfigError
from ponder.leaderboard.identity import config_hash, identity
from ponder.leaderboard.sizing import SizingRule

TOKEN_KEYS = ("max_flops", "max_generated_tokens")  # budget keys the sizing rule sizes for


@dataclass
class Cell:
    """One (strategy, budget, seed) of the grid: the strategy's config as sized, the budget's
    limits, and the results file."""

    strategy: str
    budget: float
    seed: int
    strategy_config: dict
    limits: dict
    path: Path

    @property
    def name(self) -> str:
        return f"{self.strategy}-b{self.budget:g}-s{self.seed}"


def strategy_names() -> list[str]:
    """The strategies ponder ships a YAML for (ponder/configs/strategy/)."""
    folder = resources.files("ponder.configs") / "strategy"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def strategy_yaml(name: str) -> dict:
    """A strategy's shipped YAML (ponder/configs/strategy/<name>.yaml) as a dict."""
    from omegaconf import OmegaConf

    folder = resources.files("ponder.configs") / "strategy"
    known = strategy_names()
    if name not in known:
        raise ConfigError(f"strategies= names {name!r}, which is not a strategy; choose from {', '.join(known)}")
    return OmegaConf.to_container(OmegaConf.create((folder / f"{name}.yaml").read_text()), resolve=True)


def per_cell(cells: dict, strategy: str, budget: float) -> dict:
    """The user's own settings for a cell: `cells.<strategy>.<key>` for every budget, then
    `cells.<strategy>.b<budget>.<key>` for one."""
    mine = dict(cells.get(strategy) or {})
    at_budget = {k: mine.pop(k) for k in list(mine) if str(k).startswith("b") and isinstance(mine[k], dict)}
    return {**mine, **(at_budget.get(f"b{budget:g}") or {})}


def limits_for(budget_key: str, budget: float, params: int, extra: dict) -> dict:
    """A cell's budget: `budget_key` set to the grid's budget (max_flops: B generated-token
    equivalents, B x 2 x params FLOPs) on top of the grid-wide limits in `extra`."""
    value = budget * 2.0 * params if budget_key == "max_flops" else budget
    return {**{k: v for k, v in extra.items() if v is not None}, budget_key: value}


def plan_cells(cfg, params: int, out: Path) -> list[Cell]:
    """Every cell of the grid, in the order they run (budget, then strategy, then seed)."""
    from omegaconf import OmegaConf

    budgets, strategies, seeds = list(cfg.budgets), list(cfg.strategies), list(cfg.seeds)
    if not budgets or not strategies or not seeds:
        raise ConfigError(f"a grid needs strategies, budgets and seeds; got {strategies}, {budgets}, {seeds}")
    if cfg.budget_key not in cfg.budget:
        raise ConfigError(f"budget_key must be a budget key ({', '.join(cfg.budget)}); got {cfg.budget_key!r}")
    rule = SizingRule(**cfg.sizing) if cfg.size and cfg.budget_key in TOKEN_KEYS else None
    users = OmegaConf.to_container(cfg.cells, resolve=True) if cfg.cells else {}
    for name in users:
        if name not in strategies:
            raise ConfigError(f"cells.{name} sets a strategy the grid does not run; strategies={strategies}")
    grid = []
    for budget in budgets:
        for name in strategies:
            for seed in seeds:
                settings = strategy_yaml(name)
                settings.update(rule.settings(name, budget) if rule else {})
                settings.update(per_cell(users, name, budget))
                if "seed" in settings:
                    settings["seed"] = int(seed)
                limits = limits_for(cfg.budget_key, budget, params, dict(cfg.budget))
                path = out / "cells" / f"{name}-b{budget:g}-s{seed}.jsonl"
                grid.append(Cell(name, budget, int(seed), settings, limits, path))
                if "seed" not in settings:
                    break  # a strategy without a seed (greedy) is one run, whatever the seeds
    return grid


def cell_settings(cfg, cell: Cell, strategy, model) -> dict:
    """What made a cell's results: the config its rows come from and the row identity."""
    from omegaconf import OmegaConf

    from ponder.verifiers.prm_train import trained_prm

    base = OmegaConf.to_container(OmegaConf.create({k: cfg[k] for k in ("model", "decoder", "task")}), resolve=True)
    verifier = OmegaConf.to_container(cfg.verifier, resolve=True) if strategy.uses_verifier else None
    trained = trained_prm(verifier.get("path")) if verifier else None
    config = {**base, "strategy": cell.strategy_config, "verifier": verifier, "budget": cell.limits}
    if trained:
        config["verifier_trained"] = trained
    return {
        "leaderboard": {"strategy": cell.strategy, "budget": cell.budget, "budget_key": cfg.budget_key},
        "config": config,
        "identity": identity(config, cell.seed, model, trained),
        "hash": config_hash({**config, "seed": cell.seed}),
    }


def write_problems(task, out: Path) -> None:
    """The task's questions and references beside the cells, for the report's drill-down."""
    path = out / "problems.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": p.id, "question": p.question, "reference": str(p.reference)[:2000]} for p in task]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def fresh_caches(model, verifier) -> None:
    """Empty the prefix caches before a cell, so that no cell is charged less because an earlier
    one computed its prompts: the HF backend's LRU prefix cache, vLLM's automatic prefix cache,
    a PRM's KV cache. A backend holding none (a remote server's is out of reach) is left as is."""
    backend = model.capabilities.backend
    if backend == "hf":
        model.prefix_cache.clear()
    elif backend == "vllm":
        model.engine.reset_prefix_cache()
    cache = getattr(verifier, "cache", None)  # ProcessRewardModel's scored-solution KV cache
    if cache is not None:
        cache.clear()


def run_grid(cfg, model=None, verifier=None, progress: bool = True) -> list[tuple[Cell, dict, dict]]:
    """Run every cell of the grid `cfg` (a composed leaderboard config) not yet finished; return
    (cell, settings, summary) for each. `model` and `verifier` may be passed in already built
    (otherwise built from `cfg`, once for the whole grid)."""
    from ponder.bench import resume_cache, run_benchmark
    from ponder.config import instantiate
    from ponder.generator import Generator

    if not cfg.out:
        raise ConfigError("ponder leaderboard needs out=<folder> for the grid's cells and report")
    out = Path(str(cfg.out))
    task = instantiate(cfg.task, "task")
    task.problems()  # a bad dataset or strategy name fails before the model loads
    for name in cfg.strategies:
        strategy_yaml(name)
    if cfg.budget_key not in cfg.budget:
        raise ConfigError(f"budget_key must be a budget key ({', '.join(cfg.budget)}); got {cfg.budget_key!r}")
    if model is None:
        model = instantiate(cfg.model, "model", decoder=instantiate(cfg.decoder, "decoder"))
    grid = plan_cells(cfg, model.shape.params, out)
    built = [(cell, instantiate(cell.strategy_config, f"strategy {cell.strategy}")) for cell in grid]
    if verifier is None and any(s.uses_verifier for _, s in built):
        verifier = instantiate(cfg.verifier, "verifier")
    made = [cell_settings(cfg, cell, strategy, model) for cell, strategy in built]
    for (cell, _), settings in zip(built, made):  # every cell refused now, not hours in
        resume_cache(cell.path, settings, f"cell {cell.name}'s results")
    write_problems(task, out)
    done = []
    for i, ((cell, strategy), settings) in enumerate(zip(built, made)):
        if progress:
            print(f"[cell {i + 1}/{len(grid)}] {cell.name}: {cell.path}", file=sys.stderr, flush=True)
        gen = Generator(model, strategy, verifier if strategy.uses_verifier else None, budget=cell.limits)
        fresh_caches(model, verifier)
        start = time.perf_counter()
        summary = run_benchmark(gen, task, cell.path, progress, settings=settings, together=cfg.together)
        summary["cell_wall_seconds"] = time.perf_counter() - start
        done.append((cell, settings, summary))
    return done
