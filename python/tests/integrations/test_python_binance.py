"""keyward.integrations.python_binance against python-binance 1.0.37 and a real keywardd: the
requests its Client and AsyncClient send through keyward (HTTP layer replaced, nothing
sent) are byte for byte those python-binance sends with the raw secret or key, for HMAC,
Ed25519 and RSA keys, and their signatures verify independently."""

import asyncio
import base64
import time
import urllib.parse

import pytest
from libs import FROZEN_MS, require

binance = require("binance.client", "python-binance")
import binance  # noqa: E402
from keys import ed25519_key, hmac_key, install, rsa_key  # noqa: E402

from keyward.integrations import IncompatibleError  # noqa: E402
from keyward.integrations import python_binance as kpb  # noqa: E402

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ORDER = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
             price="30000", newClientOrderId="my-order-1")


class Response:
    status_code = 200
    text = "{}"
    headers: dict = {}

    def json(self):
        return {}


class Session:
    """requests.Session's verbs, recorded."""

    def __init__(self, headers):
        self.sent = []
        self.headers = dict(headers)

    def _send(self, method, uri, headers=None, data=None, **kwargs):
        self.sent.append((method, uri, dict(self.headers, **(headers or {})), data, kwargs))
        return Response()

    def get(self, uri, **kwargs):
        return self._send("get", uri, **kwargs)

    def post(self, uri, **kwargs):
        return self._send("post", uri, **kwargs)

    def close(self):
        pass


@pytest.fixture
def keys(daemon):
    return {
        "hmac": install(daemon, hmac_key("bn-hmac", "hmac-sha256", SECRET.encode())),
        "ed25519": install(daemon, ed25519_key("bn-ed")),
        "rsa": install(daemon, rsa_key("bn-rsa")),
    }


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: FROZEN_MS / 1000)


def raw_args(kind, key):
    return {"api_secret": SECRET} if kind == "hmac" else {"private_key": key.material.decode()}


def verify(kind, key, signed: str, signature: str):
    if kind == "hmac":
        key.verify(bytes.fromhex(signature), signed.encode())
    else:
        key.verify(base64.b64decode(urllib.parse.unquote(signature)), signed.encode())


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_rest_requests_are_the_raw_keys(daemon, keys, frozen, kind):
    key = keys[kind]
    raw = binance.Client(API_KEY, ping=False, **raw_args(kind, key))
    routed = kpb.Client(API_KEY, f"keyward:{key.name}" if kind == "hmac" else None,
                        private_key=None if kind == "hmac" else f"keyward:{key.name}",
                        ping=False, keyward_client=daemon.client())
    assert routed.API_SECRET is None and not hasattr(routed.PRIVATE_KEY, "d")
    for client in (raw, routed):
        client.session = Session(client.session.headers)
        client.create_order(**ORDER)
        client.get_account()
    assert routed.session.sent == raw.session.sent
    (post, get) = routed.session.sent
    assert post[0] == "post" and post[1] == "https://api.binance.com/api/v3/order"
    assert post[2]["X-MBX-APIKEY"] == API_KEY
    body = post[3]
    if not isinstance(body, str):  # HMAC: a list of pairs, url-encoded by requests
        body = urllib.parse.urlencode(body)
    verify(kind, key, *body.rsplit("&signature=", 1))
    query = get[4]["params"]
    assert "timestamp=%d" % FROZEN_MS in query
    verify(kind, key, *query.rsplit("&signature=", 1))


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_websocket_api_params_are_the_raw_keys(daemon, keys, frozen, kind):
    key = keys[kind]
    raw = binance.Client(API_KEY, ping=False, **raw_args(kind, key))
    ref = f"keyward:{key.name}"
    routed = kpb.Client(API_KEY, **({"api_secret": ref} if kind == "hmac" else {"private_key": ref}),
                        ping=False, keyward_client=daemon.client())
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    expected = raw._sign_ws_params(dict(params), raw._generate_signature)
    signed = routed._sign_ws_params(dict(params), routed._generate_signature)
    assert signed == expected
    assert routed._generate_ws_api_signature(dict(params)) == raw._generate_ws_api_signature(
        dict(params))


@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_async_client_sends_what_the_raw_key_sends(daemon, keys, frozen, kind):
    key = keys[kind]
    ref = f"keyward:{key.name}"

    class AsyncResponse:
        status = 200

        async def text(self):
            return "{}"

        async def json(self):
            return {}

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

    class AsyncSession:
        def __init__(self):
            self.sent = []

        def post(self, url, headers=None, data=None, **kwargs):
            self.sent.append(("post", str(url), headers, data))
            return AsyncResponse()

        async def close(self):
            pass

    async def run():
        raw = binance.AsyncClient(API_KEY, **raw_args(kind, key))
        routed = kpb.AsyncClient(API_KEY, **({"api_secret": ref} if kind == "hmac"
                                             else {"private_key": ref}),
                                 keyward_client=daemon.client())
        for client in (raw, routed):
            await client.session.close()
            client.session = AsyncSession()
            try:
                await client.create_order(**ORDER)
            except Exception:  # a stub response python-binance may not like; the request is sent
                pass
        return raw.session.sent, routed.session.sent

    raw_sent, routed_sent = asyncio.run(run())
    assert routed_sent == raw_sent and len(routed_sent) == 1
    body = routed_sent[0][3]
    if not isinstance(body, str):
        body = urllib.parse.urlencode(body)
    verify(kind, key, *body.rsplit("&signature=", 1))


def test_a_secret_is_refused(daemon, keys):
    with pytest.raises(ValueError, match="keyward:<key name>"):
        kpb.Client(API_KEY, SECRET, ping=False, keyward_client=daemon.client())


def test_an_ecdsa_key_is_refused(daemon):
    from keys import ecdsa_key

    install(daemon, ecdsa_key("ec"))
    with pytest.raises(IncompatibleError, match="ecdsa-p256-sha256"):
        kpb.Client(API_KEY, private_key="keyward:ec", ping=False, keyward_client=daemon.client())


def test_a_changed_signing_method_fails_loudly(daemon, keys, monkeypatch):
    monkeypatch.setattr(binance.base_client.BaseClient, "_ed25519_signature",
                        lambda self, query_string, extra=None: "")
    with pytest.raises(IncompatibleError, match="_ed25519_signature"):
        kpb.Client(API_KEY, private_key="keyward:bn-ed", ping=False,
                   keyward_client=daemon.client())


def test_the_pinned_python_binance_is_the_tested_one():
    assert binance.__version__ in kpb.TESTED_VERSIONS
