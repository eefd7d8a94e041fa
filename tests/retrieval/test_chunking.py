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
