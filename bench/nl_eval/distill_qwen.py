"""A second candidate table for the semantic channel: word vectors from the token-embedding matrix of the shipped
Qwen2.5-Coder-0.5B GGUF (no forward pass). A word's vector is the mean of the embeddings of the tokens of
`` word`` (with its leading space, as words appear in text), over the same words as the MiniLM table, centred and
reduced by PCA to the same size, so the two compare like for like in ``python -m bench.nl_eval --vectors``.

Run: ``pip install gguf pyyaml && python -m bench.nl_eval.distill_qwen`` (after ``distill``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.nl_eval.distill import DIM, OUT as MINILM

OUT = MINILM.with_name("static_qwen.npz")
GGUF = Path.home() / ".cache" / "engram-ls" / "models" / "qwen2.5-coder-0.5b-instruct.gguf"


def main() -> None:
    import gguf
    from gguf.quants import dequantize
    from llama_cpp import Llama

    started = time.perf_counter()
    reader = gguf.GGUFReader(str(GGUF))
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    emb = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)      # (vocab, 896)
    vocab = Llama(model_path=str(GGUF), vocab_only=True, verbose=False)
    with np.load(MINILM) as z:
        words = [str(w) for w in z["words"] if not str(w).startswith("##")]
    vectors = np.zeros((len(words), emb.shape[1]), np.float32)
    for i, w in enumerate(words):
        ids = vocab.tokenize((" " + w).encode(), add_bos=False, special=False)
        vectors[i] = emb[ids].mean(0)
    vectors -= vectors.mean(0)
    _, _, vt = np.linalg.svd(vectors[np.random.default_rng(0).choice(len(vectors), 20000, replace=False)],
                             full_matrices=False)
    reduced = vectors @ vt[:DIM].T
    reduced /= np.linalg.norm(reduced, axis=1, keepdims=True) + 1e-9
    scale = np.abs(reduced).max(1) / 127.0
    np.savez_compressed(OUT, words=np.array(words), vectors=np.round(reduced / scale[:, None]).astype(np.int8),
                        scale=scale.astype(np.float32), source=np.array("Qwen2.5-Coder-0.5B-Instruct token_embd"))
    print(f"{len(words)} words x {DIM} in {time.perf_counter() - started:.1f} s -> {OUT}")


if __name__ == "__main__":
    main()
