"""Shared by the benchmark scripts: the 8-shot GSM8K prompt, a measurement in a fresh process, and
writing results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

DATA = Path(os.environ.get("PONDER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"


def results_dir(script: str) -> Path:
    """A script's own results folder, `results/<its file stem>/` (`script` is the caller's `__file__`)."""
    return RESULTS / Path(script).stem


def gsm8k_8shot(question_index: int = 0) -> str:
    """The standard 8-shot chain-of-thought prompt built from the first 8 train problems."""
    rows = [json.loads(line) for line in open(DATA / "gsm8k" / "train.jsonl")][:8]
    test = json.loads(open(DATA / "gsm8k" / "test.jsonl").readlines()[question_index])
    shots = "".join(
        f"Question: {r['question']}\nAnswer: {r['answer'].replace('####', 'The answer is')}\n\n" for r in rows
    )
    return shots + f"Question: {test['question']}\nAnswer:"


def child_json(code: str, argv: list[str], env: dict[str, str]) -> dict:
    """Run `code` in a fresh Python (settings a library reads at start-up: OpenMP, vLLM's thread
    binding) and return the JSON object on its last line of output; a failing child stops the
    script with its error."""
    r = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"the measuring process failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def save(script: str, name: str, payload: dict) -> Path:
    """Write `payload` to `results/<script>/<name>.json`, with the machine it ran on."""
    folder = results_dir(script)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        **payload,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
