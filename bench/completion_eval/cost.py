"""What the completion context costs a keystroke: ``completion_hits`` per target, warm (the second call at the same
cursor, as the next keystroke meets it), p50 / p95 over the evaluation's targets of both kinds.

Run: ``python -m bench.completion_eval.cost --tag NAME``; compare two builds in one session by putting the other
build first on PYTHONPATH. Writes bench/results/completion_context_cost-TAG.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from engram_ls.retrieval import Engram
from engram_ls.server import completion_context
from engram_ls.server.completion_context import completion_hits

from .__main__ import RESULTS, choose


CACHES = [getattr(completion_context, name) for name in ("_bindings",) if hasattr(completion_context, name)]


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.completion_eval.cost")
    p.add_argument("--work", type=Path, default=Path("/tmp/engram-completion-eval"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--tag", required=True)
    args = p.parse_args()
    out = {}
    for kind in ("absent", "first-use"):
        engrams: dict[str, Engram] = {}
        times = []
        for t in choose(args.work, args.n, "name", kind):
            if t["project"] not in engrams:
                engrams[t["project"]] = Engram.open(args.work / "projects" / t["project"],
                                                    cache_dir=args.work / "cache-hits")
                engrams[t["project"]].index_workspace()
            e = engrams[t["project"]]
            completion_hits(e, t["path"], t["prefix"], t["suffix"])
            for cache in CACHES:  # keyed by the buffer, which the next keystroke changes
                cache.cache_clear()
            start = time.perf_counter()
            completion_hits(e, t["path"], t["prefix"], t["suffix"])
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[kind] = {"n": len(times), "p50_ms": round(times[len(times) // 2], 2),
                     "p95_ms": round(times[int(len(times) * 0.95)], 2)}
    (RESULTS / f"completion_context_cost-{args.tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
