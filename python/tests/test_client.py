"""The blocking client against a real keywardd: every scheme, every error class, a daemon
restart under a live client, threads, and the broken-connection rules."""

import hashlib
import hmac
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import needs_root, other_uid
from fakes import FakeDaemon, fork_as, wait_child
from keys import (
    BINANCE_QUERY,
    BINANCE_SECRET,
    BINANCE_SIGNATURE,
    all_keys,
    ed25519_key,
    hmac_key,
    install,
)

import keyward
from keyward import ErrorCode
from keyward import protocol as p
from keyward.exchanges import kucoin

ORDER = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp=1700000000000"


# ---- every scheme ----


def test_every_scheme_signs_what_cryptography_verifies(daemon):
    keys = [install(daemon, key) for key in all_keys()]
    payloads = [ORDER, ORDER.encode(), b"", bytes(range(256)) * 4, "unicode: \u20ac"]
    with daemon.client() as client:
        for key in keys:
            for payload in payloads:
                data = payload.encode() if isinstance(payload, str) else payload
                signature = client.sign(key.name, payload)
                assert isinstance(signature, bytes) and len(signature) == key.signature_len
                key.verify(signature, data)
            batch = client.sign_batch(key.name, payloads)
            assert len(batch) == len(payloads)
            for signature, payload in zip(batch, payloads):
                key.verify(signature, payload.encode() if isinstance(payload, str) else payload)
            # A signature over other bytes must not verify: the check above can fail.
            with pytest.raises(Exception):
                key.verify(client.sign(key.name, ORDER + "&x=1"), ORDER.encode())


def test_binance_published_hmac_example(daemon):
    daemon.import_key("binance-hmac", BINANCE_SECRET.encode(), "--scheme", "hmac-sha256")
    with daemon.client() as client:
        signature = client.sign("binance-hmac", BINANCE_QUERY)
    assert signature.hex() == BINANCE_SIGNATURE
    expected = hmac.new(BINANCE_SECRET.encode(), BINANCE_QUERY.encode(), hashlib.sha256)
    assert signature == expected.digest()


def test_list_public_key_and_status(daemon):
    keys = {key.name: install(daemon, key) for key in all_keys()}
    daemon.import_key("with-id", os.urandom(16).hex().encode(), "--scheme", "hmac-sha256",
                      "--secret-format", "hex", "--api-key", "vmPUZE6mv9")
    with daemon.client() as client:
        listed = client.list()
        assert [info.name for info in listed] == sorted(list(keys) + ["with-id"])
        by_name = {info.name: info for info in listed}
        for name, key in keys.items():
            info = by_name[name]
            assert info.scheme == key.scheme and isinstance(info.scheme, keyward.Scheme)
            if key.public_pem is None:
                assert info.public_key is None and info.fingerprint is None
                with pytest.raises(keyward.KeywardError) as caught:
                    client.public_key(name)
                assert caught.value.code == ErrorCode.INVALID_KEY
            else:
                assert client.public_key(name) == key.public_pem
                assert info.public_key_pem == key.public_pem
                assert info.fingerprint.startswith("SHA256:")
        assert by_name["with-id"].api_key == "vmPUZE6mv9"
        assert by_name["rsa"].bits == 2048 and by_name["h256"].bits == 256
        status = client.status()
        assert status.state == keyward.KeystoreState.EPHEMERAL
        assert status.keys == len(keys) + 1
        assert status.unreadable == []


def test_default_path_comes_from_keyward_sock(daemon, monkeypatch):
    key = install(daemon, ed25519_key())
    monkeypatch.setenv("KEYWARD_SOCK", str(daemon.socket))
    with keyward.Client() as client:
        assert client.path == str(daemon.socket)
        key.verify(client.sign(key.name, ORDER), ORDER.encode())


# ---- every error class, from a real daemon ----


def test_unknown_key(daemon):
    with daemon.client() as client:
        with pytest.raises(keyward.UnknownKeyError) as caught:
            client.sign("binance-main", ORDER)
        assert caught.value.code == ErrorCode.UNKNOWN_KEY == 4
        assert "binance-main" in str(caught.value)
        # A daemon's refusal leaves the connection usable.
        assert client.status().keys == 0
        with pytest.raises(keyward.UnknownKeyError):
            client.public_key("nope")
        with pytest.raises(keyward.UnknownKeyError):
            client.sign_batch("nope", [b"a"])


def test_locked_and_not_initialized(make_daemon):
    daemon = make_daemon(keystore=True)
    with daemon.client() as client:
        assert client.status().state == keyward.KeystoreState.UNINITIALIZED
        with pytest.raises(keyward.LockedError) as caught:
            client.sign("ed", ORDER)
        assert caught.value.code == ErrorCode.NOT_INITIALIZED == 12
        passphrase = daemon.write("passphrase", b"correct horse battery staple\n")
        daemon.ok("init", "--passphrase-file", str(passphrase))
        key = install(daemon, ed25519_key())
        key.verify(client.sign("ed", ORDER), ORDER.encode())
        daemon.ok("lock")
        assert client.status().state == keyward.KeystoreState.LOCKED
        with pytest.raises(keyward.LockedError) as caught:
            client.sign("ed", ORDER)
        assert caught.value.code == ErrorCode.LOCKED == 8
        daemon.ok("unlock", "--passphrase-file", str(passphrase))
        key.verify(client.sign("ed", ORDER), ORDER.encode())


def test_policy_violation(make_daemon):
    daemon = make_daemon(config='[keys.pol]\nformat = "binance"\ndeny_params = ["address"]\n')
    key = install(daemon, ed25519_key("pol"))
    with daemon.client() as client:
        key.verify(client.sign("pol", ORDER), ORDER.encode())
        with pytest.raises(keyward.PolicyError) as caught:
            client.sign("pol", "coin=BTC&address=1BoatSLRHtKNngkdXEeobR76b53LETtpyT&amount=1")
        assert caught.value.code == ErrorCode.POLICY_VIOLATION == 9
        assert "address" in str(caught.value)


def test_rate_limited_says_how_long_to_wait(make_daemon):
    daemon = make_daemon(config="[keys.rl]\nrate_per_sec = 2\nburst = 1\n")
    key = install(daemon, ed25519_key("rl"))
    with daemon.client() as client:
        client.sign("rl", ORDER)
        with pytest.raises(keyward.RateLimitedError) as caught:
            client.sign("rl", ORDER)
        refused_at = time.monotonic()
        err = caught.value
        assert err.code == ErrorCode.RATE_LIMITED == 10
        assert err.retry_after is not None and 0 < err.retry_after <= 0.5, err
        # Protocol version 3: the wait is a field, the same as the message's hint.
        assert err.retry_after_ms is not None and 0 < err.retry_after_ms <= 500, err
        assert f"retry in {err.retry_after_ms} ms" in err.message, err
        # The advised wait is enough.
        time.sleep(max(0.0, refused_at + err.retry_after + 0.05 - time.monotonic()))
        key.verify(client.sign("rl", ORDER), ORDER.encode())
        # A batch beyond the burst can never pass: its own code, and no time to wait. Old
        # handlers of RateLimitedError still catch it.
        with pytest.raises(keyward.BatchExceedsBurstError) as caught:
            client.sign_batch("rl", [ORDER, ORDER])
        assert caught.value.code == ErrorCode.BATCH_EXCEEDS_BURST == 16
        assert isinstance(caught.value, keyward.RateLimitedError)
        assert caught.value.retry_after is None and caught.value.retry_after_ms is None


def test_the_handshake_names_the_daemon_and_monitoring_calls_work(daemon):
    install(daemon, ed25519_key("mon"))
    with daemon.client() as client:
        assert client.protocol_version == 3
        welcome = client.daemon
        assert welcome is not None and welcome.daemon_version == keyward.__version__
        assert welcome.daemon_commit, welcome
        client.sign("mon", ORDER)
        client.sign_batch("mon", [ORDER, ORDER])
        stats = client.stats()
        counts = {(c.key, c.scheme): c.count for c in stats.signatures}
        assert counts == {("mon", keyward.Scheme.ED25519): 3}, stats
        assert stats.connections_open >= 1 and stats.unlocks == 0
        report = client.status_report()
        # We are the daemon's own uid, an admin: the order rules are shown (none set).
        assert report.order_rules == [p.KeyOrderRules("mon")], report
        assert report.status.state == keyward.KeystoreState.EPHEMERAL


def test_denied_by_a_daemon_of_another_user_whose_directory_is_protected(make_daemon):
    """Root trusts a uid-N daemon only through the directory rule (its socket directory is
    N's, 0700, inside a root-owned 0755 directory); that daemon lets root administer but
    not sign with its key."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the daemon as another uid")
    uid = other_uid()
    daemon = make_daemon(as_uid=uid)
    assert os.stat(daemon.socket.parent).st_uid == uid
    daemon.ok("generate", "theirs", "--scheme", "ed25519")
    with daemon.client() as client:
        assert [info.name for info in client.list()] == ["theirs"]  # an admin sees it
        with pytest.raises(keyward.DeniedError) as caught:
            client.sign("theirs", ORDER)
        assert caught.value.code == ErrorCode.DENIED == 7


@needs_root
def test_denied_before_the_handshake_for_a_stranger(daemon):
    """Another user connecting to root's daemon is answered Denied before the daemon reads
    a byte; the client reads that answer even if writing its Hello failed."""
    uid = other_uid()
    os.chmod(daemon.socket.parent, 0o755)
    os.chmod(daemon.socket, 0o777)
    read_fd, write_fd = os.pipe()

    def child():
        try:
            keyward.Client(daemon.socket)
            outcome = "connected"
        except keyward.KeywardError as err:
            outcome = f"{type(err).__name__} {int(err.code)} {err}"
        os.write(write_fd, outcome.encode())

    pid = fork_as(uid, child)
    os.close(write_fd)
    assert wait_child(pid) == 0
    outcome = os.read(read_fd, 4096).decode()
    os.close(read_fd)
    assert outcome.startswith("DeniedError 7 "), outcome


def test_unsupported_version_is_a_protocol_error(daemon, monkeypatch):
    from keyward import _core

    future = p.PROTOCOL_VERSION + 1
    hello = p.frame(p.encode_request(p.HelloRequest(future)))
    monkeypatch.setattr(_core, "HELLO_FRAMES", {future: hello})
    with pytest.raises(keyward.ProtocolError) as caught:
        keyward.Client(daemon.socket)
    assert caught.value.code == ErrorCode.UNSUPPORTED_VERSION


def test_a_malformed_response_is_a_protocol_error_and_breaks_the_connection(tmp_path):
    bad = p.frame(bytes.fromhex("01 05 01 00"))  # Signature with scheme 5
    fake = FakeDaemon(tmp_path / "fake.sock", lambda body: bad)
    try:
        client = keyward.Client(fake.path)
        with pytest.raises(keyward.ProtocolError) as caught:
            client.sign("k", b"x")
        assert caught.value.code is None
        # The next call does not read on from a position it lost: a new connection.
        with pytest.raises(keyward.ProtocolError):
            client.sign("k", b"x")
        assert fake.connections == 2
        client.close()
    finally:
        fake.close()


def test_unavailable_when_no_daemon(tmp_path):
    with pytest.raises(keyward.UnavailableError) as caught:
        keyward.Client(tmp_path / "nothing.sock")
    assert caught.value.code == ErrorCode.UNAVAILABLE
    assert "nothing.sock" in str(caught.value) and "running" in str(caught.value)
    # A socket file nobody listens on.
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()
    with pytest.raises(keyward.UnavailableError) as caught:
        keyward.Client(tmp_path / "dead.sock")
    assert "nothing is listening" in str(caught.value)


def test_requests_above_max_frame_are_refused_locally(make_daemon):
    daemon = make_daemon(args=["--max-frame", "1024"])
    key = install(daemon, ed25519_key())
    with daemon.client() as client:
        assert client.max_frame == 1024
        with pytest.raises(keyward.KeywardError) as caught:
            client.sign(key.name, b"x" * 1100)
        assert caught.value.code == ErrorCode.TOO_LARGE
        assert "1024" in str(caught.value)
        # Nothing was sent: the connection is still in step.
        key.verify(client.sign(key.name, b"x" * 900), b"x" * 900)
    with keyward.Client(daemon.socket) as client:
        with pytest.raises(keyward.KeywardError) as caught:
            client.sign_batch(key.name, [b""] * (p.MAX_BATCH + 1))
        assert caught.value.code == ErrorCode.TOO_LARGE  # the daemon's answer this time


# ---- broken connections ----


def test_a_daemon_restarted_under_a_live_client(make_daemon):
    daemon = make_daemon(keystore=True, start=False)
    passphrase = daemon.write("passphrase", b"correct horse battery staple\n")
    daemon.start()
    daemon.ok("init", "--passphrase-file", str(passphrase))
    key = install(daemon, ed25519_key())
    client = daemon.client()
    key.verify(client.sign(key.name, ORDER), ORDER.encode())

    assert daemon.stop() == 0
    # Down: the call fails (one reconnect attempt, refused), and says so.
    with pytest.raises(keyward.UnavailableError):
        client.sign(key.name, ORDER)
    daemon.start(["--passphrase-file", str(passphrase)])
    key.verify(client.sign(key.name, ORDER), ORDER.encode())

    # Restarted while the client sat idle on its connection: the stale connection is
    # noticed before the request is written, and the request goes to the new daemon.
    assert daemon.stop() == 0
    daemon.start(["--passphrase-file", str(passphrase)])
    key.verify(client.sign(key.name, ORDER), ORDER.encode())
    assert client.status().keys == 1
    client.close()
    with pytest.raises(keyward.UnavailableError):
        client.status()


IDLE_CONFIG = "[daemon]\nidle_timeout_secs = 1\n"
PAST_IDLE = 1.6  # seconds: past the daemon's idle timeout, with a margin


def test_a_client_that_sat_past_the_idle_timeout_reconnects_and_signs(make_daemon, caplog):
    """A bot that trades every 15 minutes holds one client; the daemon closes its connection
    in between. The client used to raise the daemon's idle notice on the next order."""
    daemon = make_daemon(config=IDLE_CONFIG)
    key = install(daemon, ed25519_key())
    client = daemon.client()
    key.verify(client.sign(key.name, ORDER), ORDER.encode())
    for round in (1, 2):
        time.sleep(PAST_IDLE)
        assert daemon.log().count("(idle_timeout_secs)") >= round, daemon.log()
        with caplog.at_level("DEBUG", logger="keyward"):
            key.verify(client.sign(key.name, ORDER), ORDER.encode())
        # The daemon's notice is read and logged, not raised.
        assert "idle_timeout_secs" in caplog.text
        caplog.clear()
    client.close()


SIGNATURE = p.frame(p.encode_response(p.SignatureResponse(p.Scheme.ED25519, b"s" * 64)))


@pytest.mark.parametrize("daemon_does", ["speaks", "closes"])
def test_a_connection_the_daemon_used_while_idle_is_replaced_before_the_request(
    tmp_path, caplog, daemon_does
):
    """Between two calls the daemon writes unasked on the connection (as it does before its
    idle close) and keeps it open, or closes it without a word: the next request goes, once,
    on a new connection, and what the daemon said is logged, not returned as the answer."""
    fake = FakeDaemon(tmp_path / "fake.sock", lambda body: SIGNATURE)
    try:
        client = keyward.Client(fake.path)
        assert client.sign("k", b"order-1") == b"s" * 64
        assert fake.conn is not None
        if daemon_does == "speaks":
            notice = p.ErrorResponse(ErrorCode.UNAVAILABLE, "closed after 1s (unasked)")
            fake.conn.sendall(p.frame(p.encode_response(notice)))
        else:
            fake.conn.shutdown(socket.SHUT_RDWR)
        with caplog.at_level("DEBUG", logger="keyward"):
            assert client.sign("k", b"order-2") == b"s" * 64
        said = "closed after 1s (unasked)" if daemon_does == "speaks" else "end of stream"
        assert said in caplog.text
        assert fake.connections == 2
        assert fake.received == [
            p.encode_request(p.SignRequest("k", b"order-1")),
            p.encode_request(p.SignRequest("k", b"order-2")),
        ]
        client.close()
    finally:
        fake.close()


def test_a_request_that_may_have_been_processed_is_not_sent_again(tmp_path):
    """The daemon read the request and closed without answering: the client cannot know
    whether it was signed, so it raises instead of sending it a second time."""
    fake = FakeDaemon(tmp_path / "fake.sock", lambda body: None)
    try:
        client = keyward.Client(fake.path)
        with pytest.raises(keyward.UnavailableError) as caught:
            client.sign("k", b"order-1")
        assert "may or may not have been processed" in str(caught.value)
        assert fake.received == [p.encode_request(p.SignRequest("k", b"order-1"))]
        # The next call reconnects (and is again closed on).
        with pytest.raises(keyward.UnavailableError):
            client.sign("k", b"order-2")
        assert fake.connections == 2
        assert len(fake.received) == 2
    finally:
        fake.close()


def test_a_timeout_breaks_the_connection(tmp_path):
    stall = threading.Event()

    def answer(body):
        stall.wait(5)
        return p.frame(p.encode_response(p.OkResponse()))

    fake = FakeDaemon(tmp_path / "fake.sock", answer)
    try:
        client = keyward.Client(fake.path, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(keyward.UnavailableError) as caught:
            client.status()
        assert time.monotonic() - started < 2
        assert "timed out" in str(caught.value)
        stall.set()
    finally:
        fake.close()


# ---- threads ----


def test_threads_share_one_client_and_use_their_own(daemon):
    keys = [install(daemon, ed25519_key()), install(daemon, hmac_key("h", "hmac-sha256"))]
    shared = daemon.client()

    def work(i):
        own = daemon.client() if i % 2 else None
        client = own or shared
        for j in range(40):
            key = keys[(i + j) % 2]
            payload = f"{ORDER}&thread={i}&n={j}".encode()
            key.verify(client.sign(key.name, payload), payload)
        if own:
            own.close()
        return i

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(16))) == list(range(16))
    shared.close()


def test_a_response_larger_than_the_read_buffer_and_bytes_after_a_response(tmp_path):
    keys = [
        p.KeyInfo(f"key-{i:04d}", p.Scheme.HMAC_SHA256, 256, None, None, "x" * 200)
        for i in range(400)
    ]
    big = p.frame(p.encode_response(p.KeysResponse(keys)), p.MAX_RESPONSE_FRAME)
    assert len(big) > 64 * 1024
    ok = p.frame(p.encode_response(p.OkResponse()))
    answers = iter([big, ok + ok])
    fake = FakeDaemon(tmp_path / "fake.sock", lambda body: next(answers))
    try:
        client = keyward.Client(fake.path)
        assert client.list() == keys
        # Two answers to one request: the daemon never does that; the client refuses it and
        # does not keep the second for the next call.
        with pytest.raises(keyward.ProtocolError):
            client.call(p.StatusRequest())
        client.close()
    finally:
        fake.close()


@pytest.mark.parametrize("cut", [1, 4, 5, len(SIGNATURE) - 1])
def test_an_answer_that_arrives_in_pieces(tmp_path, cut):
    """The first read finds part of the header, the header alone, or part of the body: the
    client reads on to the whole frame (its one-read fast path does not apply)."""

    def answer(body):
        assert fake.conn is not None
        fake.conn.sendall(SIGNATURE[:cut])
        time.sleep(0.05)
        return SIGNATURE[cut:]

    fake = FakeDaemon(tmp_path / "fake.sock", answer)
    try:
        client = keyward.Client(fake.path)
        assert client.sign("k", b"order") == b"s" * 64
        assert client.sign("k", b"order") == b"s" * 64
        client.close()
    finally:
        fake.close()


def test_a_version_2_daemon_is_spoken_to_in_version_2(tmp_path):
    """A keywardd of protocol version 2 refuses Hello 3: the client says Hello 2 on the same
    connection and keeps working, without the daemon's version and without version 3 calls
    (refused here, before anything is sent). Rate limits arrive as plain errors."""
    status = p.Status(keyward.KeystoreState.LOCKED, 0)
    limited = p.ErrorResponse(ErrorCode.RATE_LIMITED, "rate limit reached; retry in 42 ms")

    def answer(body):
        request = p.decode_request(body)
        if isinstance(request, p.StatusRequest):
            return p.frame(p.encode_response(p.StatusResponse(status)))
        return p.frame(p.encode_response(limited))

    fake = FakeDaemon(tmp_path / "fake.sock", answer, speaks=2)
    try:
        client = keyward.Client(fake.path)
        assert client.status() == status
        assert client.status_report() == p.StatusReportResponse(status, None)
        assert fake.hellos == [3, 2]
        assert client.protocol_version == 2 and client.daemon is None
        with pytest.raises(keyward.ProtocolError) as caught:
            client.stats()
        assert caught.value.code == ErrorCode.UNSUPPORTED_VERSION
        # Nor the stored passphrase (set or signed): version 3 requests too.
        for call in (
            lambda: client.sign_passphrase("k"),
            lambda: client.set_passphrase("k", b"pp"),
            lambda: kucoin.headers(client, "k", "GET", "/api/v1/accounts", api_key="id"),
        ):
            with pytest.raises(keyward.ProtocolError) as caught:
                call()
            assert caught.value.code == ErrorCode.UNSUPPORTED_VERSION
        with pytest.raises(keyward.RateLimitedError) as rate:
            client.sign("k", b"x")
        assert rate.value.retry_after_ms == 42
        assert len(fake.received) == 3, "version 3 calls must not reach a version 2 daemon"
        client.close()
    finally:
        fake.close()
