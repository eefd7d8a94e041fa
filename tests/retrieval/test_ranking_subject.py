"""A symbol query (what hover asks: ``def NAME():`` and the line the name is used on) cites the name's definition
and uses, not code that merely looks like the line."""

import re

from engram_ls.retrieval import Engram, ranking
from tests.retrieval.conftest import make_workspace

FILES = {
    "conf/parse.py": "def parse_config(text):\n    return dict(line.split('=') for line in text.splitlines())\n",
    "conf/load.py": "def read_config(path):\n    with open(path) as f:\n        return parse_config(f.read())\n",
    **{f"io/read_{i}.py": f"def read_{i}(path):\n    with open(path) as f:\n        return f.read().strip()[{i}:]\n"
       for i in range(6)},
}
QUERY = "def parse_config():\nreturn parse_config(f.read())"


def hits(e, query, k=7):
    t = e.table
    return [e.document_text(e.doc_paths[t.doc[s]]).split("\n")[t.start[s] - 1:t.end[s]]
            for s, _ in ranking.search(t, e.features, e.terms, query, k)]


def indexed(tmp_path):
    e = Engram.open(make_workspace(tmp_path / "ws", FILES), cache_dir=tmp_path / "cache")
    e.index_workspace()
    return e


def test_the_subject_is_the_name_of_a_symbol_query_only():
    assert ranking.subject("def parse_config():\nreturn parse_config(f.read())") == "parse_config"
    assert ranking.subject("def parse_config():\n") == "parse_config"
    assert ranking.subject("def parse_config(text):\n    return dict(text)") is None   # code -> code
    assert ranking.subject("def f():\n    a = 1\n    return a") is None                # a function body
    assert ranking.subject("parse the config file") is None


def test_every_citation_of_a_symbol_query_contains_the_symbol(tmp_path):
    e = indexed(tmp_path)
    got = hits(e, QUERY)
    assert got and all(re.search(r"\bparse_config\b", "\n".join(h)) for h in got)
    assert got[0][0].startswith("def parse_config")          # the definition first
    assert len(got) == 2                                     # its definition and its one use


def test_without_the_boost_and_the_cut_lookalike_code_is_cited(tmp_path, monkeypatch):
    """The same query with both switched off cites chunks without the name: what the two rules fix."""
    e = indexed(tmp_path)
    monkeypatch.setattr(ranking, "SUBJECT_BOOST", 1.0)
    monkeypatch.setattr(ranking, "SUBJECT_CUT", 0.0)
    got = hits(e, QUERY)
    assert len(got) > 2 and not all(re.search(r"\bparse_config\b", "\n".join(h)) for h in got[:3])


def test_other_code_queries_are_neither_boosted_nor_cut(tmp_path, monkeypatch):
    e = indexed(tmp_path)
    query = "def parse_config(text):\n    return parse_config(f.read())"
    boosted = ranking.query_weights(query, e.features, e.table.alive, e.terms, ranking.CODE)
    monkeypatch.setattr(ranking, "SUBJECT_BOOST", 1.0)
    assert ranking.query_weights(query, e.features, e.table.alive, e.terms, ranking.CODE) == boosted
    assert len(hits(e, query, 10)) == len(FILES)             # every chunk that shares a feature, none cut
