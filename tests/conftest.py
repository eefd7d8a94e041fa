"""Suite-wide isolation: every test run gets its own engram store cache, but all runs share the
assembled model files (assembling the 490 MB GGUF once per machine is enough)."""

import os
import tempfile
from pathlib import Path

import platformdirs

if "ENGRAM_LS_MODELS" not in os.environ:
    os.environ["ENGRAM_LS_MODELS"] = str(Path(platformdirs.user_cache_dir("engram-ls")) / "models")
if "ENGRAM_LS_CACHE" not in os.environ:
    os.environ["ENGRAM_LS_CACHE"] = tempfile.mkdtemp(prefix="engram-ls-test-cache-")
