"""engram_ls.inference — model workers over msgpack pipes: pools, routing, streaming, cancellation, recovery.

Imports no LSP code. llama_cpp is imported only inside worker processes.
"""

from .prompts import Snippet
from .router import classify, collaborative, pipeline
from .service import Answer, Inference, InferenceError
from .settings import InferenceSettings, ModelSettings, SamplingSettings

__all__ = ["Answer", "Inference", "InferenceError", "InferenceSettings", "ModelSettings", "SamplingSettings",
           "Snippet", "classify", "collaborative", "pipeline"]
