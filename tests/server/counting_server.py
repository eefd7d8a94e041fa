"""engram-ls serve, plus a live-object census on SIGUSR1 (test-only; the product has no such hook).

On the signal the main thread — the one running the server's event loop — collects garbage and appends one JSON
line to $ENGRAM_LS_COUNTS: the number of objects the collector tracks, by type, less the cancelled timers asyncio has
not purged yet (``lingering_timers``). Tests count objects, not time.
"""

import asyncio
import collections
import gc
import inspect
import json
import os
import signal
import sys


def name(t: type) -> str:
    module = t.__dict__.get("__module__") if isinstance(t.__dict__.get("__module__"), str) else getattr(
        t, "__module__", "?")
    return f"{module if isinstance(module, str) else '?'}.{getattr(t, '__qualname__', t.__name__)}"


def awaiting(coro) -> str:
    """A coroutine's name and, innermost last, what it is waiting in (where a stuck one is stuck)."""
    chain = []
    while coro is not None and len(chain) < 8:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        where = f":{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}" if frame else ""
        chain.append(f"{getattr(coro, '__qualname__', type(coro).__name__)}{where}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(chain)


def lingering_timers() -> tuple[int, set[int]]:
    """Cancelled timers that asyncio keeps in its heap until their deadline passes (it purges them lazily): how
    many, and the ids of them and of their contexts (a Context and its hamt nodes each). They are bounded by time, not
    by requests: a census right after a storm of hovers (each with a 5 s model timeout, cancelled when the
    explanation comes) would otherwise count a few dozen to a hundred of them, more or fewer by timing."""
    try:
        handles = [h for h in list(asyncio.get_running_loop()._scheduled) if h.cancelled()]
    except RuntimeError:  # not inside the loop
        return 0, set()
    ids, stack = {id(h) for h in handles}, [h._context for h in handles if getattr(h, "_context", None) is not None]
    while stack:
        o = stack.pop()
        if id(o) not in ids:
            ids.add(id(o))
            stack.extend(r for r in gc.get_referents(o) if type(r).__name__.startswith("hamt"))
    return len(handles), ids


def census(signum, frame) -> None:
    del frame
    gc.collect()
    lingering, skip = lingering_timers()
    objects = [o for o in gc.get_objects() if id(o) not in skip]
    by_type = collections.Counter(name(type(o)) for o in objects)
    # what the coroutines alive are running (a leak of tasks shows up here by name)
    by_type.update(f"coroutine:{awaiting(o)}" for o in objects if inspect.iscoroutine(o))
    del objects
    with open(os.environ["ENGRAM_LS_COUNTS"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"total": sum(by_type.values()), "types": dict(by_type), "lingering_timers": lingering})
                + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, census)
    from engram_ls.server.cli import main

    sys.exit(main(sys.argv[1:]))
