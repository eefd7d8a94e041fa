"""Keeps secrets out of the index and out of prompts.

Secret-bearing files (``.env``, private keys, credential stores) are skipped by the workspace walk; secret-looking
values inside ordinary files are redacted before a chunk is encoded or its text is returned.
"""

from __future__ import annotations

import re

SECRET_FILE_GLOBS = (
    ".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk", ".netrc", ".pgpass", ".npmrc", ".pypirc",
    "credentials", "credentials.*", "*credentials*.json", "secrets.*", "*.secret", ".htpasswd",
    ".git-credentials", ".docker/config.json", "*.tfstate", "*.tfvars",
)

REDACTED = "[REDACTED]"

_PATTERNS = [
    # PEM private key blocks, whole.
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    # Well-known token shapes.
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
]
# name = "long random value" where the name says it is a secret.
_ASSIGNED = re.compile(
    r"""(?ix)
    (\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth|credential)[\w.-]*
     \s*[:=]\s*[rbuRBU]?)(["']?)([^\s"'`]{8,})(\2)"""
)


def _looks_random(value: str) -> bool:
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return len(value) >= 12 and classes >= 2 and not value.startswith(("os.", "self.", "config.", "settings."))


# Every pattern above needs one of these literals (the assignment pattern: one of the lower-case words, in any
# case), so a text holding none of them has nothing to redact. Substring tests run at C speed, where the nine
# patterns would each scan the text: most chunks and every returned snippet take this way out.
_TRIGGERS = ("PRIVATE KEY", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "sk-",
             "AIza", "eyJ")
_TRIGGER_WORDS = ("passw", "secret", "token", "apikey", "api_key", "api-key", "accesskey", "access_key",
                  "access-key", "privatekey", "private_key", "private-key", "auth", "credential")


def might_hold_secrets(text: str) -> bool:
    """False only when no redaction pattern can match ``text``."""
    if any(t in text for t in _TRIGGERS):
        return True
    low = text.lower()
    return any(w in low for w in _TRIGGER_WORDS)


def redact(text: str) -> str:
    """``text`` with secret-looking values replaced by ``[REDACTED]``; line count is unchanged."""
    if not might_hold_secrets(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: "\n".join(REDACTED for _ in m.group(0).split("\n")), text)

    def assigned(m: re.Match) -> str:
        if not _looks_random(m.group(3)):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(4)}"

    return _ASSIGNED.sub(assigned, text)
