"""keyward.integrations.binance_sdk against binance-sdk-spot 13.3.0 / binance-common 4.7.0 and
a real keywardd: with the patch installed, the request the SDK sends for a keyward reference
(HTTP layer replaced, nothing sent) is byte for byte the one it sends with the raw secret or
key, for HMAC, Ed25519 and RSA; so are the WebSocket API's signed parameters; and keys that
are not references still reach the SDK's own code."""

import base64
import time
import urllib.parse

import pytest
from libs import FROZEN_MS, require

require("binance_sdk_spot", "python-binance")
import binance_common  # noqa: E402
import binance_common.signature  # noqa: E402
import binance_common.utils  # noqa: E402
from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketAPI  # noqa: E402
from binance_sdk_spot.spot import Spot  # noqa: E402
from keys import ed25519_key, hmac_key, install, rsa_key  # noqa: E402

from keyward.integrations import IncompatibleError  # noqa: E402
from keyward.integrations import binance_sdk  # noqa: E402

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


class Response:
    status_code = 200
    text = "{}"
    headers: dict = {}
    content = b"{}"

    def json(self):
        return {}


@pytest.fixture
def keys(daemon):
    return {
        "hmac": install(daemon, hmac_key("bn-hmac", "hmac-sha256", SECRET.encode())),
        "ed25519": install(daemon, ed25519_key("bn-ed")),
        "rsa": install(daemon, rsa_key("bn-rsa")),
    }


@pytest.fixture
def patched(daemon, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: FROZEN_MS / 1000)
    # A fresh signer cache per test: the SDK caches parsed keys by their text.
    binance_common.signature.Signers.clear_rsa_cache()
    binance_common.signature.Signers.clear_ed25519_cache()
    with binance_sdk.installed(daemon.client()):
        yield


def credentials(kind, key, ref: bool):
    field = "api_secret" if kind == "hmac" else "private_key"
    value = f"keyward:{key.name}" if ref else (SECRET if kind == "hmac" else key.material.decode())
    return {field: value}


def order_request(kind, key, ref: bool):
    client = Spot(config_rest_api=ConfigurationRestAPI(api_key=API_KEY, **credentials(kind, key, ref)))
    rest = client.rest_api
    sent = []

    def request(**kwargs):
        sent.append(kwargs)
        return Response()

    rest._session.request = request
    try:
        rest.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC",
                       quantity=0.001, price=30000.0)
    except Exception:  # the stub's empty answer need not parse; the request was made
        pass
    assert len(sent) == 1
    return sent[0]


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_rest_order_is_the_raw_keys(keys, patched, kind):
    key = keys[kind]
    routed = order_request(kind, key, ref=True)
    assert routed == order_request(kind, key, ref=False)
    assert routed["method"] == "POST" and routed["url"].endswith("/api/v3/order")
    signed, signature = routed["params"].rsplit("&signature=", 1)
    assert "timestamp=%d" % FROZEN_MS in signed
    signature = urllib.parse.unquote(signature)
    if kind == "hmac":
        key.verify(bytes.fromhex(signature), signed.encode())
    else:
        key.verify(base64.b64decode(signature), signed.encode())


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_websocket_api_signature_is_the_raw_keys(keys, patched, kind):
    key = keys[kind]
    out = []
    for ref in (True, False):
        config = ConfigurationWebSocketAPI(api_key=API_KEY, **credentials(kind, key, ref))
        signer = (binance_common.signature.Signers.get_signer(config.private_key)
                  if config.private_key else None)
        out.append(binance_common.utils.websocket_api_signature(
            config, {"symbol": "BTCUSDT", "side": "BUY"}, signer))
    assert out[0] == out[1] and "signature" in out[0]


def test_uninstall_restores_the_sdks_functions(keys, daemon):
    before = (binance_common.signature.Signers.get_signer, binance_common.utils.hmac_hashing)
    with binance_sdk.installed(daemon.client()):
        assert binance_common.utils.hmac_hashing is not before[1]
        assert binance_common.utils.hmac_hashing("plain", "a=1") == before[1]("plain", "a=1")
    assert binance_common.utils.hmac_hashing is before[1]
    assert binance_common.signature.Signers.get_signer == before[0]


def test_an_hmac_key_given_as_private_key_is_refused(keys, patched):
    with pytest.raises(IncompatibleError, match="Ed25519 or RSA"):
        binance_common.signature.Signers.get_signer("keyward:bn-hmac")


def test_a_changed_sdk_fails_loudly(monkeypatch, daemon):
    monkeypatch.setattr(binance_common.utils, "hmac_hashing", lambda secret, payload, x=1: "")
    with pytest.raises(IncompatibleError, match="hmac_hashing"):
        binance_sdk.install(daemon.client())


def test_the_pinned_binance_common_is_the_tested_one():
    from importlib.metadata import version

    assert version("binance-common") in binance_sdk.TESTED_VERSIONS
