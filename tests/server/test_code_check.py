"""Code that parses: the checks every model-written edit passes before it is offered (server/code_check.py)."""

import asyncio

import pytest

from engram_ls.server import code_check as cc

VALID = {
    "python": "def f(x):\n    return x + 1\n",
    "javascript": "function f(x) { return x + 1; }\n",
    "typescript": "function f(x: number): number { return x + 1; }\n",
    "tsx": "const a = <div>{1}</div>;\n",
    "go": "package main\n\nfunc f(x int) int { return x + 1 }\n",
    "rust": "fn f(x: i32) -> i32 { x + 1 }\n",
    "java": "class A { int f(int x) { return x + 1; } }\n",
    "c": "int f(int x) { return x + 1; }\n",
    "cpp": "int A::f(int x) { return x + 1; }\n",
    "ruby": "def f(x)\n  x + 1\nend\n",
}


@pytest.mark.parametrize("language", sorted(VALID))
def test_every_language_accepts_valid_code_and_rejects_a_cut_off_copy(language):
    code = VALID[language]
    assert cc.parse_problem(code, language) is None
    broken = code.rstrip()[:-2]  # the last characters (a closing brace, `end`, `1`…) cut off
    if language == "python":
        broken = "def f(x:\n    return x + 1\n"
    problem = cc.parse_problem(broken, language)
    assert problem is not None and problem.language == language and problem.line >= 1, language


def test_languages_from_fence_tags_and_paths():
    assert cc.language_of("py") == cc.language_of("a/b.py") == "python"
    assert cc.language_of("rs") == "rust" and cc.language_of("x.tsx") == "tsx" and cc.language_of("C++") == "cpp"
    assert cc.language_of("bash") is None and cc.language_of("notes.md") is None
    assert cc.parse_problem("echo $(", "bash") is None  # no parser here: nothing to report


def test_a_method_lifted_out_of_its_class_still_parses():
    assert cc.parse_problem("    def total(self):\n        return 1\n", "python") is None


def test_an_edit_is_judged_spliced_into_its_document():
    doc = "class Cart:\n    def total(self):\n        return 1\n\n\nx = Cart()\n"
    assert cc.edit_problem(doc, 1, 2, "    def total(self):\n        return 2", "python") is None
    flush_left = cc.edit_problem(doc, 1, 2, "def total(self):\n    return 2", "python")
    assert flush_left is not None and flush_left.line == 2  # the class lost its body
    assert cc.edit_problem(doc, 1, 2, "    def total(self:\n        return 2", "python") is not None
    js = "function a() {\n  return 1;\n}\nfunction b() {\n  return 2;\n}\n"
    assert cc.edit_problem(js, 3, 5, "function b() {\n  return 3;\n}", "javascript") is None
    assert cc.edit_problem(js, 3, 5, "function b() {\n  return 3;\n", "javascript") is not None


def test_a_document_that_was_broken_may_stay_broken_but_not_get_worse():
    doc = "def a(:\n    pass\n\ndef b():\n    return 1\n"
    assert cc.edit_problem(doc, 3, 4, "def b():\n    return 2", "python") is None
    assert cc.edit_problem(doc, 3, 4, "def b(:\n    return (2", "python") is not None


def test_match_indent_restores_the_original_indentation():
    original = "    def total(self):\n        return 1"
    assert cc.match_indent(original, "def total(self):\n    return 2") == "    def total(self):\n        return 2"
    assert cc.match_indent("x = 1", "    x = 2") == "x = 2"
    assert cc.match_indent(original, original) == original


GETADDRESSES = '''def getaddresses(fieldvalues):
    """Return a list of (REALNAME, EMAIL) for each fieldvalue."""
    all = COMMASPACE.join(str(v) for v in fieldvalues)
    a = _AddressList(all)
    return a.addresslist
'''


def test_the_getaddresses_rewrite_that_calls_itself_is_flagged():
    rewrite = ('def getaddresses(fieldvalues):\n    """Parse the addresses."""\n'
               '    return getaddresses(fieldvalues)\n')
    problem = cc.recursion_problem(GETADDRESSES, rewrite, "python")
    assert problem is not None and "getaddresses" in problem.message and problem.line == 3
    assert cc.recursion_problem(GETADDRESSES, GETADDRESSES, "python") is None


def test_recursion_that_the_original_had_is_not_flagged():
    fact = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n"
    assert cc.recursion_problem(fact, fact.replace("n * fact", "fact(n - 1) * n and n * fact"), "python") is None


@pytest.mark.parametrize("language,original,rewrite", [
    ("python", "class A:\n    def f(self):\n        return g()\n", "    def f(self):\n        return self.f()\n"),
    ("javascript", "function f(x) { return g(x); }", "function f(x) { return f(x); }"),
    ("typescript", "function f(x: number) { return g(x); }", "function f(x: number) { return f(x); }"),
    ("go", "func f(x int) int { return g(x) }", "func f(x int) int { return f(x) }"),
    ("rust", "fn f(x: i32) -> i32 { g(x) }", "fn f(x: i32) -> i32 { f(x) }"),
    ("java", "class A { int f(int x) { return g(x); } }", "class A { int f(int x) { return this.f(x); } }"),
    ("c", "int f(int x) { return g(x); }", "int f(int x) { return f(x); }"),
    ("cpp", "int A::f(int x) { return g(x); }", "int A::f(int x) { return f(x); }"),
    ("ruby", "def f(x)\n  g(x)\nend\n", "def f(x)\n  f(x)\nend\n"),
])
def test_self_recursion_in_every_language(language, original, rewrite):
    assert cc.recursion_problem(original, original, language) is None
    assert cc.recursion_problem(original, rewrite, language) is not None, language


def test_code_blocks_of_an_answer():
    answer = ("Use this:\n```python\ndef f(:\n    pass\n```\nor in JS:\n```js\nlet x = 1;\n```\n"
              "```\nplain text, untagged\n```\n```bash\necho $(\n```\n")
    problems = cc.answer_problems(answer)
    assert [p.language for p in problems] == ["python"]
    assert [p.language for p in cc.answer_problems(answer, default_language="python")] == ["python", "python"]
    assert cc.answer_problems("```python\ndef f():\n    return 1\n```") == []
    assert cc.fenced_blocks("```py\nx = (1\n") == [("py", "x = (1\n")]  # cut off mid-block: still checked


def run(coro):
    return asyncio.run(coro)


def test_first_valid_retries_once_with_the_problem_then_gives_up():
    calls = []

    def generator(outputs):
        it = iter(outputs)

        async def generate(feedback):
            calls.append(feedback)
            return next(it)
        return generate

    check = lambda code: cc.parse_problem(code, "python")  # noqa: E731
    code, problem, n = run(cc.first_valid(generator(["x = 1"]), check))
    assert (code, problem, n) == ("x = 1", None, 1) and calls == [""]
    calls.clear()
    code, problem, n = run(cc.first_valid(generator(["x = (", "x = 2"]), check))
    assert (code, problem, n) == ("x = 2", None, 2)
    assert calls[0] == "" and "rejected: python line 1" in calls[1]
    calls.clear()
    code, problem, n = run(cc.first_valid(generator(["x = (", "y = ("]), check))
    assert problem is not None and n == 2 and len(calls) == 2  # never a third call
