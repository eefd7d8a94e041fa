"""Completion context: the definitions and call sites of the names the cursor needs, then similar code."""

import textwrap

from engram_ls.retrieval import Engram, Hit
from engram_ls.server import completion_context
from engram_ls.server.completion_context import (DEF_LINES, completion_hits, cursor_names, focus, imported_names,
                                                 receiver_classes)

FILES = {
    "pkg/store.py": '''
        """Storage."""


        class Store:
            """A store of items."""

            def __init__(self, path):
                self.path = path
                self.items = {}

            def put(self, key, value, *, overwrite=False):
                """Puts one item."""
                if key in self.items and not overwrite:
                    raise KeyError(key)
                self.items[key] = value
                self.flush()
                self.flush()
                self.flush()


        def open_store(path, create=True):
            """Opens the store at path."""
            return Store(path)
    ''',
    "pkg/other.py": '''
        def unrelated():
            store = {}  # a variable spelled like the class: not its definition
            return store
    ''',
    "pkg/jobqueue.py": '''
        class JobQueue:
            """Jobs waiting to run.

            Jobs are kept in arrival order; a deferred job goes to the back.
            """

            def __init__(self):
                self.jobs = []

            def push(self, job):
                self.jobs.append(job)

            def defer_job(self, job, seconds):
                """Moves a job to the back after some seconds."""
                self.jobs.remove(job)
                self.jobs.append(job)
    ''',
    "pkg/jobs.py": '''
        from .store import open_store


        def nightly(folder):
            s = open_store(folder / "night", create=False)
            s.put("ran", True, overwrite=True)
    ''',
}


def engram(tmp_path):
    for rel, text in FILES.items():
        p = tmp_path / "ws" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    e = Engram.open(tmp_path / "ws", cache_dir=tmp_path / "cache")
    e.index_workspace()
    return e


def test_cursor_names_put_the_cursor_line_first_then_unused_imports_then_nearby():
    prefix = ("from .store import open_store, Store\nfrom .util import helper_one, helper_two, helper_three\n\n\n"
              "def run(path):\n    data = helper_one(path, mode=3)\n    print(len(data))\n    s = Store.")
    names = [(c.name, c.why) for c in cursor_names(prefix, "\n    return s\n\n\nx = helper_three()\n")]
    assert names == [("Store", "cursor"), ("open_store", "import"), ("helper_two", "import"),
                     ("helper_three", "import"), ("helper_one", "near")]
    # not print/len (builtins), data/s/path (local), mode (a keyword); the imports used nowhere come before
    # helper_three, which the code below uses (so the line being written is less likely its first use)
    typing = [c.name for c in cursor_names(prefix.rsplit("\n", 1)[0] + "\n    s = help", "\n")]
    assert typing[:3] == ["helper_two", "helper_three", "helper_one"]  # what the word being typed can become


def test_imported_names_are_the_bound_names():
    text = "from a.b import (x1,\n    y2 as z2)\nfrom c import d3, e4 as f4\nimport os.path, json as js\n\nq = 1\n"
    assert imported_names(text) == ["x1", "z2", "d3", "f4", "os", "js"]


def test_definitions_and_call_sites_come_first_narrowed_and_never_from_the_file_itself(tmp_path):
    e = engram(tmp_path)
    prefix = "from .store import open_store\n\n\ndef weekly(folder):\n    s = "
    hits = completion_hits(e, "pkg/weekly.py", prefix, "\n", similar=2)
    first, second = hits[0], hits[1]
    assert (first.path, first.start_line) == ("pkg/store.py", 21)  # def open_store: its signature first
    assert first.text.startswith("def open_store(path, create=True):") and first.end_line - first.start_line < DEF_LINES
    assert second.path == "pkg/jobs.py" and "open_store(folder" in second.text  # how it is called
    assert all(h.path != "pkg/weekly.py" for h in hits)
    spans = [(h.path, h.start_line, h.end_line) for h in hits]
    assert all(not (a[0] == b[0] and a[1] <= b[2] and b[1] <= a[2]) for i, a in enumerate(spans)
               for b in spans[i + 1:])  # no span twice
    jobs = completion_hits(e, "pkg/jobs.py", FILES["pkg/jobs.py"], "", similar=3)
    assert all(h.path != "pkg/jobs.py" for h in jobs)


def test_a_method_definition_is_cut_to_the_method_and_the_spelling_must_match(tmp_path):
    e = engram(tmp_path)
    hits = completion_hits(e, "pkg/new.py", "def f(s):\n    s.put(", "", similar=0)
    assert hits[0].text.startswith("    def put(self, key, value, *, overwrite=False):")
    assert len(hits[0].text.split("\n")) == DEF_LINES  # not the whole class
    store = completion_hits(e, "pkg/new.py", "from .store import Store\n\nx = Store", "", similar=0)
    assert store[0].path == "pkg/store.py" and store[0].text.startswith("class Store:")
    assert all(h.path != "pkg/other.py" for h in store)  # ``store = {}`` is not the class


def test_receiver_classes_come_from_constructors_annotations_bases_and_imports():
    prefix = ("from pkg import store\nfrom pkg.models import Widget\n\n\nclass Job(BaseJob):\n"
              "    def __init__(self, queue: Optional[Queue]):\n        self.clock: Clock = make_clock()\n"
              "        self.pool = Pool.create(4)\n        self.queue = queue\n        w = Widget.load()\n"
              "        store.open_store(w)\n"
              "        self.pool.run()\n        ")
    got = receiver_classes(prefix, "\n        self.queue.put(1)\n")
    # nearest receiver first, above before below: self.pool, store, then self.queue (the line below: an alias of
    # the parameter), then Widget; ``Pool.create``: what that factory returns (a Pool if it does not say)
    assert got[:4] == [("factory", "Pool.create"), ("module", "store"), ("class", "Queue"), ("class", "Widget")]
    assert {("class", "Clock"), ("class", "BaseJob"), ("factory", "Widget.load")} <= set(got)  # an annotated
    # attribute, self's bases, w
    assert ("class", "Optional") not in got


def test_a_receiver_gets_its_class_outline_and_a_module_its_own(tmp_path):
    e = engram(tmp_path)
    prefix = "from pkg.jobqueue import JobQueue\n\n\ndef later(q: JobQueue, job):\n    "
    hits = completion_hits(e, "pkg/new.py", prefix, "\n", similar=0)
    first, outline = [h for h in hits if h.text.startswith("class JobQueue:")]  # its definition, then its outline
    assert first.path == outline.path == "pkg/jobqueue.py" and hits.index(first) < hits.index(outline)
    lines = outline.text.split("\n")
    assert "    def defer_job(self, job, seconds):" in lines  # the member the buffer never names, not its body
    assert "self.jobs.remove(job)" not in outline.text and "arrival order" not in outline.text
    assert "    def defer_job(self, job, seconds):" not in first.text  # what the 8-line definition did not show
    module = completion_hits(e, "pkg/new.py", "from pkg import store\n\n\ndef f(path):\n    return ", "\n",
                             similar=0)
    outline = next(h for h in module if h.path == "pkg/store.py" and "def open_store(path, create=True):" in h.text)
    assert "class Store:" in outline.text.split("\n") and "    def put" not in outline.text  # top level only


def test_a_member_being_typed_gets_its_receivers_outline_first(tmp_path):
    e = engram(tmp_path)
    prefix = "from pkg.jobqueue import JobQueue\nfrom .store import open_store\n\n\ndef later(q: JobQueue, job):\n    q."
    hits = completion_hits(e, "pkg/new.py", prefix, "\n", similar=0)
    assert hits[0].path == "pkg/jobqueue.py" and hits[0].text.startswith("class JobQueue:")
    assert "    def defer_job(self, job, seconds):" in hits[0].text.split("\n")
    assert any(h.text.startswith("def open_store(") for h in hits[1:])  # the definitions still follow
    plain = completion_hits(e, "pkg/new.py", prefix[:-2] + "x = ", "\n", similar=0)
    assert not plain[0].text.startswith("class JobQueue:")  # no dot at the cursor: definitions first


def test_at_a_member_the_most_similar_use_comes_first_narrowed_then_what_the_receiver_is(tmp_path, monkeypatch):
    e = engram(tmp_path)
    monkeypatch.setattr(completion_context, "SIMILAR_LINES", 2)  # the fixture's chunks are short

    def similar(prefix):
        return [(h.path, h.start_line, h.end_line) for h in e.search("\n".join(prefix.split("\n")[-12:]), 7)]

    prefix = ("from .store import Store, open_store\n\n\ndef daily(folder):\n"
              "    s: Store = open_store(folder / 'day', create=False)\n    s.")
    hits = completion_hits(e, "pkg/daily.py", prefix, "\n", similar=2)
    path, start, end = similar(prefix)[0]
    assert hits[0].path == path and start <= hits[0].start_line <= hits[0].end_line <= end
    assert hits[0].end_line - hits[0].start_line == 1 < end - start  # narrowed to SIMILAR_LINES
    assert hits[1].text.startswith("class Store:")  # what s is comes next
    plain = prefix[:-2] + "x = "
    hits = completion_hits(e, "pkg/daily.py", plain, "\n", similar=2)
    assert hits[0].text.startswith("def open_store(")  # no dot at the cursor: definitions first
    assert (hits[-1].path, hits[-1].start_line, hits[-1].end_line) in similar(plain)  # whole similar chunks last
    assert not hits[-1].text.startswith(("def open_store", "class Store"))


def test_focus_keeps_the_lines_around_the_one_most_like_the_cursor():
    text = "\n".join([f"    filler_{i}()" for i in range(20)] + ["    queue.defer_job(job, seconds=5)"] +
                     [f"    after_{i}()" for i in range(9)])
    chunk = Hit("pkg/x.py", 101, 130, 1.0, text)
    kept = focus(chunk, "def later(queue, job):\n    seconds = 5\n    queue.", lines=12)
    lines = kept.text.split("\n")
    assert len(lines) == 12 and "    queue.defer_job(job, seconds=5)" in lines
    assert lines.index("    queue.defer_job(job, seconds=5)") == 8  # two thirds of the window above it
    assert (kept.start_line, kept.end_line) == (113, 124)
    short = Hit("pkg/x.py", 1, 3, 1.0, "a()\nb()\nc()")
    assert focus(short, "x.") is short

CLOCK = '''
    class Tick:
        """One step of a clock."""

        def advance_by(self, seconds):
            return seconds


    class BaseClock:
        tick: Tick

        def reset_all(self):
            pass


    class Clock(BaseClock):
        def now_moment(self) -> "Moment":
            return Moment()


    def make_clock() -> Clock:
        return Clock()


    class Moment:
        def isoformat_day(self):
            return ""


    def stamp(when, execution):
        return when.isoformat_day() + execution.run_key


    class Execution:
        run_key: str


    class _Pending:
        """Work not settled yet."""

        def settle_now(self):
            pass


    class RunOutcome:
        def final_text(self):
            return ""


    class Runner:
        @classmethod
        async def run(
            cls,
            agent,
            prompt,
            *,
            max_turns=10,
            hooks=None,
            context=None,
            session=None,
        ) -> RunOutcome:
            return RunOutcome()


    class Tracer:
''' + "".join(f"        def method_{i}(self):\n            pass\n\n" for i in range(20)) + '''
        def end_agent_span(self, span):
            pass
'''


def chain_engram(tmp_path):
    FILES["pkg/clock.py"] = CLOCK
    try:
        return engram(tmp_path)
    finally:
        del FILES["pkg/clock.py"]


def first_outline(e, prefix):
    return completion_hits(e, "pkg/new.py", "from pkg.clock import make_clock, Clock, Moment, Tracer\n\n\n" + prefix,
                           "\n", similar=0)[0]


def test_the_receiver_at_the_cursor_is_followed_through_the_classes_that_declare_its_members(tmp_path):
    e = chain_engram(tmp_path)
    made = completion_hits(e, "pkg/new.py", "from pkg.clock import make_clock\n\n\ndef f():\n    c = make_clock()\n"
                           "    c.", "\n", similar=0)
    assert made[0].text.startswith("class Clock(BaseClock):")       # what make_clock returns (its annotation)
    assert any(h.text.startswith("class BaseClock:") and "    def reset_all(self):" in h.text for h in made)  # a base
    chained = first_outline(e, "class Job:\n    def __init__(self, clock: Clock):\n        self.clock = clock\n\n"
                               "    def run(self):\n        self.clock.tick.")
    assert chained.text.startswith("class Tick:") and "    def advance_by(self, seconds):" in chained.text  # inherited
    checked = first_outline(e, "def f(x):\n    if not isinstance(x, Moment):\n        return\n    x.")
    assert checked.text.startswith("class Moment:")
    assert first_outline(e, "def f():\n    return make_clock().").text.startswith("class Clock(BaseClock):")


def test_a_large_class_shows_the_members_that_share_words_with_the_code_around_the_cursor(tmp_path):
    e = chain_engram(tmp_path)
    outline = first_outline(e, "def f(tracer: Tracer):\n    span = start_agent_span()\n    tracer.")
    assert outline.text.startswith("class Tracer:") and "    def end_agent_span(self, span):" in outline.text
    # in file order, each line with its rank: a prompt short of room keeps the class line and the best members
    lines = outline.text.split("\n")
    assert len(outline.priority) == len(lines) and outline.priority[0] == 0
    assert outline.priority[lines.index("    def end_agent_span(self, span):")] == 1
    assert sorted(outline.priority[1:]) == list(range(1, len(lines)))
    plain = first_outline(e, "def f(tracer: Tracer):\n    tracer.")
    assert plain.text.startswith("class Tracer:") and "end_agent_span" not in plain.text  # 16 members of 21


def test_an_untyped_receiver_is_taken_by_its_name_and_by_how_other_files_use_that_name(tmp_path):
    e = chain_engram(tmp_path)
    named = first_outline(e, "def f(execution):\n    execution.")
    assert named.text.startswith("class Execution:") and "run_key" in named.text  # execution -> Execution
    hits = completion_hits(e, "pkg/new.py", "def f(when):\n    return when.", "\n", similar=0)
    assert hits[0].path == "pkg/clock.py" and hits[0].text.strip() == "return when.isoformat_day() + execution.run_key"


def test_receivers_typed_by_forward_references_private_classes_loops_with_and_the_chain_they_were_read_from(
        tmp_path):
    e = chain_engram(tmp_path)

    def first(prefix):
        """The first snippet, which must be the receiver's outline (its class line and members, no docstring): not
        the definition found for a name near the cursor. Nothing is imported: only the code says what it is."""
        text = completion_hits(e, "pkg/new.py", prefix, "\n", similar=0)[0].text
        assert '"""' not in text, text
        return text

    assert first('def f(item: "Tick"):\n    item.').startswith("class Tick:")
    assert first("def f(p: Optional[_Pending]):\n    p.").startswith("class _Pending:")
    assert first("def f(ticks: list[Tick]):\n    for t in ticks:\n        t.").startswith("class Tick:")
    assert first("def f():\n    with make_clock() as c:\n        c.").startswith("class Clock(BaseClock):")
    read = first_outline(e, "def f(clock: Clock):\n    t = clock.tick\n    t.")  # Clock -> BaseClock.tick: Tick
    assert read.text.startswith("class Tick:")


def test_in_a_large_class_a_member_named_like_the_enclosing_function_is_shown_however_far_its_def(tmp_path):
    e = chain_engram(tmp_path)
    body = "".join(f"    step_{i} = {i}\n" for i in range(20))  # the def is out of the 15 lines around the cursor
    outline = first_outline(e, f"def end_agent_work(tracer: Tracer):\n{body}    tracer.")
    assert outline.text.startswith("class Tracer:") and "    def end_agent_span(self, span):" in outline.text


def test_a_receiver_is_what_its_nearest_binding_above_makes_and_a_factory_method_returns(tmp_path):
    e = chain_engram(tmp_path)
    # ``Runner.run(...)`` makes what its return annotation says (ten lines below its name), not a Runner
    made = first_outline(e, "def f(agent):\n    result = Runner.run(agent, 'hi')\n    result.")
    assert made.text.startswith("class RunOutcome:") and "final_text" in made.text
    # a name rebound in each function: the binding nearest above the cursor says what it is here
    rebound = first_outline(e, "def f(agent):\n    result = Runner.run(agent, 'hi')\n    return result\n\n\n"
                               "def g(result: Moment):\n    result.")
    assert rebound.text.startswith("class Moment:")


def test_a_class_is_found_past_the_smaller_chunks_that_assign_a_variable_spelled_like_it(tmp_path):
    FILES["pkg/ticks.py"] = "".join(f"def tick_{i}():\n    tick = {i}\n    return tick\n\n\n" for i in range(8))
    try:
        e = chain_engram(tmp_path)
    finally:
        del FILES["pkg/ticks.py"]
    smaller = [h for h in e.find_named("Tick", "d", k=4) if h.path == "pkg/ticks.py"]
    assert len(smaller) == 4  # the role features are lower-cased: ``tick = 0`` ranks before ``class Tick``
    found = completion_context.find_class(e, "Tick", "pkg/new.py")
    assert found is not None and found.lines[found.start].startswith("class Tick:")
