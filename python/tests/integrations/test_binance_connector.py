"""keyward.integrations.binance_connector against binance-connector 3.13.0 and a real
keywardd: its Spot client's signed requests through keyward (HTTP layer replaced, nothing
sent) are byte for byte those it sends with the raw secret or key, for HMAC, Ed25519 and
RSA, and their signatures verify independently."""

import base64
import time
import urllib.parse

import pytest
from libs import FROZEN_MS, require

require("binance.spot", "binance-connector")
from binance.spot import Spot  # noqa: E402
from keys import ed25519_key, hmac_key, install, rsa_key  # noqa: E402

from keyward.integrations import binance_connector as kbc  # noqa: E402

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


class Response:
    status_code = 200
    text = "{}"
    headers: dict = {}

    def json(self):
        return {}


def sent_by(client):
    sent = []

    def request(method, url, **kwargs):
        sent.append((method, url, dict(client.session.headers), kwargs))
        return Response()

    client.session.request = request
    for verb in ("get", "post", "put", "delete"):
        setattr(client.session, verb, lambda url, _verb=verb, **kw: request(_verb.upper(), url, **kw))
    client.new_order("BTCUSDT", "BUY", "LIMIT", timeInForce="GTC", quantity=0.001, price=30000)
    client.account()
    return sent


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_spot_requests_are_the_raw_keys(daemon, monkeypatch, kind):
    key = install(daemon, {"hmac": lambda: hmac_key("bn", "hmac-sha256", SECRET.encode()),
                           "ed25519": lambda: ed25519_key("bn"),
                           "rsa": lambda: rsa_key("bn")}[kind]())
    monkeypatch.setattr(time, "time", lambda: FROZEN_MS / 1000)
    raw = (Spot(API_KEY, SECRET) if kind == "hmac"
           else Spot(API_KEY, private_key=key.material.decode()))
    routed = (kbc.Spot(API_KEY, "keyward:bn", keyward_client=daemon.client()) if kind == "hmac"
              else kbc.Spot(API_KEY, private_key="keyward:bn", keyward_client=daemon.client()))
    assert routed.api_secret is None and routed.private_key is None
    raw_sent, routed_sent = sent_by(raw), sent_by(routed)
    assert routed_sent == raw_sent and len(routed_sent) == 2
    for method, url, headers, kwargs in routed_sent:
        assert headers["X-MBX-APIKEY"] == API_KEY
        query = urllib.parse.urlparse(url).query or kwargs.get("params", "")
        signed, signature = query.rsplit("&signature=", 1)
        assert "timestamp=%d" % FROZEN_MS in signed
        signature = urllib.parse.unquote(signature)
        if kind == "hmac":
            key.verify(bytes.fromhex(signature), signed.encode())
        else:
            key.verify(base64.b64decode(signature), signed.encode())


def test_a_secret_is_refused(daemon):
    with pytest.raises(ValueError, match="keyward:<key name>"):
        kbc.Spot(API_KEY, SECRET, keyward_client=daemon.client())


def test_the_pinned_connector_is_the_tested_one():
    from binance.__version__ import __version__

    assert __version__ in kbc.TESTED_VERSIONS
