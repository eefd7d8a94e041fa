"""The README's retrieval-quality table, from bench/results/nl_eval-dev.json and nl_eval-heldout.json.

Run: ``python -m bench.nl_eval.table``; prints Markdown.
"""

from __future__ import annotations

import json

from bench.nl_eval.__main__ import OUT

ARMS = [("before", "before"), ("lexical", "lexical alone"), ("engram_cosine", "engram alone"),
        ("meaning_alone", "meaning alone"), ("meaning_rerank", "meaning rerank"), ("default", "**fused (default)**")]


def main() -> None:
    lines = ["| split | language | bm25s MRR@10 | " + " | ".join(name for _, name in ARMS) + " |",
             "|---|---|---|" + "---|" * len(ARMS)]
    for split in ("dev", "heldout"):
        path = OUT / f"nl_eval-{split}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for language, lang in result["languages"].items():
            nl, code = lang["nl"], lang["code"]
            cells = []
            for arm, _ in ARMS:
                cell = f"{nl[arm]['x_bm25']:.2f} / {code[arm]['x_bm25']:.2f}"
                cells.append(f"**{cell}**" if arm == "default" else cell)
            lines.append(f"| {split} | {language} | {nl['bm25s']['mrr@10']:.3f} / {code['bm25s']['mrr@10']:.3f} | "
                         + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
