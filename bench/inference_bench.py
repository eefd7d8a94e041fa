"""Inference benchmark: model workers against in-process llama-cpp-python, in the same run.

Measures, with the shipped Qwen2.5-Coder-0.5B model: generation throughput through a worker vs in-process; how
soon a cancelled worker is idle (in token-times); kill -9 recovery (answer latency vs a normal request plus the
restart); 10 concurrent requests (errors, fairness, RSS/PSS per worker: weights are mmap'd and shared); time to
first token of a second completion sharing a long prefix vs the first.

Run: ``python bench/inference_bench.py``. Writes bench/results/inference.{json,md}.
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


def main() -> int:
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
    table = "\n".join(rows)
    (OUT / "inference.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
