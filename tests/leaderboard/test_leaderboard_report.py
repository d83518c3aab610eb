"""The report from results the search benchmark recorded (GSM8K-100, Qwen2.5-Coder-0.5B): the
sizing rule that made them, the table's numbers, the paired tests, the frontier and the plot."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ponder.config import instantiate
from ponder.leaderboard.grid import strategy_yaml
from ponder.leaderboard.identity import mismatches
from ponder.leaderboard.report import make_report
from ponder.leaderboard.sizing import SizingRule
from ponder.leaderboard.table import sign_test

RECORDED = Path(__file__).parents[2] / "benchmarks" / "results" / "search_gsm8k"
SOURCES = [RECORDED / "search-100", RECORDED / "search-100-cut"]


@pytest.mark.parametrize("path", sorted((RECORDED / "search-100").glob("*.settings.json")), ids=lambda p: p.stem)
def test_the_sizing_rule_builds_the_strategies_the_recorded_grid_ran(path):
    made = json.loads(path.read_text())
    name = path.name.split("-prm-")[1].rsplit("-b", 1)[0]
    settings = {**strategy_yaml(name), **SizingRule().settings(name, made["budget"])}
    built = json.loads(json.dumps(vars(instantiate(OmegaConf.create(settings), "strategy")), default=repr))
    recorded = made["strategy"]
    if "step" in recorded:  # the script recorded only the step settings it set; the rest are defaults
        assert recorded["step"].items() <= built["step"].items()
        recorded, built = {**recorded, "step": None}, {**built, "step": None}
    assert built == recorded


def test_sign_test_matches_the_binomial_test():
    from scipy.stats import binomtest

    for won, lost in [(0, 0), (2, 20), (10, 9), (13, 6), (5, 5), (0, 7)]:
        expected = binomtest(won, won + lost).pvalue if won + lost else 1.0
        assert sign_test(won, lost) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from ponder.tasks import GSM8K

    out = tmp_path_factory.mktemp("lb")
    return out, make_report(out, SOURCES, "greedy", "GSM8K-100", GSM8K(limit=100))


def test_report_from_recorded_results_gives_the_documented_numbers(report):
    out, made = report
    rows = {(r["strategy"], r["budget"]): r for r in made["rows"]}
    assert len(rows) == 19  # nine strategies at 1,000 and 2,000, self-consistency at 4,000
    sc = rows[("self_consistency", 2000.0)]
    assert (sc["correct"], sc["problems"]) == (28, 100)
    assert sc["accuracy_ci95"] == pytest.approx([0.201, 0.375], abs=5e-4)
    assert (sc["vs_baseline"]["won"], sc["vs_baseline"]["lost"]) == (13, 6)
    assert rows[("astar", 1000.0)]["correct"] == 3  # the cut-step rerun replaces the first A* run
    assert rows[("astar", 1000.0)]["vs_baseline"]["p"] == pytest.approx(0.00012, abs=1e-5)
    assert rows[("greedy", 1000.0)]["vs_baseline"] is None
    frontier = {k for k, r in rows.items() if r["frontier"]}
    assert frontier == {
        ("greedy", 1000.0),
        ("beam_search", 1000.0),
        ("self_consistency", 2000.0),
        ("self_consistency", 4000.0),
    }
    assert any("replaces" in w for w in made["warnings"])


def test_report_writes_table_plot_and_page(report):
    out, _ = report
    md = (out / "table.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 20 and "★" in md  # header + 19 rows
    table = json.loads((out / "table.json").read_text())
    assert len(table["rows"]) == 19 and table["baseline"] == "greedy"
    assert len((out / "table.csv").read_text().splitlines()) == 20
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "plot.svg").read_text()[:1000]
    data = (out / "data.js").read_text()
    assert data.startswith("window.LEADERBOARD = ") and "Janet" in data  # the questions came from the task


def test_quality_results_are_readable_too(tmp_path):
    made = make_report(tmp_path, [RECORDED.parent / "quality_gsm8k"], "greedy")
    acc = {r["strategy"]: r["accuracy"] for r in made["rows"]}
    assert acc["greedy"] == pytest.approx(0.21) and acc["self_consistency_n8"] == pytest.approx(0.30)


def test_rows_made_on_other_set_ups_are_warned_about():
    same = {"torch": "2.13.0", "backend": "hf", "device": "cpu", "dtype": "fp32"}
    assert mismatches([same, dict(same)]) == []
    warned = mismatches([same, {**same, "device": "cuda:0", "ponder": "0.1.0"}])
    assert any("different device: cpu, cuda:0" in w for w in warned)
    assert any("do not record ponder" in w for w in warned)
