"""The Binance example of python/README.md runs as printed, against a real keywardd, and sends
a request whose signature Binance would accept (checked with the key's public half)."""

import base64
import io
import re
import urllib.parse
import urllib.request
from pathlib import Path

from keys import ed25519_key, install

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_binance_example_signs_the_order_it_sends(daemon, monkeypatch, capsys):
    key = install(daemon, ed25519_key("binance-main"))
    monkeypatch.setenv("KEYWARD_SOCK", str(daemon.socket))
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "urllib.request.urlopen" in example

    sent = []

    def urlopen(request, timeout=None):
        sent.append(request)
        return io.BytesIO(b'{"orderId": 1}')

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    exec(compile(example, str(README), "exec"), {"__name__": "readme"})

    assert capsys.readouterr().out.strip() == '{"orderId": 1}'
    (request,) = sent
    assert request.full_url == "https://api.binance.com/api/v3/order"
    assert request.get_method() == "POST"
    assert request.get_header("X-mbx-apikey") == "your-binance-api-key-id"
    body = request.data.decode()
    query, _, signature = body.rpartition("&signature=")
    params = dict(urllib.parse.parse_qsl(query))
    assert params["symbol"] == "BTCUSDT" and params["timestamp"].isdigit()
    # Percent-encoded base64: what Binance decodes is the raw Ed25519 signature of `query`.
    assert "+" not in signature and "/" not in signature and "=" not in signature
    key.verify(base64.b64decode(urllib.parse.unquote(signature)), query.encode())
