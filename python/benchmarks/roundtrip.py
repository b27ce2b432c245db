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
stdin instead (for keyward-bench, which interleaves these rows with its own): ``run N``
runs one round of N iterations per row and prints that round's samples (nanoseconds) as
one JSON line; ``quit`` ends.
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


def operations(
    socket: str, ed25519_key: str, hmac_key: str
) -> Tuple[List[Tuple[str, Op]], List[str]]:
    """The rows to time, and notes about rows left out."""
    client = keyward.Client(socket)
    notes: List[str] = []
    rows: List[Tuple[str, Op]] = [
        ("keywardd ed25519 (python client)", lambda: client.sign(ed25519_key, PAYLOAD)),
        ("keywardd hmac-sha256 (python client)", lambda: client.sign(hmac_key, PAYLOAD)),
    ]
    secret = os.urandom(32)
    rows.append(
        (
            "in-process hmac-sha256 (stdlib hmac)",
            lambda: hmac.new(secret, PAYLOAD, hashlib.sha256).digest(),
        )
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
        rows.append(("in-process ed25519 (cryptography)", lambda: ed.sign(PAYLOAD)))
        rows.append(
            ("in-process rsa-2048 (cryptography)", lambda: rsa_key.sign(PAYLOAD, pkcs1, sha256))
        )
    # Fail before timing if a key is missing or wrong.
    for _, op in rows:
        op()
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


def measure(
    rows: List[Tuple[str, Op]], iterations: int, rounds: int
) -> Dict[str, Dict[str, float]]:
    samples: Dict[str, List[int]] = {name: [] for name, _ in rows}
    for _, op in rows:  # warm-up, not recorded
        time_block(op, max(3, iterations // 10))
    for round_ in range(rounds):
        for name, op in rows:
            block = iterations // rounds + (1 if round_ < iterations % rounds else 0)
            samples[name] += time_block(op, block)
    return {
        name: {
            "p50_us": percentile_us(values, 0.50),
            "p99_us": percentile_us(values, 0.99),
            "samples": len(values),
        }
        for name, values in samples.items()
    }


def serve(rows: List[Tuple[str, Op]]) -> None:
    """Interleaving driven by another process: `run N` -> one JSON line of samples."""
    for _, op in rows:
        time_block(op, 20)
    print(json.dumps({"ready": [name for name, _ in rows]}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "run":
            n = int(words[1])
            print(json.dumps({name: time_block(op, n) for name, op in rows}), flush=True)


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
        serve(rows)
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
