"""Answers cut by the token limit end at a sentence or code-block boundary and say so (pure text rules)."""

from engram_ls.server.sentences import SentenceGate, finish, last_boundary, trim_cut


def test_a_cut_answer_goes_back_to_its_last_sentence_and_says_where_it_was_cut():
    text = "It takes the lock. Then it refills the tokens by the elapsed time and the diff"
    assert finish(text, "length", 96) == ("It takes the lock.", "(cut at 96 tokens)")


def test_an_answer_that_ended_by_itself_is_left_whole():
    text = "It takes the lock and then the tokens"  # no full stop, but the model stopped: nothing was cut
    assert finish(text + "\n", "stop", 40) == (text, None)


def test_file_names_abbreviations_and_closing_marks_are_not_cut_inside():
    assert trim_cut("See `ledger.py` and e.g. reconcile. It pairs entries, i.e. the") == \
        "See `ledger.py` and e.g. reconcile."
    assert trim_cut('It raises **RateLimited**.) Then the call wai') == "It raises **RateLimited**.)"
    assert trim_cut("It returns 3.5 times the base. The ca") == "It returns 3.5 times the base."


def test_a_closed_code_block_is_a_boundary_and_an_open_one_is_dropped():
    text = "Like this:\n\n```python\ndef f():\n    return 1\n```\nThen call it with the\n```python\ndef g("
    assert trim_cut(text) == "Like this:\n\n```python\ndef f():\n    return 1\n```"


def test_list_items_and_paragraphs_count_as_finished():
    assert trim_cut("Steps:\n- read the line\n- split on pipes\n- par") == "Steps:\n- read the line\n- split on pipes"
    assert trim_cut("A heading\n\nthe next parag") == "A heading"


def test_with_no_boundary_the_cut_is_at_a_whole_word():
    assert trim_cut("stub_1 w1 w2 w3") == "stub_1 w1 w2 …"
    assert trim_cut("word") == ""


def test_a_stream_holds_back_the_sentence_being_written():
    shown = []
    gate = SentenceGate(shown.append)
    for piece in ["It reads", " file.", "py first.", " Then it spl"]:
        gate.feed(piece)
    assert "".join(shown) == "It reads file.py first."  # "file." at the end of a piece was not a sentence end
    assert gate.close(cut=True) == "It reads file.py first." and "".join(shown) == "It reads file.py first."


def test_a_stream_that_ended_by_itself_shows_everything():
    shown = []
    gate = SentenceGate(shown.append)
    gate.feed("Done. And the rest")
    assert gate.close(cut=False) == "Done. And the rest" and "".join(shown) == "Done. And the rest"


def test_a_stream_without_sentences_still_streams_and_ends_at_a_word():
    shown = []
    gate = SentenceGate(shown.append, hold=20)
    for i in range(30):
        gate.feed(f" w{i}")
    assert shown, "nothing was streamed"
    assert "".join(shown) == gate.close(cut=True) and not "".join(shown).endswith("w2")


def test_boundary_of_a_stream_ignores_a_final_full_stop():
    assert last_boundary("It is done.", whole=False) == 0
    assert last_boundary("It is done.") == len("It is done.")
