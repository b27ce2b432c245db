"""The Python codec against the golden frames the Rust protocol crate is checked against
(protocol/tests/golden.rs): every valid frame decodes to the value written out below and
re-encodes byte for byte; every invalid-* frame is refused. The values are typed in here
from the fixture README, not derived from the files, so a drift on either side fails."""

import re

import pytest

from fixtures import REPO, fixture_dir
import keyward
from keyward import ErrorCode
from keyward import protocol as p

BINANCE_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_QUERY = (
    b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    b"&recvWindow=5000&timestamp=1499827319559"
)
BINANCE_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
PASSPHRASE = b"correct horse battery staple"
NEW_PASSPHRASE = b"Tr0ub4dor&3"
ED25519_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    b"-----END PRIVATE KEY-----\n"
)
ED25519_ENCRYPTED_PEM = (
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    b"MIGjMF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBDZg2Y3KCRv9Kwku+qx\n"
    b"x2hLAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQRf7426IL1xbCbaBZ\n"
    b"YWQKsQRAgLtbHgEpnnO3KhkvU30dXbBA7ql7P7JCkhgjp1cNDY1pxPHuUpeNZZj/\n"
    b"euqZkJ95Rr+Dk2mVkxAsuNOIsj7JxA==\n"
    b"-----END ENCRYPTED PRIVATE KEY-----\n"
)
ED25519_SPKI = bytes.fromhex(
    "302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)
ED25519_FINGERPRINT = "SHA256:BuP9j9opu2CrWVV95h7bCuzbIxE0vjDnW0Vfjht5L6k"
RSA_SPKI = bytes.fromhex(
    "30820122300d06092a864886f70d01010105000382010f003082010a0282010100"
    "9ee66e3fdcee0bdc6347f457fe7044f47978fbe47f80c7f2fcf7a6de2324e9183d5ee6b0872ccffb7f0a0fa6"
    "6894f60f749ee6a2dcba3649faad23837427a3ad4587bec7b7359c4a3a5c64afa28e65b52ff1196d8d38cdc3"
    "f1720335e92f26298f0325ed9560e102af82dc95adf45830711acddc8bebca3b39f16dd31b58841b53ed9f36"
    "dc9ae72c54e249bfe03e9c95e4439ce142aee3a9b94c1230f78309b6affc40993d877afa1f3bf40cb0d7c2f6"
    "70e9afbf22aafe5d0f665c3ac2be3494353c5fb9d52aa15580024b809df537fa4f12391512ae8184058c669b"
    "320ab5b1c81b8d18552103304b7c1a64def467fab4bc9c47437161cbc18e7c217b16c99b0203010001"
)
RSA_FINGERPRINT = "SHA256:D5u7jWNlfyjeuTkgnAm1v4W7QToic1OPHAWRrB37U04"
KRAKEN_SIGNATURES = [
    bytes.fromhex(h)
    for h in (
        "5a5c657ea45c8e073ef88f409d949b60a39635f794b5da44c80970b608cc8743"
        "a1b1075fef724d284ca3a8f3361a911ded5bec9c5fc4c79f08d309c0050e228c",
        "935b8e34340bba832f15b70a3d5854d2decbee4e37118d067a88c476d3709e00"
        "e69a602745da8cf738ec30b53ecc82becb469a84293a82af86268da60ed057e7",
        "e875c853949a1279435e5fa34d38279b9e2c8ef6c3e785fd5ffe565fcc0135a1"
        "4b5b86ce7fa975ff431c4148c25211d1cc58877f7e17689ef7d0f15c42017dab",
    )
]

RSA_KEY = p.KeyInfo(
    "binance-rsa",
    p.Scheme.RSA_PKCS1V15_SHA256,
    2048,
    RSA_SPKI,
    RSA_FINGERPRINT,
    BINANCE_API_KEY,
    p.PayloadFormat.BINANCE,
)
KRAKEN_KEY = p.KeyInfo(
    "kraken", p.Scheme.HMAC_SHA512, 512, None, None, "kraken-api-key-1", p.PayloadFormat.KRAKEN
)
ED25519_KEY = p.KeyInfo(
    "binance-ed25519", p.Scheme.ED25519, 256, ED25519_SPKI, ED25519_FINGERPRINT, None
)

REQUESTS = {
    "request-00-hello.bin": p.HelloRequest(3),
    "request-00-hello-v2.bin": p.HelloRequest(2),
    "request-01-sign.bin": p.SignRequest("binance-hmac", BINANCE_QUERY),
    "request-02-sign-batch.bin": p.SignBatchRequest(
        "kraken", [b"", b"\x00\xff", bytes(range(256))]
    ),
    "request-03-list.bin": p.ListRequest(),
    "request-04-public-key.bin": p.PublicKeyRequest("binance-ed25519"),
    "request-05-import-hmac.bin": p.ImportRequest(
        "binance-hmac",
        p.Scheme.HMAC_SHA256,
        BINANCE_SECRET,
        None,
        BINANCE_API_KEY,
        p.PayloadFormat.BINANCE,
    ),
    "request-05-import-pem.bin": p.ImportRequest("binance-ed25519", None, ED25519_PEM),
    "request-05-import-encrypted-pem.bin": p.ImportRequest(
        "binance-ed25519",
        p.Scheme.ED25519,
        ED25519_ENCRYPTED_PEM,
        PASSPHRASE,
        BINANCE_API_KEY,
        p.PayloadFormat.BINANCE,
    ),
    "request-06-generate.bin": p.GenerateRequest(
        "binance-rsa", p.KeyKind.RSA_2048, None, p.PayloadFormat.BINANCE
    ),
    "request-07-remove.bin": p.RemoveRequest("old-key"),
    "request-08-status.bin": p.StatusRequest(),
    "request-09-init.bin": p.InitRequest(PASSPHRASE),
    "request-10-unlock.bin": p.UnlockRequest(PASSPHRASE),
    "request-11-lock.bin": p.LockRequest(),
    "request-12-change-passphrase.bin": p.ChangePassphraseRequest(PASSPHRASE, NEW_PASSPHRASE),
    "request-13-stats.bin": p.StatsRequest(),
    "request-14-reload.bin": p.ReloadRequest(),
    "request-15-set-passphrase.bin": p.SetPassphraseRequest("kucoin", PASSPHRASE),
    "request-15-set-passphrase-none.bin": p.SetPassphraseRequest("kucoin", None),
    "request-16-sign-passphrase.bin": p.SignPassphraseRequest("kucoin"),
}

LOCKED = p.Status(p.KeystoreState.LOCKED, 0, None, None, [])

RESPONSES = {
    "response-00-hello.bin": p.HelloResponse(2, 65536),
    "response-01-signature.bin": p.SignatureResponse(
        p.Scheme.HMAC_SHA256, bytes.fromhex(BINANCE_SIGNATURE)
    ),
    "response-02-signatures.bin": p.SignaturesResponse(p.Scheme.HMAC_SHA512, KRAKEN_SIGNATURES),
    "response-03-keys.bin": p.KeysResponse([RSA_KEY, KRAKEN_KEY]),
    "response-03-keys-empty.bin": p.KeysResponse([]),
    "response-04-key.bin": p.KeyResponse(ED25519_KEY),
    "response-05-ok.bin": p.OkResponse(),
    "response-06-error-unsupported-version.bin": p.ErrorResponse(
        ErrorCode.UNSUPPORTED_VERSION,
        "protocol version 1 is not supported; this daemon speaks version 2",
    ),
    "response-06-error-too-large.bin": p.ErrorResponse(
        ErrorCode.TOO_LARGE, "frame of 70000 bytes exceeds the limit of 65536 bytes"
    ),
    "response-06-error-unknown-key.bin": p.ErrorResponse(
        ErrorCode.UNKNOWN_KEY, 'no key named "binance-main"'
    ),
    "response-06-error-denied.bin": p.ErrorResponse(
        ErrorCode.DENIED, "uid 1001 may not use this keywardd (it serves uid 1000)"
    ),
    "response-06-error-locked.bin": p.ErrorResponse(
        ErrorCode.LOCKED, "the keystore is locked; run `keyward unlock`"
    ),
    "response-06-error-other-300.bin": p.ErrorResponse(300, "a code from a newer daemon"),
    "response-06-error-other-65535.bin": p.ErrorResponse(65535, "the largest code there can be"),
    "response-07-status-unlocked.bin": p.StatusResponse(
        p.Status(
            p.KeystoreState.UNLOCKED,
            3,
            900,
            28800,
            [p.UnreadableKey("okx-old", "cannot decrypt: the key file is corrupt")],
        )
    ),
    "response-07-status-locked.bin": p.StatusResponse(LOCKED),
    "response-06-error-batch-exceeds-burst.bin": p.ErrorResponse(
        ErrorCode.BATCH_EXCEEDS_BURST,
        'a batch of 12 exceeds key "binance-hmac"\'s burst of 10; split it',
    ),
    "response-06-error-no-passphrase.bin": p.ErrorResponse(
        ErrorCode.NO_PASSPHRASE,
        'key "kucoin" has no stored passphrase; an admin sets one with `keyward passphrase`',
    ),
    "response-06-error-invalid-config.bin": p.ErrorResponse(
        ErrorCode.INVALID_CONFIG,
        "/etc/keyward/keywardd.toml: keys.grid-bot.burst needs keys.grid-bot.rate_per_sec",
    ),
    "response-08-welcome.bin": p.WelcomeResponse(3, 65536, "0.1.0", "0123456789ab"),
    "response-08-welcome-no-commit.bin": p.WelcomeResponse(3, 1024, "0.1.0", None),
    "response-09-rate-limited.bin": p.RateLimitedResponse(
        1500, 'rate limit of key "binance-hmac" reached (10/s); retry in 1500 ms'
    ),
    "response-10-status-report-admin.bin": p.StatusReportResponse(
        p.Status(p.KeystoreState.UNLOCKED, 2, 900, None, []),
        [
            p.KeyOrderRules(
                "binance-hmac",
                ["BTCUSDT", "ETHUSDT"],
                ["BUY"],
                ["LIMIT", "LIMIT_MAKER"],
                "0.5",
                "1000",
                300,
            ),
            p.KeyOrderRules("kraken"),
        ],
    ),
    "response-10-status-report.bin": p.StatusReportResponse(LOCKED, None),
    "response-11-stats.bin": p.StatsResponse(
        p.Stats(
            uptime_secs=86400,
            signatures=[
                p.SignatureCount("binance-hmac", p.Scheme.HMAC_SHA256, 1_000_000),
                p.SignatureCount("kraken", p.Scheme.HMAC_SHA512, 3),
            ],
            denials=[p.NamedCount("denied", 2), p.NamedCount("policy-violation", 7)],
            rate_limited=5,
            locked_refusals=1,
            audit_failures=0,
            audit_drops=0,
            connections_open=4,
            connections_accepted=130,
            connections_refused=2,
            unlocks=1,
            reloads=3,
            reload_failures=1,
        )
    ),
    "response-12-reloaded.bin": p.ReloadedResponse(True),
}

# file -> how it must be refused: "frame" (header alone), "incomplete", "request", "response"
INVALID = {
    "invalid-empty-frame.bin": "frame",
    "invalid-too-large-header.bin": "frame",
    "invalid-too-large-header-u32-max.bin": "frame",
    "invalid-truncated-frame.bin": "incomplete",
    "invalid-truncated-body.bin": "request",
    "invalid-trailing-bytes.bin": "request",
    "invalid-response-trailing-bytes.bin": "response",
    "invalid-unknown-request-variant.bin": "request",
    "invalid-response-unknown-variant.bin": "response",
    "invalid-variant-index-overflow.bin": "request",
    "invalid-bad-utf8-key-name.bin": "request",
    "invalid-varint-overflow.bin": "request",
    "invalid-varint-unterminated.bin": "request",
    "invalid-bad-option-tag.bin": "request",
    "invalid-unknown-scheme.bin": "request",
    "invalid-unknown-key-kind.bin": "request",
    "invalid-unknown-payload-format.bin": "request",
    "invalid-protocol-1-generate.bin": "request",
    "invalid-huge-sequence-count.bin": "request",
    "invalid-huge-string-length.bin": "request",
    "invalid-response-error-code-overflow.bin": "response",
    "invalid-response-unknown-scheme.bin": "response",
    "invalid-response-unknown-keystore-state.bin": "response",
    "invalid-response-bad-bool.bin": "response",
    "invalid-response-welcome-without-commit-field.bin": "response",
}


def read(name: str) -> bytes:
    return (fixture_dir() / name).read_bytes()


def whole_frame(data: bytes) -> bytes:
    split = p.split_frame(data, p.DEFAULT_MAX_FRAME)
    assert split is not None, "not a whole frame"
    body, rest = split
    assert rest == b"", "bytes after the frame"
    return body


def test_every_fixture_on_disk_is_listed_here():
    on_disk = {path.name for path in fixture_dir().glob("*.bin")}
    listed = set(REQUESTS) | set(RESPONSES) | set(INVALID)
    assert on_disk == listed, (on_disk - listed, listed - on_disk)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_valid_request_fixture_decodes_and_re_encodes_byte_identical(name):
    data = read(name)
    decoded = p.decode_request(whole_frame(data))
    assert decoded == REQUESTS[name]
    assert p.frame(p.encode_request(REQUESTS[name])) == data


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_valid_response_fixture_decodes_and_re_encodes_byte_identical(name):
    data = read(name)
    decoded = p.decode_response(whole_frame(data))
    assert decoded == RESPONSES[name]
    assert p.frame(p.encode_response(RESPONSES[name])) == data


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture_is_refused(name):
    data = read(name)
    target = INVALID[name]
    if target == "frame":
        # The header alone is refused, whatever follows it.
        with pytest.raises(p.FrameError):
            p.body_len(data[:4], p.DEFAULT_MAX_FRAME)
        with pytest.raises(p.FrameError):
            p.split_frame(data[:4], p.DEFAULT_MAX_FRAME)
        return
    if target == "incomplete":
        assert p.split_frame(data, p.DEFAULT_MAX_FRAME) is None
        return
    body = whole_frame(data)
    decode = p.decode_request if target == "request" else p.decode_response
    with pytest.raises(p.DecodeError):
        decode(body)


def test_the_worked_examples_in_protocol_md_are_the_fixture_bytes():
    text = (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    blocks = re.findall(r"File: `[^`]*?([a-z0-9-]+\.bin)`\n\n```text\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    for name, block in blocks:
        hexdigits = "".join(line.split("#")[0] for line in block.splitlines())
        assert bytes.fromhex(hexdigits) == read(name), name


@pytest.mark.parametrize(
    "value,encoded",
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (900, "8407"),
        (65535, "ffff03"),
        (65536, "808004"),
        (4294967295, "ffffffff0f"),
    ],
)
def test_varints_of_protocol_md_table(value, encoded):
    body = p.encode_response(p.HelloResponse(value, 0))
    assert body == b"\x00" + bytes.fromhex(encoded) + b"\x00"
    assert p.decode_response(body) == p.HelloResponse(value, 0)


@pytest.mark.parametrize(
    "body",
    [
        "00 81 00 00",  # non-canonical 1 (81 00)
        "06 80 80 04 00",  # u16 65536
        "00 ff ff ff ff 1f 00",  # u32 overflow
        "07 02 03 02",  # option tag 2
        "01 05 01 00",  # unknown scheme
        "05 00",  # Ok + trailing
        "",  # empty body
    ],
)
def test_strictness_beyond_the_fixtures(body):
    with pytest.raises(p.DecodeError):
        p.decode_response(bytes.fromhex(body))


def test_rate_limited_errors_carry_the_wait_from_the_field_or_the_message():
    from keyward.errors import error_from_daemon

    field_wins = keyward.RateLimitedError("retry in 5 ms", retry_after_ms=1500)
    assert field_wins.retry_after_ms == 1500 and field_wins.retry_after == 1.5
    from_v2 = error_from_daemon(ErrorCode.RATE_LIMITED, "rate limit reached; retry in 250 ms")
    assert isinstance(from_v2, keyward.RateLimitedError) and from_v2.retry_after_ms == 250
    burst = error_from_daemon(ErrorCode.BATCH_EXCEEDS_BURST, "a batch of 12 exceeds; split it")
    assert isinstance(burst, keyward.BatchExceedsBurstError)
    assert isinstance(burst, keyward.RateLimitedError), "old handlers still catch it"
    assert burst.retry_after_ms is None and burst.code == ErrorCode.BATCH_EXCEEDS_BURST


def test_unknown_error_codes_decode_as_plain_ints():
    response = p.decode_response(whole_frame(read("response-06-error-other-300.bin")))
    assert isinstance(response, p.ErrorResponse)
    assert response.code == 300 and not isinstance(response.code, ErrorCode)


def test_the_fast_sign_encoder_matches_the_fixture():
    from keyward import _core

    assert _core.sign_frame("binance-hmac", BINANCE_QUERY.decode()) == read("request-01-sign.bin")
    assert _core.sign_frame("binance-hmac", BINANCE_QUERY) == read("request-01-sign.bin")
    long = p.frame(p.encode_request(p.SignRequest("k", b"x" * 200)))
    assert _core.sign_frame("k", bytearray(b"x" * 200)) == long


def test_the_fast_signature_decoder_is_as_strict_as_the_codec():
    from keyward import _core

    good = read("response-01-signature.bin")[4:]
    assert _core.expect_signature_body(good) == bytes.fromhex(BINANCE_SIGNATURE)
    for bad in (good + b"\x00", good[:-1], b"\x01\x05" + good[2:]):
        with pytest.raises(keyward.ProtocolError):
            _core.expect_signature_body(bad)


SIGN_KEYS = ["k", "binance-hmac", "é-ключ", "n" * 127, "n" * 128, "m" * 300]
SIGN_LENGTHS = [0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 64 * 1024, 0x1FFFFF, 0x200000]


@pytest.mark.parametrize("key", SIGN_KEYS)
def test_the_fast_sign_encoder_equals_the_codec_for_every_length(key):
    """Its per-key prefix cache and its own length encoding against the generic encoder, at
    each width of the name's and the payload's varints (1, 2, 3 and 4 bytes)."""
    from keyward import _core

    for n in SIGN_LENGTHS:
        data = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        frame = p.frame(p.encode_request(p.SignRequest(key, data)), p.MAX_RESPONSE_FRAME)
        for payload in (data, bytearray(data), memoryview(data)):
            # Twice: the first builds the key's prefix, the second takes it from the cache.
            assert _core.sign_frame(key, payload) == frame, (key, n, type(payload))
            assert _core.sign_frame(key, payload) == frame, (key, n, type(payload))
    text = "price=0.1&note=" + "é" * 100
    assert _core.sign_frame(key, text) == _core.sign_frame(key, text.encode())


def test_the_fast_sign_encoder_refuses_what_the_codec_refuses():
    from keyward import _core

    class Name(str):
        pass

    # A str subclass is encoded as its text, and never cached.
    frame = p.frame(p.encode_request(p.SignRequest("sub", b"x")))
    assert _core.sign_frame(Name("sub"), b"x") == frame
    assert all(type(cached) is str for cached in _core._SIGN_HEADS)
    with pytest.raises(AttributeError):
        _core.sign_frame(b"bytes-key", b"x")  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        _core.sign_frame("\ud800", b"x")
    with pytest.raises(TypeError):
        _core.sign_frame("k", 42)  # type: ignore[arg-type]


def test_the_sign_prefix_cache_stays_bounded():
    from keyward import _core

    for i in range(3 * _core._SIGN_HEADS_MAX):
        name = f"key-{i}"
        assert _core.sign_frame(name, b"p") == p.frame(p.encode_request(p.SignRequest(name, b"p")))
        assert len(_core._SIGN_HEADS) <= _core._SIGN_HEADS_MAX


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_the_fast_signature_decoder_equals_the_codec_on_every_response(name):
    """Whatever the response, the fast path answers what decoding it in full answers: the
    signature of a Signature, else the same error."""
    from keyward import _core

    body = whole_frame(read(name))
    try:
        expected = _core.expect_signature(_core.decode(body))
    except keyward.KeywardError as err:
        with pytest.raises(type(err)) as caught:
            _core.expect_signature_body(body)
        assert (caught.value.code, str(caught.value)) == (err.code, str(err))
    else:
        assert _core.expect_signature_body(body) == expected


@pytest.mark.parametrize("scheme", list(p.Scheme))
@pytest.mark.parametrize("n", [0, 1, 32, 64, 0x7F, 0x80, 256, 512, 0x4000])
def test_the_fast_signature_decoder_equals_the_codec_for_every_length(scheme, n):
    from keyward import _core

    signature = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    body = p.encode_response(p.SignatureResponse(scheme, signature))
    assert _core.expect_signature_body(body) == signature
    for bad in (body + b"\x00", body[:-1] if n else body + b"\x01"):
        with pytest.raises(p.DecodeError):
            _core.decode(bad)
        with pytest.raises(p.DecodeError):
            _core.expect_signature_body(bad)


def test_secrets_are_not_in_reprs():
    text = repr(REQUESTS["request-05-import-encrypted-pem.bin"]) + repr(
        REQUESTS["request-12-change-passphrase.bin"]
    )
    assert "correct horse" not in text and "Tr0ub4dor" not in text and "MIGj" not in text
