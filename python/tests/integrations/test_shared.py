"""What the integrations share, without any trading library: references, the per-process
default client, the key lookup."""

import os

import pytest
from keys import ed25519_key, install

import keyward
from keyward import integrations


def test_references():
    assert integrations.reference("keyward:binance-main") == "binance-main"
    for not_one in ("keyward:", "binance-main", "KEYWARD:x", None, b"keyward:x", 42):
        assert integrations.reference(not_one) is None


def test_the_default_client_is_one_per_process(daemon, monkeypatch):
    install(daemon, ed25519_key("ed"))
    monkeypatch.setenv("KEYWARD_SOCK", str(daemon.socket))
    monkeypatch.setattr(integrations, "_default", None)
    first = integrations.default_client()
    assert integrations.default_client() is first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child must not talk over its parent's connection
        ok = False
        try:
            child = integrations.default_client()
            ok = child is not first and [k.name for k in child.list()] == ["ed"]
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    # The parent's connection is still in step.
    assert [k.name for k in first.list()] == ["ed"]
    first.close()
    assert answer == b"1"


def test_lookup(daemon):
    install(daemon, ed25519_key("ed"))
    with daemon.client() as client:
        assert integrations.lookup(client, "ed").scheme == keyward.Scheme.ED25519
        with pytest.raises(keyward.UnknownKeyError):
            integrations.lookup(client, "nope")
