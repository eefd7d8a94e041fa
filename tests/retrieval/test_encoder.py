"""The encoder on its own: weights, document frequencies, engram norms, IDF and query probes, checked against
values computed here by hand or by the plain VSA algebra."""

import math

import numpy as np

from engram_ls.retrieval import encoder, vsa
from engram_ls.retrieval.features import code_features
from engram_ls.retrieval.vocabulary import LEXICAL_ROLES, ROLE_WEIGHT, ROLES, FeatureTable

TEXTS = ["def parse_date(text):\n    return parse(text) or parse(text) or parse(text) or parse(text) or parse(text)\n",
         "class Cart:\n    def total(self):\n        return sum(self.items)\n",
         ""]


def test_weights_are_capped_counts_times_the_role_weight_and_df_counts_chunks():
    table = FeatureTable()
    ids, weights, norm, lex = encoder.encode_chunks(table, TEXTS, words=["shop"])
    assert len(ids) == len(weights) == len(norm) == len(lex) == 3
    for text, chunk_ids, w in zip(TEXTS, ids, weights):
        counts = code_features(text, words=["shop"])
        assert chunk_ids.tolist() == table.lookup_many(list(counts)).tolist()
        assert len(set(chunk_ids.tolist())) == len(counts)          # one id per distinct feature
        expected = [min(c, 4) * int(ROLE_WEIGHT[ROLES.index(n[0])]) for n, c in counts.items()]
        assert w.tolist() == expected and w.dtype == np.int16 and chunk_ids.dtype == np.int32
    parse = table.lookup("t:parse")
    assert code_features(TEXTS[0], words=["shop"])["t:parse"] > 4  # the cap is exercised
    assert weights[0][ids[0].tolist().index(parse)] == 4  # counts are capped at 4
    assert table.df[table.lookup("t:shop")] == 3 and table.df[parse] == 1  # once per chunk that has it


def test_norms_are_the_norms_of_the_engrams():
    table = FeatureTable()
    ids, weights, norm, lex = encoder.encode_chunks(table, TEXTS, words=["shop"])
    for chunk_ids, w, n, ln in zip(ids, weights, norm, lex):
        _, values = encoder.engram_of(table, chunk_ids, w)
        assert math.isclose(n, float(np.linalg.norm(values.astype(np.float64))), rel_tol=1e-12)
        lexical = LEXICAL_ROLES[table.role[chunk_ids]]
        _, lex_values = vsa.bundle(table.hv[chunk_ids[lexical]], w[lexical])
        assert math.isclose(ln, float(np.linalg.norm(lex_values.astype(np.float64))), rel_tol=1e-12, abs_tol=1e-12)
        assert 0 < ln < n if not lexical.all() else ln == n  # non-lexical features count only in the full view
    assert encoder.engram_norms(table, [], [])[0].shape == (0,)


def test_idf_is_bm25s_with_a_floor():
    assert encoder.idf(1, 10) == math.log(1 + 9.5 / 1.5)
    assert encoder.idf(0, 1) == math.log(1 + 1.5 / 0.5)
    assert encoder.idf(10, 10) == max(0.05, math.log(1 + 0.5 / 10.5))
    assert encoder.idf(1000, 10) == 0.05  # floored: a common feature still counts a little
    assert encoder.idf(2, 10) > encoder.idf(3, 10) > encoder.idf(9, 10)


def test_probe_is_the_weighted_bundle_of_known_and_unknown_features():
    table = FeatureTable()
    encoder.encode_chunks(table, TEXTS[:1], words=[])
    weighted = {"t:parse": 2.0, "t:never_seen_before": 0.5, "o:parse date": 1.25}
    q = encoder.probe(weighted, table)
    assert q.shape == (vsa.DIM,) and q.dtype == np.float32
    expected = np.zeros(vsa.DIM, np.float64)
    from engram_ls.retrieval.vocabulary import hypervectors

    for name, w in weighted.items():
        hv = table.hv[table.lookup(name)].astype(np.int64) if table.lookup(name) >= 0 else hypervectors([name])[0]
        np.add.at(expected, vsa.active_dims(hv), w)
    assert np.allclose(q, expected) and math.isclose(float(q.sum()), vsa.BLOCKS * 3.75, rel_tol=1e-6)
    assert not encoder.probe({}, table).any()
