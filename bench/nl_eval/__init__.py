"""NL->code and code->code retrieval evaluation (issue 12): dev and held-out sets, every arm on the same chunks."""

from engram_ls.retrieval import semantic

# The arms include the ranking before the meaning channel (``ranking.BEFORE``), which needs the Random Indexing
# layer; the product no longer learns it by default.
semantic.RANDOM_INDEXING = True
