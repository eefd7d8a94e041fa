import pytest
from hypothesis import given, strategies as st

from engram_ls.retrieval.secrets import REDACTED, redact
from engram_ls.retrieval.walk import is_secret_path

FAKE_AWS = "AKIA" + "ABCDEFGHIJKLMNOP"
FAKE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\nabc\n-----END RSA PRIVATE KEY-----"


def test_known_token_shapes_are_redacted():
    out = redact(f"key = '{FAKE_AWS}'\ntoken = 'ghp_{'a1B2' * 9}'\n")
    assert FAKE_AWS not in out and "ghp_" not in out
    assert out.count("\n") == 2


def test_private_key_blocks_keep_their_line_count():
    text = f"before\n{FAKE_KEY}\nafter"
    out = redact(text)
    assert "MIIEow" not in out and out.count("\n") == text.count("\n")
    assert out.startswith("before\n") and out.endswith("\nafter")


def test_assigned_secrets_are_redacted_but_ordinary_code_is_not():
    out = redact('API_KEY = "q8Zr4LmN2xV7pT1w"\npassword = os.environ["PW"]\nname = "hello world"\n')
    assert "q8Zr4LmN2xV7pT1w" not in out and REDACTED in out
    assert 'password = os.environ["PW"]' in out and 'name = "hello world"' in out


def test_secret_files_are_recognised():
    for path in [".env", "config/.env.production", "deploy/id_rsa", "certs/server.pem", "a/credentials.json",
                 "home/.netrc", "keys/tls.key"]:
        assert is_secret_path(path), path
    for path in ["src/env.py", "README.md", "keyboard.py"]:
        assert not is_secret_path(path), path


_PIECES = ["AKIA", "ABCDEFGHIJKLMNOP", "ghp_", "gh", "ghs_", "api", "_", "-", "key", "Access", "PRIVATE", "private", "a1B2" * 9, "github_pat_", "x" * 41, "xoxb-", "sk-", "AIza", "eyJ",
           ".", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "API_KEY", "PassWord", "Token",
           " = ", ": ", '"', "'", "q8Zr4LmN2xV7pT1w", "\n", "def f(x):", "return x", "auth", "Credential", "os."]


@given(st.lists(st.sampled_from(_PIECES), max_size=12))
def test_the_quick_exit_never_skips_a_text_that_has_something_to_redact(pieces):
    """``redact`` returns early when no trigger literal is present; that exit must never change the result."""
    from engram_ls.retrieval import secrets

    text = "".join(pieces)
    full = text
    for pattern in secrets._PATTERNS:
        full = pattern.sub(lambda m: "\n".join(REDACTED for _ in m.group(0).split("\n")), full)
    full = secrets._ASSIGNED.sub(lambda m: m.group(0) if not secrets._looks_random(m.group(3)) else
                                 f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(4)}", full)
    assert redact(text) == full
    if full != text:
        assert secrets.might_hold_secrets(text)


@pytest.mark.parametrize("secret", [
    FAKE_KEY, FAKE_AWS, "ASIA" + "ABCDEFGHIJKLMNOP", "ghp_" + "a1B2" * 9, "github_pat_" + "a1B2c" * 9,
    "xoxb-" + "1234567890ab", "sk-" + "a1B2" * 6, "AIza" + "b" * 35, "eyJ" + "a" * 12 + "." + "b" * 12 + "." + "c" * 12,
    'API_KEY = "q8Zr4LmN2xV7pT1w"', 'Db_PassWord: "q8Zr4LmN2xV7pT1w"', "credentials = 'q8Zr4LmN2xV7pT1w'",
    'my-api-key = "q8Zr4LmN2xV7pT1w"', 'AccessKey: "q8Zr4LmN2xV7pT1w"', 'Private_Key = "q8Zr4LmN2xV7pT1w"',
    'oauth_token = "q8Zr4LmN2xV7pT1w"', 'client_secret = "q8Zr4LmN2xV7pT1w"', "ghs_" + "a1B2" * 9])
def test_each_pattern_redacts_its_shape_through_the_quick_exit(secret):
    """One sample per pattern: fails when the quick exit's triggers miss a pattern's literal."""
    text = f"x = 1\n{secret}\ny = 2"
    out = redact(text)
    assert REDACTED in out and out.count("\n") == text.count("\n")
