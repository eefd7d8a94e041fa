"""Grounded or silent: which retrieved code supports a question, and which citations an answer may make."""

from engram_ls.inference import Snippet
from engram_ls.retrieval import Hit
from engram_ls.server import grounding as g

PRICING = Hit("shop/pricing.py", 4, 8, 0.9, 'def apply_discount(amount):\n    """Takes ten percent off large orders."""\n'
              "    if amount > 100:\n        return amount * (1 - DISCOUNT_RATE)\n    return amount")
CLIENT = Hit("net/http_client.py", 12, 18, 0.5, "def retry_request(url, attempts=3):\n    for _ in range(attempts):\n"
             "        try:\n            return fetch_url(url)\n        except OSError:\n            continue")
PARSER = Hit("email/feedparser.py", 218, 230, 0.7, "    def _parsegen(self):\n        # Create a new message and "
             "start by parsing headers.\n        boundary = self._cur.get_boundary()\n        # a multipart body")


def test_content_terms_drop_stop_and_generic_words():
    assert g.content_terms("What does apply_discount do?") == ["apply", "discount"]
    assert g.content_terms("Explain the code of this function") == ["code", "explain"]  # only generic words
    assert g.content_terms("what is it?") == []


def test_one_matching_hit_grounds_a_question():
    found = g.assess("What does apply_discount do?", [CLIENT, PRICING])
    assert found.grounded and found.supporting == [PRICING] and found.message() == ""


def test_unrelated_code_does_not_ground_a_question():
    found = g.assess("How does FeedParser handle multipart messages?", [CLIENT, PRICING])
    assert not found.grounded
    assert found.nearest == [CLIENT, PRICING]
    assert found.message() == "Nothing in the workspace matched the question, so the model was not asked."


def test_no_hits_is_silent():
    found = g.assess("How are engrams kept current?", [])
    assert not found.grounded and found.nearest == []


def test_stems_and_word_starts_match():
    assert g.matched_terms(["parsing", "multipart"], PARSER.text, PARSER.path) == ["parsing", "multipart"]
    assert g.matched_terms(["changes"], "def on_change(doc): ...") == ["changes"]
    assert g.matched_terms(["feed"], "x = 1", "email/feedparser.py") == ["feed"]  # the path counts
    assert g.matched_terms(["car"], "def carton(): ...") == []  # a word start, but under 4 letters
    assert g.assess("How does the feed parser handle multipart parsing?", [CLIENT, PARSER]).supporting == [PARSER]


def test_pairs_are_assessed_through_the_key():
    found = g.assess("apply the discount", [("root", PRICING)], key=lambda pair: pair[1])
    assert found.supporting == [("root", PRICING)]


GIVEN = [Snippet("shop/pricing.py", 4, 8, ""), Snippet("shop/cart.py", 4, 15, "")]


def test_given_citations_stay_and_invented_ones_are_removed_and_listed():
    text = ("apply_discount takes ten percent off [shop/pricing.py:4]; the cart calls it [cart.py:14]. "
            "It is like print_message [email/generator.py:120] and [shop/pricing.py:40].")
    out = g.check_citations(text, GIVEN)
    assert out.invented == ["email/generator.py:120", "shop/pricing.py:40"]
    assert out.valid == [GIVEN[0], GIVEN[1]]
    assert "[shop/pricing.py:4]" in out.text and "[cart.py:14]" in out.text
    assert "generator.py" not in out.text and "pricing.py:40" not in out.text
    assert out.text.endswith("It is like print_message and.")  # no double space, no space before the stop


def test_an_answer_without_citations_is_unchanged():
    out = g.check_citations("It returns the amount.", GIVEN)
    assert out.text == "It returns the amount." and out.valid == [] and out.invented == []
