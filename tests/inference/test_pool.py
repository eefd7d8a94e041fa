"""Pools on the stub backend: real worker processes and pipes, no model."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from engram_ls.inference import Inference, InferenceError, Snippet, collaborative, pipeline
from engram_ls.inference.pool import Pool, _watcher_threads, reap_workers
from engram_ls.inference.settings import ModelSettings

from .conftest import pid_alive, stub_settings, wait_until


async def test_streaming_delivers_tokens_in_order(stub):
    toks = []
    a = await stub.ask("explain x", [Snippet("a.py", 1, 2, "x = 1")], max_tokens=6, on_token=toks.append)
    assert a.text == "".join(toks) and len(toks) == 6
    assert a.role == "research" and a.cited == [Snippet("a.py", 1, 2, "x = 1")]


async def test_cancel_running_request_frees_the_worker(stub):
    toks = []
    task = asyncio.create_task(stub.ask("write code", max_tokens=5000, request_id="big", on_token=toks.append))
    await wait_until(lambda: len(toks) >= 2, what="first tokens")
    assert await stub.cancel("big")
    a = await task
    assert a.cancelled and a.finish == "cancelled" and len(toks) < 5000
    again = await stub.ask("write code", role="coding", max_tokens=2)
    assert again.finish == "length"


async def test_cancel_queued_request_never_runs(stub):
    first = asyncio.create_task(stub.complete("a", "", max_tokens=400, request_id="q1"))
    second = asyncio.create_task(stub.complete("b", "", max_tokens=400, request_id="q2"))
    await wait_until(lambda: stub.pools["coding"].queue, what="a queued request")
    await stub.cancel("q2")
    b = await second
    assert b.cancelled and b.text == ""
    await stub.cancel("q1")
    await first


async def test_requests_queue_fairly_in_submission_order():
    inf = Inference(stub_settings(stub_delay_ms=1))
    await inf.start()
    try:
        order = []

        async def one(i):
            a = await inf.complete(f"p{i}", "", max_tokens=3)
            order.append(i)
            return a

        answers = await asyncio.gather(*(one(i) for i in range(10)))
        assert all(a.finish == "length" for a in answers)
        assert order == list(range(10))
    finally:
        await inf.close()


async def test_kill_9_mid_generation_is_retried_and_the_pool_refills():
    inf = Inference(stub_settings(stub_delay_ms=15))
    await inf.start()
    try:
        reference = await inf.complete("same prompt", "", max_tokens=30)
        toks = []
        task = asyncio.create_task(inf.complete("same prompt", "", max_tokens=30, on_token=toks.append))
        await wait_until(lambda: len(toks) >= 3, what="streaming")
        victim = inf.pools["coding"].workers[0].pid
        os.kill(victim, signal.SIGKILL)
        answer = await task
        assert answer.retried and answer.text == reference.text
        assert "".join(toks) == reference.text  # the retry's stream continues, no duplicated text
        await wait_until(lambda: inf.status()["coding"]["alive"] == 1, what="restart")
        assert victim not in inf.status()["coding"]["pids"]
        assert inf.status()["coding"]["restarts"] == 1
    finally:
        await inf.close()


async def test_sigstop_hang_is_detected_and_request_served():
    inf = Inference(stub_settings(stub_delay_ms=15))
    await inf.start()
    try:
        toks = []
        task = asyncio.create_task(inf.complete("p", "", max_tokens=20, on_token=toks.append))
        await wait_until(lambda: toks, what="streaming")
        frozen = inf.pools["coding"].workers[0].pid
        os.kill(frozen, signal.SIGSTOP)
        answer = await asyncio.wait_for(task, 60)
        assert answer.retried and answer.finish == "length"
        await wait_until(lambda: not pid_alive(frozen), what="hung worker killed")
    finally:
        await inf.close()


async def test_fallback_to_the_other_pool_then_clear_error():
    inf = Inference(stub_settings(stub_delay_ms=30, max_restarts=0))
    await inf.start()
    try:
        toks = []
        task = asyncio.create_task(inf.complete("p", "", max_tokens=50, on_token=toks.append))
        await wait_until(lambda: toks, what="streaming")
        # kill whatever serves it, until it lands on the research pool; a killed worker counts as serving until
        # its death is noticed, so wait for that before looking for the next attempt
        killed = set()
        for _ in range(4):
            serving = [w for p in inf.pools.values() for w in p.workers
                       if w.request and w.alive and w.pid not in killed]
            if not serving or serving[0].pool.role == "research":
                break
            killed.add(serving[0].pid)
            os.kill(serving[0].pid, signal.SIGKILL)
            await wait_until(lambda: task.done() or any(w.request and w.alive and w.pid not in killed
                                                        for p in inf.pools.values() for w in p.workers),
                             what="next attempt")
        answer = await task
        assert answer.role == "research" and answer.retried
        assert inf.status()["coding"]["failed"]
        # the coding pool is gone: new coding work goes straight to research
        assert (await inf.complete("q", "", max_tokens=2)).role == "research"
        os.kill(inf.pools["research"].workers[0].pid, signal.SIGKILL)
        await wait_until(lambda: inf.pools["research"].failed, what="research pool gives up")
        with pytest.raises(InferenceError):
            await inf.complete("q", "", max_tokens=2)
    finally:
        await inf.close()


async def test_pool_never_exceeds_its_size():
    inf = Inference(stub_settings(coding=ModelSettings(pool_size=2)))
    await inf.start()
    try:
        for _ in range(3):
            victim = inf.pools["coding"].workers[0].pid
            os.kill(victim, signal.SIGKILL)
            await wait_until(lambda: victim not in inf.status()["coding"]["pids"]
                             and inf.status()["coding"]["alive"] == 2, what="refill")
            assert len(inf.pools["coding"].workers) <= 2
        await asyncio.gather(*(inf.complete(str(i), "", max_tokens=2) for i in range(6)))
        assert len(inf.pools["coding"].workers) == 2
    finally:
        await inf.close()


async def test_close_leaves_no_processes():
    inf = Inference(stub_settings())
    await inf.start()
    pids = inf.status()["coding"]["pids"] + inf.status()["research"]["pids"]
    await inf.close()
    assert not any(pid_alive(p) for p in pids)


async def test_start_cancelled_while_workers_start_reaps_them():
    """Ctrl-C cancels ``start`` while the workers' interpreters are still loading: every worker process must be
    reaped before the cancellation propagates (one left running outlives the event loop, whose child watcher then
    complains on the terminal). The workers are stopped so none can say hello first."""
    inf = Inference(stub_settings())
    task = asyncio.create_task(inf.start())
    started = lambda: [w for pool in inf.pools.values() for w in pool.workers if w.proc is not None]  # noqa: E731
    await wait_until(lambda: len(inf.pools) == 2 and len(started()) == 2, what="both worker processes")
    workers = started()
    for w in workers:
        os.kill(w.pid, signal.SIGSTOP)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(w.proc.returncode is not None for w in workers)
    assert not any(pid_alive(w.pid) for w in workers)


async def test_close_waits_for_a_spawn_it_cancels_inside_process_creation():
    """A restart still inside create_subprocess_exec when the pool closes is cancelled there: its child is killed
    and awaited by that task's own cleanup, which close must wait for — left pending, asyncio.run's teardown cancels
    the cleanup's wait too, and the child exits after the loop closed (a stray line on the terminal)."""
    s = stub_settings()
    pool = Pool("coding", 1, Inference(s)._worker_args("coding", ""), heartbeat_s=s.heartbeat_s,
                hang_timeout_s=s.hang_timeout_s, startup_timeout=s.startup_timeout_s, max_restarts=s.max_restarts,
                on_failure=lambda req, why: None)
    pool._spawn_task(pool._spawn())
    await asyncio.sleep(0)  # one scheduling step, no timing: the task forks its worker and waits for its pipes
    spawning = set(pool._tasks)
    assert spawning and pool.workers and pool.workers[0].proc is None
    await pool.close()
    assert all(t.done() for t in spawning)


async def test_reap_workers_leaves_no_child_of_the_loop_running():
    """The CLI's last step before its event loop closes: whatever a cancelled command left behind is killed and
    reaped (a worker that exits after the loop closed makes asyncio print to the terminal)."""
    inf = Inference(stub_settings())
    await inf.start()
    workers = [w for pool in inf.pools.values() for w in pool.workers]
    await reap_workers()
    assert workers and all(w.proc.returncode is not None for w in workers)
    await inf.close()


async def test_reap_workers_also_reaps_a_child_no_process_holds_yet():
    """A child asyncio's watcher waits for that no Process holds yet (its start cancelled inside
    create_subprocess_exec, whose own cleanup asyncio.run's teardown may cancel again): killed and reaped before the
    loop closes, so the watcher never reports its exit to a closed loop."""
    before = set(_watcher_threads())
    task = asyncio.create_task(asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)", stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    await asyncio.sleep(0)  # one scheduling step, no timing: the task runs until forked, waiting for its pipes
    new = set(_watcher_threads()) - before
    if sys.version_info >= (3, 12):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pytest.skip("this Python watches children without threads (3.12+: pidfds on the loop)")
    assert new, "the child should be waited for by a watcher thread, not yet held by a Process"
    try:
        await reap_workers()
        assert not any(pid_alive(pid) for pid in new)
        assert not new & set(_watcher_threads())  # reaped, and its exit reported while the loop runs
    finally:
        for pid in new:  # reaped or not: nothing of this test outlives it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)


async def test_workers_die_with_a_sigkilled_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import asyncio, json, sys
        from engram_ls.inference import Inference, InferenceSettings
        async def main():
            inf = Inference(InferenceSettings(backend="stub"))
            await inf.start()
            s = inf.status()
            print(json.dumps(s["coding"]["pids"] + s["research"]["pids"]), flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = json.loads(parent.stdout.readline())
    assert all(pid_alive(p) for p in pids)
    parent.kill()
    parent.wait()
    await wait_until(lambda: not any(pid_alive(p) for p in pids), what="workers to exit")


async def test_pipeline_and_collaborative_patterns(stub):
    plan, result = await pipeline(stub, "add caching", [Snippet("a.py", 1, 1, "x")], max_tokens=3)
    assert plan.role == "research" and result.role == "coding"
    answers = await collaborative(stub, [("explain a", "research"), ("write b", "coding"), ("c?", None)], [],
                                  max_tokens=2)
    assert [a.role for a in answers] == ["research", "coding", "research"]


async def test_invalid_settings_fail_clearly():
    with pytest.raises(InferenceError, match="backend"):
        await Inference(stub_settings(backend="nope")).start()


async def test_the_restart_limit_is_exact():
    """max_restarts=2: the first two crashes within a minute are restarted, the third gives up (and says so)."""
    inf = Inference(stub_settings(max_restarts=2))
    await inf.start()
    try:
        pool = inf.pools["coding"]
        for n in (1, 2):
            pid = pool.workers[0].pid
            os.kill(pid, signal.SIGKILL)
            await wait_until(lambda: pool.restarts == n and pool.workers and pool.workers[0].pid != pid
                             and pool.workers[0].alive, what=f"restart {n}")
            assert not pool.failed
        os.kill(pool.workers[0].pid, signal.SIGKILL)
        await wait_until(lambda: pool.failed, what="the pool to give up")
        assert pool.restarts == 2 and "crashed 3 times in a minute" in pool.failed
        assert inf.pools["research"].failed is None  # the other pool is untouched
    finally:
        await inf.close()


async def test_close_fails_queued_requests_at_once():
    """A request still queued when inference closes gets an error saying so, rather than waiting out its timeout."""
    inf = Inference(stub_settings(stub_delay_ms=50))
    await inf.start()
    toks = []
    running = asyncio.create_task(inf.complete("a", "", max_tokens=200, on_token=toks.append))
    await wait_until(lambda: toks, what="the first request to stream")
    queued = asyncio.create_task(inf.complete("b", "", max_tokens=5))
    await wait_until(lambda: inf.status()["coding"]["queued"] == 1, what="the second request to queue")
    await inf.close()
    with pytest.raises(Exception) as e:
        await asyncio.wait_for(queued, 10)
    assert "shutting down" in str(e.value), repr(e.value)
    await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 10)
