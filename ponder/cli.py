"""The `ponder` command: `ponder run ...`, `ponder bench ...`, with Hydra overrides and `-m` sweeps."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from ponder.budget import Budget

USAGE = """usage: ponder {run,bench,leaderboard,train-medusa,train-prm} [key=value ...] [-m]

  ponder run prompt="Tom has 3 apples..." strategy=self_consistency strategy.n=8 output=json
  ponder bench task=gsm8k task.limit=100 strategy=self_consistency strategy.n=8
  ponder -m bench strategy=greedy,self_consistency      (Hydra multirun sweep)
  ponder run --cfg job                                  (print the composed config)
  ponder leaderboard task.limit=100 strategies=[greedy,beam_search] budgets=[1000,2000] verifier=prm \
      verifier.path=runs/prm/x seeds=[0,1] out=runs/lb/x   (a compute-matched grid, then its report)
  ponder leaderboard report out=runs/lb/x               (table, plot and page from what is there)
  ponder train-medusa model=qwen2.5-coder-0.5b out=runs/medusa/qwen0.5b problems=200
  ponder train-prm model=qwen2.5-coder-0.5b out=runs/prm/qwen0.5b problems=100 rollouts=4

Config groups: model, decoder, strategy, verifier, budget, task, logger. Run `ponder run --help` for the options."""

COMMANDS = ("run", "bench", "leaderboard", "train-medusa", "train-prm")
_command = "run"


_prompt: str | None = None  # the prompt exactly as typed: user text never goes through interpolation


def take_prompt(argv: list[str]) -> list[str]:
    """Keep `prompt=...` away from Hydra: free text (commas, quotes, `${x}` in LaTeX or shell
    snippets) is the user's, never an override to parse or an interpolation to resolve."""
    global _prompt
    rest = []
    for arg in argv:
        if arg.startswith("prompt="):
            text = arg[7:]
            quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
            _prompt = text[1:-1] if quoted else text
        else:
            rest.append(arg)
    return rest


RESULT_GROUPS = ("model", "decoder", "strategy", "verifier", "budget", "task")  # what makes a benchmark's results


def bench_settings(cfg) -> dict:
    """The choices that make a benchmark's results: a rerun into the same file must match them."""
    from omegaconf import OmegaConf

    from ponder.verifiers.prm_train import trained_prm

    settings = OmegaConf.to_container(OmegaConf.create({k: cfg[k] for k in RESULT_GROUPS}), resolve=True)
    for key in ("limit", "offset"):  # which problems a run covers is no part of a row: a larger limit extends it
        settings["task"].pop(key, None)
    if trained := trained_prm(settings["verifier"].get("path")):  # a PRM retrained in place is another PRM
        settings["verifier_trained"] = trained
    return settings


def default_out(cfg) -> str:
    from omegaconf import OmegaConf

    key = OmegaConf.to_yaml(bench_settings(cfg))
    task = cfg.task._target_.rsplit(".", 1)[-1].lower()
    strategy = cfg.strategy._target_.rsplit(".", 1)[-1].lower()
    return f"runs/bench/{task}-{strategy}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.jsonl"


class ProgressBudget(Budget):
    """A Budget that shows on stderr the tokens generated and forward passes so far (`ponder run`),
    as `bench` shows problems done: a long generation never looks hung."""

    def __init__(self, **limits):
        from tqdm import tqdm

        super().__init__(**limits)
        self.bar = tqdm(desc="generating", unit=" tokens", total=limits.get("max_generated_tokens"), leave=False)

    def charge(self, **amounts) -> None:
        super().charge(**amounts)
        if amounts.get("generated_tokens"):
            self.bar.set_postfix_str(f"{self._usage.forward_passes} forward passes", refresh=False)
            self.bar.update(amounts["generated_tokens"])  # redraws at most every 0.1 s

    def __enter__(self) -> "ProgressBudget":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def run(cfg) -> None:
    from ponder.generator import Generator
    from ponder.errors import ConfigError

    prompt = _prompt if _prompt is not None else cfg.prompt
    if not prompt:
        raise ConfigError('ponder run needs a question: prompt="..."')
    if cfg.output not in ("text", "json"):
        raise ConfigError(f"output must be 'text' or 'json', got {cfg.output!r}")
    gen = Generator.from_config(cfg)
    with ProgressBudget(**gen.budget_limits) as budget:
        result = gen(str(prompt), budget)
    if cfg.output == "json":
        d = result.to_dict()
        print(json.dumps({k: d[k] for k in ("answer", "text", "candidates", "usage", "budget_exhausted")}))
        return
    u = result.usage
    print(result.text.strip())
    print(f"\nanswer: {result.answer}")
    print(
        f"[{len(result.candidates)} candidates; {u.generated_tokens} generated + {u.prompt_tokens} prompt tokens "
        f"({u.cached_prompt_tokens} cached), {u.forward_passes} forward passes, {u.flops:.3g} FLOPs, "
        f"{u.seconds:.1f} s{'; budget exhausted' if result.budget_exhausted else ''}]"
    )


def bench(cfg) -> None:
    from ponder.bench import format_summary, read_results, resume_cache, run_benchmark
    from ponder.results import results_lock
    from ponder.config import instantiate
    from ponder.generator import Generator

    task = instantiate(cfg.task, "task")
    task.problems()  # a bad dataset fails before the model loads
    out = cfg.out or default_out(cfg)
    print(f"results: {out}", file=sys.stderr)
    settings = bench_settings(cfg)
    logger = instantiate(cfg.logger, "logger")
    with results_lock(Path(out)):  # held from before the model loads: a second run on `out` is refused
        resume_cache(Path(out), settings, "results")  # results made otherwise: refused before the model loads
        summary = run_benchmark(Generator.from_config(cfg), task, out, settings=settings, together=cfg.together)
    print(format_summary(summary))
    logger.log_run(Path(out).stem, settings, read_results(Path(out)), summary)


def train_medusa(cfg) -> None:
    from ponder.config import instantiate
    from ponder.speculative.medusa_train import train_medusa as train
    from ponder.tasks import GSM8K

    questions = [p.question for p in GSM8K(path=cfg.data, split="train", limit=cfg.problems, template="{question}")]
    model = instantiate(cfg.model, "model")
    out = cfg.out or f"runs/medusa/{Path(str(cfg.model.path)).name}"
    metrics = train(
        model,
        out,
        questions,
        cfg.num_heads,
        cfg.num_layers,
        cfg.share_lm_head,
        cfg.max_new_tokens,
        cfg.epochs,
        cfg.lr,
        cfg.batch_positions,
        cfg.heldout,
        cfg.seed,
        cfg.loss_vocab,
    )
    print(json.dumps(metrics, indent=2))
    print(f"heads saved to {out}; use them with decoder=medusa decoder.heads={out}")


def train_prm(cfg) -> None:
    from ponder.config import instantiate
    from ponder.models import load_model
    from ponder.tasks import GSM8K
    from ponder.verifiers.prm_train import train_prm as train

    task = GSM8K(path=cfg.data, split="train", limit=cfg.problems)
    problems = task.problems()
    model = instantiate(cfg.model, "model")
    out = cfg.out or f"runs/prm/{Path(str(cfg.model.path)).name}"
    body = load_model(str(cfg.body)) if cfg.body else None
    metrics = train(
        model,
        out,
        task,
        problems,
        cfg.samples,
        cfg.rollouts,
        cfg.delimiter,
        cfg.max_new_tokens,
        cfg.max_steps,
        cfg.temperature,
        cfg.heldout,
        cfg.steps,
        cfg.lr,
        cfg.seed,
        batch_problems=cfg.batch_problems,
        body=body,
        depths=list(cfg.depths) if cfg.depths else None,
    )
    print(json.dumps(metrics, indent=2))
    print(f"PRM saved to {out}; use it with verifier=prm verifier.path={out}")


def job(cfg) -> None:
    from ponder.errors import PonderError

    from ponder.leaderboard import command as leaderboard

    commands = {"run": run, "bench": bench, "train-medusa": train_medusa, "train-prm": train_prm}
    commands.update({"leaderboard": leaderboard.grid, "leaderboard report": leaderboard.report})
    try:
        from ponder.threads import set_threads

        set_threads(cfg.get("threads"))
        # the command travels in the config too: a launcher's worker process (joblib, submitit)
        # imports this module afresh and sees only the config
        commands[cfg.get("command") or _command](cfg)
    except PonderError as e:
        print(f"ponder: error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    global _command
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    if command is None:
        print(USAGE, file=sys.stderr)
        sys.exit(0 if any(a in ("-h", "--help") for a in argv) else 2)
    argv.remove(command)
    if command == "leaderboard" and "report" in argv:
        argv.remove("report")
        command = "leaderboard report"
    _command = command
    import hydra

    sys.argv = [f"ponder {command}"] + take_prompt(argv)
    if command in ("run", "bench"):
        sys.argv.append(f"command={command}")
    name = {"train-medusa": "train_medusa", "train-prm": "train_prm"}.get(command, "config")
    name = "leaderboard" if command.startswith("leaderboard") else name
    hydra.main(config_path="configs", config_name=name, version_base=None)(job)()


if __name__ == "__main__":
    main()
