"""What the semantic channel costs, in one run on one dev workspace: the index build, the semantic layer's refresh
with and without the meaning space, and query latency of the ranking before against the default (same queries,
same index, alternated so load drifts hit both alike).

Run: ``python -m bench.nl_eval.cost [--language python]``. Writes bench/results/nl_eval-cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.nl_eval.__main__ import OUT, blended
from bench.nl_eval.sets import build
from engram_ls.retrieval import Engram, meaning, ranking


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--language", default="python")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "w"
        sets = build("dev", args.language, root)
        t = time.perf_counter()
        meaning.shipped()
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        engram = Engram.open(root, cache_dir=Path(tmp) / "c")
        engram.index_workspace()
        build_s = time.perf_counter() - t
        refresh = {"with_meaning": [], "without_meaning": []}
        table = meaning.shipped()
        for _ in range(3):
            for label, value in (("with_meaning", table), ("without_meaning", None)):
                meaning.shipped = lambda v=value: v
                t = time.perf_counter()
                engram.refresh_semantic()
                refresh[label].append(time.perf_counter() - t)
        meaning.shipped = lambda: table
        engram.refresh_semantic()
        arms = {"before": blended(engram, ranking.BEFORE), "default": blended(engram, None)}
        ms = {name: [] for name in arms}
        queries = [f["query"] for f in sets["nl"]] + [f["query"] for f in sets["code"]]
        for q in queries[:40]:                  # warm both paths
            for fn in arms.values():
                fn(q, 10)
        for q in queries:
            for name, fn in arms.items():
                t = time.perf_counter()
                fn(q, 10)
                ms[name].append((time.perf_counter() - t) * 1000)
    out = {"language": args.language, "chunks": len(engram.table), "table_load_s": round(load_s, 3),
           "index_build_s": round(build_s, 2),
           "semantic_refresh_s": {k: round(min(v), 3) for k, v in refresh.items()},
           "meaning_words": len(engram.terms.meaning.words),
           "query_ms_p50": {k: round(statistics.median(v), 2) for k, v in ms.items()},
           "query_ms_p95": {k: round(sorted(v)[int(0.95 * len(v))], 2) for k, v in ms.items()},
           "n_queries": len(queries), "note": "measured under load; compare within the run"}
    out["query_p50_ratio"] = round(out["query_ms_p50"]["default"] / out["query_ms_p50"]["before"], 3)
    out["refresh_share_of_build"] = round((out["semantic_refresh_s"]["with_meaning"] -
                                           out["semantic_refresh_s"]["without_meaning"]) / build_s, 3)
    (OUT / "nl_eval-cost.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
