"""Leaderboards: a compute-matched grid of strategies x budgets x seeds run on one task and model
(`grid`), each strategy sized to its budget (`sizing`), every cell's rows tagged with what made
them (`identity`), and a report from whatever cells a folder holds: the table (`table`), the
accuracy-vs-FLOPs plot (`plot`) and a static web page (`page`); results recorded by the older
benchmark scripts are read as cells too (`recorded`)."""

from ponder.leaderboard.grid import Cell, plan_cells, run_grid
from ponder.leaderboard.report import make_report
from ponder.leaderboard.sizing import SizingRule

__all__ = ["Cell", "SizingRule", "make_report", "plan_cells", "run_grid"]
