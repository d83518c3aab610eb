"""Results files two runs cannot corrupt (ponder.results)."""

import json
import subprocess
import sys
import textwrap

import pytest

from fakes import ScriptedModel
from ponder.bench import read_results, run_benchmark
from ponder.errors import ConfigError
from ponder.generator import Generator
from ponder.results import resume_cache, results_lock
from ponder.samplers import SelfConsistency
from test_bench import make_task


def row(i, correct=True):
    usage = {"generated_tokens": 1, "flops": 0, "seconds": 0}
    return {"id": f"t-{i}", "correct": correct, "pass_at_k": correct, "budget_exhausted": False, "usage": usage}


def test_a_second_process_on_the_same_results_file_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from ponder.results import results_lock
        with results_lock(Path({str(out)!r})):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    p = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        model = ScriptedModel(["The answer is 0"] * 4)
        with pytest.raises(ConfigError, match=f"being written by another ponder run \\(pid {p.pid}\\)"):
            run_benchmark(Generator(model, SelfConsistency(n=1)), make_task(tmp_path), out, progress=False)
        assert not model.calls
    finally:
        p.communicate("\n", timeout=30)
    with results_lock(out), results_lock(out):  # free again, and re-entrant within one process
        pass


def test_each_results_file_keeps_its_own_settings(tmp_path):
    resume_cache(tmp_path / "res.jsonl", {"strategy": "a"}, "results")
    resume_cache(tmp_path / "res.txt", {"strategy": "b"}, "results")
    assert json.loads((tmp_path / "res.jsonl.settings.json").read_text()) == {"strategy": "a"}
    assert json.loads((tmp_path / "res.txt.settings.json").read_text()) == {"strategy": "b"}


def test_rows_of_unknown_provenance_are_not_added_to(tmp_path):
    out = tmp_path / "copied.jsonl"
    out.write_text(json.dumps(row(0)) + "\n")  # copied here without its settings file
    with pytest.raises(ConfigError, match="holds 1 results but no copied.jsonl.settings.json.*unknown provenance"):
        resume_cache(out, {"strategy": "a"}, "results")


@pytest.mark.parametrize("damage", ['{"id": "t-1", "corr\n', "not json at all\n", "[1, 2]\n"])
def test_a_damaged_row_mid_file_is_reported_removed_and_redone(tmp_path, capsys, damage):
    out = tmp_path / "r.jsonl"
    settings = {"strategy": "sc"}
    out.write_text(json.dumps(row(0)) + "\n" + damage + json.dumps(row(2)) + "\n")
    (tmp_path / "r.jsonl.settings.json").write_text(json.dumps(settings) + "\n")
    model = ScriptedModel(["The answer is 1"] * 2)
    s = run_benchmark(
        Generator(model, SelfConsistency(n=1)), make_task(tmp_path), out, progress=False, settings=settings
    )
    assert "line(s) 2 were not complete records; removed" in capsys.readouterr().err
    assert len(model.calls) == 2  # t-1 (the damaged one) and t-3
    lines = out.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["t-0", "t-2", "t-1", "t-3"] and s["problems"] == 4


def test_a_larger_limit_extends_a_finished_run(tmp_path):
    from ponder.cli import bench_settings
    from ponder.config import compose

    small, large = (bench_settings(compose([f"task.limit={n}", "task.offset=1"])) for n in (2, 5))
    assert small == large and "limit" not in small["task"]
    out = tmp_path / "r.jsonl"
    model = ScriptedModel(["The answer is 0"] * 6)
    run_benchmark(Generator(model, SelfConsistency(n=1)), make_task(tmp_path, 2), out, progress=False, settings=small)
    s = run_benchmark(
        Generator(model, SelfConsistency(n=1)), make_task(tmp_path, 5), out, progress=False, settings=large
    )
    assert len(model.calls) == 5 and s["problems"] == 5 and len(read_results(out)) == 5
    older = {**small, "task": {**small["task"], "limit": 2}}  # a settings file an older ponder wrote
    (tmp_path / "r.jsonl.settings.json").write_text(json.dumps(older))
    assert len(resume_cache(out, large, "results")) == 5
