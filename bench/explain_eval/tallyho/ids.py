"""Short, human-friendly ids for ledger entries (Crockford base32 with a check character)."""

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_ALPHABET = ALPHABET + "*~$=U"


def encode_id(number):
    if number < 0:
        raise ValueError("ids are non-negative")
    digits = []
    while True:
        number, rest = divmod(number, 32)
        digits.append(ALPHABET[rest])
        if number == 0:
            break
    return "".join(reversed(digits))


def check_char(number):
    """The check character: the number modulo 37, from the extended alphabet."""
    return CHECK_ALPHABET[number % 37]


def short_id(number):
    return f"{encode_id(number)}-{check_char(number)}"


def decode_id(text):
    """Inverse of short_id; reads I and L as 1 and O as 0, and rejects a wrong check character."""
    body, _, check = text.upper().replace("I", "1").replace("L", "1").replace("O", "0").partition("-")
    number = 0
    for ch in body:
        number = number * 32 + ALPHABET.index(ch)
    if check and check != check_char(number):
        raise ValueError(f"bad check character in {text!r}")
    return number
