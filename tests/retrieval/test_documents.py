"""The text diff behind the keystroke path: the changed line range must be exactly what differs."""

from hypothesis import given, settings, strategies as st

from engram_ls.retrieval.documents import diff

texts = st.text(alphabet="ab\n", max_size=60).map(lambda t: t.encode())


@settings(max_examples=400, deadline=None)
@given(texts, texts)
def test_diff_finds_the_longest_common_prefix_and_suffix_and_their_lines(old, new):
    change = diff(old, new)
    if old == new:
        assert change is None
        return
    p, s = change.prefix, change.suffix
    assert old[:p] == new[:p] and p + s <= min(len(old), len(new))
    assert old[len(old) - s:] == new[len(new) - s:]
    n = min(len(old), len(new))
    assert p == n or old[p] != new[p]                                   # the prefix is maximal
    assert s == n - p or old[len(old) - s - 1] != new[len(new) - s - 1]  # and so is the suffix
    assert change.start == old[:p].count(b"\n")
    assert change.old_end - change.start == old[p:len(old) - s].count(b"\n")
    assert change.new_end - change.start == new[p:len(new) - s].count(b"\n")
