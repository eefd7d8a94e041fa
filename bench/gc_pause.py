"""How long a full garbage collection holds the GIL in an indexing process, before and after ``gc.freeze()`` of the
start-up objects (numba's typing registries are ~100k of them). ``python bench/gc_pause.py [FOLDER]`` (default: the
installed numpy package's sources); the output is kept in bench/results/gc-pause.txt."""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy

from engram_ls.retrieval import Engram, kernels


def full_collection_ms() -> float:
    t = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - t) * 1000


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(numpy.__file__).parent
    kernels.warm()
    engram = Engram.open(folder, cache_dir=Path(tempfile.mkdtemp()))
    summary = engram.index_workspace()
    print(f"indexed {summary.files} files, {summary.chunks} chunks; load average {os.getloadavg()[0]:.1f}")
    print(f"tracked objects: {len(gc.get_objects())}")
    print("full collection, ms:", [round(full_collection_ms(), 1) for _ in range(3)])
    gc.freeze()
    print("after gc.freeze(), ms:", [round(full_collection_ms(), 1) for _ in range(3)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
