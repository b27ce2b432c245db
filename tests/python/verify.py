#!/usr/bin/env python3
"""Checks a keyward signature with an implementation that shares no code with keyward.

    verify.py --scheme SCHEME --key FILE --payload FILE --signature FILE
              [--encoding raw|hex|base64|base64url] [--expect-bits N]
    verify.py --batch MANIFEST

SCHEME is a keyward scheme name: rsa-pkcs1v15-sha256, ed25519, ecdsa-p256-sha256, hmac-sha256
or hmac-sha512. For the asymmetric schemes FILE is the public key as SPKI PEM ("BEGIN PUBLIC
KEY"); for HMAC it holds the raw secret bytes. The payload file is signed byte for byte. The
signature file is what `keyward sign` printed: in `raw` encoding the bytes themselves, in the
text encodings one line that is decoded strictly (a trailing newline is allowed, nothing else).

Exit status: 0 the signature is valid, 1 it is not, 2 the check itself could not run (bad
arguments, unreadable or mismatched key, undecodable signature text). A test that expects
"does not verify" must see 1, never 2, so a broken check cannot pass for a rejected signature.

--batch checks many signatures in one process (Python's start-up is most of the cost of one
check). Each line of MANIFEST is tab-separated: SCHEME ENCODING BITS KEY PAYLOAD SIGNATURE,
with BITS "-" for no expectation. One line is printed per check: "valid", "invalid", or
"error: WHY". Exit status: 0 if every check ran (whatever its outcome), 2 otherwise.

Python's `cryptography` (OpenSSL underneath) checks RSA, Ed25519 and ECDSA; HMAC is Python's
own `hmac` module. ECDSA signatures from keyward are fixed-width r||s (64 bytes, as JWT ES256
wants); they are converted to the DER form `cryptography` expects with encode_dss_signature.
"""

import argparse
import base64
import hashlib
import hmac
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

SCHEMES = (
    "rsa-pkcs1v15-sha256",
    "ed25519",
    "ecdsa-p256-sha256",
    "hmac-sha256",
    "hmac-sha512",
)


class CheckError(Exception):
    """The check could not be made (exit 2), as opposed to a signature that is invalid."""


def decode_signature(data: bytes, encoding: str) -> bytes:
    if encoding == "raw":
        return data
    text = data.decode("ascii", errors="strict")
    if text.endswith("\n"):
        text = text[:-1]
    if encoding == "hex":
        if not re.fullmatch(r"(?:[0-9a-f]{2})+", text):
            raise CheckError(f"not lowercase hex: {text!r}")
        return bytes.fromhex(text)
    if encoding == "base64":
        if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text) or len(text) % 4:
            raise CheckError(f"not padded standard base64: {text!r}")
        return base64.b64decode(text, validate=True)
    if encoding == "base64url":
        # RFC 4648 section 5 without padding, as JWT writes signatures.
        if not re.fullmatch(r"[A-Za-z0-9_-]+", text) or len(text) % 4 == 1:
            raise CheckError(f"not unpadded base64url: {text!r}")
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    raise CheckError(f"unknown encoding {encoding!r}")


def load_public_key(pem: bytes, scheme: str, expect_bits):
    key = serialization.load_pem_public_key(pem)
    wanted = {
        "rsa-pkcs1v15-sha256": rsa.RSAPublicKey,
        "ed25519": ed25519.Ed25519PublicKey,
        "ecdsa-p256-sha256": ec.EllipticCurvePublicKey,
    }[scheme]
    if not isinstance(key, wanted):
        raise CheckError(f"the public key is a {type(key).__name__}, not a {scheme} key")
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise CheckError(f"the EC key is on {key.curve.name}, not P-256")
    if expect_bits is not None:
        bits = key.key_size if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)) else 256
        if bits != expect_bits:
            raise CheckError(f"the key has {bits} bits, not {expect_bits}")
    return key


def is_valid(scheme: str, key_bytes: bytes, payload: bytes, signature: bytes, expect_bits) -> bool:
    if scheme in ("hmac-sha256", "hmac-sha512"):
        digest = hashlib.sha256 if scheme == "hmac-sha256" else hashlib.sha512
        expected = hmac.new(key_bytes, payload, digest).digest()
        return hmac.compare_digest(expected, signature)

    key = load_public_key(key_bytes, scheme, expect_bits)
    try:
        if scheme == "rsa-pkcs1v15-sha256":
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif scheme == "ed25519":
            key.verify(signature, payload)
        else:
            if len(signature) != 64:
                print(f"ECDSA P-256 r||s must be 64 bytes, got {len(signature)}", file=sys.stderr)
                return False
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_files(scheme, encoding, expect_bits, key_path, payload_path, signature_path) -> bool:
    if scheme not in SCHEMES:
        raise CheckError(f"unknown scheme {scheme!r}")
    with open(key_path, "rb") as f:
        key_bytes = f.read()
    with open(payload_path, "rb") as f:
        payload = f.read()
    with open(signature_path, "rb") as f:
        signature = decode_signature(f.read(), encoding)
    return is_valid(scheme, key_bytes, payload, signature, expect_bits)


def run_batch(manifest: str) -> int:
    status = 0
    with open(manifest, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        try:
            scheme, encoding, bits, key, payload, signature = line.split("\t")
            expect_bits = None if bits == "-" else int(bits)
            valid = check_files(scheme, encoding, expect_bits, key, payload, signature)
            print("valid" if valid else "invalid")
        except Exception as err:  # noqa: BLE001 - reported per line, never as "invalid"
            print(f"error: {type(err).__name__}: {err}".replace("\n", " "))
            status = 2
    return status


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--batch":
        return run_batch(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", required=True, choices=SCHEMES)
    parser.add_argument("--key", required=True, help="SPKI PEM public key, or the raw HMAC secret")
    parser.add_argument("--payload", required=True)
    parser.add_argument("--signature", required=True)
    parser.add_argument("--encoding", default="raw", choices=("raw", "hex", "base64", "base64url"))
    parser.add_argument("--expect-bits", type=int, help="fail (exit 2) unless the key has this size")
    args = parser.parse_args()

    try:
        valid = check_files(
            args.scheme, args.encoding, args.expect_bits, args.key, args.payload, args.signature
        )
    except Exception as err:  # noqa: BLE001 - any failure to check is exit 2, never "invalid"
        print(f"verify.py: cannot check: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if valid:
        return 0
    print("verify.py: signature is NOT valid", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
