"""Ranking against a reference computed here the slow way: every query feature's BM25 over every live chunk,
blended with the cosine of the query probe and the chunk's engram materialised with ``vsa.bundle`` and the cosine
of the query's and the chunk's meaning (word vectors summed in Python) and, for a question in words, the share of
its words the unit's name holds, with the default blend of the query's kind."""

import math

import numpy as np
import pytest

from engram_ls.retrieval import Engram, encoder, ranking, vsa
from engram_ls.retrieval.features import query_features, split_identifier
from engram_ls.retrieval.vocabulary import LEXICAL_ROLES


def indexed(workspace, cache):
    e = Engram.open(workspace, cache_dir=cache)
    e.index_workspace()
    return e


def reference(e, query: str, k: int, allowed=None):
    t, features = e.table, e.features
    natural = ranking.is_natural(query)
    blend = ranking.WORDS if natural else ranking.CODE
    weights = ranking.query_weights(query, features, t.alive, e.terms, blend)
    ids = {f: features.lookup(f) for f in weights}
    known = {ids[f]: w for f, w in weights.items() if ids[f] >= 0 and features.df[ids[f]] > 0}
    space = e.terms.meaning
    qm = ranking.query_meaning(query, features, t.alive, e.terms)
    q = encoder.probe(weights, features).astype(np.float64)
    avg = t.total_length / t.alive
    rows = []
    for slot in t.live_slots().tolist():
        if allowed is not None and not allowed[slot]:
            continue
        ids, w = t.features(slot)
        bm = 0.0
        for f, tf in zip(ids.tolist(), w.tolist()):
            if f in known:
                bm += known[f] * tf * (1.2 + 1) / (
                    tf + 1.2 * (1 - 0.75 + 0.75 * t.length[slot] / avg))
        if bm <= 0:
            continue
        keep = LEXICAL_ROLES[features.role[ids]] if natural else np.ones(len(ids), bool)
        dims, values = vsa.bundle(features.hv[ids[keep]], w[keep])
        norm = float(np.linalg.norm(values.astype(np.float64))) or 1.0
        cos = float(np.dot(q[dims], values)) / ((float(np.linalg.norm(q)) or 1.0) * norm)
        v = np.zeros(space.dim)
        for f, tf in zip(ids.tolist(), w.tolist()):
            if f < len(space.row) and space.row[f] >= 0:
                v += tf * encoder.idf(int(features.df[f]), t.alive) * space.code[space.row[f]]
        mean = float(v @ qm) / np.linalg.norm(v) if qm is not None and np.linalg.norm(v) else 0.0
        rows.append((slot, bm, cos, mean))
    top = max(bm for _, bm, _, _ in rows)
    asked = ranking.question_words(query, features, t.alive)

    def name(slot):  # the share of the question's words (IDF-weighted) the unit's own name holds
        words = set(split_identifier(t.symbols[slot].split(".")[-1]))
        return sum(v for w, v in asked.items() if w in words) / sum(asked.values()) if asked else 0.0

    total = blend.lexical + blend.engram + blend.meaning + blend.name
    final = [(slot, (blend.lexical * bm / top + blend.engram * cos + blend.meaning * mean
                     + blend.name * name(slot)) / total) for slot, bm, cos, mean in rows]
    final.sort(key=lambda x: -x[1])
    return [(s, f) for s, f in final[:k] if f > 0]


QUERIES = ["download a web page", "discount on the order amount", "slugify title",
           "def total(self):\n    s = sum(p.price * q for p, q in self.items)", "retry_request(url, attempts=3)",
           "shopping cart", "capitalize words text"]


@pytest.mark.parametrize("query", QUERIES)
def test_search_equals_the_reference_ranking(workspace, cache, query):
    e = indexed(workspace, cache)
    got = ranking.search(e.table, e.features, e.terms, query, 4)
    want = reference(e, query, 4)
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)  # the engram norms are stored as float32
    assert got and 0 < got[-1][1] <= got[0][1] <= 1.0 + 1e-9
    assert e.terms.meaning.words          # the meaning channel took part


def test_fresh_slots_and_scope_rank_like_the_reference(workspace, cache):
    e = indexed(workspace, cache)
    e.set_document("shop/pricing.py", (workspace / "shop/pricing.py").read_text() + "\ndef refund_page(url):\n"
                   "    return fetch_url(url)\n")
    assert e.table.fresh  # scored from the arena, not the postings
    query = "download a web page refund"
    got = ranking.search(e.table, e.features, e.terms, query, 5)
    assert [s for s, _ in got] == [s for s, _ in reference(e, query, 5)]
    allowed = np.zeros(e.table.n_slots, bool)
    shop = [s for s in e.table.live_slots().tolist() if e.doc_paths[int(e.table.doc[s])].startswith("shop/")]
    allowed[shop] = True
    got = ranking.search(e.table, e.features, e.terms, query, 5, allowed)
    assert got and {s for s, _ in got} <= set(shop)
    assert [s for s, _ in got] == [s for s, _ in reference(e, query, 5, allowed)]


def test_query_weights_are_idf_times_log_count_times_the_role_boost(workspace, cache):
    e = indexed(workspace, cache)
    query = "def fetch_url(url): retry fetch_url"
    counts = query_features(query)
    weights = ranking.query_weights(query, e.features, e.table.alive, e.terms)
    for f, c in counts.items():
        fid = e.features.lookup(f)
        df = int(e.features.df[fid]) if fid >= 0 else 0
        boost = 1.5 if f.startswith("d:") else 1.0
        assert math.isclose(weights[f], encoder.idf(df, e.table.alive) * (1 + math.log(c)) * boost), f
    assert any(c > 1 for c in counts.values()) and any(f.startswith("d:") for f in counts)  # both rules exercised


def test_the_semantic_layer_adds_neighbours_of_the_rarest_words_at_a_reduced_weight(tmp_path, cache, monkeypatch):
    from tests.retrieval.conftest import make_workspace
    from engram_ls.retrieval import semantic

    monkeypatch.setattr(semantic, "RANDOM_INDEXING", True)     # the layer the ranking before the meaning channel used

    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "lambda_"]
    files = {f"m{i}.py": f"def f{i}(items):\n    total_count = len(items)\n    return total_count + {i}\n"
             for i in range(6)}
    files.update({f"o{i}_{j}.py": f"def {a}_{b}(path):\n    return open(path).read()\n"
                  for i, a in enumerate(words) for j, b in enumerate(words[:4])})
    e = indexed(make_workspace(tmp_path / "sem", files), cache)
    query = "count items"
    counts = query_features(query)
    weights = ranking.query_weights(query, e.features, e.table.alive, e.terms)
    n = e.table.alive
    expanded = {f: w for f, w in weights.items() if f not in counts}
    neighbours = dict(e.terms.neighbours("count"))
    assert "t:len" in expanded and "len" in neighbours
    df = int(e.features.df[e.features.lookup("t:len")])
    assert math.isclose(expanded["t:len"], max(0.35 * neighbours["len"] * encoder.idf(df, n),
                                               0.35 * dict(e.terms.neighbours("items")).get("len", 0) *
                                               encoder.idf(df, n)))
    for f, c in counts.items():  # a query word is never replaced by its expansion weight
        fid = e.features.lookup(f)
        assert math.isclose(weights[f], encoder.idf(int(e.features.df[fid]) if fid >= 0 else 0, n) *
                            (1 + math.log(c)))


def test_nothing_to_rank_gives_nothing(workspace, cache, tmp_path):
    e = indexed(workspace, cache)
    assert ranking.search(e.table, e.features, e.terms, "download a web page", 0) == []
    assert ranking.search(e.table, e.features, e.terms, "zzyzx qwxv", 3) == []
    empty = Engram.open(tmp_path / "nothing", cache_dir=tmp_path / "c2")
    assert ranking.search(empty.table, empty.features, empty.terms, "download", 3) == []
    assert len(ranking.search(e.table, e.features, e.terms, "url", 1)) == 1
