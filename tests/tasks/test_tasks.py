import json

import pytest

from ponder.errors import ConfigError, DatasetError
from ponder.tasks import GSM8K, HumanEval, JSONLTask


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_gsm8k_from_the_shared_file():
    task = GSM8K(limit=3)
    probs = task.problems()
    assert len(probs) == 3 and probs[0].reference == "18" and "Janet" in probs[0].question
    assert task.check("... The answer is 18.", probs[0]) and not task.check("The answer is 19", probs[0])
    assert len(GSM8K(limit=2, offset=1).problems()) == 2 and GSM8K(limit=2, offset=1).problems()[0].id == probs[1].id


def test_gsm8k_local_path(tmp_path):
    path = write(tmp_path / "g.jsonl", [{"question": "1+1?", "answer": "so\n#### 1,002"}])
    assert GSM8K(path=path).problems()[0].reference == "1002"


def test_malformed_datasets_say_where_and_what(tmp_path):
    with pytest.raises(DatasetError, match=r"g.jsonl:2 is not valid JSON"):
        GSM8K(path=write(tmp_path / "g.jsonl", [{"question": "a", "answer": "1"}, "{oops"])).problems()
    with pytest.raises(DatasetError, match=r"h.jsonl:1 has no field 'answer'"):
        GSM8K(path=write(tmp_path / "h.jsonl", [{"question": "a"}])).problems()
    with pytest.raises(DatasetError, match="does not exist"):
        GSM8K(path=str(tmp_path / "missing.jsonl")).problems()


def test_jsonl_task_with_named_fields(tmp_path):
    path = write(tmp_path / "my.jsonl", [{"q": "2+2?", "a": 4, "k": "x1"}, {"q": "3+3?", "a": "6", "k": "x2"}])
    task = JSONLTask(path=path, question_field="q", answer_field="a", id_field="k")
    assert [p.id for p in task] == ["x1", "x2"] and task.problems()[0].reference == "4"
    assert task.check("The answer is 4.", task.problems()[0])
    with pytest.raises(DatasetError, match="has no field 'question'"):
        JSONLTask(path=path).problems()
    with pytest.raises(ConfigError, match="task.path"):
        JSONLTask()


def test_humaneval_loads_and_grades_in_the_sandbox():
    task = HumanEval(limit=1)
    p = task.problems()[0]
    assert len(HumanEval()) == 164 and p.id == "HumanEval/0"
    solution = "```python\n" + p.meta["prompt"] + "    return False\n```"
    assert not task.check(solution, p)
    good = (
        p.meta["prompt"].split('"""')[0]
        + "\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
    )
    assert task.check("```python\n" + good + "```", p)


def test_gsm8k_is_found_in_the_shared_data_folder_without_ponder_data(tmp_path, monkeypatch):
    shared = tmp_path / "shared" / "data" / "gsm8k"
    shared.mkdir(parents=True)
    write(shared / "test.jsonl", [{"question": "What is 1+1?", "answer": "#### 2"}])
    (tmp_path / "project").mkdir()
    monkeypatch.delenv("PONDER_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "project")  # a checkout beside ../shared, as on these machines
    assert GSM8K().problems()[0].reference == "2"
    monkeypatch.setenv("PONDER_DATA", str(tmp_path / "elsewhere"))  # an explicit folder without the file: next one
    assert GSM8K().problems()[0].question.startswith("What is 1+1?")
