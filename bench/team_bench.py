"""Team bench: N editors sharing one llama.cpp llama-server vs each editor running its own local workers.

Every editor is its own ``engram-ls`` over stdio, driven as VS Code drives it: didOpen, then for each completion a
didChange that types the start of a statement, an ``inlineCompletion`` at the cursor (latency measured from request
to answer), and a didChange that undoes the edit. Both arms replay the same edits on the same cores (pin the run
with ``taskset``: every process inherits it) with the shipped Qwen2.5-Coder-0.5B; the only difference is
``backend.kind``: ``openai`` (one llama-server with parallel slots, continuous batching) or ``llama`` (the editor's
own worker processes, the default).

Phases: throughput and p50/p95 latency for 1, 2, 4, 8 editors per arm (a fixed number of completions per editor);
cancellation over HTTP (tokens and token-times the server generates after the client closes the stream); a soak of
8 editors for 5 minutes on the server; 8 editors while the server is killed and restarted twice.
Run: ``python bench/team_bench.py`` (about 25 minutes on 2 cores); writes bench/results/team.json and team.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import platformdirs
from lsprotocol import types

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ENGRAM_LS_MODELS", str(Path(platformdirs.user_cache_dir("engram-ls")) / "models"))

from engram_ls.inference import Inference  # noqa: E402
from tests.retrieval.conftest import make_workspace  # noqa: E402
from tests.server.conftest import change, indexed, open_doc, start, stop  # noqa: E402
from tests.team.conftest import LlamaServer, team_settings  # noqa: E402

OUT = ROOT / "bench" / "results"
KEY = "team-bench-key"
REQUEST_TIMEOUT_S = 3600.0
os.environ["ENGRAM_LS_API_KEY"] = KEY  # what each editor's engram-ls reads (backend.apiKeyEnv's default)

ORDERS = '''\
from shop.cart import ShoppingCart
from shop.pricing import apply_discount

TAX_RATE = 0.2


class Order:
    """A paid cart: its lines, the customer and a status."""

    def __init__(self, customer, cart: ShoppingCart):
        self.customer = customer
        self.lines = list(cart.items)
        self.status = "new"

    def subtotal(self):
        return sum(product.price * quantity for product, quantity in self.lines)

    def tax(self):
        return round(self.subtotal() * TAX_RATE, 2)

    def total(self):
        return apply_discount(self.subtotal()) + self.tax()

    def mark_shipped(self):
        self.status = "shipped"


def orders_for(customer, orders):
    """The orders of one customer, newest first."""
    return [o for o in reversed(orders) if o.customer == customer]


def revenue(orders):
    return sum(o.total() for o in orders if o.status == "shipped")
'''

# (line, text typed at its end): the start of a statement; the completion is asked at the end of the typed text.
EDITS = [
    (12, "\n        self.created = "),
    (15, "\n\n    def item_count(self):\n        return "),
    (24, "\n\n    def cancel(self):\n        "),
    (29, "\n\n\ndef largest_order(orders):\n    return "),
    (18, "\n\n    def discount(self):\n        return "),
    (33, "\n\n\ndef shipped(orders):\n    "),
    (21, "\n\n    def is_large(self):\n        return "),
    (9, "\n        if not cart.items:\n            "),
]


def end_of(start: tuple[int, int], text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return (start[0] + len(lines) - 1, (start[1] if len(lines) == 1 else 0) + len(lines[-1]))


def cpu_seconds() -> float:
    """CPU time used so far by this bench's descendants (engram-ls servers, their workers, llama-server), from
    /proc: under load from other jobs the arms get different shares of the cores (8 local workers are 8 runnable
    threads, llama-server is 2), so completions per CPU-second compares their efficiency where wall time cannot."""
    parents, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    mine, frontier = set(), {os.getpid()}
    while frontier:
        mine |= frontier
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in mine}
    mine.discard(os.getpid())
    return sum(ticks[pid] for pid in mine) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class Editor:
    """One engram-ls over stdio and the document it types in."""

    def __init__(self, number: int, work: Path, options: dict):
        self.number, self.options = number, options
        self.root = make_workspace(work / f"editor{number}" / f"ws{number}")
        (self.root / "shop" / "orders.py").write_text(ORDERS)
        self.cache = work / f"editor{number}" / "cache"
        self.version = 1

    async def open(self) -> None:
        self.client = await start(self.root, self.cache, options=self.options)
        await indexed(self.client, timeout=900)  # 8 servers starting on one core share it: minutes, not 60 s
        self.uri = open_doc(self.client, self.root / "shop" / "orders.py")

    async def complete(self, edit: tuple[int, str]) -> tuple[float, str | None]:
        """Types ``edit``, asks for an inline completion at its end, undoes the edit; (seconds, text or None)."""
        line, text = edit
        col = len(ORDERS.split("\n")[line])
        end = end_of((line, col), text)
        self.version += 1
        change(self.client, self.uri, self.version, (line, col), (line, col), text)
        t0 = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(self.uri), position=types.Position(*end),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        seconds = time.perf_counter() - t0
        self.version += 1
        change(self.client, self.uri, self.version, (line, col), end, "")
        items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
        return seconds, (items[0].insert_text if items else None)

    async def close(self) -> None:
        await stop(self.client)


def editor_options(arm: str, url: str) -> dict:
    # no deadline cuts a completion short: on the loaded 2 cores 8 concurrent prompts take minutes, and throughput
    # counts whole completions only
    # hangTimeoutS: 8 local workers computing on one core answer heartbeats late; a worker killed as hung would
    # count a machine stall against the local arm (it happened once at load 20-27), so both arms allow 120 s
    options = {"completion": {"debounceMs": 0, "maxTokens": 32}, "hover": {"useModel": False},
               "inference": {"requestTimeoutS": REQUEST_TIMEOUT_S, "hangTimeoutS": 120}}
    if arm == "shared":
        options["backend"] = {"kind": "openai", "url": url, "remoteModel": "qwen2.5-coder-0.5b"}
    return options


async def open_editors(n: int, arm: str, url: str, work: Path) -> tuple[list[Editor], list[str]]:
    """The editors, opened and warmed up, and the errors of warm-up completions that failed (counted, not hidden)."""
    editors = [Editor(i, work / f"{arm}{n}", editor_options(arm, url)) for i in range(n)]
    await asyncio.gather(*(e.open() for e in editors))
    # warm-up: the first completion loads the model (local) or fills a slot's cache; not measured
    warm = await asyncio.gather(*(e.complete(EDITS[e.number % len(EDITS)]) for e in editors), return_exceptions=True)
    return editors, [f"{type(w).__name__}: {w}"[:200] for w in warm if isinstance(w, BaseException)]


SERVER_COUNTERS = ("prompt_tokens_total", "prompt_tokens_cached_total", "tokens_predicted_total", "n_decode_total",
                   "prompt_seconds_total", "tokens_predicted_seconds_total")


def server_work(before: dict, after: dict, done: int) -> dict:
    """What llama-server did for the measured completions (its counters grow when a request's slot is released):
    prompt tokens read vs taken from a slot's cache, tokens generated, and tokens per llama_decode call (how much
    each pass over the weights was shared). The seconds are summed per slot, so they overlap when slots batch."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in SERVER_COUNTERS}
    per = max(done, 1)
    return {"prompt_tokens_read": round(d["prompt_tokens_total"] / per, 1),
            "prompt_tokens_cached": round(d["prompt_tokens_cached_total"] / per, 1),
            "tokens_generated": round(d["tokens_predicted_total"] / per, 1),
            "decode_calls": int(d["n_decode_total"]),
            "tokens_per_decode_call": round((d["prompt_tokens_total"] + d["tokens_predicted_total"])
                                            / d["n_decode_total"], 1) if d["n_decode_total"] else None,
            "prompt_s_per_completion": round(d["prompt_seconds_total"] / per, 2),
            "generate_s_per_completion": round(d["tokens_predicted_seconds_total"] / per, 2)}


async def run_point(n: int, arm: str, url: str, work: Path, per_editor: int,
                    server: LlamaServer | None = None) -> dict:
    load = os.getloadavg()[0]
    editors, warm_failures = await open_editors(n, arm, url, work)
    latencies, failures, empty, chars = [], [], 0, 0

    async def drive(e: Editor) -> None:
        nonlocal empty, chars
        for k in range(per_editor):
            try:
                seconds, text = await e.complete(EDITS[(e.number + k + 1) % len(EDITS)])
            except Exception as exc:  # a failed request is counted, never hidden
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(seconds)
            empty += text is None
            chars += len(text or "")

    counted = server is not None and arm == "shared"
    before = server.metrics() if counted else {}
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    try:
        await asyncio.gather(*(drive(e) for e in editors))
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        after = server.metrics() if counted else {}
    finally:
        await asyncio.gather(*(e.close() for e in editors), return_exceptions=True)
    done = len(latencies)
    extra = {"server_work": server_work(before, after, done)} if counted else {}
    return {"arm": arm, "editors": n, "completions": done, "failed": len(failures), "empty": empty,
            "wall_s": round(wall, 2), "completions_per_s": round(done / wall, 3),
            "chars_per_s": round(chars / wall, 1), "cpu_s": round(cpu, 1),
            "completions_per_cpu_s": round(done / cpu, 4) if cpu > 0 else None,
            "p50_ms": round(pct(latencies, 50) * 1000),
            "p95_ms": round(pct(latencies, 95) * 1000), "errors": failures[:5], "warm_up_failed": len(warm_failures),
            "warm_up_errors": warm_failures[:3], "load_average": [load, os.getloadavg()[0]], **extra}


async def soak(n: int, url: str, work: Path, seconds: float, server: LlamaServer | None = None,
               restarts: int = 0) -> dict:
    """``n`` editors completing in a loop for ``seconds``; optionally kill -9 and restart the server meanwhile."""
    editors, warm_failures = await open_editors(n, "shared", url, work)
    stats = {"requests": 0, "failed": 0, "empty": 0, "errors": [], "latencies": [], "warm_up_failed": len(warm_failures)}
    stop_at = time.monotonic() + seconds

    async def drive(e: Editor) -> None:
        k = 0
        while time.monotonic() < stop_at:
            k += 1
            try:
                t, text = await e.complete(EDITS[(e.number + k) % len(EDITS)])
                stats["latencies"].append(t)
                stats["empty"] += text is None
            except Exception as exc:
                stats["failed"] += 1
                stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
            stats["requests"] += 1

    async def restarter() -> None:
        for i in range(restarts):
            await asyncio.sleep(seconds * (i + 1) / (restarts + 1))  # the schedule of the fault, not a sync
            t0 = time.perf_counter()
            await asyncio.to_thread(server.restart)
            stats.setdefault("restart_s", []).append(round(time.perf_counter() - t0, 2))

    try:
        await asyncio.gather(*(drive(e) for e in editors), restarter())
    finally:
        await asyncio.gather(*(e.close() for e in editors), return_exceptions=True)
    lat = stats.pop("latencies")
    return {"editors": n, "seconds": seconds, "restarts": restarts, **stats, "errors": stats["errors"][:5],
            "p50_ms": round(pct(lat, 50) * 1000), "p95_ms": round(pct(lat, 95) * 1000)}


async def cancel_over_http(server: LlamaServer, runs: int) -> dict:
    """Cancels a long chat after a few tokens; how many tokens, and token-times, the server goes on for."""
    os.environ["ENGRAM_TEAM_BENCH_KEY"] = KEY
    inf = Inference(team_settings(server.url, api_key_env="ENGRAM_TEAM_BENCH_KEY"))
    await inf.start()
    rows = []
    try:
        for i in range(runs):
            stamps: list[float] = []
            rid = f"cancel-{i}"
            while not server.idle():
                await asyncio.sleep(0.01)
            before = server.tokens_predicted()
            task = asyncio.create_task(inf.ask(f"Story {i}: write a long story about a compiler that dreams.",
                                               role="coding", max_tokens=400, request_id=rid,
                                               on_token=lambda _: stamps.append(time.perf_counter())))
            while len(stamps) < 8:
                await asyncio.sleep(0.005)
            token_time = statistics.mean(b - a for a, b in zip(stamps[1:], stamps[2:]))
            t0 = time.perf_counter()
            await inf.cancel(rid)
            answer = await task
            while not server.idle():
                await asyncio.sleep(0.002)
            stopped = time.perf_counter() - t0
            # the slot's own counter is reset when it is released: the server-wide total counts cancelled requests
            extra = server.tokens_predicted() - before - answer.usage["completion_tokens"]
            rows.append({"token_ms": round(token_time * 1000, 1), "stop_ms": round(stopped * 1000, 1),
                         "token_times": round(stopped / token_time, 2), "extra_tokens": extra})
    finally:
        await inf.close()
    return {"runs": rows, "max_token_times": max(r["token_times"] for r in rows),
            "max_extra_tokens": max(r["extra_tokens"] for r in rows)}


def per_cpu(shared: dict, local: dict) -> float | None:
    a, b = shared.get("completions_per_cpu_s"), local.get("completions_per_cpu_s")
    return round(a / b, 2) if a and b else None


def ratios(result: dict) -> None:
    """Shared / local per editor count measured in both arms, and the crossover: the fewest editors from which the
    shared server's throughput beats local workers at every larger count measured."""
    by = {(p["editors"], p["arm"]): p for p in result["points"]}
    counts = sorted(n for n, arm in by if arm == "shared" and (n, "local") in by)
    def rate(p: dict) -> float:  # unrounded completions/s
        return p["completions"] / p["wall_s"]

    result["ratios"] = {n: {"throughput": round(rate(by[n, "shared"]) / rate(by[n, "local"]), 2),
                            "p50": round(by[n, "shared"]["p50_ms"] / by[n, "local"]["p50_ms"], 2),
                            "per_cpu_s": per_cpu(by[n, "shared"], by[n, "local"])}
                        for n in counts}
    wins = [n for n in counts if result["ratios"][n]["throughput"] > 1]
    result["crossover_editors"] = wins[0] if wins and all(n in wins for n in counts if n >= wins[0]) else None


def markdown(r: dict) -> str:
    run = r["run"]
    cpus = f" (CPUs {','.join(map(str, r['cpus']))}, nice {r['nice']})" if "cpus" in r else ""
    rows = [f"`{run['command']}` on {run['date']}, {r['cores']} cores{cpus}, load average {run['load_average_start']:.1f}"
            f" at the start and {run.get('load_average_end', float('nan')):.1f} at the end; llama-server {r['server']}",
            ""]
    for phase in ("soak", "restart"):
        if phase in r:
            p = r[phase]
            rows.append(f"{phase}: {p['editors']} editors for {p['seconds']} s, {p['restarts']} restarts: "
                        f"{p['requests']} requests, {p['failed']} failed, p50 {p['p50_ms']} ms, p95 {p['p95_ms']} ms")
    rows += ["", "| editors | arm | completions | failed | completions/s | completions/CPU-s | p50 ms | p95 ms |"
                 " load average |", "|---|---|---|---|---|---|---|---|---|"]
    for p in r["points"]:
        load = "–".join(f"{x:.0f}" for x in p.get("load_average", []))
        rows.append(f"| {p['editors']} | {p['arm']} | {p['completions']} | {p['failed']} | {p['completions_per_s']} |"
                    f" {p.get('completions_per_cpu_s', '–')} | {p['p50_ms']} | {p['p95_ms']} | {load} |")
    work = [p for p in r["points"] if "server_work" in p]
    if work:
        rows += ["", "llama-server's own counters for the measured completions of the shared arm (per completion):", "",
                 "| editors | prompt tokens read | prompt tokens from a slot's cache | tokens generated |"
                 " tokens per decode call | prompt s | generate s |", "|---|---|---|---|---|---|---|"]
        for p in work:
            w = p["server_work"]
            rows.append(f"| {p['editors']} | {w['prompt_tokens_read']} | {w['prompt_tokens_cached']} |"
                        f" {w['tokens_generated']} | {w['tokens_per_decode_call']} | {w['prompt_s_per_completion']} |"
                        f" {w['generate_s_per_completion']} |")
    rows += ["", "| editors | shared / local throughput | per CPU-second | shared / local p50 |", "|---|---|---|---|"]
    for n, ratio in r["ratios"].items():
        rows.append(f"| {n} | {ratio['throughput']}× | {str(ratio['per_cpu_s']) + '×' if ratio.get('per_cpu_s') else '–'} | {ratio['p50']}× |")
    if r.get("ratios"):
        rows.append(f"\ncrossover (fewest editors from which shared beats local throughput): {r['crossover_editors']}")
    return "\n".join(rows) + "\n"


def save(result: dict, name: str) -> None:
    """Written after every phase, so a long run that is stopped still leaves what it measured."""
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))


async def main_async(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="engram-team-"))
    server = LlamaServer(parallel=args.slots, threads=args.threads, api_key=KEY,
                         extra=shlex.split(args.server_args)).start()
    result = {"cores": len(os.sched_getaffinity(0)), "cpus": sorted(os.sched_getaffinity(0)), "nice": os.nice(0),
              "server": " ".join(server.command()[1:]).replace(KEY, "***"),
              "per_editor": args.per_editor, "points": [], "ratios": {}, "crossover_editors": None,
              "run": {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "command": " ".join(sys.argv),
                      "load_average_start": os.getloadavg()[0]}}
    try:
        if args.cancel_runs:
            result["cancel"] = await cancel_over_http(server, args.cancel_runs)
            print("cancel", json.dumps(result["cancel"]), flush=True)
            save(result, args.out)
        for n in args.editors:
            for arm in ("shared", "local"):
                point = await run_point(n, arm, server.url, work, args.per_editor, server)
                result["points"].append(point)
                print(json.dumps(point), flush=True)
                ratios(result)
                save(result, args.out)
        if args.soak:
            result["soak"] = await soak(8, server.url, work / "soak", args.soak)
            print("soak", json.dumps(result["soak"]), flush=True)
            save(result, args.out)
        if args.restart_seconds:
            result["restart"] = await soak(args.restart_editors, server.url, work / "restart", args.restart_seconds,
                                           server, restarts=2)
            print("restart", json.dumps(result["restart"]), flush=True)
    finally:
        server.stop()
        result["run"]["load_average_end"] = os.getloadavg()[0]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--editors", type=lambda s: [int(x) for x in s.split(",") if x], default=[1, 2, 4, 8],
                   help="editor counts for the shared-vs-local points (\"\": skip them)")
    p.add_argument("--per-editor", type=int, default=6, help="measured completions per editor and point")
    p.add_argument("--slots", type=int, default=8, help="llama-server parallel slots (-np)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="llama-server threads (-t)")
    p.add_argument("--server-args", default="", help="more llama-server flags, e.g. \"--poll 0 -ub 1024\"")
    p.add_argument("--soak", type=float, default=300, help="seconds of 8 editors on the server (0: skip)")
    p.add_argument("--restart-seconds", type=float, default=60, help="seconds of 8 editors with 2 restarts")
    p.add_argument("--restart-editors", type=int, default=8, help="editors during the restart phase")
    p.add_argument("--cancel-runs", type=int, default=5)
    p.add_argument("--out", default="team")
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
