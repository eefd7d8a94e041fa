"""Inference benchmark: model workers against in-process llama-cpp-python, in the same run.

Measures, with the shipped Qwen2.5-Coder-0.5B model: generation throughput through a worker vs in-process; how
soon a cancelled worker is idle (in token-times); kill -9 recovery (answer latency vs a normal request plus the
restart); 10 concurrent requests (errors, fairness, RSS/PSS per worker: weights are mmap'd and shared); time to
first token of a second completion sharing a long prefix vs the first. Also compares the candidate research models
(Qwen2.5-Coder-0.5B with the research prompt vs SmolLM2-135M) on code-explanation questions: speed, and how many of
the facts a correct answer must state (checked by keywords) and citations each answer contains.

Run: ``python bench/inference_bench.py`` (``--research`` runs only the research-model comparison and merges it
into the existing results). Writes bench/results/inference.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

from engram_ls.inference import Inference, InferenceSettings, ModelSettings, Snippet, models
from engram_ls.inference.prompts import FIM_STOPS

OUT = Path(__file__).parent / "results"
PROMPT = "Write a Python function that parses an ISO 8601 date string and returns a datetime. Explain each step."
N_TOKENS = 96


def in_process_throughput(path: Path, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_batch=256, verbose=False)
    rates = []
    for _ in range(3):
        llm.reset()
        first = None
        n = 0
        start = time.perf_counter()
        for chunk in llm.create_completion(PROMPT, max_tokens=N_TOKENS, temperature=0, stream=True, seed=0):
            if first is None:
                first = time.perf_counter()
            n += 1
        rates.append((n - 1) / (time.perf_counter() - first))
    del llm
    return statistics.median(rates)


def smaps(pid: int) -> tuple[float, float]:
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss / 1024, pss / 1024


async def worker_bench(threads: int) -> dict:
    settings = InferenceSettings(coding=ModelSettings(pool_size=2, threads=threads, prompt_cache_mb=0),
                                 research=ModelSettings(pool_size=1, threads=threads), hang_timeout_s=60)
    inf = Inference(settings)
    await inf.start()
    out = {}
    try:
        # throughput through the worker (raw prompt mode, same settings as in-process)
        rates = []
        for _ in range(3):
            stamps = []
            answer = await inf._run("coding", {"mode": "prompt", "prompt": PROMPT, "max_tokens": N_TOKENS}, [],
                                    lambda t: stamps.append(time.perf_counter()), None)
            rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
        out["worker_tokens_per_s"] = statistics.median(rates)
        token_time = 1 / out["worker_tokens_per_s"]

        # cancel: from cancel() to the worker reporting done, in token-times
        lat = []
        for i in range(5):
            stamps = []
            task = asyncio.create_task(inf._run("coding", {"mode": "prompt", "prompt": PROMPT, "max_tokens": 400}, [],
                                                lambda t: stamps.append(time.perf_counter()), f"c{i}"))
            while len(stamps) < 5:
                await asyncio.sleep(0.005)
            t0 = time.perf_counter()
            await inf.cancel(f"c{i}")
            await task
            lat.append(time.perf_counter() - t0)
        out["cancel_to_idle_ms_p50"] = statistics.median(lat) * 1000
        out["cancel_in_token_times"] = statistics.median(lat) / token_time

        # kill -9 of a busy worker
        normal = []
        for _ in range(2):
            t0 = time.perf_counter()
            await inf._run("coding", {"mode": "prompt", "prompt": PROMPT, "max_tokens": 48}, [], None, None)
            normal.append(time.perf_counter() - t0)
        stamps = []
        t0 = time.perf_counter()
        task = asyncio.create_task(inf._run("coding", {"mode": "prompt", "prompt": PROMPT, "max_tokens": 48}, [],
                                            lambda t: stamps.append(1), "victim"))
        while not stamps:
            await asyncio.sleep(0.005)
        busy = next(w for w in inf.pools["coding"].workers if w.request is not None)
        os.kill(busy.pid, signal.SIGKILL)
        answer = await task
        recovered = time.perf_counter() - t0
        t1 = time.perf_counter()
        while inf.status()["coding"]["alive"] < 2:
            await asyncio.sleep(0.02)
        out["kill9"] = {"normal_s": statistics.median(normal), "with_kill_s": recovered, "retried": answer.retried,
                        "pool_full_after_s": time.perf_counter() - t1 + recovered}

        # 10 concurrent requests
        t0 = time.perf_counter()
        finished = []

        async def one(i):
            a = await inf.ask(f"Question {i}: what is a closure?", max_tokens=24,
                              role="coding" if i % 2 else "research")
            finished.append(i)
            return a
        results = await asyncio.gather(*(one(i) for i in range(10)), return_exceptions=True)
        out["concurrent"] = {"requests": 10, "errors": sum(isinstance(r, BaseException) for r in results),
                             "seconds": time.perf_counter() - t0,
                             "workers": {str(w.pid): dict(zip(("rss_mb", "pss_mb"), smaps(w.pid)))
                                         for p in inf.pools.values() for w in p.workers if w.alive}}

        # prefix reuse: second FIM request sharing a long retrieved-context prefix
        ctx = [Snippet(f"lib/mod{i}.py", 1, 30, "\n".join(f"def helper_{i}_{j}(x):\n    return x * {j}"
                                                           for j in range(12))) for i in range(4)]
        ttft = []
        for suffix_line in ("total = helper_0_3(", "value = helper_1_4("):
            a = await inf.complete(f"import lib\n\n{suffix_line}", ")\n", ctx, max_tokens=8, request_id=None)
            ttft.append(a.timings["ttft_ms"])
        out["prefix_reuse"] = {"first_ttft_ms": ttft[0], "second_ttft_ms": ttft[1],
                               "ratio": ttft[0] / max(ttft[1], 1e-6), "prompt_tokens": a.usage.get("prompt_tokens")}
    finally:
        await inf.close()
    return out


RESEARCH_CASES = [
    (Snippet("net/retry.py", 10, 17, "def retry(fn, attempts=3, delay=0.5):\n    for i in range(attempts):\n"
             "        try:\n            return fn()\n        except ConnectionError:\n"
             "            time.sleep(delay * 2 ** i)\n    raise RetryError(attempts)"),
     "What does retry do when fn keeps failing?",
     [("attempt", "3", "three", "times"), ("sleep", "wait", "delay", "backoff", "exponential"),
      ("raise", "retryerror", "error")]),
    (Snippet("store/cache.py", 4, 16, "class Cache:\n    def __init__(self, capacity):\n"
             "        self.items = OrderedDict()\n        self.capacity = capacity\n\n    def put(self, key, value):\n"
             "        self.items[key] = value\n        self.items.move_to_end(key)\n"
             "        if len(self.items) > self.capacity:\n            self.items.popitem(last=False)"),
     "How does Cache evict entries?",
     [("capacity", "full", "exceed"), ("least recently", "oldest", "first", "lru")]),
    (Snippet("index/secrets.py", 1, 6, "SECRET_NAMES = {'.env', 'id_rsa', 'credentials.json'}\n\n"
             "def is_secret_path(path):\n    name = os.path.basename(path)\n"
             "    return name in SECRET_NAMES or name.endswith('.pem')"),
     "Which files does is_secret_path treat as secret?",
     [(".env",), ("id_rsa",), (".pem",), ("credentials",)]),
]


async def research_bench(name: str) -> dict:
    """One research model on the explanation cases: tokens/s, TTFT, facts covered, citations given."""
    m = ModelSettings(path=name, pool_size=1, threads=1)
    inf = Inference(InferenceSettings(coding=m, research=m, hang_timeout_s=60))
    await inf.start()
    try:
        cases = []
        for snippet, question, facts in RESEARCH_CASES:
            a = await inf.ask(question, [snippet], role="research", max_tokens=96)
            low = a.text.lower()
            covered = sum(any(k in low for k in group) for group in facts)
            gen_s = max(a.timings.get("total_ms", 0) - a.timings.get("ttft_ms", 0), 1e-3) / 1000
            cases.append({"question": question, "answer": a.text, "facts": covered, "of": len(facts),
                          "cites": snippet.path in a.text, "ttft_ms": a.timings.get("ttft_ms"),
                          "tokens_per_s": a.usage.get("completion_tokens", 0) / gen_s})
    finally:
        await inf.close()
    return {"model": name, "cases": cases,
            "facts": sum(c["facts"] for c in cases), "of": sum(c["of"] for c in cases),
            "cited": sum(c["cites"] for c in cases),
            "ttft_ms_median": statistics.median(c["ttft_ms"] for c in cases),
            "tokens_per_s_median": statistics.median(c["tokens_per_s"] for c in cases)}


def research_rows(research: list[dict]) -> list[str]:
    rows = ["", "Research-role candidates (3 code-explanation questions, 96 tokens max, 1 thread):", "",
            "| model | facts stated | answers citing the snippet | TTFT p50 | tokens/s p50 |", "|---|---|---|---|---|"]
    for r in research:
        rows.append(f"| {r['model']} | {r['facts']}/{r['of']} | {r['cited']}/{len(r['cases'])} | "
                    f"{r['ttft_ms_median']:.0f} ms | {r['tokens_per_s_median']:.1f} |")
    if len(research) == 2:
        best, other = sorted(research, key=lambda r: -r["facts"])
        speed = other["tokens_per_s_median"] / best["tokens_per_s_median"]
        rows += ["", f"Recommendation: the research role defaults to **{best['model']}**: it stated {best['facts']}/"
                 f"{best['of']} facts against {other['facts']}/{other['of']}. {other['model']} generates "
                 f"{speed:.1f}× as fast, but correctness matters more than speed for explanations (its answers are "
                 "in inference.json), one model's weights are mmap'd once for both roles, and SmolLM2's package "
                 "pulls in the `llm` CLI. Citations are attached by engram-ls from the packed snippets, not "
                 "trusted to the model (neither model cited its snippet)."]
    return rows


def run_research_only() -> int:
    research = [asyncio.run(research_bench(name)) for name in ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")
                if name in models.available()]
    result = json.loads((OUT / "inference.json").read_text()) if (OUT / "inference.json").exists() else {}
    result["research"] = research
    (OUT / "inference.json").write_text(json.dumps(result, indent=2))
    md = (OUT / "inference.md").read_text().split("\n\nResearch-role")[0].rstrip("\n") if (OUT / "inference.md").exists() else ""
    text = md + "\n" + "\n".join(research_rows(research)) + "\n"
    (OUT / "inference.md").write_text(text)
    print(text)
    return 0


def main() -> int:
    if "--research" in sys.argv[1:]:
        return run_research_only()
    path = models.model_path()
    threads = 1
    inproc = in_process_throughput(path, threads)
    result = asyncio.run(worker_bench(threads))
    result["in_process_tokens_per_s"] = inproc
    result["throughput_ratio"] = result["worker_tokens_per_s"] / inproc
    OUT.mkdir(exist_ok=True)
    (OUT / "inference.json").write_text(json.dumps(result, indent=2))
    k = result["kill9"]
    c = result["concurrent"]
    p = result["prefix_reuse"]
    pss = ", ".join(f"{v['rss_mb']:.0f}/{v['pss_mb']:.0f}" for v in c["workers"].values())
    rows = [
        "| metric | measured | target | met |", "|---|---|---|---|",
        f"| throughput via worker / in-process (tokens/s, {threads} thread) | {result['worker_tokens_per_s']:.1f} / "
        f"{inproc:.1f} = {result['throughput_ratio']:.2f}× | >= 0.95× | {'yes' if result['throughput_ratio'] >= 0.95 else 'no'} |",
        f"| cancel → worker idle | {result['cancel_to_idle_ms_p50']:.0f} ms = {result['cancel_in_token_times']:.2f} token-times "
        f"| <= 1 token-time | {'yes' if result['cancel_in_token_times'] <= 1 else 'no'} |",
        f"| kill -9 of a busy worker: answer after | {k['with_kill_s']:.2f} s (normal {k['normal_s']:.2f} s), retried={k['retried']}, "
        f"pool full after {k['pool_full_after_s']:.2f} s | <= 2× normal + restart | "
        f"{'yes' if k['retried'] and k['with_kill_s'] <= 2 * k['normal_s'] + (k['pool_full_after_s'] - k['with_kill_s']) + 1 else 'no'} |",
        f"| 10 concurrent requests (3 workers) | {c['errors']} errors in {c['seconds']:.1f} s; RSS/PSS MB per worker: {pss} | 0 errors | "
        f"{'yes' if c['errors'] == 0 else 'no'} |",
        f"| TTFT, second completion sharing a {p['prompt_tokens']}-token prefix | {p['second_ttft_ms']:.0f} ms vs "
        f"{p['first_ttft_ms']:.0f} ms = {p['ratio']:.1f}× lower | >= 3× | {'yes' if p['ratio'] >= 3 else 'no'} |",
    ]
    result["research"] = [asyncio.run(research_bench(name))
                          for name in ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")
                          if name in models.available()]
    (OUT / "inference.json").write_text(json.dumps(result, indent=2))
    rows += research_rows(result["research"])
    table = "\n".join(rows)
    (OUT / "inference.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
