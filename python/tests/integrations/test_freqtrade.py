"""keyward.integrations.freqtrade: the exchange objects freqtrade builds from a config whose
secret is "keyward:<key>" sign through keywardd, offline (freqtrade's own code constructs
them; nothing is sent)."""

import asyncio
import base64
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

from libs import freeze_ccxt, require

freqtrade = require("freqtrade", "ccxt")
from freqtrade.resolvers import ExchangeResolver  # noqa: E402
from keys import ed25519_key, install  # noqa: E402

from keyward.integrations import ccxt as kccxt  # noqa: E402

API_KEY = "my-binance-api-key-id"
SRC = Path(__file__).resolve().parents[2] / "src"


def config(secret: str) -> dict:
    return {
        "dry_run": False,
        "runmode": "live",
        "trading_mode": "spot",
        "margin_mode": "",
        "stake_currency": "USDT",
        "timeframe": "5m",
        "exchange": {
            "name": "binance",
            "key": API_KEY,
            "secret": secret,
            "ccxt_config": {},
            "ccxt_async_config": {},
            "pair_whitelist": ["BTC/USDT"],
            "enable_ws": True,
        },
    }


def test_the_exchange_freqtrade_builds_signs_through_keyward(daemon, monkeypatch):
    key = install(daemon, ed25519_key("binance-main"))
    # What the launcher uses: the process's default client, on $KEYWARD_SOCK.
    monkeypatch.setenv("KEYWARD_SOCK", str(daemon.socket))
    monkeypatch.setattr("keyward.integrations._default", None)
    kccxt.install()
    try:
        exchange = ExchangeResolver.load_exchange(config("keyward:binance-main"), validate=False)
    finally:
        kccxt.uninstall()
    try:
        api = freeze_ccxt(exchange._api)
        assert "PRIVATE KEY" in api.secret and "binance-main" not in api.secret
        sent = []
        api.fetch = lambda url, method="GET", headers=None, body=None: sent.append(body) or {}
        api.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                "quantity": "0.001"})
        signed, _, signature = sent[0].rpartition("&signature=")
        key.verify(base64.b64decode(urllib.parse.unquote(signature)), signed.encode())
        # The asyncio object freqtrade trades with, and its WebSocket one, sign the same way.
        for async_api in (exchange._api_async, exchange._ws_async):
            params = freeze_ccxt(async_api).sign_params({"symbol": "BTCUSDT"})
            signature = params.pop("signature")
            key.verify(base64.b64decode(signature), async_api.rawencode(params).encode())
    finally:
        exchange.close()


def test_the_launcher_runs_freqtrade_with_the_route_installed(daemon):
    # `--version` goes through freqtrade's own main(); the route is in place before it runs.
    code = (
        "import sys, ccxt, keyward.integrations.freqtrade as f\n"
        "try:\n"
        "    f.main(['--version'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "from ccxt.base.exchange import BaseExchange\nassert BaseExchange.__init__.__wrapped__, 'route not installed'\n"
        "print('routed')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "freqtrade" in out.stdout.lower() and out.stdout.strip().endswith("routed")
