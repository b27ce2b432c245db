"""The keyward wire protocol, version 3 (docs/PROTOCOL.md), without any I/O.

A frame is a 4-byte big-endian body length followed by the body: one postcard-encoded
``Request`` (client to daemon) or ``Response`` (daemon to client). This module encodes and
decodes both directions, so that it can be checked against every golden fixture of the
protocol; the client only needs requests out and responses in.

Decoding is strict, as the Rust crate's is: unknown variant indices, over-long or
non-canonical varints, bad option tags, invalid UTF-8, lengths beyond the bytes left and
trailing bytes are all refused with :class:`DecodeError`; a bad frame header with
:class:`FrameError`. No input makes the decoder allocate more than the body it was given.
"""

import base64
import enum
import struct
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .errors import ErrorCode, ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "DEFAULT_MAX_FRAME",
    "MAX_RESPONSE_FRAME",
    "MAX_BATCH",
    "HEADER_LEN",
    "Scheme",
    "KeyKind",
    "KeystoreState",
    "KeyInfo",
    "UnreadableKey",
    "Status",
    "DecodeError",
    "FrameError",
    "Request",
    "Response",
    "HelloRequest",
    "SignRequest",
    "SignBatchRequest",
    "ListRequest",
    "PublicKeyRequest",
    "ImportRequest",
    "PayloadFormat",
    "GenerateRequest",
    "RemoveRequest",
    "StatusRequest",
    "InitRequest",
    "UnlockRequest",
    "LockRequest",
    "ChangePassphraseRequest",
    "HelloResponse",
    "SignatureResponse",
    "SignaturesResponse",
    "KeysResponse",
    "KeyResponse",
    "OkResponse",
    "ErrorResponse",
    "StatusResponse",
    "StatsRequest",
    "ReloadRequest",
    "SetPassphraseRequest",
    "SignPassphraseRequest",
    "Welcome",
    "WelcomeResponse",
    "RateLimitedResponse",
    "KeyOrderRules",
    "StatusReportResponse",
    "SignatureCount",
    "NamedCount",
    "Stats",
    "StatsResponse",
    "ReloadedResponse",
    "MIN_PROTOCOL_VERSION",
    "encode_request",
    "encode_response",
    "decode_request",
    "decode_response",
    "frame",
    "body_len",
    "split_frame",
]

#: The protocol version this module speaks, sent in ``Hello``.
PROTOCOL_VERSION = 3
#: The oldest version a version 3 daemon still speaks (and this client falls back to).
MIN_PROTOCOL_VERSION = 2
#: The daemon's default request body limit; a client assumes it until the daemon's Hello.
DEFAULT_MAX_FRAME = 64 * 1024
#: The largest response body a client accepts (16 MiB).
MAX_RESPONSE_FRAME = 16 * 1024 * 1024
#: The most payloads one ``SignBatch`` may carry.
MAX_BATCH = 1024
#: Length of the frame header.
HEADER_LEN = 4

_HEADER = struct.Struct(">I")


# ---- errors ----


class DecodeError(ProtocolError):
    """A body that is not a valid message (PROTOCOL.md section 4.6)."""


class FrameError(ProtocolError):
    """A frame header that must not be accepted: an empty body, or one above the limit.

    ``length`` is the announced body length and ``limit`` the limit in force (``None`` for an
    empty frame).
    """

    def __init__(self, message: str, length: int, limit: Optional[int]) -> None:
        super().__init__(message)
        self.length = length
        self.limit = limit


# ---- enums carried on the wire by their index ----


class Scheme(str, enum.Enum):
    """A signature scheme; the value is its text name (CLI, config, JSON)."""

    RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"
    HMAC_SHA512 = "hmac-sha512"
    ECDSA_P256_SHA256 = "ecdsa-p256-sha256"

    @property
    def is_hmac(self) -> bool:
        """True for the symmetric schemes, which have no public key."""
        return self in (Scheme.HMAC_SHA256, Scheme.HMAC_SHA512)

    def __str__(self) -> str:
        return self.value


class KeyKind(str, enum.Enum):
    """What ``Generate`` makes."""

    ED25519 = "ed25519"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ECDSA_P256 = "ecdsa-p256"

    def __str__(self) -> str:
        return self.value


class PayloadFormat(str, enum.Enum):
    """The exchange format a key's payloads are parsed in, for its payload rules
    (docs/POLICY.md); the value is its config name."""

    BINANCE = "binance"
    BYBIT = "bybit"
    OKX = "okx"
    KUCOIN = "kucoin"
    BITGET = "bitget"
    KRAKEN = "kraken"
    COINBASE_JWT = "coinbase-jwt"
    RAW = "raw"

    def __str__(self) -> str:
        return self.value


class KeystoreState(str, enum.Enum):
    """The daemon's keystore state."""

    UNINITIALIZED = "uninitialized"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    EPHEMERAL = "ephemeral"

    def __str__(self) -> str:
        return self.value


# Wire index = position in declaration order (PROTOCOL.md 5.3, 5.4, 5.5).
_SCHEMES: Tuple[Scheme, ...] = tuple(Scheme)
_KINDS: Tuple[KeyKind, ...] = tuple(KeyKind)
_STATES: Tuple[KeystoreState, ...] = tuple(KeystoreState)
_FORMATS: Tuple[PayloadFormat, ...] = tuple(PayloadFormat)
_FORMAT_INDEX: Dict[PayloadFormat, int] = {f: i for i, f in enumerate(_FORMATS)}
_SCHEME_INDEX: Dict[Scheme, int] = {s: i for i, s in enumerate(_SCHEMES)}
_KIND_INDEX: Dict[KeyKind, int] = {k: i for i, k in enumerate(_KINDS)}
_STATE_INDEX: Dict[KeystoreState, int] = {s: i for i, s in enumerate(_STATES)}


# ---- structs ----


@dataclass(frozen=True)
class KeyInfo:
    """One key as the daemon describes it. Never contains private material."""

    name: str
    scheme: Scheme
    #: Key size: the RSA modulus; 256 for Ed25519 and P-256; secret length x 8 for HMAC.
    bits: int
    #: DER SubjectPublicKeyInfo; ``None`` for HMAC keys.
    public_key: Optional[bytes] = None
    #: ``SHA256:`` + unpadded base64 of SHA-256 over ``public_key``; ``None`` for HMAC keys.
    fingerprint: Optional[str] = None
    #: The exchange's API key id, if one was given.
    api_key: Optional[str] = None
    #: The payload format in force for this key's rules, if any (protocol version 2).
    format: Optional[PayloadFormat] = None

    @property
    def public_key_pem(self) -> Optional[str]:
        """The public key as SPKI PEM (what exchanges ask you to upload), or ``None``."""
        if self.public_key is None:
            return None
        body = "\n".join(textwrap.wrap(base64.b64encode(self.public_key).decode("ascii"), 64))
        return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


@dataclass(frozen=True)
class UnreadableKey:
    """A key file that could not be read at the last unlock, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Status:
    """The keystore's state."""

    state: KeystoreState
    #: Number of usable keys.
    keys: int
    #: Seconds until the idle auto-lock, if armed.
    idle_lock_in: Optional[int] = None
    #: Seconds until the maximum-lifetime auto-lock, if armed.
    max_unlock_in: Optional[int] = None
    unreadable: List[UnreadableKey] = field(default_factory=list)


# ---- requests (client to daemon), in variant index order ----


@dataclass(frozen=True)
class HelloRequest:
    """0: opens the conversation."""

    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class SignRequest:
    """1: sign ``payload`` with the key ``key``."""

    key: str
    payload: bytes


@dataclass(frozen=True)
class SignBatchRequest:
    """2: sign each payload with one key, in one round trip."""

    key: str
    payloads: List[bytes]


@dataclass(frozen=True)
class ListRequest:
    """3: list the keys this peer may see."""


@dataclass(frozen=True)
class PublicKeyRequest:
    """4: describe one key, with its public key."""

    key: str


@dataclass(frozen=True)
class ImportRequest:
    """5: add a key from private material (admin). ``material`` and ``pem_passphrase`` are
    secrets and never shown by ``repr``."""

    name: str
    scheme: Optional[Scheme]
    material: bytes = field(repr=False)
    pem_passphrase: Optional[bytes] = field(default=None, repr=False)
    api_key: Optional[str] = None
    format: Optional[PayloadFormat] = None


@dataclass(frozen=True)
class GenerateRequest:
    """6: generate a key inside the daemon (admin)."""

    name: str
    kind: KeyKind
    api_key: Optional[str] = None
    format: Optional[PayloadFormat] = None


@dataclass(frozen=True)
class RemoveRequest:
    """7: delete a key (admin)."""

    name: str


@dataclass(frozen=True)
class StatusRequest:
    """8: report the keystore's state."""


@dataclass(frozen=True)
class InitRequest:
    """9: create the keystore (admin)."""

    passphrase: bytes = field(repr=False)


@dataclass(frozen=True)
class UnlockRequest:
    """10: unlock the keystore (admin)."""

    passphrase: bytes = field(repr=False)


@dataclass(frozen=True)
class LockRequest:
    """11: lock the keystore (admin)."""


@dataclass(frozen=True)
class ChangePassphraseRequest:
    """12: change the keystore passphrase (admin)."""

    old: bytes = field(repr=False)
    new: bytes = field(repr=False)


@dataclass(frozen=True)
class StatsRequest:
    """13: the daemon's counters (version 3; an admin or a monitor)."""


@dataclass(frozen=True)
class ReloadRequest:
    """14: re-read the config file and put its policy in force (version 3; admin)."""


@dataclass(frozen=True)
class SetPassphraseRequest:
    """15: store ``passphrase`` (sealed, never returned) with the HMAC key ``key``;
    ``None`` removes it (version 3; admin)."""

    key: str
    passphrase: Optional[bytes] = field(default=None, repr=False)


@dataclass(frozen=True)
class SignPassphraseRequest:
    """16: the HMAC of the passphrase stored with ``key``, answered by a signature
    (version 3; whoever may sign with the key)."""

    key: str


Request = Union[
    HelloRequest,
    SignRequest,
    SignBatchRequest,
    ListRequest,
    PublicKeyRequest,
    ImportRequest,
    GenerateRequest,
    RemoveRequest,
    StatusRequest,
    InitRequest,
    UnlockRequest,
    LockRequest,
    ChangePassphraseRequest,
    StatsRequest,
    ReloadRequest,
    SetPassphraseRequest,
    SignPassphraseRequest,
]


# ---- responses (daemon to client), in variant index order ----


@dataclass(frozen=True)
class HelloResponse:
    """0: the handshake answer, with the daemon's request size limit."""

    version: int
    max_frame: int


@dataclass(frozen=True)
class SignatureResponse:
    """1: one raw signature."""

    scheme: Scheme
    signature: bytes


@dataclass(frozen=True)
class SignaturesResponse:
    """2: one raw signature per payload of a ``SignBatch``, in order."""

    scheme: Scheme
    signatures: List[bytes]


@dataclass(frozen=True)
class KeysResponse:
    """3: the keys this peer may see, sorted by name."""

    keys: List[KeyInfo]


@dataclass(frozen=True)
class KeyResponse:
    """4: one key."""

    key: KeyInfo


@dataclass(frozen=True)
class OkResponse:
    """5: success with nothing to report."""


@dataclass(frozen=True)
class ErrorResponse:
    """6: the request failed; ``code`` is an :class:`~keyward.ErrorCode` or another u16."""

    code: int
    message: str


@dataclass(frozen=True)
class StatusResponse:
    """7: the keystore's state."""

    status: Status


@dataclass(frozen=True)
class WelcomeResponse:
    """8: the handshake answer in version 3: ``HelloResponse``'s fields and which daemon this
    is (``daemon_commit`` as ``keywardd --version`` prints it, ``None`` if unknown)."""

    version: int
    max_frame: int
    daemon_version: str
    daemon_commit: Optional[str] = None


#: What a version 3 handshake learns; the same type as its response.
Welcome = WelcomeResponse


@dataclass(frozen=True)
class RateLimitedResponse:
    """9: the key's rate limit is exhausted; the same request can succeed after
    ``retry_after_ms`` milliseconds (version 3)."""

    retry_after_ms: int
    message: str


@dataclass(frozen=True)
class KeyOrderRules:
    """The order rules in force for one key. Empty lists and ``None`` limits are no rule.
    Limits are exact decimal strings."""

    key: str
    allow_symbols: List[str] = field(default_factory=list)
    allow_sides: List[str] = field(default_factory=list)
    allow_order_types: List[str] = field(default_factory=list)
    max_quantity: Optional[str] = None
    max_notional: Optional[str] = None
    orders_per_minute: Optional[int] = None


@dataclass(frozen=True)
class StatusReportResponse:
    """10: the keystore's state and, for an admin only, each key's order rules (``None``
    otherwise); version 3's answer to ``Status``."""

    status: Status
    order_rules: Optional[List[KeyOrderRules]] = None


@dataclass(frozen=True)
class SignatureCount:
    """Signatures one key made with one scheme."""

    key: str
    scheme: Scheme
    count: int


@dataclass(frozen=True)
class NamedCount:
    """A counter with a name, e.g. the denials of one reason."""

    name: str
    count: int


@dataclass(frozen=True)
class Stats:
    """The daemon's counters since it started (docs/PROTOCOL.md 5.9)."""

    uptime_secs: int
    signatures: List[SignatureCount]
    denials: List[NamedCount]
    rate_limited: int
    locked_refusals: int
    audit_failures: int
    audit_drops: int
    connections_open: int
    connections_accepted: int
    connections_refused: int
    unlocks: int
    reloads: int
    reload_failures: int


#: The ``u64`` fields of :class:`Stats` after the two lists, in wire order.
_STATS_COUNTERS = (
    "rate_limited",
    "locked_refusals",
    "audit_failures",
    "audit_drops",
    "connections_open",
    "connections_accepted",
    "connections_refused",
    "unlocks",
    "reloads",
    "reload_failures",
)


@dataclass(frozen=True)
class StatsResponse:
    """11: the daemon's counters."""

    stats: Stats


@dataclass(frozen=True)
class ReloadedResponse:
    """12: the reloaded policy is in force; ``daemon_section_changed``: the ``[daemon]``
    section changed too and applies only at the next start."""

    daemon_section_changed: bool


Response = Union[
    HelloResponse,
    SignatureResponse,
    SignaturesResponse,
    KeysResponse,
    KeyResponse,
    OkResponse,
    ErrorResponse,
    StatusResponse,
    WelcomeResponse,
    RateLimitedResponse,
    StatusReportResponse,
    StatsResponse,
    ReloadedResponse,
]


# ---- encoding ----


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _check_range(value: int, bits: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise ValueError(f"{what} must be an integer in 0..2^{bits}, not {value!r}")
    return value


class _Writer:
    __slots__ = ("out",)

    def __init__(self, variant: int) -> None:
        self.out = bytearray(_varint(variant))

    def uint(self, value: int, bits: int, what: str) -> None:
        self.out += _varint(_check_range(value, bits, what))

    def bytes_(self, value: bytes) -> None:
        self.out += _varint(len(value))
        self.out += value

    def string(self, value: str) -> None:
        self.bytes_(value.encode("utf-8"))

    def tag(self, present: bool) -> None:
        self.out.append(1 if present else 0)

    def opt_string(self, value: Optional[str]) -> None:
        self.tag(value is not None)
        if value is not None:
            self.string(value)

    def opt_bytes(self, value: Optional[bytes]) -> None:
        self.tag(value is not None)
        if value is not None:
            self.bytes_(value)

    def opt_uint(self, value: Optional[int], bits: int, what: str) -> None:
        self.tag(value is not None)
        if value is not None:
            self.uint(value, bits, what)

    def seq_bytes(self, values: Sequence[bytes]) -> None:
        self.out += _varint(len(values))
        for value in values:
            self.bytes_(value)

    def key_info(self, key: KeyInfo) -> None:
        self.string(key.name)
        self.out += _varint(_SCHEME_INDEX[Scheme(key.scheme)])
        self.uint(key.bits, 32, "bits")
        self.opt_bytes(key.public_key)
        self.opt_string(key.fingerprint)
        self.opt_string(key.api_key)
        self.opt_format(key.format)

    def seq_string(self, values: Sequence[str]) -> None:
        self.out += _varint(len(values))
        for value in values:
            self.string(value)

    def status(self, status: Status) -> None:
        self.out += _varint(_STATE_INDEX[KeystoreState(status.state)])
        self.uint(status.keys, 32, "keys")
        self.opt_uint(status.idle_lock_in, 64, "idle_lock_in")
        self.opt_uint(status.max_unlock_in, 64, "max_unlock_in")
        self.out += _varint(len(status.unreadable))
        for unreadable in status.unreadable:
            self.string(unreadable.name)
            self.string(unreadable.reason)

    def order_rules(self, rules: KeyOrderRules) -> None:
        self.string(rules.key)
        self.seq_string(rules.allow_symbols)
        self.seq_string(rules.allow_sides)
        self.seq_string(rules.allow_order_types)
        self.opt_string(rules.max_quantity)
        self.opt_string(rules.max_notional)
        self.opt_uint(rules.orders_per_minute, 32, "orders_per_minute")

    def opt_format(self, value: Optional[PayloadFormat]) -> None:
        self.tag(value is not None)
        if value is not None:
            self.out += _varint(_FORMAT_INDEX[PayloadFormat(value)])


def encode_request(request: Request) -> bytes:
    """The body (without frame header) of ``request``."""
    if isinstance(request, SignRequest):
        w = _Writer(1)
        w.string(request.key)
        w.bytes_(request.payload)
    elif isinstance(request, HelloRequest):
        w = _Writer(0)
        w.uint(request.version, 32, "version")
    elif isinstance(request, SignBatchRequest):
        w = _Writer(2)
        w.string(request.key)
        w.seq_bytes(request.payloads)
    elif isinstance(request, ListRequest):
        w = _Writer(3)
    elif isinstance(request, PublicKeyRequest):
        w = _Writer(4)
        w.string(request.key)
    elif isinstance(request, ImportRequest):
        w = _Writer(5)
        w.string(request.name)
        w.tag(request.scheme is not None)
        if request.scheme is not None:
            w.out += _varint(_SCHEME_INDEX[Scheme(request.scheme)])
        w.bytes_(request.material)
        w.opt_bytes(request.pem_passphrase)
        w.opt_string(request.api_key)
        w.opt_format(request.format)
    elif isinstance(request, GenerateRequest):
        w = _Writer(6)
        w.string(request.name)
        w.out += _varint(_KIND_INDEX[KeyKind(request.kind)])
        w.opt_string(request.api_key)
        w.opt_format(request.format)
    elif isinstance(request, RemoveRequest):
        w = _Writer(7)
        w.string(request.name)
    elif isinstance(request, StatusRequest):
        w = _Writer(8)
    elif isinstance(request, InitRequest):
        w = _Writer(9)
        w.bytes_(request.passphrase)
    elif isinstance(request, UnlockRequest):
        w = _Writer(10)
        w.bytes_(request.passphrase)
    elif isinstance(request, LockRequest):
        w = _Writer(11)
    elif isinstance(request, ChangePassphraseRequest):
        w = _Writer(12)
        w.bytes_(request.old)
        w.bytes_(request.new)
    elif isinstance(request, StatsRequest):
        w = _Writer(13)
    elif isinstance(request, ReloadRequest):
        w = _Writer(14)
    elif isinstance(request, SetPassphraseRequest):
        w = _Writer(15)
        w.string(request.key)
        w.opt_bytes(request.passphrase)
    elif isinstance(request, SignPassphraseRequest):
        w = _Writer(16)
        w.string(request.key)
    else:
        raise TypeError(f"not a request: {type(request).__name__}")
    return bytes(w.out)


def encode_response(response: Response) -> bytes:
    """The body (without frame header) of ``response``."""
    if isinstance(response, SignatureResponse):
        w = _Writer(1)
        w.out += _varint(_SCHEME_INDEX[Scheme(response.scheme)])
        w.bytes_(response.signature)
    elif isinstance(response, HelloResponse):
        w = _Writer(0)
        w.uint(response.version, 32, "version")
        w.uint(response.max_frame, 32, "max_frame")
    elif isinstance(response, SignaturesResponse):
        w = _Writer(2)
        w.out += _varint(_SCHEME_INDEX[Scheme(response.scheme)])
        w.seq_bytes(response.signatures)
    elif isinstance(response, KeysResponse):
        w = _Writer(3)
        w.out += _varint(len(response.keys))
        for key in response.keys:
            w.key_info(key)
    elif isinstance(response, KeyResponse):
        w = _Writer(4)
        w.key_info(response.key)
    elif isinstance(response, OkResponse):
        w = _Writer(5)
    elif isinstance(response, ErrorResponse):
        w = _Writer(6)
        w.uint(int(response.code), 16, "error code")
        w.string(response.message)
    elif isinstance(response, StatusResponse):
        w = _Writer(7)
        w.status(response.status)
    elif isinstance(response, WelcomeResponse):
        w = _Writer(8)
        w.uint(response.version, 32, "version")
        w.uint(response.max_frame, 32, "max_frame")
        w.string(response.daemon_version)
        w.opt_string(response.daemon_commit)
    elif isinstance(response, RateLimitedResponse):
        w = _Writer(9)
        w.uint(response.retry_after_ms, 64, "retry_after_ms")
        w.string(response.message)
    elif isinstance(response, StatusReportResponse):
        w = _Writer(10)
        w.status(response.status)
        w.tag(response.order_rules is not None)
        if response.order_rules is not None:
            w.out += _varint(len(response.order_rules))
            for rules in response.order_rules:
                w.order_rules(rules)
    elif isinstance(response, StatsResponse):
        w = _Writer(11)
        stats = response.stats
        w.uint(stats.uptime_secs, 64, "uptime_secs")
        w.out += _varint(len(stats.signatures))
        for count in stats.signatures:
            w.string(count.key)
            w.out += _varint(_SCHEME_INDEX[Scheme(count.scheme)])
            w.uint(count.count, 64, "count")
        w.out += _varint(len(stats.denials))
        for named in stats.denials:
            w.string(named.name)
            w.uint(named.count, 64, "count")
        for name in _STATS_COUNTERS:
            w.uint(getattr(stats, name), 64, name)
    elif isinstance(response, ReloadedResponse):
        w = _Writer(12)
        w.tag(bool(response.daemon_section_changed))
    else:
        raise TypeError(f"not a response: {type(response).__name__}")
    return bytes(w.out)


def frame(body: bytes, limit: int = DEFAULT_MAX_FRAME) -> bytes:
    """``body`` with its 4-byte header; refuses an empty body or one above ``limit``."""
    n = len(body)
    if n == 0:
        raise FrameError("empty frame", 0, None)
    if n > limit:
        raise FrameError(f"frame of {n} bytes exceeds the limit of {limit} bytes", n, limit)
    return _HEADER.pack(n) + body


# ---- framing ----


def body_len(header: bytes, limit: int) -> int:
    """The body length a 4-byte header announces, checked against ``limit`` before any body
    byte is read."""
    n: int = _HEADER.unpack(header)[0]
    if n == 0:
        raise FrameError("empty frame", 0, None)
    if n > limit:
        raise FrameError(f"frame of {n} bytes exceeds the limit of {limit} bytes", n, limit)
    return n


def split_frame(buf: bytes, limit: int) -> Optional[Tuple[bytes, bytes]]:
    """Splits one frame off the front of ``buf``: ``(body, rest)``, or ``None`` when ``buf``
    does not hold a whole frame yet. An invalid header fails at once, whatever follows."""
    if len(buf) < HEADER_LEN:
        return None
    n = body_len(bytes(buf[:HEADER_LEN]), limit)
    end = HEADER_LEN + n
    if len(buf) < end:
        return None
    return bytes(buf[HEADER_LEN:end]), bytes(buf[end:])


# ---- decoding ----


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def uint(self, bits: int) -> int:
        """A canonical unsigned LEB128 varint of a ``bits``-bit type (PROTOCOL.md 4.1)."""
        buf = self.buf
        max_len = (bits + 6) // 7
        # Bits of the last allowed byte that fit the type: 16 -> 0x03, 32 -> 0x0f, 64 -> 0x01.
        last_max = (1 << (bits - 7 * (max_len - 1))) - 1
        value = 0
        for i in range(max_len):
            if self.pos >= len(buf):
                raise DecodeError("message ends inside a varint")
            byte = buf[self.pos]
            self.pos += 1
            if i == max_len - 1 and byte > last_max:
                raise DecodeError(f"varint overflows a u{bits}")
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if byte == 0 and i > 0:
                    raise DecodeError("non-canonical varint (longer than needed)")
                return value
        raise DecodeError(f"varint of a u{bits} is longer than {max_len} bytes")

    def length(self) -> int:
        """A length or count (``usize``), checked against the bytes left before any use."""
        n = self.uint(64)
        if n > len(self.buf) - self.pos:
            raise DecodeError(f"length {n} exceeds the {len(self.buf) - self.pos} bytes left")
        return n

    def bytes_(self) -> bytes:
        n = self.length()
        start = self.pos
        self.pos += n
        return bytes(self.buf[start : self.pos])

    def string(self) -> str:
        raw = self.bytes_()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("string is not valid UTF-8") from None

    def present(self) -> bool:
        if self.pos >= len(self.buf):
            raise DecodeError("message ends before an option tag")
        tag = self.buf[self.pos]
        self.pos += 1
        if tag > 1:
            raise DecodeError(f"option tag {tag:#04x} is neither 00 nor 01")
        return tag == 1

    def opt_string(self) -> Optional[str]:
        return self.string() if self.present() else None

    def opt_bytes(self) -> Optional[bytes]:
        return self.bytes_() if self.present() else None

    def seq_bytes(self) -> List[bytes]:
        # Every element takes at least one byte, so `length()` bounds the count too.
        return [self.bytes_() for _ in range(self.length())]

    def index(self, table: Sequence[object], what: str) -> int:
        i = self.uint(32)
        if i >= len(table):
            raise DecodeError(f"unknown {what} {i}")
        return i

    def scheme(self) -> Scheme:
        return _SCHEMES[self.index(_SCHEMES, "scheme")]

    def key_info(self) -> KeyInfo:
        return KeyInfo(
            name=self.string(),
            scheme=self.scheme(),
            bits=self.uint(32),
            public_key=self.opt_bytes(),
            fingerprint=self.opt_string(),
            api_key=self.opt_string(),
            format=self.opt_format(),
        )

    def bool_(self) -> bool:
        if self.pos >= len(self.buf):
            raise DecodeError("message ends before a bool")
        byte = self.buf[self.pos]
        self.pos += 1
        if byte > 1:
            raise DecodeError(f"bool {byte:#04x} is neither 00 nor 01")
        return byte == 1

    def seq_string(self) -> List[str]:
        return [self.string() for _ in range(self.length())]

    def status(self) -> Status:
        state = _STATES[self.index(_STATES, "keystore state")]
        keys = self.uint(32)
        idle = self.uint(64) if self.present() else None
        max_unlock = self.uint(64) if self.present() else None
        unreadable = [UnreadableKey(self.string(), self.string()) for _ in range(self.length())]
        return Status(state, keys, idle, max_unlock, unreadable)

    def order_rules(self) -> KeyOrderRules:
        return KeyOrderRules(
            key=self.string(),
            allow_symbols=self.seq_string(),
            allow_sides=self.seq_string(),
            allow_order_types=self.seq_string(),
            max_quantity=self.opt_string(),
            max_notional=self.opt_string(),
            orders_per_minute=self.uint(32) if self.present() else None,
        )

    def opt_format(self) -> Optional[PayloadFormat]:
        return _FORMATS[self.index(_FORMATS, "payload format")] if self.present() else None

    def end(self) -> None:
        left = len(self.buf) - self.pos
        if left:
            raise DecodeError(f"{left} trailing byte(s) after the message")


def _req_hello(r: _Reader) -> Request:
    return HelloRequest(r.uint(32))


def _req_sign(r: _Reader) -> Request:
    return SignRequest(r.string(), r.bytes_())


def _req_sign_batch(r: _Reader) -> Request:
    return SignBatchRequest(r.string(), r.seq_bytes())


def _req_import(r: _Reader) -> Request:
    name = r.string()
    scheme = r.scheme() if r.present() else None
    return ImportRequest(
        name, scheme, r.bytes_(), r.opt_bytes(), r.opt_string(), r.opt_format()
    )


def _req_generate(r: _Reader) -> Request:
    name = r.string()
    kind = _KINDS[r.index(_KINDS, "key kind")]
    return GenerateRequest(name, kind, r.opt_string(), r.opt_format())


_REQUESTS: Tuple[Callable[[_Reader], Request], ...] = (
    _req_hello,
    _req_sign,
    _req_sign_batch,
    lambda r: ListRequest(),
    lambda r: PublicKeyRequest(r.string()),
    _req_import,
    _req_generate,
    lambda r: RemoveRequest(r.string()),
    lambda r: StatusRequest(),
    lambda r: InitRequest(r.bytes_()),
    lambda r: UnlockRequest(r.bytes_()),
    lambda r: LockRequest(),
    lambda r: ChangePassphraseRequest(r.bytes_(), r.bytes_()),
    lambda r: StatsRequest(),
    lambda r: ReloadRequest(),
    lambda r: SetPassphraseRequest(r.string(), r.opt_bytes()),
    lambda r: SignPassphraseRequest(r.string()),
)


def _resp_keys(r: _Reader) -> Response:
    # Each KeyInfo takes at least 9 bytes; `length()` already bounds the count by the body.
    return KeysResponse([r.key_info() for _ in range(r.length())])


def _resp_error(r: _Reader) -> Response:
    code = r.uint(16)
    return ErrorResponse(_error_code(code), r.string())


def _resp_status(r: _Reader) -> Response:
    return StatusResponse(r.status())


def _resp_welcome(r: _Reader) -> Response:
    return WelcomeResponse(r.uint(32), r.uint(32), r.string(), r.opt_string())


def _resp_status_report(r: _Reader) -> Response:
    status = r.status()
    rules = [r.order_rules() for _ in range(r.length())] if r.present() else None
    return StatusReportResponse(status, rules)


def _resp_stats(r: _Reader) -> Response:
    uptime = r.uint(64)
    signatures = [SignatureCount(r.string(), r.scheme(), r.uint(64)) for _ in range(r.length())]
    denials = [NamedCount(r.string(), r.uint(64)) for _ in range(r.length())]
    counters = {name: r.uint(64) for name in _STATS_COUNTERS}
    return StatsResponse(Stats(uptime, signatures, denials, **counters))


def _error_code(code: int) -> int:
    try:
        return ErrorCode(code)
    except ValueError:
        return code


_RESPONSES: Tuple[Callable[[_Reader], Response], ...] = (
    lambda r: HelloResponse(r.uint(32), r.uint(32)),
    lambda r: SignatureResponse(r.scheme(), r.bytes_()),
    lambda r: SignaturesResponse(r.scheme(), r.seq_bytes()),
    _resp_keys,
    lambda r: KeyResponse(r.key_info()),
    lambda r: OkResponse(),
    _resp_error,
    _resp_status,
    _resp_welcome,
    lambda r: RateLimitedResponse(r.uint(64), r.string()),
    _resp_status_report,
    _resp_stats,
    lambda r: ReloadedResponse(r.bool_()),
)


def _decode(body: bytes, table: Sequence[Callable[[_Reader], object]], what: str) -> object:
    r = _Reader(body)
    message = table[r.index(table, what + " variant")](r)
    r.end()
    return message


def decode_request(body: bytes) -> Request:
    """Decodes a request body strictly (PROTOCOL.md 4.6); raises :class:`DecodeError`."""
    return _decode(body, _REQUESTS, "request")  # type: ignore[return-value]


def decode_response(body: bytes) -> Response:
    """Decodes a response body strictly (PROTOCOL.md 4.6); raises :class:`DecodeError`."""
    return _decode(body, _RESPONSES, "response")  # type: ignore[return-value]
