"""The semantic channel: static word vectors, the workspace's meaning space, the chunk-meaning kernel and the fused
ranking that uses them."""

import numpy as np
import pytest

from engram_ls.retrieval import Engram, meaning, ranking
from engram_ls.retrieval.features import query_features
from engram_ls.retrieval.meaning import MeaningSpace, Rows, WordVectors
from engram_ls.retrieval.meaning_kernels import cosines
from tests.retrieval.conftest import make_workspace


def small_table() -> WordVectors:
    words = ["delete", "remove", "apple", "##s", "serial", "##izer"]
    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [0, 0.6, 0.8], [0.6, 0, 0.8]], np.float32)
    return WordVectors(words, vectors)


def test_a_word_has_its_own_vector_or_the_mean_of_its_longest_pieces():
    t = small_table()
    assert np.allclose(t.vector("delete"), [1, 0, 0])
    want = t.code[t.row["serial"]] + t.code[t.row["##izer"]]
    assert np.allclose(t.vector("serializer"), want / np.linalg.norm(want))
    apples = t.code[t.row["apple"]] + t.code[t.row["##s"]]
    assert np.allclose(t.vector("apples"), apples / np.linalg.norm(apples))
    assert t.vector("qqq") is None


def two_sided_table() -> WordVectors:
    """A trained table: questions' words have their own rows, and lengths are weights."""
    words = ["largest", "max", "min", "##s", "serial", "##izer"]
    code = np.array([[0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 2], [0, 3, 0], [0, 0, 1]], np.float32)
    query = np.array([[2, 0.2, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]], np.float32)
    return WordVectors(words, code, query)


def test_a_trained_table_has_a_query_side_and_keeps_lengths():
    t = two_sided_table()
    assert np.allclose(t.vector("largest"), [0, 1, 0]) and np.allclose(t.query_vector("largest"), [2, 0.2, 0])
    assert np.allclose(t.vector("max"), [1, 0, 0])             # not normalised: a length is a learnt weight
    pieces = np.array([0, 3, 1], np.float32)                  # serial + ##izer, scaled to their mean length (2)
    assert np.allclose(t.vector("serializer"), pieces / np.linalg.norm(pieces) * 2.0)
    assert np.allclose(t.query_vector("serializer"), [1, 1, 0] / np.sqrt(2) * 1.0)
    d = small_table()
    assert d.query is d.code and np.allclose(d.query_vector("remove"), d.vector("remove"))


def test_quantised_rows_read_back_as_their_floats():
    r = Rows(np.array([[127, 0, -64], [0, 10, 0]], np.int8), np.array([0.5, 2.0], np.float32))
    assert np.allclose(r[0], [63.5, 0, -32]) and np.allclose(r[[1, 0]], [[0, 20, 0], [63.5, 0, -32]])
    one_sided = WordVectors(["a", "b"], r)                  # the distilled form: unit rows, both sides
    assert np.allclose(np.linalg.norm(one_sided.code[[0, 1]], axis=1), 1.0) and one_sided.query is one_sided.code
    two_sided = WordVectors(["a", "b"], r, Rows(r.values, np.ones(2, np.float32)))
    assert np.allclose(two_sided.vector("b"), [0, 20, 0]) and np.allclose(two_sided.query_vector("b"), [0, 10, 0])


def test_a_question_word_reaches_the_code_words_that_answer_it():
    """'largest' is answered by code that says max: the query side of one word against the code side of the
    workspace's words, by cosine (lengths do not decide a neighbour)."""
    t = two_sided_table()
    space = MeaningSpace.build(np.array([0, 1, 2]), ["largest", "max", "min"], t)
    assert [w for w, _ in space.neighbours("largest", k=2, min_similarity=0.5)] == ["max"]
    q = space.query_vector({"largest": 1.0})
    assert np.allclose(q, np.array([2, 0.2, 0]) / np.linalg.norm([2, 0.2, 0]))


def test_the_meaning_space_maps_feature_ids_to_rows_and_finds_neighbours():
    t = small_table()
    names = ["delete", None, "remove", "apple", "x", "42"]
    space = MeaningSpace.build(np.array([0, 2, 3, 4, 5, 0]), names, t)
    assert space.words == ["delete", "remove", "apple"]
    assert space.row.tolist() == [0, -1, 1, 2, -1, -1]        # one-letter words and numbers get no vector
    assert [w for w, _ in space.neighbours("delete", k=2, min_similarity=0.5)] == ["remove"]
    assert space.neighbours("apple", k=2, min_similarity=0.5) == []
    assert space.query_vector({"qqq": 1.0}) is None


def _cosine(a, b) -> float:
    return float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))


def test_the_distilled_table_knows_synonyms():
    t = WordVectors.load(meaning.DISTILLED)
    assert len(t.row) > 30_000
    sim = lambda a, b: float(t.vector(a) @ t.vector(b))
    assert sim("delete", "remove") > sim("delete", "banana") + 0.2
    assert sim("download", "fetch") > sim("download", "colour") + 0.2


def test_the_shipped_table_maps_question_words_to_code_words():
    """The shipped code-search table: a question's word is nearer the code words that answer it than unrelated
    ones, on both sides' own vectors."""
    t = meaning.shipped()
    assert t is not None and len(t.row) > 30_000 and t.query is not t.code
    sim = lambda q, c: _cosine(t.query_vector(q), t.vector(c))
    assert sim("largest", "max") > sim("largest", "min") + 0.1
    assert sim("remove", "delete") > sim("remove", "banana") + 0.2
    assert sim("lowercase", "lower") > sim("lowercase", "colour") + 0.2


def test_chunk_meaning_cosines_equal_the_slow_reference(workspace, cache):
    e = Engram.open(workspace, cache_dir=cache)
    e.index_workspace()
    t, space = e.table, e.terms.meaning
    assert len(space.words) > 10
    q = ranking.query_meaning("download a web page", e.features, t.alive, e.terms)
    slots = t.live_slots()
    got = cosines(t, e.features, space, q, slots, t.alive)
    for slot, value in zip(slots.tolist(), got.tolist()):
        ids, w = t.features(slot)
        v = np.zeros(space.dim)
        for f, tf in zip(ids.tolist(), w.tolist()):
            if f < len(space.row) and space.row[f] >= 0:
                v += tf * ranking.idf(int(e.features.df[f]), t.alive) * space.code[space.row[f]]
        want = float(v @ q) / np.linalg.norm(v) if np.linalg.norm(v) else 0.0
        assert value == pytest.approx(want, rel=1e-4, abs=1e-5)
    best = slots[int(np.argmax(got))]
    assert "fetch_url" in t.symbols[best] or e.doc_paths[t.doc[best]] == "net/http_client.py"


FILES = {
    "store/entries.py": "def delete_entry(entry_id):\n    table.drop(entry_id)\n    journal.note(entry_id)\n",
    "report.py": "def print_report(rows):\n    for row in rows:\n        print(row.title, row.total)\n",
    "colours.py": "def blend_colours(a, b):\n    return mix(a, b, 0.5)\n",
} | {f"pad{i}.py": f"def scale_{i}(x):\n    return x * {i}\n" for i in range(8)}


def test_a_question_in_other_words_finds_the_code_through_the_meaning_channel(tmp_path, cache):
    """'remove an item' shares no word with the workspace: only the meaning channel's neighbours (remove ->
    delete) make delete_entry a candidate, and its cosine ranks it first."""
    e = Engram.open(make_workspace(tmp_path / "syn", FILES), cache_dir=cache)
    e.index_workspace()
    query = "remove an item"
    assert all(e.features.lookup(f) < 0 for f in query_features(query))
    assert "delete" in dict(e.terms.meaning.neighbours("remove"))
    hits = ranking.search(e.table, e.features, e.terms, query, 3)            # the default blend for words
    assert hits and e.doc_paths[e.table.doc[hits[0][0]]] == "store/entries.py"
    without = ranking.Blend(lexical=ranking.WORDS.lexical, engram=ranking.WORDS.engram, meaning=0, expansion=0)
    assert ranking.search(e.table, e.features, e.terms, query, 3, blend=without) == []


def test_words_and_code_weigh_the_channels_differently():
    assert ranking.WORDS.meaning > ranking.WORDS.lexical and ranking.WORDS.expansion > 0
    assert ranking.CODE.lexical > ranking.CODE.meaning
    assert ranking.is_natural("where do we retry failed uploads?")
    assert not ranking.is_natural("def retry(upload):\n    return upload.send()")


def test_a_damaged_table_turns_the_channel_off_and_search_goes_on(tmp_path, cache, monkeypatch, caplog):
    """A truncated or foreign table file is one warning, not a failure: questions are still answered by the
    lexical and engram channels."""
    bad = tmp_path / "codesearch.npz"
    bad.write_bytes(b"PK\x03\x04 not a whole archive")
    monkeypatch.setattr(meaning, "DATA", bad)
    meaning.shipped.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert meaning.shipped() is None
        assert "semantic channel is off" in caplog.text
        e = Engram.open(make_workspace(tmp_path / "ws", FILES), cache_dir=cache)
        e.index_workspace()
        assert e.terms.meaning.words == []
        hits = ranking.search(e.table, e.features, e.terms, "delete an entry from the table", 3)
        assert hits and e.doc_paths[e.table.doc[hits[0][0]]] == "store/entries.py"
    finally:
        meaning.shipped.cache_clear()
