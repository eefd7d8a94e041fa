"""tallyho's settings: defaults, then a 'key = value' file, then TALLYHO_* environment variables."""

import os

DEFAULTS = {"currency": "EUR", "journal": "journal.txt", "slack_days": "3", "color": "auto"}
ENV_PREFIX = "TALLYHO_"


class SettingsError(Exception):
    def __init__(self, path, lineno, reason):
        super().__init__(f"{path}:{lineno}: {reason}")


def parse_settings(text, path="<text>"):
    values = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SettingsError(path, lineno, "expected 'key = value'")
        key = key.strip().lower()
        if key not in DEFAULTS:
            raise SettingsError(path, lineno, f"unknown key {key!r}")
        values[key] = value.strip()
    return values


def load_settings(path=None, environ=None):
    """Later sources win: DEFAULTS < the file at ``path`` (if it exists) < TALLYHO_<KEY> variables."""
    environ = os.environ if environ is None else environ
    merged = dict(DEFAULTS)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            merged.update(parse_settings(f.read(), path))
    for key in DEFAULTS:
        if ENV_PREFIX + key.upper() in environ:
            merged[key] = environ[ENV_PREFIX + key.upper()]
    return merged
