"""engram-ls serve, plus a live-object census on SIGUSR1 (test-only; the product has no such hook).

On the signal the main thread — the one running the server's event loop — collects garbage and appends one JSON
line to $ENGRAM_LS_COUNTS: the number of objects the collector tracks, by type. Tests count objects, not time.
"""

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


def census(signum, frame) -> None:
    del frame
    gc.collect()
    objects = gc.get_objects()
    by_type = collections.Counter(name(type(o)) for o in objects)
    # what the coroutines alive are running (a leak of tasks shows up here by name)
    by_type.update(f"coroutine:{awaiting(o)}" for o in objects if inspect.iscoroutine(o))
    del objects
    with open(os.environ["ENGRAM_LS_COUNTS"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"total": sum(by_type.values()), "types": dict(by_type)}) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, census)
    from engram_ls.server.cli import main

    sys.exit(main(sys.argv[1:]))
