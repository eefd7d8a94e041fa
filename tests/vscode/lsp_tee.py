"""Runs a language server and records every LSP message both ways, one JSON line each, to a log file.

    python lsp_tee.py LOG SERVER [ARGS...]

The editor talks to this process exactly as to the server (stdio, bytes passed through unchanged); the log lets a
real-editor test see which requests the editor sent, which it cancelled and what the server answered.
"""

import json
import subprocess
import sys
import threading
import time


def pump(src, dst, log, lock, direction):
    buf = b""
    while True:
        data = src.read1(65536) if hasattr(src, "read1") else src.read(65536)
        if not data:
            break
        dst.write(data)
        dst.flush()
        buf += data
        while True:  # log each whole frame
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                break
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), None)
            if length is None or len(rest) < length:
                break
            body, buf = rest[:length], rest[length:]
            with lock:
                log.write(json.dumps({"t": time.time(), "dir": direction, "msg": json.loads(body)}) + "\n")
                log.flush()
    try:
        dst.close()
    except OSError:
        pass


def main() -> int:
    log_path, *cmd = sys.argv[1:]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lock = threading.Lock()
    with open(log_path, "a", encoding="utf-8") as log:
        up = threading.Thread(target=pump, args=(sys.stdin.buffer, proc.stdin, log, lock, "in"), daemon=True)
        up.start()
        pump(proc.stdout, sys.stdout.buffer, log, lock, "out")
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
