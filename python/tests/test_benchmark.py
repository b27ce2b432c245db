"""benchmarks/roundtrip.py works (its figures are not judged here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from keys import ed25519_key, hmac_key, install

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "roundtrip.py"


def test_roundtrip_benchmark_reports_every_row(daemon):
    install(daemon, ed25519_key("ed"))
    install(daemon, hmac_key("h", "hmac-sha256"))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--socket", str(daemon.socket), "--ed25519", "ed",
         "--hmac", "h", "-n", "40", "--rounds", "2"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = report["rows"]
    assert set(rows) == {
        "keywardd ed25519 (python client)",
        "keywardd hmac-sha256 (python client)",
        "in-process hmac-sha256 (stdlib hmac)",
        "in-process ed25519 (cryptography)",
        "in-process rsa-2048 (cryptography)",
    }
    for row in rows.values():
        assert row["samples"] == 40 and 0 < row["p50_us"] <= row["p99_us"]


def test_roundtrip_benchmark_serve_mode(daemon):
    install(daemon, ed25519_key("ed"))
    install(daemon, hmac_key("h", "hmac-sha256"))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--socket", str(daemon.socket), "--ed25519", "ed",
         "--hmac", "h", "--serve", "-n", "30"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        names = [row["name"] for row in ready["rows"]]
        assert {"name": "keywardd ed25519 (python client)", "scheme": "ed25519",
                "via": "keywardd"} in ready["rows"]
        assert ready["python"].startswith("CPython 3.")
        proc.stdin.write("run 5\n")
        proc.stdin.flush()
        block = json.loads(proc.stdout.readline())
        assert set(block) == set(names)
        assert all(len(samples) == 5 and min(samples) > 0 for samples in block.values())
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
