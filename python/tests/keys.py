"""Test keys made in-process with `cryptography`, and independent signature checks."""

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Callable, List, Optional

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
BINANCE_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


@dataclass
class TestKey:
    """A key the test holds too: its import file, CLI arguments, and a verifier."""

    name: str
    scheme: str
    material: bytes
    import_args: List[str]
    verify: Callable[[bytes, bytes], None]  # (signature, payload); raises if wrong
    public_pem: Optional[str]
    signature_len: int


def _pkcs8(private) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki_pem(private) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def ed25519_key(name: str = "ed") -> TestKey:
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key()
    return TestKey(name, "ed25519", _pkcs8(private), [], public.verify, _spki_pem(private), 64)


def rsa_key(name: str = "rsa") -> TestKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key()

    def verify(signature: bytes, payload: bytes) -> None:
        public.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())

    pem = _spki_pem(private)
    return TestKey(name, "rsa-pkcs1v15-sha256", _pkcs8(private), [], verify, pem, 256)


def ecdsa_key(name: str = "ec") -> TestKey:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()

    def verify(signature: bytes, payload: bytes) -> None:
        # keyward sends fixed-width r || s (JWT ES256), not DER.
        assert len(signature) == 64
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        public.verify(encode_dss_signature(r, s), payload, ec.ECDSA(hashes.SHA256()))

    return TestKey(name, "ecdsa-p256-sha256", _pkcs8(private), [], verify, _spki_pem(private), 64)


def hmac_key(name: str, scheme: str, secret: Optional[bytes] = None) -> TestKey:
    secret = secret if secret is not None else os.urandom(32)
    digest = {"hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}[scheme]

    def verify(signature: bytes, payload: bytes) -> None:
        expected = hmac.new(secret, payload, digest).digest()
        if not hmac.compare_digest(signature, expected):
            raise AssertionError(f"HMAC mismatch: {signature.hex()} != {expected.hex()}")

    return TestKey(
        name,
        scheme,
        secret.hex().encode(),
        ["--scheme", scheme, "--secret-format", "hex"],
        verify,
        None,
        digest().digest_size,
    )


def all_keys() -> List[TestKey]:
    return [
        rsa_key(),
        ed25519_key(),
        hmac_key("h256", "hmac-sha256"),
        hmac_key("h512", "hmac-sha512"),
        ecdsa_key(),
    ]


def install(daemon, key: TestKey) -> TestKey:
    daemon.import_key(key.name, key.material, *key.import_args)
    return key
