"""Where an index's RSS goes, in one process: an empty workspace (compiled kernels warm, as a server has them), then
the ~50k-chunk scale corpus indexed, then after glibc's malloc_trim, without the semantic layer, without the feature
caches. ``python bench/memory_breakdown.py [CORPUS]`` prints MB; the output is kept in bench/results/."""

from __future__ import annotations

import ctypes
import gc
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retrieval_bench import SCALE_PACKAGES, copy_packages  # noqa: E402
from engram_ls.retrieval import Engram, features, kernels  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def arrays_mb(obj) -> float:
    total = 0
    for value in vars(obj).values():
        total += value.nbytes if hasattr(value, "nbytes") else arrays_mb(value) * 2**20 if hasattr(value, "__dict__") \
            else 0
    return total / 2**20


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "scale"
    if not corpus.exists():
        copy_packages(SCALE_PACKAGES, corpus, blank_docstrings=False)
    empty = Engram.open(Path(tempfile.mkdtemp()), cache_dir=Path(tempfile.mkdtemp()))
    empty.index_workspace()
    empty.search("warm up", 5)
    kernels.warm()
    gc.collect()
    base = rss_mb()
    print(f"empty workspace, kernels warm: {base:.1f} MB")
    engram = Engram.open(corpus, cache_dir=Path(tempfile.mkdtemp()))
    summary = engram.index_workspace()
    gc.collect()
    print(f"indexed {summary.files} files, {summary.chunks} chunks: +{rss_mb() - base:.1f} MB")
    ctypes.CDLL(None).malloc_trim(0)
    print(f"after malloc_trim: +{rss_mb() - base:.1f} MB")
    print(f"index arrays: chunk table {engram.table.nbytes() / 2**20:.1f} MB, feature table "
          f"{sum(getattr(engram.features, n).nbytes for n in ('key', 'hv', 'role', 'df')) / 2**20:.1f} MB; "
          f"semantic layer arrays {arrays_mb(engram.terms):.1f} MB")
    engram.terms = type(engram.terms)()
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    print(f"without the semantic layer: +{rss_mb() - base:.1f} MB")
    features._IDENT_INFO.clear()
    features._split.cache_clear()
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    print(f"without the feature caches: +{rss_mb() - base:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
