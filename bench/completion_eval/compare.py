"""One arm of two evaluation runs (two ``--tag``s: e.g. two settings of the prompt builder) compared on the targets
both completed: each run's scores, and paired bootstrap 95% CIs of their exact-match ratio and difference.

Run: ``python -m bench.completion_eval.compare TAG_A TAG_B [--arm engram] [--n 36]`` with the ``--n`` (and
``--cursor``) the runs used; writes bench/results/completion_compare-TAG_A-vs-TAG_B.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .__main__ import ARMS, RESULTS, SEED, bootstrap_diff, bootstrap_ratio, choose, score


def rows(cache: Path, tag: str, arm: str) -> tuple[dict[int, dict], dict]:
    path = cache / f"rows-{tag}.jsonl"
    got = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["arm"] == arm:
            got[row["id"]] = row
    return got, json.loads(path.with_suffix(".settings.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.completion_eval.compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--arm", default="engram", choices=ARMS)
    p.add_argument("--work", type=Path, default=Path("/tmp/engram-completion-eval"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--cursor", choices=("name", "line"), default="name")
    args = p.parse_args()
    targets = {t["id"]: t for t in choose(args.work, args.n, args.cursor)}
    (ra, sa), (rb, sb) = rows(args.work / "cache", args.a, args.arm), rows(args.work / "cache", args.b, args.arm)
    ids = sorted(set(ra) & set(rb) & set(targets))
    if not ids:
        raise SystemExit("no target completed in both runs")
    scores = {tag: [score(targets[i], got[i]) for i in ids] for tag, got in ((args.a, ra), (args.b, rb))}
    rng = np.random.default_rng(SEED)
    col = {tag: {k: np.array([s[k] for s in got]) for k in ("exact", "edit", "ident", "name")}
           for tag, got in scores.items()}
    x, y = col[args.a]["exact"], col[args.b]["exact"]
    result = {"arm": args.arm, "n": len(ids), "settings": {args.a: sa, args.b: sb},
              "runs": {tag: {k: round(float(v.mean()), 4) for k, v in c.items()} for tag, c in col.items()},
              "exact_ratio": round(float(x.mean() / y.mean()), 3) if y.mean() else None,
              "exact_ratio_ci95": bootstrap_ratio(x, y, rng), "exact_difference_ci95": bootstrap_diff(x, y, rng),
              "same_completion": int(sum(ra[i]["completion"] == rb[i]["completion"] for i in ids)),
              "targets": [{"id": i, "project": targets[i]["project"], "path": targets[i]["path"],
                           "line": targets[i]["line"], "target": targets[i]["target"],
                           args.a: {"completion": ra[i]["completion"], **sa_i},
                           args.b: {"completion": rb[i]["completion"], **sb_i}}
                          for i, sa_i, sb_i in zip(ids, scores[args.a], scores[args.b])]}
    stem = f"completion_compare-{args.a}-vs-{args.b}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
    differ = {k: v for k, v in sa.items() if sb.get(k) != v} | {k: None for k in sb if k not in sa}
    lines = ["| run | exact match | edit similarity | identifier match | needed name written |",
             "|---|---|---|---|---|"]
    lines += [f"| {tag} | {r['exact']} | {r['edit']} | {r['ident']} | {r['name']} |"
              for tag, r in result["runs"].items()]
    lines += ["", f"Arm {args.arm}, {len(ids)} targets completed in both runs ({result['same_completion']} with the "
              f"same completion); the runs differ in {', '.join(f'{k}: {sa.get(k)} vs {sb.get(k)}' for k in differ)}. "
              f"Exact match {args.a} / {args.b}: {result['exact_ratio']} (paired bootstrap 95% CI "
              f"{result['exact_ratio_ci95'][0]}–{result['exact_ratio_ci95'][1]}; difference "
              f"{result['exact_difference_ci95'][0]:+} to {result['exact_difference_ci95'][1]:+})."]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
