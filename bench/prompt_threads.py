"""How many threads a worker should read a prompt with: one worker alone, and two reading at the same moment.

Each arm starts one or two processes that load the shipped 0.5B model with the given generation / prompt-reading
threads (llama.cpp's ``n_threads`` / ``n_threads_batch``), wait until both are loaded, then read the same
~830-token prompt at once; the time is the read alone. The arms are repeated in turn (these machines are noisy),
and the ratios are to the split (every worker one share of the cores) in the same round.

Run: ``python bench/prompt_threads.py [--rounds 2]``; writes bench/results/prompt-threads.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
# (name, coding (threads, batch threads), research (threads, batch threads) or None: coding alone)
ARMS = (("alone, split", (1, 1), None), ("alone, coding reads with every core", (1, 0), None),
        ("both at once, split", (1, 1), (1, 1)), ("both at once, coding reads with every core", (1, 0), (1, 1)),
        ("both at once, both read with every core", (1, 0), (1, 0)))


def child(threads: int, batch_threads: int, go: str) -> None:
    from llama_cpp import Llama

    from engram_ls.inference import models

    llm = Llama(model_path=str(models.resolve("qwen2.5-coder-0.5b-instruct")), n_ctx=2048, n_threads=threads,
                n_threads_batch=batch_threads, n_batch=256, verbose=False)
    tokens = llm.tokenize((ROOT / "inference" / "pool.py").read_text()[:3500].encode(), add_bos=False)[:900]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)  # a start line for both processes, not synchronisation of a result
    t = time.monotonic()
    llm.eval(tokens)
    print(json.dumps({"tokens": len(tokens), "seconds": round(time.monotonic() - t, 3)}), flush=True)


def run_arm(coding, research, cores: int) -> list[float]:
    go = Path(tempfile.mkdtemp()) / "go"
    procs = []
    for threads, batch in filter(None, (coding, research)):
        procs.append(subprocess.Popen([sys.executable, __file__, "--child", str(threads), str(batch or cores), str(go)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    return [json.loads(p.communicate()[0].strip().splitlines()[-1])["seconds"] for p in procs]


def main() -> int:
    p = argparse.ArgumentParser(prog="python bench/prompt_threads.py")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]), args.child[2])
        return 0
    sys.path.insert(0, str(ROOT))
    from engram_ls.inference.settings import physical_cores

    cores = physical_cores()
    rounds = []
    for _ in range(args.rounds):
        rounds.append({name: run_arm(coding, research, cores) for name, coding, research in ARMS})
    result = {"cores": cores, "load_average": [round(x, 2) for x in os.getloadavg()],
              "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "rounds": rounds}
    rows = ["| arm | coding worker, s | research worker, s | ratio to the split, same round (coding) |",
            "|---|---|---|---|"]
    for name, coding, research in ARMS:
        base = "alone, split" if research is None else "both at once, split"
        c = [r[name][0] for r in rounds]
        ratio = statistics.median(r[name][0] / r[base][0] for r in rounds)
        rs = " / ".join(f"{r[name][1]:.1f}" for r in rounds) if research else "–"
        rows.append(f"| {name} | {' / '.join(f'{v:.1f}' for v in c)} | {rs} | {ratio:.2f}× |")
    rows += ["", f"{cores} cores, one ~830-token prompt read by the shipped 0.5B model (n_batch 256); each arm "
             f"{args.rounds}× in turn; load average {' '.join(map(str, result['load_average']))} at the end, "
             f"{result['when']}."]
    OUT.mkdir(exist_ok=True)
    (OUT / "prompt-threads.json").write_text(json.dumps(result, indent=1))
    (OUT / "prompt-threads.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
