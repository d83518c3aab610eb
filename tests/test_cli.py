"""The `ponder` command as a user runs it."""

import json
import os
import subprocess
import sys

ENV = dict(os.environ, HYDRA_FULL_ERROR="0")


def ponder(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        cwd=cwd,
        timeout=300,
    )


def assert_user_error(r, *phrases):
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    for p in phrases:
        assert p in r.stderr, r.stderr


def test_run_prints_one_json_object(tiny_folder):
    r = ponder(
        "run",
        f"model.path={tiny_folder}",
        "prompt=Tom has 3 apples, then 5 more? (say it)",
        "output=json",
        "strategy.n=2",
        "strategy.max_new_tokens=4",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"answer", "text", "candidates", "usage", "budget_exhausted"}
    assert len(out["candidates"]) == 2 and out["usage"]["generated_tokens"] <= 8


def test_unknown_names_list_the_valid_ones():
    assert_user_error(ponder("run", "strategy=nope", "prompt=hi"), "strategy/nope", "self_consistency", "best_of_n")
    assert_user_error(ponder("run", "model=nope", "prompt=hi"), "smollm2-135m", "qwen2.5-coder-0.5b")
    assert_user_error(ponder("bench", "task=nope"), "gsm8k", "humaneval", "jsonl")


def test_malformed_values_name_the_key(tiny_folder):
    assert_user_error(
        ponder("run", f"model.path={tiny_folder}", "strategy.n=abc", "prompt=hi"),
        "strategy.n must be an integer, got 'abc'",
    )
    assert_user_error(
        ponder("run", f"model.path={tiny_folder}", "budget.max_flops=-5", "prompt=hi"),
        "budget.max_flops must be a non-negative number",
    )
    assert_user_error(ponder("bench", "task=jsonl"), "task=jsonl needs task.path")
    assert_user_error(ponder("run", f"model.path={tiny_folder}"), 'needs a question: prompt="..."')


def test_a_missing_model_says_how_to_get_it(tmp_path):
    r = ponder("run", "model=qwen2.5-coder-1.5b", "prompt=hi", env=dict(ENV, PONDER_MODELS=str(tmp_path)))
    assert_user_error(r, "fetch_models.sh qwen-1.5b", "model.path=Qwen/Qwen2.5-Coder-1.5B-Instruct")


def test_bench_and_multirun_sweep(tiny_folder, tmp_path):
    data = tmp_path / "my.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} + 1?", "a": i + 1}) + "\n" for i in range(3)))
    common = [
        f"model.path={tiny_folder}",
        "task=jsonl",
        f"task.path={data}",
        "task.question_field=q",
        "task.answer_field=a",
        "strategy.max_new_tokens=4",
    ]
    r = ponder("bench", *common, "strategy=greedy", f"out={tmp_path}/g.jsonl", "together=2")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["my-0", "my-1", "my-2"] and "accuracy" in r.stdout
    # the same file with another strategy would mix two runs' results: refused, nothing added
    r = ponder("bench", *common, "strategy=self_consistency", f"out={tmp_path}/g.jsonl")
    assert_user_error(r, "made with other settings")
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 3
    r = ponder("-m", "bench", *common, "strategy=greedy,self_consistency", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "runs" / "bench").glob("*.jsonl"))
    assert [f.name.split("-")[1] for f in files] == sorted(["greedy", "selfconsistency"])


def test_a_sweep_runs_through_a_hydra_launcher_in_worker_processes(tiny_folder, tmp_path):
    """joblib's workers import ponder.cli afresh (as the `ponder` script does): each must still
    know it is running `bench`."""
    data = tmp_path / "my.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} + 1?", "a": i + 1}) + "\n" for i in range(2)))
    args = [
        f"model.path={tiny_folder}",
        "task=jsonl",
        f"task.path={data}",
        "task.question_field=q",
        "task.answer_field=a",
        "strategy.max_new_tokens=4",
        "strategy=greedy,self_consistency",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    ]
    r = subprocess.run(
        [sys.executable, "-c", "from ponder.cli import main; main()", "-m", "bench", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "runs" / "bench").glob("*.jsonl"))
    assert [f.name.split("-")[1] for f in files] == ["greedy", "selfconsistency"]
    assert all(len(f.read_text().splitlines()) == 2 for f in files)


def test_run_shows_the_tokens_generated_while_it_generates(tiny_folder):
    r = ponder("run", f"model.path={tiny_folder}", "strategy.n=2", "strategy.max_new_tokens=4", "prompt=hi")
    assert r.returncode == 0, r.stderr
    shown = r.stderr.replace("\r", "\n")
    assert "generating: 0 tokens" in shown  # redrawn as tokens come (at most every 0.1 s), erased at the end
