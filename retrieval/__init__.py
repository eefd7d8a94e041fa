"""engram_ls.retrieval — the pure retrieval core: chunking, VSA encoding, the engram store, search.

Imports no LSP and no model code; takes and returns plain Python values and numpy arrays.
"""

from .chunking import Chunk, chunk_document
from .engram import Engram, Hit, IndexSummary
from .settings import IndexSettings
from .store import StoreError

__all__ = ["Chunk", "Engram", "Hit", "IndexSettings", "IndexSummary", "StoreError", "chunk_document"]
