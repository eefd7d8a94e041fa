"""What the semantic channel costs, in one run on one dev workspace: the index build, the semantic layer's refresh
with and without the meaning space, loading each word table (time and memory), and query latency of the ranking
before, the default, and the default of the distilled table before the code-search one (its blend and neighbour
floor; same queries, same index, alternated so load drifts hit all alike).

Run: ``python -m bench.nl_eval.cost [--language python] [--tag T]``. Writes bench/results/nl_eval-cost[-T].json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.nl_eval.__main__ import DISTILLED_FLOOR, DISTILLED_WORDS, OUT, blended
from bench.nl_eval.sets import build
from engram_ls.retrieval import Engram, meaning, ranking


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def _load(path) -> tuple[object, float, float]:
    """A word table, its load seconds and the resident memory it added."""
    before, t = _rss_mb(), time.perf_counter()
    table = meaning.WordVectors.load(path)
    return table, time.perf_counter() - t, _rss_mb() - before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--language", default="python")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "w"
        sets = build("dev", args.language, root)
        distilled, distilled_s, distilled_mb = _load(meaning.DISTILLED)
        table, load_s, load_mb = _load(meaning.DATA)
        meaning.shipped = lambda: table
        t = time.perf_counter()
        engram = Engram.open(root, cache_dir=Path(tmp) / "c")
        engram.index_workspace()
        build_s = time.perf_counter() - t
        refresh = {"with_meaning": [], "without_meaning": []}
        for _ in range(3):
            for label, value in (("with_meaning", table), ("without_meaning", None)):
                meaning.shipped = lambda v=value: v
                t = time.perf_counter()
                engram.refresh_semantic()
                refresh[label].append(time.perf_counter() - t)
        meaning.shipped = lambda: distilled
        engram.refresh_semantic()
        distilled_terms = engram.terms
        meaning.shipped = lambda: table
        engram.refresh_semantic()
        terms = engram.terms
        floor = meaning.NEIGHBOUR_SIMILARITY

        def with_distilled(q, k):
            engram.terms, meaning.NEIGHBOUR_SIMILARITY = distilled_terms, DISTILLED_FLOOR
            try:
                fn = blended(engram, None if not ranking.is_natural(q) else DISTILLED_WORDS)
                return fn(q, k)
            finally:
                engram.terms, meaning.NEIGHBOUR_SIMILARITY = terms, floor

        arms = {"before": blended(engram, ranking.BEFORE), "default": blended(engram, None),
                "distilled_default": with_distilled}
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
           "table_rss_mb": round(load_mb, 1), "distilled_load_s": round(distilled_s, 3),
           "distilled_rss_mb": round(distilled_mb, 1),
           "index_build_s": round(build_s, 2),
           "semantic_refresh_s": {k: round(min(v), 3) for k, v in refresh.items()},
           "meaning_words": len(engram.terms.meaning.words),
           "query_ms_p50": {k: round(statistics.median(v), 2) for k, v in ms.items()},
           "query_ms_p95": {k: round(sorted(v)[int(0.95 * len(v))], 2) for k, v in ms.items()},
           "n_queries": len(queries), "note": "measured under load; compare within the run"}
    out["query_p50_ratio"] = round(out["query_ms_p50"]["default"] / out["query_ms_p50"]["before"], 3)
    out["query_p50_ratio_to_distilled"] = round(out["query_ms_p50"]["default"] /
                                                out["query_ms_p50"]["distilled_default"], 3)
    out["refresh_share_of_build"] = round((out["semantic_refresh_s"]["with_meaning"] -
                                           out["semantic_refresh_s"]["without_meaning"]) / build_s, 3)
    (OUT / f"nl_eval-cost{'-' + args.tag if args.tag else ''}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
