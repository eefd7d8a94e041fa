from hypothesis import given, settings, strategies as st

from engram_ls.retrieval.chunking import MAX_LINES, chunk_document

PY = '''"""Module doc."""
import os

CONSTANT = 3


def alpha(x):
    return x + 1


@decorator
def beta(y):
    """Beta."""
    return alpha(y) * 2


class Gamma:
    def one(self):
        return 1

    def two(self):
        return 2
'''


def test_python_units_follow_the_syntax_tree():
    chunks = chunk_document("m.py", PY)
    by_symbol = {c.symbol: c for c in chunks}
    assert (by_symbol["alpha"].start_line, by_symbol["alpha"].end_line) == (7, 8)
    assert by_symbol["beta"].start_line == 11  # decorator included
    assert by_symbol["Gamma"].kind == "class"
    assert chunks[0].kind == "module" and chunks[0].start_line == 1


def test_large_class_is_split_into_methods():
    body = "class Big:\n" + "".join(f"    def m{i}(self):\n" + "        x = 1\n" * 8 + "\n" for i in range(10))
    chunks = chunk_document("big.py", body)
    methods = [c for c in chunks if c.kind == "method"]
    assert [c.symbol for c in methods] == [f"Big.m{i}" for i in range(10)]


def test_a_syntax_error_stays_local():
    """A half-typed line spoils only its own region: the units before and after it keep their syntax chunks
    (the old chunker turned the whole file into generic blocks)."""
    text = "def good_one(a):\n    return a\n\n\nx = = 1\n\n\ndef good_two(b):\n    return b\n"
    chunks = chunk_document("broken.py", text)
    by_symbol = {c.symbol: c for c in chunks}
    assert by_symbol["good_one"].kind == "function" and (by_symbol["good_one"].start_line, by_symbol["good_one"].end_line) == (1, 2)
    assert by_symbol["good_two"].kind == "function" and by_symbol["good_two"].start_line == 8
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert 5 in covered  # the broken line is still indexed
    js = "function a() {\n  return 1;\n}\n\nconst broken = {\n\nfunction b() {\n  return 2;\n}\n"
    assert "a" in {c.symbol for c in chunk_document("m.js", js)}


def test_long_units_are_windowed_with_overlap():
    text = "\n".join(f"line{i} = {i}" for i in range(200))
    chunks = chunk_document("data.txt", text)
    assert all(c.end_line - c.start_line + 1 <= MAX_LINES for c in chunks)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 200
    assert all(b.start_line <= a.end_line for a, b in zip(chunks, chunks[1:]))  # overlap, no gap


def test_generic_chunks_split_on_blank_lines_for_any_language():
    js = "\n".join(["function a() {", "  return 1;", "}", ""] * 30)
    chunks = chunk_document("a.js", js)
    assert len(chunks) > 1
    assert all(c.digest for c in chunks)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["x = 1", "", "    y = 2", "def f():", "  }", "{", "# c"]), max_size=150))
def test_chunks_cover_every_nonblank_line_in_range(lines):
    text = "\n".join(lines)
    chunks = chunk_document("f.txt", text)
    covered = set()
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= max(1, len(lines))
        assert c.end_line - c.start_line + 1 <= MAX_LINES
        covered.update(range(c.start_line, c.end_line + 1))
    for n, line in enumerate(lines, 1):
        if line.strip():
            assert n in covered


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["x = 1", "", "# note", "def f():", "    return 2", "class C:", "    y = 3",
                                 "@dec", "import os"]), max_size=80))
def test_python_chunks_cover_every_nonblank_line(lines):
    text = "\n".join(lines)
    chunks = chunk_document("m.py", text)
    covered = set()
    for c in chunks:
        covered.update(range(c.start_line, c.end_line + 1))
    for n, line in enumerate(lines, 1):
        if line.strip():
            assert n in covered, (n, line)


def test_leading_comments_belong_to_the_function_below():
    chunks = chunk_document("m.py", "x = 1\n\n# explains f\n# more\ndef f():\n    return 1\n")
    f = next(c for c in chunks if c.symbol == "f")
    assert f.start_line == 3


def test_exact_spans_of_small_units_markdown_and_paragraphs():
    """Pinned spans (1-based inclusive lines, kind, symbol) for the shapes every language reduces to."""
    from engram_ls.retrieval.chunking import chunk_spans

    # a class shorter than MAX_LINES stays one unit; only a long one is split into its methods
    assert chunk_spans("m.py", PY) == [(1, 4, "module", ""), (7, 8, "function", "alpha"),
                                       (11, 14, "function", "beta"), (17, 22, "class", "Gamma")]
    big = "class Big:\n" + "".join(f"    def m{i}(self):\n        x = {i}\n        return x\n\n" for i in range(30))
    spans = chunk_spans("b.py", big)
    assert spans[:3] == [(1, 1, "class", "Big"), (2, 4, "method", "Big.m0"), (6, 8, "method", "Big.m1")]
    assert len(spans) == 31
    # Markdown: one section per heading, a preamble before the first heading is its own section
    md = "# Title\n\nIntro text.\n\n## Install\n\nRun it.\nmore\n\n## Use\n\nCall it.\n"
    assert chunk_spans("g.md", md) == [(1, 3, "section", "Title"), (5, 8, "section", "Install"),
                                       (10, 12, "section", "Use")]
    assert chunk_spans("g.md", "Preamble line\n\n# Head\n\nBody\n") == [(1, 1, "section", ""),
                                                                        (3, 5, "section", "Head")]
    # plain text: paragraphs split at blank lines (an indented line continues its paragraph), small ones merged
    para = lambda tag, n: "\n".join(f"{tag} line {i}" for i in range(n))  # noqa: E731
    text = para("a", 20) + "\n\n" + "\n".join(f"    cont {i}" for i in range(3)) + "\n\n" + para("b", 20) + \
        "\n\n\n" + para("c", 5) + "\n"
    assert chunk_spans("notes.txt", text) == [(1, 24, "block", ""), (26, 52, "block", "")]
    # the line right after a blank decides: unindented starts a new paragraph even if an indented one follows
    text = para("a", 20) + "\n\nx\n    y\n" + para("b", 20) + "\n"
    assert chunk_spans("notes.txt", text) == [(1, 20, "block", ""), (22, 43, "block", "")]


def test_a_unit_ending_at_column_zero_ends_on_the_line_before():
    from engram_ls.retrieval.chunking import chunk_spans

    js = "function a() {\n  return 1;\n}\nfunction b() { return 2; }\n"
    assert chunk_spans("x.js", js) == [(1, 3, "function", "a"), (4, 4, "function", "b")]
    py = "def f():\n    return 1\n\n\ndef g():\n    pass\n"
    assert chunk_spans("c.py", py) == [(1, 2, "function", "f"), (5, 6, "function", "g")]


def test_a_file_larger_than_the_parse_limit_is_cut_at_paragraphs_in_the_background_but_parsed_when_open():
    from engram_ls.retrieval import chunking

    unit = "def f{i}(x):\n    y = x + {i}\n    return y\n\n\n"
    text = "".join(unit.format(i=i) for i in range(chunking.PARSE_MAX_BYTES // len(unit.format(i=0)) + 50))
    assert len(text.encode()) > chunking.PARSE_MAX_BYTES
    lines = text.split("\n")
    background = chunking.spans_for("big.py", lines)
    assert {kind for *_, kind, _ in background} == {"block"}       # no parse: the GIL is not held for it
    parser = chunking.parser_for("big.py")
    opened = chunking.spans_for("big.py", lines, parser.parse(text.encode()))
    assert {kind for *_, kind, _ in opened} == {"function"}
    small = "".join(unit.format(i=i) for i in range(20))
    assert {kind for *_, kind, _ in chunking.spans_for("small.py", small.split("\n"))} == {"function"}
