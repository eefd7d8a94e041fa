"""The explain eval's mechanical rubric (bench/explain_eval/scoring.py) on hand-written answers."""

from bench.explain_eval.scoring import definition_line, repeated_ngram_share, repeated_sentences, score
from engram_ls.inference import Snippet

QUESTION = {"id": "q", "question": "What does take do when the bucket is empty?", "symbol": "take",
            "path": "tallyho/ratelimit.py", "facts": [["RateLimited"], ["retry_after", "retry after"]]}


def snippet():
    line = definition_line("tallyho/ratelimit.py", "take")
    return Snippet("tallyho/ratelimit.py", line, line + 8, "def take(self, n=1):\n    raise RateLimited(x)")


def test_a_correct_cited_answer_scores_every_fact_and_no_invention():
    s = snippet()
    row = score(f"`take` raises `RateLimited` with the seconds to retry after [tallyho/ratelimit.py:{s.start_line}].",
                QUESTION, [s])
    assert row["facts"] == 2 and row["names_function"] and row["cites_target"] and row["target_retrieved"]
    assert row["invented_names"] == [] and row["invented_citations"] == []


def test_names_and_citations_the_model_was_not_given_are_inventions():
    row = score("It calls `wait_for_tokens()` and raises BucketEmptyError [tallyho/bucket.py:3].", QUESTION,
                [snippet()])
    assert row["invented_names"] == ["BucketEmptyError", "wait_for_tokens"]
    assert row["invented_citations"] == ["tallyho/bucket.py:3"] and row["facts"] == 0 and not row["cites_target"]


def test_repetition_is_counted():
    loop = "The bucket refills over time. " * 3 + "Then it stops."
    assert repeated_sentences(loop) == 2 and repeated_ngram_share(loop) > 0.4
    assert repeated_sentences("One thing happens. Another thing follows.") == 0
