#!/usr/bin/env python3
"""Round trip of the Python keyward client, next to signing in-process in Python.

    python3 python/benchmarks/roundtrip.py --socket PATH --ed25519 KEY --hmac KEY [-n 2000]

Times, one operation at a time, in interleaved rounds (A, B, C, A, B, C...) so that a noisy
neighbour slows every row alike:

- ``keyward.Client.sign`` round trips with an Ed25519 key and an HMAC key held by keywardd;
- the same kind of signature made in-process, as bots do today: ``cryptography``'s Ed25519
  and RSA-2048 (PKCS#1 v1.5, SHA-256), and ``hmac`` from the standard library.

Prints one JSON object: p50 and p99 in microseconds per row. The in-process rows need
``cryptography``; without it they are left out and say so. ``--serve`` reads commands on
stdin instead (for keyward-bench, which interleaves these rows with its own rounds): after
a warm-up of a tenth of ``-n`` it prints one JSON line describing the rows; then ``run N``
runs one block of N iterations per row and prints their samples (nanoseconds) as one JSON
line; ``quit`` ends.
"""

import argparse
import hashlib
import hmac
import json
import math
import os
import platform
import sys
import time
from typing import Callable, Dict, List, Tuple

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import keyward  # noqa: E402

#: The payload keyward-bench signs: a Binance order query string.
PAYLOAD = (
    b"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=20000"
    b"&recvWindow=5000&timestamp=1700000000000"
)

Op = Callable[[], object]


class Row:
    """One thing to time: what it is called, the scheme, and whether it goes through keywardd
    (``via`` = ``keywardd``) or signs in this process (``in-process``)."""

    def __init__(self, name: str, scheme: str, via: str, op: Op) -> None:
        self.name, self.scheme, self.via, self.op = name, scheme, via, op


def operations(socket: str, ed25519_key: str, hmac_key: str) -> Tuple[List[Row], List[str]]:
    """The rows to time, and notes about rows left out."""
    client = keyward.Client(socket)
    notes: List[str] = []
    rows = [
        Row("keywardd ed25519 (python client)", "ed25519", "keywardd",
            lambda: client.sign(ed25519_key, PAYLOAD)),
        Row("keywardd hmac-sha256 (python client)", "hmac-sha256", "keywardd",
            lambda: client.sign(hmac_key, PAYLOAD)),
    ]
    secret = os.urandom(32)
    rows.append(
        Row("in-process hmac-sha256 (stdlib hmac)", "hmac-sha256", "in-process",
            lambda: hmac.new(secret, PAYLOAD, hashlib.sha256).digest())
    )
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    except ImportError:
        notes.append("cryptography is not installed: in-process Ed25519 and RSA rows left out")
    else:
        ed = ed25519.Ed25519PrivateKey.generate()
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        rows.append(Row("in-process ed25519 (cryptography)", "ed25519", "in-process",
                        lambda: ed.sign(PAYLOAD)))
        rows.append(Row("in-process rsa-2048 (cryptography)", "rsa-2048", "in-process",
                        lambda: rsa_key.sign(PAYLOAD, pkcs1, sha256)))
    # Fail before timing if a key is missing or wrong.
    for row in rows:
        row.op()
    return rows, notes


def time_block(op: Op, n: int) -> List[int]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        start = clock()
        op()
        samples.append(clock() - start)
    return samples


def percentile_us(samples: List[int], quantile: float) -> float:
    """Nearest-rank percentile, in microseconds (keyward-bench's definition)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(quantile * len(ordered))))
    return round(ordered[rank - 1] / 1e3, 3)


def measure(rows: List[Row], iterations: int, rounds: int) -> Dict[str, Dict[str, float]]:
    samples: Dict[str, List[int]] = {row.name: [] for row in rows}
    for row in rows:  # warm-up, not recorded
        time_block(row.op, max(3, iterations // 10))
    for round_ in range(rounds):
        for row in rows:
            block = iterations // rounds + (1 if round_ < iterations % rounds else 0)
            samples[row.name] += time_block(row.op, block)
    return {
        name: {
            "p50_us": percentile_us(values, 0.50),
            "p99_us": percentile_us(values, 0.99),
            "samples": len(values),
        }
        for name, values in samples.items()
    }


def serve(rows: List[Row], notes: List[str], warmup: int) -> None:
    """Interleaving driven by another process. Prints one JSON line describing the rows,
    then answers each `run N` with one JSON line: each row's N samples, in nanoseconds."""
    for row in rows:
        time_block(row.op, warmup)
    ready = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "rows": [{"name": row.name, "scheme": row.scheme, "via": row.via} for row in rows],
        "notes": notes,
    }
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "run":
            n = int(words[1])
            print(json.dumps({row.name: time_block(row.op, n) for row in rows}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="keywardd's socket")
    parser.add_argument("--ed25519", required=True, help="name of an Ed25519 key in keywardd")
    parser.add_argument("--hmac", required=True, help="name of an hmac-sha256 key in keywardd")
    parser.add_argument("-n", "--iterations", type=int, default=2000, help="per row")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help="take `run N` commands on stdin")
    args = parser.parse_args()
    rows, notes = operations(args.socket, args.ed25519, args.hmac)
    if args.serve:
        serve(rows, notes, max(3, args.iterations // 10))
        return 0
    result = measure(rows, args.iterations, args.rounds)
    rt, local = "keywardd ed25519 (python client)", "in-process ed25519 (cryptography)"
    report = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "payload_bytes": len(PAYLOAD),
        "iterations": args.iterations,
        "rounds": args.rounds,
        "rows": result,
        "notes": notes,
    }
    if local in result:
        report["ed25519_round_trip_over_in_process_p50"] = round(
            result[rt]["p50_us"] / result[local]["p50_us"], 2
        )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
