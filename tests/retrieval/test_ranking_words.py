"""A question in words that mentions a bit of code is still a question in words: it gets the words' blend and
tokenising (stop words dropped, no role features), while a line of code stays code."""

import pytest

from engram_ls.retrieval import ranking
from engram_ls.retrieval.features import query_features

PROSE = ["Reports if this is before `super()`.", "Split the layout in to a column (layouts stacked on top).",
         "Decorator created by memoize() for callable `func`.",
         "Generate the cache key as per the schema: appmetadata-<environment>-<client_id>"]
CODE = ["retry_request(url, attempts=3)", "return parse_config(f.read())", "x = foo(a, b) + bar(c)",
        "if color is None or color.is_system_defined:", "const total = items.reduce((a, b) => a + b, 0);",
        "self.items.append((product, quantity))", "def total(self):\n    return sum(self.items)",
        "def parse_config():\nreturn parse_config(f.read())"]


@pytest.mark.parametrize("query", PROSE)
def test_a_sentence_that_mentions_code_is_a_question_in_words(query):
    assert ranking.is_natural(query)
    features = query_features(query)
    assert features and all(f.startswith(("t:", "i:")) for f in features)
    assert not {"t:the", "t:for", "t:is", "t:if", "t:of"} & set(features)     # its stop words are dropped


@pytest.mark.parametrize("query", CODE)
def test_a_line_of_code_stays_code(query):
    assert not ranking.is_natural(query)


def test_the_name_channel_reads_the_units_own_name_not_its_class():
    assert ranking._name_words("CacheManager.matchEnvironment") == {"match", "environment"}
    assert ranking._name_words("load_settings") == {"load", "settings"}
    assert ranking._name_words("") == frozenset()
