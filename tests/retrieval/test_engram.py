import threading

import pytest

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from engram_ls.retrieval.chunk_table import GARBAGE_MIN
from engram_ls.retrieval import Engram
from engram_ls.retrieval import vsa


def indexed(workspace, cache):
    e = Engram.open(workspace, cache_dir=cache)
    e.index_workspace()
    return e


def test_natural_language_query_finds_the_right_chunk(workspace, cache):
    e = indexed(workspace, cache)
    hits = e.search("download a web page", k=3)
    assert hits[0].path == "net/http_client.py"
    assert hits[0].start_line == 4 and "def fetch_url" in hits[0].text
    hits = e.search("discount on the order amount", k=3)
    assert hits[0].path == "shop/pricing.py"


def test_code_query_finds_similar_code(workspace, cache):
    e = indexed(workspace, cache)
    hits = e.search("def total(self):\n    s = sum(p.price * q for p, q in self.items)", k=2)
    assert hits[0].path == "shop/cart.py" and "total_price" in hits[0].text


def test_hits_cite_exact_lines_and_scores_are_ordered(workspace, cache):
    e = indexed(workspace, cache)
    hits = e.search("slugify title", k=5)
    assert hits[0].path == "util/strings.js"
    lines = (workspace / hits[0].path).read_text().splitlines()
    assert hits[0].text == "\n".join(lines[hits[0].start_line - 1:hits[0].end_line])
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_scope_restricts_results(workspace, cache):
    e = indexed(workspace, cache)
    assert {h.path for h in e.search("price discount url", k=10, scope="shop")} <= {"shop/cart.py", "shop/pricing.py"}
    assert {h.path for h in e.search("slugify capitalize words", k=10, scope="*.js")} == {"util/strings.js"}


def test_empty_and_unknown_queries_return_nothing(workspace, cache):
    e = indexed(workspace, cache)
    assert e.search("   ") == []
    assert e.search("zzyzx qwxv") == []


def test_aggregates_are_exact_sums(workspace, cache):
    e = indexed(workspace, cache)
    total = np.zeros(vsa.DIM, np.int64)
    for path in e.documents():
        d, v = e.file_vector(path)
        total[d] += v
    assert np.array_equal(total, e.folder_vector(""))
    shop = np.zeros(vsa.DIM, np.int64)
    for path in ("shop/cart.py", "shop/pricing.py"):
        d, v = e.file_vector(path)
        shop[d] += v
    assert np.array_equal(shop, e.folder_vector("shop"))
    e.remove_document("shop/pricing.py")
    d, v = e.file_vector("shop/cart.py")
    only_cart = np.zeros(vsa.DIM, np.int64)
    only_cart[d] += v
    assert np.array_equal(only_cart, e.folder_vector("shop"))


def test_edit_reencodes_only_touched_chunks(workspace, cache):
    e = indexed(workspace, cache)
    before = {c.digest for c in e.chunks("shop/cart.py")}
    slots_before = list(e.docs["shop/cart.py"].slots)
    e.set_document("shop/cart.py", (workspace / "shop/cart.py").read_text())
    e.apply_edit("shop/cart.py", (11, 0), (11, 0), "        # keep insertion order\n")
    after_slots = e.docs["shop/cart.py"].slots
    assert len(set(slots_before) & set(after_slots)) >= len(slots_before) - 2
    assert {c.digest for c in e.chunks("shop/cart.py")} != before
    assert e.search("keep insertion order", k=1)[0].path == "shop/cart.py"


def _snapshot(e, path):
    d, v = e.file_vector(path)
    return [(c.start_line, c.end_line, c.digest, c.kind, c.symbol) for c in e.chunks(path)], d.tolist(), v.tolist(), \
        e.folder_vector("").tolist()


# One sample per supported language: units, comments, nesting — the edits below cut through all of it.
SAMPLES = {
    "shop/cart.py": None,  # the workspace's own file
    "src/app.ts": "import { x } from './x';\n// greets\nexport function greet(name: string): string {\n"
                  "  return `hi ${name}`;\n}\n\nclass Box<T> {\n  constructor(private v: T) {}\n  get(): T { return this.v; }\n}\n",
    "src/util.js": "const a = require('a');\nfunction add(x, y) {\n  return x + y;\n}\nconst f = (z) => {\n  return z * 2;\n"
                   "};\nmodule.exports = { add, f };\n",
    "cmd/main.go": "package main\n\nimport \"fmt\"\n\ntype S struct {\n\tA int\n}\n\nfunc (s *S) Get() int {\n\treturn s.A\n}\n"
                   "\nfunc main() {\n\tfmt.Println(1)\n}\n",
    "src/lib.rs": "use std::io;\n\nstruct P { x: i32 }\n\nimpl P {\n    fn new() -> P { P { x: 0 } }\n}\n\n"
                  "fn main() {\n    let p = P::new();\n}\n",
    "src/A.java": "package a;\n\nimport java.util.List;\n\npublic class A {\n    int x;\n    void m() {\n        x++;\n    }\n}\n",
    "src/m.c": "#include <stdio.h>\n\nstatic int count = 0;\n\nint add(int a, int b) {\n    return a + b;\n}\n",
    "src/m.cpp": "#include <vector>\n\nnamespace n {\nint g() { return 1; }\n}\n\nclass K {\n public:\n  void m() {}\n};\n",
    "lib/m.rb": "require 'json'\n\nclass Greeter\n  def hi(name)\n    puts name\n  end\nend\n\ndef top\n  1\nend\n",
    "docs/guide.md": "# Guide\n\nIntro text.\n\n## Install\n\nRun it.\n\n## Use\n\nCall it.\n",
}

edits = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 30), st.integers(0, 3), st.integers(0, 20),
              st.sampled_from(["", "x", "\n", "def g():\n    return 1\n", "    y = a.b(c)\n", "😀", "\r\n", "class K:\n",
                               "}", "{\n", "fn h() {}\n", "// note\n", "# T\n"])),
    min_size=1, max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(SAMPLES)), edits, st.booleans())
def test_incremental_edits_equal_a_full_rebuild(tmp_path_factory, path, ops, settle_each):
    """Every supported language: keystroke-path edits, then settle, give exactly the chunks, engrams and
    aggregates of indexing the final text from scratch."""
    from tests.retrieval.conftest import FILES, make_workspace
    import textwrap

    root = make_workspace(tmp_path_factory.mktemp("ws"))
    cache = tmp_path_factory.mktemp("cache")
    e = Engram.open(root, cache_dir=cache)
    e.index_workspace()
    text = textwrap.dedent(FILES["shop/cart.py"]).lstrip("\n") if SAMPLES[path] is None else SAMPLES[path]
    e.set_document(path, text)
    for line, col, dline, dcol, new in ops:
        lines = text.split("\n")
        line = min(line, len(lines) - 1)
        col = min(col, len(lines[line]))
        end_line = min(line + dline, len(lines) - 1)
        end_col = min(dcol, len(lines[end_line])) if end_line > line else max(col, min(col + dcol, len(lines[line])))
        e.apply_edit(path, (line, col), (end_line, end_col), new)
        a = sum(len(l) + 1 for l in lines[:line]) + col
        b = sum(len(l) + 1 for l in lines[:end_line]) + end_col
        text = text[:a] + new + text[b:]
        assert new.strip() == "" or any(new.strip().split("\n")[0] in h.text for h in e.search(new, k=50)) or \
            not e.search(new, k=1), "an edit is searchable at once, before settle"
        if settle_each:
            e.settle()
    e.settle()
    assert e.document_text(path) == text
    fresh = Engram.open(root, cache_dir=tmp_path_factory.mktemp("cache2"))
    fresh.index_workspace()
    fresh.set_document(path, text)
    assert _snapshot(e, path) == _snapshot(fresh, path)
    e.refresh_semantic()  # the semantic layer is re-learnt lazily (settle() does it after many changes): align both
    fresh.refresh_semantic()
    assert [(h.path, h.start_line, h.end_line) for h in e.search("add item price discount", 5)] == \
        [(h.path, h.start_line, h.end_line) for h in fresh.search("add item price discount", 5)]


def test_invalid_edit_ranges_raise_clear_errors(workspace, cache):
    e = indexed(workspace, cache)
    import pytest

    with pytest.raises(ValueError, match="negative"):
        e.apply_edit("shop/cart.py", (-1, 0), (0, 0), "x")
    with pytest.raises(ValueError, match="before its start"):
        e.apply_edit("shop/cart.py", (3, 0), (1, 0), "x")
    with pytest.raises(KeyError):
        e.apply_edit("nope.py", (0, 0), (0, 0), "x")
    assert e.search("download a web page", k=1)[0].path == "net/http_client.py"


def test_concurrent_edits_and_searches_do_not_corrupt(workspace, cache):
    e = indexed(workspace, cache)
    text = (workspace / "shop/pricing.py").read_text()
    errors = []

    def writer():
        try:
            for i in range(60):
                e.set_document("shop/pricing.py", text + f"\nVALUE_{i} = {i}\n")
        except Exception as ex:  # pragma: no cover - reported below
            errors.append(ex)

    def reader():
        try:
            for _ in range(60):
                e.search("apply discount amount", k=3)
        except Exception as ex:  # pragma: no cover
            errors.append(ex)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert e.search("VALUE_59", k=1)[0].path == "shop/pricing.py"


def test_semantic_layer_links_words_used_together(tmp_path, cache, monkeypatch):
    from tests.retrieval.conftest import make_workspace
    from engram_ls.retrieval import semantic

    monkeypatch.setattr(semantic, "RANDOM_INDEXING", True)     # the layer the ranking before the meaning channel used

    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "lambda_"]
    files = {f"m{i}.py": f"def f{i}(items):\n    total_count = len(items)\n    return total_count + {i}\n"
             for i in range(6)}
    files.update({f"o{i}_{j}.py": f"def {a}_{b}(path):\n    return open(path).read()\n"
                  for i, a in enumerate(words) for j, b in enumerate(words[:4])})
    e = indexed(make_workspace(tmp_path / "sem", files), cache)
    assert "len" in {w for w, _ in e.terms.neighbours("count", k=5, min_similarity=0.1)}


def _structure_sizes(e):
    """Everything the engine keeps that could grow with edits: live and ever-used features and slots, the arena
    (live plus garbage), free lists, documents, caches."""
    from engram_ls.retrieval import features as features_mod

    t = e.table
    return {"features": len(e.features), "feature_ids": e.features.size, "slots": t.n_slots, "alive": t.alive,
            "arena_live": t.arena_used - t.garbage, "docs": len(e.docs), "doc_ids": len(e.doc_paths),
            "fresh": len(t.fresh), "folder_cache": len(e._folder_cache),
            "ident_cache_bounded": len(features_mod._IDENT_INFO) <= features_mod._IDENT_INFO_MAX}


def test_structures_stay_flat_over_thousands_of_edits_that_restore_the_text(workspace, cache):
    """Typing a transient identifier and deleting it again, 3,000 times (plus settles and searches), leaves every
    structure the size it had: no feature, slot, document or cache entry accumulates."""
    e = indexed(workspace, cache)
    path = "shop/pricing.py"
    base = (workspace / path).read_text()
    e.set_document(path, base)
    e.settle()
    e.search("apply discount", 3)
    before = _structure_sizes(e)
    before_hits = [(h.path, h.start_line) for h in e.search("download a web page", 3)]
    for i in range(3000):
        e.set_document(path, base + f"\ntyping_{i}_partial = {i}\n")
        e.set_document(path, base)
        if i % 100 == 0:
            e.settle()
            e.search(f"typing {i}", 3)
            e.folder_vector("shop")
    e.settle()
    after = _structure_sizes(e)
    assert after["features"] == before["features"]
    assert after["feature_ids"] <= before["feature_ids"] + 40      # ids are reused, not appended
    assert after["slots"] <= before["slots"] + 8                    # slots are reused
    assert after["alive"] == before["alive"] and after["docs"] == before["docs"]
    assert after["arena_live"] == before["arena_live"]
    assert after["doc_ids"] == before["doc_ids"] and after["ident_cache_bounded"]
    assert after["folder_cache"] <= 2
    assert e.table.arena_used <= 2 * before["arena_live"] + GARBAGE_MIN   # garbage is compacted
    assert [(h.path, h.start_line) for h in e.search("download a web page", 3)] == before_hits
    assert e.search("typing_2999_partial", 1) == [] or e.search("typing_2999_partial", 1)[0].path != path


def test_arena_compaction_runs_and_keeps_every_live_chunk_intact():
    """Re-encoding the same chunks over and over turns the feature arena into garbage; past GARBAGE_MIN garbage
    entries (and half the arena) it is compacted: the arena shrinks back to the live entries, and every live slot
    still reads exactly its own features."""
    from engram_ls.retrieval.chunk_table import ChunkTable

    assert GARBAGE_MIN < 1_200_000 // 4  # the rounds below compact several times
    t = ChunkTable()
    rng = np.random.default_rng(15)
    chunks = {}
    for i in range(8):
        ids = rng.integers(0, 50_000, 5_000).astype(np.int32)
        chunks[t.add(0, i, i, "function", f"f{i}", i, ids, np.full(len(ids), 2, np.int16), 1.0, 1.0)] = ids
    compactions, original = [], t.compact_arena

    def counting():
        compactions.append(t.garbage)
        original()
        live = sum(len(ids) for ids in chunks.values())
        assert t.garbage == 0 and t.arena_used == live  # only the live entries are left ...
        for slot, ids in chunks.items():  # ... and each live slot still reads exactly its own features
            assert np.array_equal(t.features(slot)[0], ids), slot
    t.compact_arena = counting
    for round_ in range(60):  # 60 x 4 chunks x 5,000 features = 1.2 M entries turned into garbage
        for slot in list(chunks)[:4]:
            del chunks[slot]  # (removing it may compact: the spy checks the other chunks)
            t.remove(slot)
            ids = rng.integers(0, 50_000, 5_000).astype(np.int32)
            chunks[t.add(0, round_, round_, "function", "g", round_, ids, np.full(len(ids), 3, np.int16),
                         1.0, 1.0)] = ids
    assert len(compactions) >= 4 and all(g > GARBAGE_MIN for g in compactions)
    live = sum(len(ids) for ids in chunks.values())
    assert t.arena_used - t.garbage == live and t.arena_used <= 2 * live + GARBAGE_MIN + 5_000
    assert t.n_slots == 8 and t.alive == 8  # slots reused, never appended
    for slot, ids in chunks.items():
        got_ids, got_w = t.features(slot)
        assert np.array_equal(got_ids, ids) and len(got_w) == len(ids)


# Fixed edits through the keystroke path (the fast, deterministic sibling of the property test above): at the
# first line, at the end, across lines, leaving a blank last line, with no final newline, deleting everything — each then settled and
# compared with indexing the final text from scratch.
FIXED_EDITS = [((0, 0), (0, 0), "# first line\n"), ((0, 0), (1, 0), ""), ((3, 4), (5, 2), "x = 1\n\n"),
               ((99, 0), (99, 0), "\ndef tail():\n    return 0\n"), ((2, 0), (2, 0), "\n\n"),
               ((99, 0), (99, 0), "no_newline_at_the_end = 1"), ((1, 0), (1, 0), "y = 2\n"),
               ((0, 0), (99, 0), "")]


@pytest.mark.parametrize("path", ["shop/cart.py", "src/util.js", "docs/guide.md", "notes.txt"])
def test_fixed_keystroke_edits_equal_a_full_rebuild(workspace, cache, tmp_path, path):
    e = indexed(workspace, cache)
    on_disk = workspace / path
    text = on_disk.read_text() if on_disk.exists() else SAMPLES.get(path) or "para\ntwo\n\nsecond\n\n\nthird\n"
    e.set_document(path, text)
    for start, end, new in FIXED_EDITS:
        e.apply_edit(path, start, end, new)
        text = _reference_apply(text, start, end, new)
        assert e.document_text(path) == text
        e.settle()
        fresh = Engram.open(workspace, cache_dir=tmp_path / f"fresh{len(text)}")
        fresh.index_workspace()
        fresh.set_document(path, text)
        assert _snapshot(e, path) == _snapshot(fresh, path), (start, end, new)


def _reference_apply(text, start, end, new):
    lines = text.split("\n")

    def off(line, col):
        return len(text) if line >= len(lines) else sum(len(x) + 1 for x in lines[:line]) + min(col, len(lines[line]))
    return text[:off(*start)] + new + text[off(*end):]


def test_set_document_keeps_the_text_and_file_vector_is_the_sum_of_its_chunks(workspace, cache):
    e = indexed(workspace, cache)
    text = (workspace / "shop/cart.py").read_text() + "\n# only in the editor\n"
    e.set_document("shop/cart.py", text)
    assert e.document_text("shop/cart.py") == text  # the editor's text, not the disk's
    for path in ("shop/cart.py", "net/http_client.py"):
        total = np.zeros(vsa.DIM, np.int64)
        for slot in e.docs[path].slots:
            ids, w = e.table.features(slot)
            d, v = vsa.bundle(e.features.hv[ids], w)
            total[d] += v
        d, v = e.file_vector(path)
        assert d.dtype == np.int32 and np.array_equal(np.flatnonzero(total), d) and np.array_equal(total[d], v)


def test_refresh_file_follows_the_disk(workspace, cache):
    e = indexed(workspace, cache)
    (workspace / "net/http_client.py").write_text("def fetch_gopher_hole(url):\n    return url\n")
    e.refresh_file("net/http_client.py")
    assert e.search("fetch gopher hole", 1)[0].path == "net/http_client.py"
    (workspace / "net/http_client.py").write_bytes(b"\x00\x01binary now")
    e.refresh_file("net/http_client.py")
    assert "net/http_client.py" not in e.documents()
    (workspace / "shop/pricing.py").unlink()
    e.refresh_file("shop/pricing.py")
    assert "shop/pricing.py" not in e.documents()
    assert all(h.path != "shop/pricing.py" for h in e.search("apply discount amount", 5))


def test_the_chunk_table_grows_past_its_initial_capacity_and_keeps_every_row():
    """More chunks than the table's first allocation (1,024 rows, 4,096 arena entries): every column grows and
    every row keeps what was written to it, so the postings built over them find each chunk."""
    from engram_ls.retrieval.chunk_table import ChunkTable

    assert GARBAGE_MIN < 1_200_000 // 4  # the rounds below compact several times
    t = ChunkTable()
    n = 3000
    for i in range(n):
        ids = np.array([i, n + i % 7], np.int32)
        t.add(i % 5, i, i + 2, "function", f"f{i}", i, ids, np.array([1, 2], np.int16), float(i), 1.0)
    assert t.n_slots == t.alive == n and len(t.live) >= n and t.arena_used == 2 * n
    assert t.start[n - 1] == n - 1 and t.end[n - 1] == n + 1 and t.doc[n - 1] == (n - 1) % 5
    assert t.norm[2999] == 2999.0 and t.symbols[2999] == "f2999" and t.length[2999] == 3
    assert all(t.features(s)[0].tolist() == [s, n + s % 7] for s in (0, 1023, 1024, 2047, 2999))
    t.build_postings(n + 7)
    scores = np.zeros(n, np.float64)
    from engram_ls.retrieval import kernels

    kernels.bm25_postings(t.ptr, t.post_slot, t.post_w, t.in_base, np.array([2500, n + 3]), np.array([1.0, 0.0]),
                          t.length, t.average_length(), 1.2, 0.75, scores)
    assert np.flatnonzero(scores).tolist() == [2500]
    assert ChunkTable().average_length() == 1.0  # an empty table divides by nothing


def test_find_named_returns_definitions_and_call_sites_through_role_features(tmp_path, cache):
    (tmp_path / "a.py").write_text("def parse_header(line):\n    return line.split(':')\n\n\n"
                                   "def other():\n    return parse_header('x: y')\n")
    (tmp_path / "b.py").write_text("from a import parse_header\n\n\ndef use():\n    v = parse_header('k: v')\n"
                                   "    return v\n\n\ndef parse():\n    return 'parse header'\n")
    engram = Engram(tmp_path, cache_dir=cache)
    engram.index_workspace()
    defined = engram.find_named("parse_header", "d")
    assert [(h.path, h.start_line) for h in defined] == [("a.py", 1)]
    calls = {(h.path, h.start_line) for h in engram.find_named("parse_header", "c")}
    assert calls == {("a.py", 5), ("b.py", 4)}          # not the definition, not the words "parse header"
    assert {h.path for h in engram.find_named("parse_header", "c", exclude_path="b.py")} == {"a.py"}
    # an edit is seen at once (fresh slots, before the postings are rebuilt); a removed call is gone
    engram.set_document("a.py", "def parse_header(line):\n    return line.split(':')\n\n\n"
                                "def other():\n    return 1\n\n\ndef third():\n    parse_header('')\n")
    calls = {(h.path, h.start_line) for h in engram.find_named("parse_header", "c")}
    assert calls == {("a.py", 9), ("b.py", 4)}
    assert engram.find_named("no_such_name", "d") == [] and engram.find_named("parse_header", "x") == []
    # "i": the identifier anywhere, also where the chunk binds it (``v = ...``) — a receiver's uses
    assert [(h.path, h.start_line) for h in engram.find_named("v", "i")] == [("b.py", 4)]


def test_after_an_index_the_columns_hold_little_spare_capacity_and_edits_still_work(tmp_path, cache):
    for i in range(60):
        (tmp_path / f"m{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x + {j}\n\n\n" for j in range(40)))
    engram = Engram(tmp_path, cache_dir=cache)
    engram.index_workspace()
    t, f = engram.table, engram.features
    assert len(t.feat_ids) <= max(4096, 1.25 * (t.arena_used + t.arena_used // 16))
    assert len(f.role) <= max(1024, 1.25 * (f.size + f.size // 16))
    engram.set_document("m0.py", "def brand_new_name(x):\n    return x\n")
    assert [h.path for h in engram.search("brand_new_name", 1)] == ["m0.py"]


def test_hit_texts_follow_the_file_on_disk_through_the_lines_cache(tmp_path, cache):
    import os

    path = tmp_path / "a.py"
    path.write_text("def alpha_function(x):\n    return x + 1\n")
    engram = Engram(tmp_path, cache_dir=cache)
    engram.index_workspace()
    assert "x + 1" in engram.search("alpha_function", 1)[0].text
    path.write_text("def alpha_function(x):\n    return x + 2\n")      # same size: the mtime tells it apart
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert "x + 2" in engram.search("alpha_function", 1)[0].text       # not re-indexed: the hit text is re-read


def test_a_background_index_waits_while_a_search_runs(workspace, cache, monkeypatch):
    """Readers first: while a search is running, the index does not go past its next step (it would compete with
    the search for the lock and the GIL); once the search ends it goes on and finishes."""
    from engram_ls.retrieval import engram as engram_mod

    monkeypatch.setattr(engram_mod, "READER_WAIT_S", 60.0)
    e = Engram.open(workspace, cache_dir=cache)
    second_file = threading.Event()
    done = threading.Event()

    def progress(n, total, path):
        if n >= 1:
            second_file.set()

    with e._reading():                       # a search in progress
        indexer = threading.Thread(target=lambda: (e.index_workspace(progress), done.set()))
        indexer.start()
        assert not second_file.wait(1.0), "the index went on past a step while a search was running"
        assert len(e.docs) == 0
    indexer.join(30)
    assert done.is_set() and len(e.docs) > 1
