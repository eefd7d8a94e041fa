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
