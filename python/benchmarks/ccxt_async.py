#!/usr/bin/env python3
"""What signing through keywardd costs an asyncio ccxt bot: ccxt calls its signing functions
synchronously, even in ``ccxt.async_support`` and ``ccxt.pro``, so each signed request blocks
the event loop for as long as ``sign()`` takes: with keyward, one round trip to keywardd.

    python3 python/benchmarks/ccxt_async.py --socket PATH --hmac KEY --ed25519 KEY --rsa KEY [-n 500]

For each key, times ``ccxt.async_support.binance.sign()`` of a private order request (what
runs on the loop between two awaits), in interleaved rounds: the exchange object made by
``keyward_exchange`` against one made with an in-process key of the same scheme (generated
here with ``cryptography``, which ccxt depends on). Prints one JSON object: p50 and p99 in
microseconds per row, and the p50 difference (what keyward adds to each blocked stretch).
Needs ccxt (``pip install -r python/requirements-integrations-ccxt.txt``).
"""

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import ccxt.async_support  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

import keyward  # noqa: E402
from keyward.integrations.ccxt import keyward_exchange  # noqa: E402

PARAMS = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
          "quantity": "0.001", "price": "30000"}


def in_process_secret(scheme: str) -> str:
    if scheme == "hmac-sha256":
        return os.urandom(32).hex()
    private = (ed25519.Ed25519PrivateKey.generate() if scheme == "ed25519"
               else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


def percentile(samples: List[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--hmac", help="an hmac-sha256 key in keywardd")
    parser.add_argument("--ed25519", help="an ed25519 key in keywardd")
    parser.add_argument("--rsa", help="an rsa-pkcs1v15-sha256 (2048) key in keywardd")
    parser.add_argument("-n", type=int, default=500, help="samples per row")
    args = parser.parse_args()

    client = keyward.Client(args.socket)
    rows: Dict[str, Callable[[], object]] = {}
    objects = []
    for scheme, key in (("hmac-sha256", args.hmac), ("ed25519", args.ed25519),
                        ("rsa-2048", args.rsa)):
        if not key:
            continue
        routed = keyward_exchange(ccxt.async_support.binance, key, {"apiKey": "x"}, client=client)
        raw = ccxt.async_support.binance({"apiKey": "x", "secret": in_process_secret(
            "rsa" if scheme == "rsa-2048" else scheme)})
        objects += [routed, raw]
        rows[f"{scheme} keywardd"] = (
            lambda e=routed: e.sign("order", ["private"], "POST", dict(PARAMS)))
        rows[f"{scheme} in-process"] = (
            lambda e=raw: e.sign("order", ["private"], "POST", dict(PARAMS)))

    samples: Dict[str, List[float]] = {name: [] for name in rows}
    for op in rows.values():  # warm-up
        for _ in range(max(1, args.n // 10)):
            op()
    for _ in range(args.n):
        for name, op in rows.items():
            start = time.perf_counter_ns()
            op()
            samples[name].append((time.perf_counter_ns() - start) / 1000)

    report: Dict[str, Dict[str, float]] = {
        name: {"p50_us": round(percentile(s, 0.5), 1), "p99_us": round(percentile(s, 0.99), 1),
               "samples": len(s)}
        for name, s in samples.items()
    }
    for scheme in ("hmac-sha256", "ed25519", "rsa-2048"):
        if f"{scheme} keywardd" in report:
            report[f"{scheme} added by keyward"] = {"p50_us": round(
                report[f"{scheme} keywardd"]["p50_us"] - report[f"{scheme} in-process"]["p50_us"],
                1)}
    print(json.dumps({"ccxt": ccxt.__version__, "python": sys.version.split()[0],
                      "rows": report}, indent=1))

    async def close() -> None:
        for exchange in objects:
            await exchange.close()

    import asyncio

    asyncio.run(close())


if __name__ == "__main__":
    main()
