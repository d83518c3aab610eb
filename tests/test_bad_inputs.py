"""Bad command-line values: each a clear message naming the key and value, no traceback, and
(where the value needs no model) before the model loads: the model path given here does not
exist, so a check made after loading would report the missing model instead."""

import json

import pytest

from test_cli import assert_user_error, ponder

NO_MODEL = "model.path=/nonexistent/model-folder"


@pytest.mark.parametrize(
    "override, phrase",
    [
        ("strategy.n=abc", "strategy.n must be an integer, got 'abc'"),
        ("strategy.temperature=[]", "strategy.temperature must be a number or a non-empty list of numbers, got []"),
        ("strategy.temperature=nan", "strategy.temperature must be a number, got nan"),
        ("strategy.seed=abc", "strategy.seed must be an integer, got 'abc'"),
        ("decoder=medusa", "decoder.heads is required and has no value"),
        ("model.max_batch_rows=0", "model.max_batch_rows must be >= 1, got 0"),
        ("model.prefix_cache_tokens=-1", "model.prefix_cache_tokens must be >= 0, got -1"),
        ("budget.max_seconds=0", "budget.max_seconds must be a number > 0"),
        ("budget.max_flops=nan", "budget.max_flops must be a non-negative number or null (unlimited), got nan"),
        ("budget.max_generated_tokens=true", "budget.max_generated_tokens must be a non-negative number"),
    ],
)
def test_values_that_need_no_model_are_refused_before_it_loads(override, phrase):
    assert_user_error(ponder("run", NO_MODEL, override, "prompt=hi"), phrase)


def test_a_prompt_is_never_interpolated(tiny_folder):
    text = "Let ${x} = 3 and $y = ${oops:}. What is x + 1?"
    r = ponder("run", f"model.path={tiny_folder}", "strategy=greedy", "strategy.max_new_tokens=2", f"prompt={text}")
    assert r.returncode == 0, r.stderr


def test_a_prompt_longer_than_the_context_is_refused_before_any_work(tiny_folder):
    from fakes import tiny_network

    context = tiny_network().config.max_position_embeddings
    r = ponder("run", f"model.path={tiny_folder}", "strategy=greedy", "prompt=" + "apple " * (context + 10))
    assert_user_error(r, f"takes at most {context}", "shorten the prompt")


def test_bench_out_a_folder_is_refused_before_the_model_loads(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": 2}) + "\n")
    r = ponder("bench", NO_MODEL, "task=jsonl", f"task.path={data}", f"out={tmp_path}")
    assert_user_error(r, f"{tmp_path} is a folder", "out=")


@pytest.mark.parametrize(
    "rows, extra, phrase",
    [
        ([{"question": "1+1?", "answer": None}], [], "field 'answer' must be a value, got null"),
        ([{"question": ["1+1?"], "answer": 2}], [], "field 'question' must be text"),
        ([{"question": "1+1?", "answer": 2}], ["task.offset=5"], "task.offset=5 is past the end of jsonl, which has 1"),
    ],
)
def test_bad_task_data_is_refused_before_the_model_loads(tmp_path, rows, extra, phrase):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = ponder("bench", NO_MODEL, "task=jsonl", f"task.path={data}", *extra)
    assert_user_error(r, phrase)


def test_task_path_a_folder_says_so(tmp_path):
    r = ponder("bench", NO_MODEL, "task=jsonl", f"task.path={tmp_path}")
    assert_user_error(r, "is a folder; give the JSONL file itself")


def test_a_full_disk_while_writing_results_is_a_message(tiny_folder, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": 2}) + "\n")
    out = tmp_path / "res.jsonl"
    out.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    r = ponder(
        "bench",
        f"model.path={tiny_folder}",
        "task=jsonl",
        f"task.path={data}",
        "strategy=greedy",
        "strategy.max_new_tokens=2",
        f"out={out}",
    )
    assert_user_error(r, "no space left on device", "run again to resume")
