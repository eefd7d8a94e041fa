"""Suite-wide isolation: every test run gets its own engram store cache, but all runs share the
assembled model files (assembling the 490 MB GGUF once per machine is enough). And the programs the tests start
get the terminal's Ctrl-C as a user's shell gives it."""

import os
import signal
import tempfile
from pathlib import Path

import platformdirs

if "ENGRAM_LS_MODELS" not in os.environ:
    os.environ["ENGRAM_LS_MODELS"] = str(Path(platformdirs.user_cache_dir("engram-ls")) / "models")
# A runner that starts the suite in the background (``cmd &`` in a script, nohup) ignores SIGINT, or blocks it, and
# both stay so across exec: every engram-ls the Ctrl-C tests start would then never see Ctrl-C (Python installs its
# KeyboardInterrupt handler only over the default disposition). A handler of our own is reset to the default in
# each child, and an unblocked mask is inherited, as a shell's foreground job has them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
if "ENGRAM_LS_CACHE" not in os.environ:
    os.environ["ENGRAM_LS_CACHE"] = tempfile.mkdtemp(prefix="engram-ls-test-cache-")
