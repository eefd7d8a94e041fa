"""What is cut from the coding model's raw completion before it reaches the editor."""

from hypothesis import given
from hypothesis import strategies as st

from engram_ls.inference.prompts import suggestion_ended
from engram_ls.server.completion import suggestion, trim


def test_a_markdown_fence_line_ends_the_completion():
    # seen in real VS Code with the shipped 0.5B model: Tab inserted this "```" line into cart.py
    raw = " sum(p.price * q for p, q in self.items) / len(self.items)\n```"
    assert trim(raw, "") == " sum(p.price * q for p, q in self.items) / len(self.items)"
    assert trim("```python\nx = 1", "") == ""
    assert trim("    ```\n", "") == ""


def test_code_with_backticks_inside_a_line_is_kept():
    assert trim('s = "``` not a fence"\nt = 2', "") == 's = "``` not a fence"\nt = 2'


def test_a_blank_line_and_a_repeat_of_the_suffix_still_end_it():
    assert trim("a = 1\n\n\nb = 2", "") == "a = 1"
    assert trim("x = f()\nreturn total", "\nreturn total\n") == "x = f()"


def test_indentation_already_typed_is_not_inserted_again():
    from engram_ls.server.completion import drop_typed_indent

    # seen in real Neovim with the shipped model: the cursor after 4 spaces, the suggestion starting with 4 more
    assert drop_typed_indent("    def report(self):\n        return 1", "x = 1\n    ") == "def report(self):\n        return 1"
    assert drop_typed_indent("def f():", "x = 1\n    ") == "def f():"       # nothing repeated, nothing dropped
    assert drop_typed_indent("  y", "x = 1\n    ") == "y"                  # only as much as was typed
    assert drop_typed_indent("    y", "    x = ") == "    y"               # the line has code: keep the text


def test_on_an_indented_empty_line_leading_blank_lines_do_not_empty_the_completion():
    from engram_ls.server.completion import suggestion

    prefix = "class Cart:\n    def total(self):\n        return 1\n    "
    model = "\n\n    def __str__(self):\n        return 'cart'\n\n    def other(self): pass"
    assert suggestion(model, prefix, "\n") == "def __str__(self):\n        return 'cart'"
    # with code before the cursor a leading newline is the model's own line break: the blank-line cut applies
    assert suggestion("\n\nx = 1", "    total = ", "\n") == ""


_lines = st.lists(st.sampled_from(["", "  ", "    x = 1", "return y", "```", "def f():", "\t", "return y + 1"]),
                  max_size=8)


@given(_lines, st.sampled_from(["    ", "def g():\n    ", "x = "]),
       st.sampled_from(["", "\nreturn y\n", "z\n", "\n    x = 1\n", "  return y + 1"]))
def test_stopping_where_the_suggestion_ends_never_changes_it(lines, prefix, suffix):
    """The worker ends an inline completion once ``suggestion_ended`` holds (a fim request's inline_stop): whatever
    the model would have written after that point, the editor's suggestion is the same."""
    text = "\n".join(lines)
    cut = next((k for k in range(len(text) + 1) if suggestion_ended(text[:k], suffix)), len(text))
    assert suggestion(text[:cut], prefix, suffix) == suggestion(text, prefix, suffix)


def test_the_suggestion_ends_where_the_model_writes_the_suffix_again():
    suffix = "\n    return total\n"
    assert not suggestion_ended("total = sum(xs)\n    ret", suffix)
    assert suggestion_ended("total = sum(xs)\n    return total", suffix)
    assert not suggestion_ended("\n\n", suffix) and suggestion_ended("x = 1\n\n", suffix)
