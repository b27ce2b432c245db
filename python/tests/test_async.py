"""keyward.AsyncClient against a real keywardd: the same calls, errors and reconnection as
the blocking client, and many asyncio tasks at once."""

import asyncio

import pytest
from fakes import FakeDaemon
from keys import BINANCE_QUERY, BINANCE_SECRET, BINANCE_SIGNATURE, all_keys, ed25519_key, install

import keyward
from keyward import ErrorCode
from keyward import protocol as p

ORDER = "symbol=BTCUSDT&side=SELL&type=LIMIT&quantity=1&price=100&timestamp=1700000000000"


def run(coro):
    return asyncio.run(coro)


def test_every_call_and_scheme(daemon):
    keys = [install(daemon, key) for key in all_keys()]
    daemon.import_key("binance-hmac", BINANCE_SECRET.encode(), "--scheme", "hmac-sha256")

    async def main():
        async with keyward.AsyncClient(daemon.socket) as client:
            assert client.max_frame == p.DEFAULT_MAX_FRAME
            assert (await client.sign("binance-hmac", BINANCE_QUERY)).hex() == BINANCE_SIGNATURE
            for key in keys:
                key.verify(await client.sign(key.name, ORDER), ORDER.encode())
                batch = await client.sign_batch(key.name, [b"a", "b", b""])
                for signature, payload in zip(batch, [b"a", b"b", b""]):
                    key.verify(signature, payload)
                if key.public_pem:
                    assert await client.public_key(key.name) == key.public_pem
            names = [info.name for info in await client.list()]
            assert names == sorted([key.name for key in keys] + ["binance-hmac"])
            status = await client.status()
            assert status.state == keyward.KeystoreState.EPHEMERAL
            with pytest.raises(keyward.UnknownKeyError) as caught:
                await client.sign("missing", ORDER)
            assert caught.value.code == ErrorCode.UNKNOWN_KEY
            assert (await client.status()).keys == len(keys) + 1

    run(main())


def test_errors_of_a_policy_daemon(make_daemon):
    daemon = make_daemon(
        config='[keys.rl]\nformat = "binance"\nrate_per_sec = 1\nburst = 1\ndeny_params = ["address"]\n'
    )
    install(daemon, ed25519_key("rl"))

    async def main():
        client = keyward.AsyncClient(daemon.socket)  # connects on first use
        with pytest.raises(keyward.PolicyError):
            await client.sign("rl", "coin=BTC&address=x")
        await client.sign("rl", ORDER)
        with pytest.raises(keyward.RateLimitedError) as caught:
            await client.sign("rl", ORDER)
        assert 0 < caught.value.retry_after <= 1.0
        assert caught.value.retry_after_ms == round(caught.value.retry_after * 1000)
        with pytest.raises(keyward.BatchExceedsBurstError):
            await client.sign_batch("rl", [ORDER, ORDER])
        assert client.protocol_version == 3 and client.daemon is not None
        stats = await client.stats()
        assert stats.rate_limited == 1, stats
        assert {d.name: d.count for d in stats.denials} == {
            "policy-violation": 1,
            "batch-exceeds-burst": 1,
        }, stats
        report = await client.status_report()
        assert [rules.key for rules in report.order_rules] == ["rl"], report
        await client.close()
        with pytest.raises(keyward.UnavailableError):
            await client.status()

    run(main())


def test_many_tasks_on_shared_and_own_connections(daemon):
    key = install(daemon, ed25519_key())

    async def main():
        async with keyward.AsyncClient(daemon.socket) as shared:

            async def task(i):
                if i % 3 == 0:
                    async with keyward.AsyncClient(daemon.socket) as own:
                        client = own
                        for j in range(20):
                            payload = f"{ORDER}&task={i}&n={j}".encode()
                            key.verify(await client.sign(key.name, payload), payload)
                else:
                    for j in range(20):
                        payload = f"{ORDER}&task={i}&n={j}".encode()
                        key.verify(await shared.sign(key.name, payload), payload)
                return i

            done = await asyncio.gather(*(task(i) for i in range(30)))
            assert sorted(done) == list(range(30))

    run(main())


def test_a_daemon_restarted_under_a_live_async_client(make_daemon):
    daemon = make_daemon(keystore=True, start=False)
    passphrase = daemon.write("passphrase", b"correct horse battery staple\n")
    daemon.start()
    daemon.ok("init", "--passphrase-file", str(passphrase))
    key = install(daemon, ed25519_key())

    async def sign():
        return await client.sign(key.name, ORDER)

    client = keyward.AsyncClient(daemon.socket)
    key.verify(run(sign()), ORDER.encode())
    daemon.stop()
    with pytest.raises(keyward.UnavailableError):
        run(sign())
    daemon.start(["--passphrase-file", str(passphrase)])
    key.verify(run(sign()), ORDER.encode())
    daemon.stop()
    daemon.start(["--passphrase-file", str(passphrase)])
    key.verify(run(sign()), ORDER.encode())


def test_an_async_client_that_sat_past_the_idle_timeout_reconnects_and_signs(make_daemon):
    """The daemon closes a connection idle past idle_timeout_secs; the client's next call
    used to raise its notice instead of signing."""
    daemon = make_daemon(config="[daemon]\nidle_timeout_secs = 1\n")
    key = install(daemon, ed25519_key())

    async def main():
        async with keyward.AsyncClient(daemon.socket) as client:
            key.verify(await client.sign(key.name, ORDER), ORDER.encode())
            for round in (1, 2):
                await asyncio.sleep(1.6)
                assert daemon.log().count("(idle_timeout_secs)") >= round, daemon.log()
                key.verify(await client.sign(key.name, ORDER), ORDER.encode())

    run(main())


def test_a_cancelled_call_breaks_the_connection_and_is_not_resent(tmp_path):
    import threading

    release = threading.Event()

    def answer(body):
        release.wait(5)
        return p.frame(p.encode_response(p.OkResponse()))

    fake = FakeDaemon(tmp_path / "fake.sock", answer)

    async def main():
        client = keyward.AsyncClient(fake.path, timeout=0.3)
        with pytest.raises(keyward.UnavailableError) as caught:
            await client.status()
        assert "timed out" in str(caught.value)
        release.set()
        # A new connection; the late answer of the abandoned call is never read as this one's.
        fake.answer = lambda body: p.frame(
            p.encode_response(p.StatusResponse(p.Status(p.KeystoreState.LOCKED, 7)))
        )
        assert (await client.status()).keys == 7
        assert fake.connections == 2
        assert len(fake.received) == 2
        await client.close()

    try:
        run(main())
    finally:
        fake.close()


def test_a_malformed_response_breaks_the_async_connection(tmp_path):
    bad = p.frame(bytes.fromhex("01 02 05 00"))  # a signature length past the body's end
    fake = FakeDaemon(tmp_path / "fake.sock", lambda body: bad)

    async def main():
        async with keyward.AsyncClient(fake.path) as client:
            with pytest.raises(keyward.ProtocolError) as caught:
                await client.sign("k", b"x")
            assert caught.value.code is None
            with pytest.raises(keyward.ProtocolError):
                await client.sign("k", b"x")
        assert fake.connections == 2

    try:
        run(main())
    finally:
        fake.close()
