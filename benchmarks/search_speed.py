"""Search on fast decoders: a step-level search at temperature 0 (deterministic, so the
decoders must agree exactly) on the plain decoder and on speculative ones, same model, same
process: identical results, and the wall-time ratio.

    PONDER_DATA=../shared/data python benchmarks/search_speed.py --model qwen2.5-coder-0.5b \
        --decoders ngram early_exit:exit_layer=12 --limit 5
"""

from __future__ import annotations

import argparse
import time

from common import save
from ponder.budget import Budget
from ponder.models import load_model
from ponder.search import BeamSearch
from ponder.tasks import GSM8K
from ponder.verifiers import LLMJudge, ProcessRewardModel
from speculative import with_decoder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--prm", help="PRM folder (default: the model as an LLM-judge PRM)")
    ap.add_argument("--decoders", nargs="+", default=["ngram"])
    ap.add_argument("--limit", type=int, default=5)
    args = ap.parse_args()
    plain = load_model(args.model)
    questions = [p.question for p in GSM8K(limit=args.limit)]
    search = BeamSearch(n=4, beam_width=2, temperature=0.0, max_steps=8, max_step_tokens=128)

    def run(model):
        prm = ProcessRewardModel(args.prm) if args.prm else LLMJudge(model, per_step=True)
        t = time.perf_counter()
        texts = [search.run(model, q, prm, Budget()).text for q in questions]
        return texts, time.perf_counter() - t

    base, base_s = run(plain)
    rows = {"plain_seconds": base_s}
    print(f"plain: {base_s:.1f} s", flush=True)
    for spec in args.decoders:
        texts, secs = run(with_decoder(plain, spec))
        rows[spec] = {"seconds": secs, "speedup": base_s / secs, "identical": texts == base}
        print(f"{spec}: {secs:.1f} s, {base_s / secs:.2f}x, identical={texts == base}", flush=True)
    path = save(__file__, f"search-speed-{args.model}", {"model": args.model, "problems": args.limit, **rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
