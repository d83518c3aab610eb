"""benchmarks/choosers.py scores each rule on a run's kept candidates: on the same samples, each
rule must pick what the strategy that uses it picked."""

import importlib.util
import json
from pathlib import Path

from fakes import ScriptedModel, TableVerifier
from ponder.bench import run_benchmark
from ponder.generator import Generator
from ponder.samplers import BestOfN, SelfConsistency, WeightedBestOfN
from ponder.tasks import JSONLTask

spec = importlib.util.spec_from_file_location("choosers", Path(__file__).parents[1] / "benchmarks" / "choosers.py")
choosers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(choosers)

# per problem i (answer i): three samples and their scores. Problem 0: the vote and the weighted vote
# are right, the top score wrong; 1: only the vote is right; 2: the top score and the weighted vote
# are right, the vote wrong.
RIGHT, RIGHT2, WRONG, WRONG2 = "The answer is {}", "So the answer is {}", "The answer is 9{}", "So the answer is 9{}"
SAMPLES = [
    [(RIGHT, 0.5), (WRONG, 0.9), (RIGHT2, 0.5)],
    [(RIGHT, 0.3), (WRONG, 0.9), (RIGHT2, 0.3)],
    [(WRONG, 0.2), (RIGHT, 0.9), (WRONG2, 0.2)],
]


def run(tmp_path, strategy) -> Path:
    task = tmp_path / "t.jsonl"
    task.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(3)))
    texts = [t.format(i) for i, row in enumerate(SAMPLES) for t, _ in row]
    table = {t.format(i): s for i, row in enumerate(SAMPLES) for t, s in row}
    out = tmp_path / f"{type(strategy).__name__}.jsonl"
    run_benchmark(
        Generator(ScriptedModel(texts), strategy, TableVerifier(table)), JSONLTask(path=str(task)), out, progress=False
    )
    return out


def test_each_rule_picks_what_its_strategy_picked(tmp_path):
    runs = {
        rule: run(tmp_path, s)
        for rule, s in (
            ("vote", SelfConsistency(n=3)),
            ("verifier_top", BestOfN(n=3)),
            ("weighted_vote", WeightedBestOfN(n=3)),
        )
    }
    out = choosers.compare(runs["weighted_vote"], "table")
    acc = {rule: s["accuracy"] for rule, s in out["rules"].items()}
    assert acc == {"vote": 2 / 3, "verifier_top": 1 / 3, "weighted_vote": 2 / 3, "any (coverage)": 1.0}
    for rule, path in runs.items():  # every rule, on any run's samples, agrees with its own strategy
        own = [json.loads(line)["correct"] for line in path.read_text().splitlines()]
        assert acc[rule] == sum(own) / 3
    assert out["rules"]["weighted_vote"]["vs verifier_top"] | {"p": 0} == {"won": 1, "lost": 0, "p": 0}
    assert out["rules"]["verifier_top"]["vs vote"] | {"p": 0} == {"won": 1, "lost": 2, "p": 0}
