"""keyward.integrations.ccxt against the real ccxt and a real keywardd: for each exchange and
key type, the request ccxt builds through keyward is byte for byte the one it builds with the
raw key, and its signature verifies with an independent implementation (hashlib's HMAC,
`cryptography` with the public key keywardd reports). Nothing is sent: ccxt's fetch() is
replaced, so the requests are those ccxt would put on the wire."""

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.parse

import pytest
from libs import freeze_ccxt, require

ccxt = require("ccxt", "ccxt")
import ccxt.async_support  # noqa: E402
import ccxt.pro  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from keys import ecdsa_key, ed25519_key, hmac_key, install, rsa_key  # noqa: E402

import keyward  # noqa: E402
from keyward.integrations import IncompatibleError  # noqa: E402
from keyward.integrations import ccxt as kccxt  # noqa: E402

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.001", "price": "30000"}


def pem_text(key) -> str:
    return key.material.decode()


def public_key(daemon, name):
    with daemon.client() as client:
        return serialization.load_pem_public_key(client.public_key(name).encode())


def pair(cls, daemon, name, secret, config=None):
    """The same exchange twice: with the raw secret, and through keyward. Clocks frozen."""
    config = dict({"apiKey": API_KEY}, **(config or {}))
    raw = freeze_ccxt(cls(dict(config, secret=secret)))
    routed = freeze_ccxt(kccxt.keyward_exchange(cls, name, config, client=daemon.client()))
    return raw, routed


def captured(exchange):
    """Replaces the exchange's HTTP layer: requests are recorded, and answered with {}."""
    sent = []

    def fetch(url, method="GET", headers=None, body=None):
        sent.append({"url": url, "method": method, "headers": headers, "body": body})
        return {}

    exchange.fetch = fetch
    return sent


def binance_signature(query: str) -> tuple:
    """(the signed part, the signature) of a Binance query string."""
    signed, _, signature = query.rpartition("&signature=")
    return signed, urllib.parse.unquote(signature)


# ---- Binance: HMAC, Ed25519 and RSA, REST through the HTTP layer ----


@pytest.fixture
def binance_keys(daemon):
    return {
        "hmac": install(daemon, hmac_key("bn-hmac", "hmac-sha256", BINANCE_SECRET.encode())),
        "ed25519": install(daemon, ed25519_key("bn-ed")),
        "rsa": install(daemon, rsa_key("bn-rsa")),
    }


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_binance_order_is_the_one_the_raw_key_sends(daemon, binance_keys, kind):
    key = binance_keys[kind]
    secret = BINANCE_SECRET if kind == "hmac" else pem_text(key)
    raw, routed = pair(ccxt.binance, daemon, key.name, secret)
    raw_sent, routed_sent = captured(raw), captured(routed)
    raw.private_post_order(dict(ORDER))
    routed.private_post_order(dict(ORDER))
    raw.private_get_account()
    routed.private_get_account()

    assert routed_sent == raw_sent and len(routed_sent) == 2
    post, get = routed_sent
    assert post["url"] == "https://api.binance.com/api/v3/order"
    assert post["headers"]["X-MBX-APIKEY"] == API_KEY
    for signed, signature in (binance_signature(post["body"]), binance_signature(urllib.parse.urlparse(get["url"]).query)):
        if kind == "hmac":
            key.verify(bytes.fromhex(signature), signed.encode())
        else:
            key.verify(base64.b64decode(signature), signed.encode())
    assert "timestamp=1700000000123" in post["body"]


def test_binance_object_holds_no_key(daemon, binance_keys):
    key = binance_keys["ed25519"]
    exchange = kccxt.keyward_exchange(ccxt.binance, key.name, {"apiKey": API_KEY},
                                      client=daemon.client())
    assert "PRIVATE KEY" in exchange.secret and "keyward" not in exchange.secret[:27]
    everything = repr(vars(exchange))
    body = "".join(key.material.decode().splitlines()[1:-1])
    assert body not in everything


def test_binance_async_class_signs_the_same(daemon, binance_keys):
    key = binance_keys["ed25519"]
    raw, routed = pair(ccxt.async_support.binance, daemon, key.name, pem_text(key))
    sent = {}

    async def run():
        for name, exchange in (("raw", raw), ("routed", routed)):
            requests = sent[name] = []

            async def fetch(url, method="GET", headers=None, body=None, requests=requests):
                requests.append((url, method, headers, body))
                return {}

            exchange.fetch = fetch
            await exchange.private_post_order(dict(ORDER))
            await exchange.close()

    asyncio.run(run())
    assert sent["routed"] == sent["raw"]
    signed, signature = binance_signature(sent["routed"][0][3])
    key.verify(base64.b64decode(signature), signed.encode())


@pytest.mark.parametrize("kind", ["hmac", "ed25519", "rsa"])
def test_binance_websocket_api_params_are_signed_the_same(daemon, binance_keys, kind):
    key = binance_keys[kind]
    secret = BINANCE_SECRET if kind == "hmac" else pem_text(key)
    raw, routed = pair(ccxt.pro.binance, daemon, key.name, secret)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    raw_signed = raw.sign_params(dict(params))
    routed_signed = routed.sign_params(dict(params))
    assert routed_signed == raw_signed
    signature = routed_signed.pop("signature")
    query = routed.rawencode(routed_signed)
    if kind == "hmac":
        key.verify(bytes.fromhex(signature), query.encode())
    else:
        key.verify(base64.b64decode(signature), query.encode())

    async def close():
        await raw.close()
        await routed.close()

    asyncio.run(close())


# ---- Bybit, OKX, KuCoin, Kraken ----


def sent_by_both(raw, routed, call):
    """``call(exchange)`` on both exchanges; the one request each sent, asserted equal."""
    raw_sent, routed_sent = captured(raw), captured(routed)
    call(raw)
    call(routed)
    assert routed_sent == raw_sent and len(routed_sent) == 1
    return routed_sent[0]


def test_bybit_hmac_and_rsa(daemon):
    secret = "bybitsecretbybitsecret1234567890"
    h = install(daemon, hmac_key("bybit-hmac", "hmac-sha256", secret.encode()))
    r = install(daemon, rsa_key("bybit-rsa"))
    order = {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
             "qty": "0.001"}
    for key, raw_secret in ((h, secret), (r, pem_text(r))):
        raw, routed = pair(ccxt.bybit, daemon, key.name, raw_secret)
        request = sent_by_both(raw, routed, lambda e: e.private_post_v5_order_create(dict(order)))
        headers = request["headers"]
        signed = headers["X-BAPI-TIMESTAMP"] + API_KEY + headers["X-BAPI-RECV-WINDOW"] + request["body"]
        sig = headers["X-BAPI-SIGN"]
        key.verify(bytes.fromhex(sig) if key is h else base64.b64decode(sig), signed.encode())


def test_okx_hmac_base64(daemon):
    secret = "8CE1F1C3E6B9A5D4C2B1A0F9E8D7C6B5"
    key = install(daemon, hmac_key("okx", "hmac-sha256", secret.encode()))
    raw, routed = pair(ccxt.okx, daemon, key.name, secret, {"password": "pass phrase"})
    order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1"}
    request = sent_by_both(raw, routed, lambda e: e.private_post_trade_order(dict(order)))
    h = request["headers"]
    payload = h["OK-ACCESS-TIMESTAMP"] + "POST" + "/api/v5/trade/order" + request["body"]
    key.verify(base64.b64decode(h["OK-ACCESS-SIGN"]), payload.encode())
    assert h["OK-ACCESS-PASSPHRASE"] == "pass phrase"


@pytest.mark.parametrize("market", ["spot", "future"])
def test_kucoin_signs_passphrase_and_keeps_ccxt_partner_signature(daemon, market):
    secret = "2c5ea4c9-4d4d-44d5-b1d5-8f3f1f4b3f0a"
    key = install(daemon, hmac_key("kucoin", "hmac-sha256", secret.encode()))
    raw, routed = pair(ccxt.kucoin, daemon, key.name, secret, {"password": "my passphrase"})
    if market == "spot":
        order = {"clientOid": "1", "side": "buy", "symbol": "BTC-USDT", "type": "market",
                 "size": "0.001"}
        request = sent_by_both(raw, routed, lambda e: e.private_post_orders(dict(order)))
    else:
        order = {"clientOid": "1", "side": "buy", "symbol": "XBTUSDTM", "type": "market",
                 "size": "1", "leverage": "1"}
        request = sent_by_both(raw, routed, lambda e: e.futuresprivate_post_orders(dict(order)))
    partner = raw.options["partner"][market]
    h = request["headers"]
    ts = h["KC-API-TIMESTAMP"]
    endpoint = urllib.parse.urlparse(request["url"]).path
    key.verify(base64.b64decode(h["KC-API-SIGN"]), (ts + "POST" + endpoint + request["body"]).encode())
    key.verify(base64.b64decode(h["KC-API-PASSPHRASE"]), b"my passphrase")
    # The partner signature is made with ccxt's own partner key, not with the user's key.
    assert h["KC-API-PARTNER"] == partner["id"]
    expected = hmac.new(partner["key"].encode(), (ts + partner["id"] + API_KEY).encode(),
                        hashlib.sha256).digest()
    assert base64.b64decode(h["KC-API-PARTNER-SIGN"]) == expected


def test_kraken_hmac_sha512_over_the_decoded_secret(daemon):
    secret_bytes = bytes(range(64))
    secret = base64.b64encode(secret_bytes).decode()
    key = install(daemon, hmac_key("kraken", "hmac-sha512", secret_bytes))
    raw, routed = pair(ccxt.kraken, daemon, key.name, secret)
    raw_sent, routed_sent = captured(raw), captured(routed)
    for exchange in (raw, routed):
        exchange.private_post_addorder({"pair": "XBTUSD", "type": "buy", "ordertype": "market",
                                        "volume": "0.01"})
    assert routed_sent == raw_sent
    request = routed_sent[0]
    nonce = dict(urllib.parse.parse_qsl(request["body"]))["nonce"]
    path = urllib.parse.urlparse(request["url"]).path
    message = path.encode() + hashlib.sha256((nonce + request["body"]).encode()).digest()
    key.verify(base64.b64decode(request["headers"]["API-Sign"]), message)


def test_a_hmac_key_of_the_wrong_hash_is_refused_not_misused(daemon):
    key = install(daemon, hmac_key("k256", "hmac-sha256"))
    routed = kccxt.keyward_exchange(ccxt.kraken, key.name, {"apiKey": API_KEY},
                                    client=daemon.client())
    with pytest.raises(IncompatibleError, match="hmac-sha512 key"):
        routed.private_post_addorder({"pair": "XBTUSD", "type": "buy", "ordertype": "market",
                                      "volume": "0.01"})


# ---- Coinbase: ES256 and EdDSA JWTs ----


def jwt_parts(authorization: str):
    token = authorization.removeprefix("Bearer ")
    header, payload, signature = token.split(".")
    unb64 = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    return (f"{header}.{payload}".encode(), json.loads(unb64(header)),
            json.loads(unb64(payload)), unb64(signature))


def test_coinbase_es256_jwt_verifies_with_the_daemons_public_key(daemon):
    key = install(daemon, ecdsa_key("cb-es"))
    name = "organizations/org-1/apiKeys/key-1"
    raw, routed = pair(ccxt.coinbase, daemon, key.name, pem_text(key), {"apiKey": name})
    order = {"product_id": "BTC-USD", "side": "BUY"}
    raw_sent, routed_sent = captured(raw), captured(routed)
    raw.v3_private_post_brokerage_orders(dict(order))
    routed.v3_private_post_brokerage_orders(dict(order))
    request, expected = routed_sent[0], raw_sent[0]
    signed, header, claims, signature = jwt_parts(request["headers"]["Authorization"])
    # keywardd's ECDSA signatures are randomised (ccxt's own are RFC 6979): all but the
    # signature must be the raw key's.
    assert signed == jwt_parts(expected["headers"]["Authorization"])[0]
    assert request["body"] == expected["body"] and request["url"] == expected["url"]
    assert header == {"alg": "ES256", "typ": "JWT", "kid": name, "nonce": "c" * 32}
    assert claims["uri"] == "POST api.coinbase.com/api/v3/brokerage/orders"
    assert len(signature) == 64
    # ccxt's low-s form, which keyward gives too.
    assert int.from_bytes(signature[32:], "big") <= kccxt._P256_ORDER // 2
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    public_key(daemon, key.name).verify(der, signed, ec.ECDSA(hashes.SHA256()))


def test_coinbase_eddsa_jwt_is_the_raw_keys(daemon):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    secret = base64.b64encode(seed + private.public_key().public_bytes_raw()).decode()
    # Coinbase hands out the base64 of seed and public key; keywardd imports it as PKCS#8.
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    daemon.import_key("cb-ed", pem)
    raw, routed = pair(ccxt.coinbase, daemon, "cb-ed", secret, {"apiKey": "key-uuid"})
    request = sent_by_both(raw, routed, lambda e: e.v3_private_get_brokerage_accounts())
    signed, header, claims, signature = jwt_parts(request["headers"]["Authorization"])
    assert header["alg"] == "EdDSA" and claims["iss"] == "cdp"
    public_key(daemon, "cb-ed").verify(signature, signed)


# ---- the routing itself ----


def test_install_routes_exchanges_configured_with_a_reference(daemon, binance_keys):
    key = binance_keys["ed25519"]
    client = daemon.client()
    kccxt.install(client=client)
    try:
        exchange = freeze_ccxt(ccxt.binance({"apiKey": API_KEY, "secret": "keyward:bn-ed"}))
        plain = ccxt.binance({"apiKey": API_KEY, "secret": BINANCE_SECRET})
    finally:
        kccxt.uninstall()
    assert exchange.secret != "keyward:bn-ed" and plain.secret == BINANCE_SECRET
    sent = captured(exchange)
    exchange.private_post_order(dict(ORDER))
    signed, signature = binance_signature(sent[0]["body"])
    key.verify(base64.b64decode(signature), signed.encode())
    after = ccxt.binance({"apiKey": API_KEY, "secret": "keyward:bn-ed"})
    assert after.secret == "keyward:bn-ed"  # uninstalled: no longer routed


def test_a_changed_hook_fails_loudly(daemon, binance_keys, monkeypatch):
    monkeypatch.setattr(kccxt, "_checked", False)

    def eddsa(request, secret, curve="ed25519"):  # one parameter fewer than ccxt 4.5.90's
        raise AssertionError("not called")

    monkeypatch.setattr(kccxt._Exchange, "eddsa", staticmethod(eddsa))
    with pytest.raises(IncompatibleError, match="changed its signing hook eddsa"):
        kccxt.keyward_exchange(ccxt.binance, "bn-ed", client=daemon.client())


def test_a_config_secret_is_refused(daemon, binance_keys):
    with pytest.raises(ValueError, match="must not hold a secret"):
        kccxt.keyward_exchange(ccxt.binance, "bn-ed", {"secret": BINANCE_SECRET},
                               client=daemon.client())


def test_an_unknown_key_fails_at_construction(daemon):
    with pytest.raises(keyward.UnknownKeyError):
        kccxt.keyward_exchange(ccxt.binance, "nope", client=daemon.client())


def test_the_pinned_ccxt_is_the_tested_one():
    assert ccxt.__version__ in kccxt.TESTED_VERSIONS


def test_the_async_blocking_benchmark_reports_every_row(daemon):
    import os
    import subprocess
    import sys
    from pathlib import Path

    install(daemon, hmac_key("h", "hmac-sha256"))
    install(daemon, ed25519_key("ed"))
    install(daemon, rsa_key("rsa"))
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "ccxt_async.py"
    out = subprocess.run(
        [sys.executable, str(script), "--socket", str(daemon.socket), "--hmac", "h",
         "--ed25519", "ed", "--rsa", "rsa", "-n", "20"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""},
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["rows"]
    for scheme in ("hmac-sha256", "ed25519", "rsa-2048"):
        for via in ("keywardd", "in-process"):
            row = rows[f"{scheme} {via}"]
            assert row["samples"] == 20 and 0 < row["p50_us"] <= row["p99_us"]


def test_an_exchange_made_before_a_fork_signs_in_the_child_over_its_own_connection(
        daemon, binance_keys, monkeypatch):
    import os

    from keyward import integrations

    key = binance_keys["ed25519"]
    monkeypatch.setenv("KEYWARD_SOCK", str(daemon.socket))
    monkeypatch.setattr(integrations, "_default", None)
    exchange = freeze_ccxt(kccxt.keyward_exchange(ccxt.binance, key.name, {"apiKey": API_KEY}))
    parent_client = integrations.default_client()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            request = exchange.sign("order", ["private"], "POST", dict(ORDER))
            signed, signature = binance_signature(request["body"])
            key.verify(base64.b64decode(signature), signed.encode())
            ok = integrations.default_client() is not parent_client
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    request = exchange.sign("order", ["private"], "POST", dict(ORDER))
    key.verify(base64.b64decode(binance_signature(request["body"])[1]),
               binance_signature(request["body"])[0].encode())
    parent_client.close()
    assert answer == b"1"
