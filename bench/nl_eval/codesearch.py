"""Trains the semantic channel's code-search word vectors: what a question's words mean *in code*.

The distilled MiniLM table (``distill.py``) knows English: ``remove`` is near ``delete``. It does not know that a
question saying "largest" is answered by code saying ``max``, or that "the user's home folder" is ``expanduser``.
That is learnt here from documented functions of public packages that none of the evaluation sets use: the first
sentence of each function's documentation is a question, the function's chunk — indexed by the real engine, its
documentation blanked, exactly as a workspace is — is its answer.

Model (a neural bag of words, CodeSearchNet's NBoW baseline in the engine's own terms): two tables over one
vocabulary, ``query`` and ``code``, both initialised from the distilled MiniLM vectors. A question's meaning is the
idf-weighted sum of its words' query vectors, a chunk's the sum of its word features' code vectors weighted as the
engine weighs them (capped count x idf, ``meaning_kernels``); both are trained so that each question's cosine with
its own chunk beats every other chunk of the batch (InfoNCE, batches drawn from one package: the other functions of
the same code base are the hard negatives a workspace holds). Vector lengths are kept: a word's length is its learnt
weight in the sum.

Steps (each cached under ``--work``): ``download`` (pip download / npm pack at pinned versions), ``pairs`` (copy with
docs blanked, index, extract the weighted words of each question and gold chunk), ``train`` (torch on the CPU).
Output: ``retrieval/data/codesearch.npz`` (words, int8 code and query vectors with per-row scales).

Run: ``pip install torch==2.13.0 && python -m bench.nl_eval.codesearch --work /tmp/codesearch``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from bench.nl_eval.sets import SETS, copy_js
from bench.retrieval_bench import copy_packages, first_sentence
from engram_ls.retrieval import Engram, meaning, ranking
from engram_ls.retrieval.encoder import idf
from engram_ls.retrieval.vocabulary import ROLES

OUT = Path(__file__).resolve().parents[2] / "retrieval" / "data" / "codesearch.npz"

# Training code: none of it is in a dev or held-out set (checked by ``_check_disjoint``). Versions pinned so the
# table can be rebuilt exactly.
PYTHON = {
    "aiohttp": "3.14.5", "alembic": "1.20.1", "ansible-core": "2.19.14", "astropy": "8.0.2", "babel": "2.19.0",
    "beautifulsoup4": "4.15.0", "black": "26.10.1", "bokeh": "3.9.2", "boto3": "1.44.18", "botocore": "1.44.18",
    "bottle": "0.13.5", "celery": "5.7.0", "coverage": "7.18.0", "dask": "2026.11.0", "django": "5.2.19",
    "docutils": "0.23.1", "falcon": "4.4.0", "fastapi": "0.165.0", "flask": "3.1.3", "gunicorn": "27.0.1",
    "html5lib": "1.1", "httpx": "0.29.0", "ipython": "9.19.1", "jsonschema": "4.26.0", "jupyter-client": "8.10.0",
    "kombu": "5.7.0", "lxml": "6.2.0", "marshmallow": "4.4.0", "matplotlib": "3.11.2", "mistune": "3.4.0",
    "more-itertools": "11.2.1", "mypy": "2.4.1", "nbformat": "5.11.1", "networkx": "3.6.1", "nltk": "3.10.4",
    "numpy": "2.4.6", "openpyxl": "3.1.5", "pandas": "3.1.1", "paramiko": "5.1.0", "pillow": "13.0.0",
    "prompt-toolkit": "3.0.53", "pydantic": "2.14.4", "pygments": "2.21.0", "pylint": "4.1.5", "pyramid": "2.1",
    "pyyaml": "6.0.4", "reportlab": "5.1.0", "requests": "2.34.2", "sanic": "25.12.1", "scikit-learn": "1.9.1",
    "scipy": "1.17.1", "scrapy": "2.19.0", "sphinx": "9.0.4", "sqlalchemy": "2.1.9", "sqlparse": "0.6.1",
    "starlette": "1.10.0", "statsmodels": "0.15.0", "sympy": "1.14.0", "toolz": "1.2.0", "tornado": "6.6.1",
    "tox": "4.67.17", "tqdm": "4.70.1", "traitlets": "5.16.1", "twisted": "26.10.0", "uvicorn": "0.55.0",
    "virtualenv": "21.15.14", "werkzeug": "3.1.9", "xarray": "2026.9.0", "xlrd": "2.0.2",
}
JS = {
    "acorn": "8.19.0", "async": "3.2.6", "axios": "1.21.1", "@babel/generator": "7.29.17",
    "@babel/parser": "7.29.17", "@babel/traverse": "7.29.17", "@babel/types": "7.29.17", "bluebird": "3.7.2",
    "chart.js": "4.6.2", "d3-array": "3.2.5", "d3-scale": "4.0.3", "d3-selection": "3.0.1", "d3-shape": "3.2.1",
    "date-fns": "4.4.0", "dayjs": "1.11.23", "effect": "4.1.5", "esprima": "4.0.1", "express": "5.3.0",
    "fabric": "7.4.0", "fp-ts": "2.16.11", "graphql": "16.15.0", "handlebars": "4.7.10", "highlight.js": "11.12.0",
    "immer": "11.2.14", "immutable": "5.2.1", "io-ts": "2.2.22", "jquery": "4.1.0", "jszip": "3.10.2",
    "knex": "3.3.0", "konva": "10.9.1", "leaflet": "1.9.4", "less": "4.9.1", "lit": "3.3.3", "luxon": "3.7.2",
    "marked": "18.3.0", "mobx": "7.1.3", "moment": "2.31.0", "mongoose": "9.13.2", "ol": "10.11.0",
    "pdfjs-dist": "5.6.205", "pg": "8.23.1", "postcss": "8.5.34", "preact": "11.2.0", "prosemirror-model": "1.25.13",
    "prosemirror-state": "1.4.4", "prosemirror-transform": "1.12.7", "ramda": "0.32.0", "react-dom": "19.3.1",
    "redux": "5.0.1", "@reduxjs/toolkit": "2.16.0", "rollup": "4.69.3", "rxjs": "7.8.2", "sequelize": "6.37.8",
    "socket.io": "4.8.4", "terser": "5.51.4", "three": "0.187.0", "validator": "13.15.35", "vue": "3.5.47",
    "webpack": "5.113.0", "ws": "8.23.1", "yargs": "18.2.0", "zod": "4.6.7",
}
MIN_WORDS = 4
HARD = 3                            # hard negatives per question: the best other chunks by exact lexical BM25
MAX_FILES = 1500                    # per package: a few huge code bases must not drown the others


def _check_disjoint(py: dict, js: dict) -> None:
    evaluated = {f.split("/")[0].lstrip("@").lower() for split in SETS.values() for fs in split.values() for f in fs}
    evaluated |= {"attrs", "gitpython", "python-dateutil", "markdown-it-py", "msal"}
    clash = sorted(evaluated & {n.lower() for n in list(py) + list(js)})
    if clash:
        raise SystemExit(f"training packages overlap the evaluation sets: {clash}")


def download(work: Path) -> None:
    wheels, npm = work / "wheels", work / "npm"
    wheels.mkdir(parents=True, exist_ok=True)
    npm.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)] +
                   [f"{n}=={v}" for n, v in PYTHON.items()], check=True)
    if JS:
        subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(npm)] +
                       [f"{n}@{v}" for n, v in JS.items()], check=True, stdout=subprocess.DEVNULL)


def unpack(work: Path) -> list[tuple[str, str, Path, list[str]]]:
    """(name, language, root, folders) of every training code base, unpacked once under ``work/src``."""
    out = []
    src = work / "src"
    for whl in sorted((work / "wheels").glob("*.whl")):
        name = whl.name.split("-")[0].lower()
        root = src / "py" / name
        if not root.exists():
            with zipfile.ZipFile(whl) as z:
                z.extractall(root, [m for m in z.namelist() if m.endswith(".py")])
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.endswith(".dist-info"))
        out.append((name, "python", root, folders))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folders = sorted(p.name for p in stdlib.iterdir()
                     if p.is_dir() and p.name not in ("site-packages", "test", "idlelib", "lib2to3", "__pycache__"))
    out.append(("stdlib", "python", stdlib, folders))
    for tgz in sorted((work / "npm").glob("*.tgz")):
        name = tgz.name[:-4]
        root = src / "js" / name
        if not root.exists():
            with tarfile.open(tgz) as t:
                t.extractall(root, filter="data")
        for language in ("javascript", "typescript"):
            out.append((name, language, root, ["package"]))
    return out


def _weighted_words(engram, slot: int) -> dict[str, float]:
    """A chunk's word features with the weights the engine's meaning kernel gives them (capped count x idf)."""
    t, f = engram.table, engram.features
    names = f.word_list()
    word = ROLES.index("t")
    a = int(t.feat_start[slot])
    ids = t.feat_ids[a:a + int(t.feat_len[slot])]
    out = {}
    for i, w in zip(ids.tolist(), t.feat_w[a:a + len(ids)].tolist()):
        if f.role[i] == word and names[i] is not None:
            out[names[i]] = float(w) * idf(int(f.df[i]), t.alive)
    return out


LEXICAL = ranking.Blend(lexical=1, engram=0, meaning=0, expansion=0, ri_expansion=0)     # finds the hard negatives


def code_base_pairs(name: str, language: str, root: Path, folders: list[str], tmp: Path) -> list[dict]:
    """Question / gold-chunk word pairs of one code base, indexed as a workspace with its documentation blanked."""
    dest = tmp / f"{name}-{language}"
    if language == "python":
        functions = copy_packages(folders, dest, blank_docstrings=True, root=root)
    else:
        functions = copy_js(folders, language, dest, root=root)
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    if not files:
        return []
    for p in random.Random(name).sample(files, max(0, len(files) - MAX_FILES)):
        p.unlink()
    engram = Engram.open(dest, cache_dir=tmp / "cache" / f"{name}-{language}")
    engram.index_workspace()
    t = engram.table
    slots: dict[str, list[tuple[int, int, int]]] = {}
    for s in t.live_slots().tolist():
        slots.setdefault(engram.doc_paths[t.doc[s]], []).append((int(t.start[s]), int(t.end[s]), s))
    pairs = []
    for fn in functions:
        if not fn["doc"] or fn["path"] not in slots:
            continue
        question = first_sentence(fn["doc"])
        if len(question.split()) < MIN_WORDS:
            continue
        gold = next((s for a, b, s in slots[fn["path"]] if a <= fn["line"] <= b), None)
        if gold is None:
            continue
        q, c = ranking.question_words(question, engram.features, t.alive), _weighted_words(engram, gold)
        if q and c:
            found = ranking.search(t, engram.features, engram.terms, question, HARD + 1, None, LEXICAL)
            hard = [_weighted_words(engram, s) for s, _ in found if s != gold][:HARD]
            pairs.append({"q": q, "c": c, "hard": hard})
    shutil.rmtree(dest, ignore_errors=True)
    return pairs


def collect(work: Path) -> dict[str, list[dict]]:
    cache = work / "pairs-hard.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, language, root, folders in unpack(work):
            t = time.perf_counter()
            pairs = code_base_pairs(name, language, root, folders, Path(tmp))
            if pairs:
                out[f"{name}/{language}"] = pairs
            print(f"{name} {language}: {len(pairs)} pairs, {time.perf_counter() - t:.0f} s", flush=True)
    cache.write_bytes(pickle.dumps(out))
    return out


MIN_FREQ = 3            # a word seen in fewer training pairs keeps its distilled vector (or its pieces')
MAX_NEW = 30_000        # words added to the distilled vocabulary (the table must stay small: <= 30 MB)
BATCH = 256
TEMPERATURE = 0.05
VALIDATION = 0.04


def _encode(items: list[dict], side: str, table, row: dict[str, int]):
    """Unit meanings of one side ("q" or "c") of a batch of pairs: the weighted sum of the words' rows."""
    import torch.nn.functional as F

    ids, offsets, weights = _bags(items, side, row)
    return F.normalize(F.embedding_bag(ids, table, offsets, mode="sum", per_sample_weights=weights), dim=1)


def _bags(items: list[dict], side: str, row: dict[str, int]):
    """EmbeddingBag inputs (ids, offsets, weights) of one side of a batch of pairs."""
    import torch

    ids, offsets, weights = [], [], []
    for p in items:
        offsets.append(len(ids))
        for w, x in p[side].items():
            r = row.get(w)
            if r is not None:
                ids.append(r)
                weights.append(x)
    return (torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32))


def _batches(pairs: dict[str, list[dict]], rng: random.Random, js_repeat: int = 1) -> list[list[dict]]:
    """Batches of one code base each (its other functions are the negatives), in random order; a JS/TS code base's
    pairs go ``js_repeat`` times (there are fewer of them)."""
    out = []
    for key, items in pairs.items():
        for _ in range(1 if key.endswith("/python") else js_repeat):
            items = items[:]
            rng.shuffle(items)
            out.extend(items[i:i + BATCH] for i in range(0, len(items), BATCH) if len(items[i:i + BATCH]) >= 8)
    rng.shuffle(out)
    return out


def _mrr(qt, ct, batches, row) -> float:
    """MRR of each question's own chunk among its batch and the batch's hard negatives (validation)."""
    import torch

    total, n = 0.0, 0
    with torch.no_grad():
        for b in batches:
            hard = [{"c": h} for p in b for h in p.get("hard", ())]
            chunks = _encode(b + hard, "c", ct, row)
            s = _encode(b, "q", qt, row) @ chunks.T
            rank = (s > s.diag()[:, None]).sum(1) + 1          # the diagonal: each question's own chunk
            total += float((1.0 / rank.float()).sum())
            n += len(b)
    return total / max(1, n)


def train(pairs: dict[str, list[dict]], out: Path, epochs: int, lr: float, js_repeat: int = 1,
          temperature: float = TEMPERATURE, seed: int = 12) -> dict:
    """Trains the query and code tables from the distilled vectors and writes them (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = random.Random(seed)
    base = meaning.WordVectors.load(meaning.DISTILLED)
    freq: Counter = Counter()
    for items in pairs.values():
        for p in items:
            freq.update(set(p["q"]) | set(p["c"]))
    words = list(base.row)
    known = set(words)
    words += [w for w, n in freq.most_common() if n >= MIN_FREQ and w not in known and len(w) >= 2
              and not w.isdigit() and base.vector(w) is not None][:MAX_NEW]
    row = {w: i for i, w in enumerate(words)}
    init = np.stack([base.vector(w) for w in words]).astype(np.float32)
    qt = torch.nn.Parameter(torch.tensor(init))
    ct = torch.nn.Parameter(torch.tensor(init))
    held = {k: v[:max(1, int(len(v) * VALIDATION))] for k, v in pairs.items()}
    fit = {k: v[len(held[k]):] for k, v in pairs.items()}
    val_batches = _batches(held, random.Random(1))
    opt = torch.optim.Adam([qt, ct], lr=lr)
    log = {"words": len(words), "pairs": sum(map(len, fit.values())), "validation": sum(map(len, held.values())),
           "val_mrr": [round(_mrr(qt, ct, val_batches, row), 4)]}
    print(json.dumps(log), flush=True)
    best = (log["val_mrr"][0], init.copy(), init.copy())
    for epoch in range(epochs):
        t = time.perf_counter()
        for b in _batches(fit, rng, js_repeat):
            q = _encode(b, "q", qt, row)
            golds = _encode(b, "c", ct, row)
            hard = [{"c": h} for p in b for h in p.get("hard", ())]
            chunks = torch.cat([golds, _encode(hard, "c", ct, row)]) if hard else golds
            target = torch.arange(len(b))
            loss = (F.cross_entropy(q @ chunks.T / temperature, target) +
                    F.cross_entropy(golds @ q.T / temperature, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
        mrr = _mrr(qt, ct, val_batches, row)
        log["val_mrr"].append(round(mrr, 4))
        print(f"epoch {epoch + 1}: validation MRR {mrr:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
        if mrr > best[0]:
            best = (mrr, qt.detach().numpy().copy(), ct.detach().numpy().copy())
    save(out, words, best[2], best[1], dict(log, best_val_mrr=round(best[0], 4), lr=lr, epochs=epochs,
                                            js_repeat=js_repeat, temperature=temperature))
    return log


def _int8(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(m).max(1) / 127.0
    scale[scale == 0] = 1.0
    return np.round(m / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def save(out: Path, words: list[str], code: np.ndarray, query: np.ndarray, log: dict) -> None:
    """int8 rows with a per-row scale, lengths kept (a word's length is its learnt weight)."""
    c, cs = _int8(code)
    q, qs = _int8(query)
    meta = dict(log, python=PYTHON, js=JS, stdlib=sys.version.split()[0], batch=BATCH, hard=HARD)
    np.savez_compressed(out, words=np.array(words), vectors=c, scale=cs, query_vectors=q, query_scale=qs,
                        meta=np.array(json.dumps(meta)))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, required=True, help="cache folder: downloads, unpacked code, pairs")
    ap.add_argument("--step", choices=("pairs", "train", "all"), default="all")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--js-repeat", type=int, default=1, help="JS/TS pairs seen this many times an epoch")
    ap.add_argument("--temperature", type=float, default=TEMPERATURE)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    _check_disjoint(PYTHON, JS)
    if not (args.work / "wheels").exists():
        download(args.work)
    pairs = collect(args.work)
    print(json.dumps({k: len(v) for k, v in pairs.items()}), flush=True)
    if args.step in ("train", "all"):
        train(pairs, args.out, args.epochs, args.lr, args.js_repeat, args.temperature)


if __name__ == "__main__":
    main()
