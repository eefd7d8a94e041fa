import textwrap
from pathlib import Path

import pytest

FILES = {
    "shop/cart.py": '''
        from shop.pricing import apply_discount


        class ShoppingCart:
            """Items a customer is about to buy."""

            def __init__(self):
                self.items = []

            def add_item(self, product, quantity=1):
                self.items.append((product, quantity))

            def total_price(self):
                subtotal = sum(p.price * q for p, q in self.items)
                return apply_discount(subtotal)
        ''',
    "shop/pricing.py": '''
        DISCOUNT_RATE = 0.1


        def apply_discount(amount):
            """Takes ten percent off large orders."""
            if amount > 100:
                return amount * (1 - DISCOUNT_RATE)
            return amount
        ''',
    "net/http_client.py": '''
        import socket


        def fetch_url(url, timeout=5):
            """Download a web page over HTTP."""
            host = url.split("/")[2]
            conn = socket.create_connection((host, 80), timeout)
            conn.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            return conn.recv(65536)


        def retry_request(url, attempts=3):
            for _ in range(attempts):
                try:
                    return fetch_url(url)
                except OSError:
                    continue
            raise ConnectionError(url)
        ''',
    "util/strings.js": '''
        function slugify(title) {
          return title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
        }

        function capitalizeWords(text) {
          return text.split(" ").map(w => w[0].toUpperCase() + w.slice(1)).join(" ");
        }
        ''',
    "README.md": "# Shop\n\nA tiny shop with a cart and an HTTP client.\n",
}


def make_workspace(root: Path, files=FILES) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


@pytest.fixture
def workspace(tmp_path):
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"
