"""The exceptions of the keyward client.

Every failure is a :class:`KeywardError`. Its :attr:`~KeywardError.code` is the protocol's
stable error code (docs/PROTOCOL.md, section 5.6) for a program to branch on; the subclasses
group the codes a bot usually handles differently (wait for an unlock, back off, give up).
Messages never contain secret material.
"""

import enum
import re
from typing import Dict, Optional, Type

__all__ = [
    "ErrorCode",
    "KeywardError",
    "LockedError",
    "DeniedError",
    "PolicyError",
    "RateLimitedError",
    "BatchExceedsBurstError",
    "UnknownKeyError",
    "ProtocolError",
    "UnavailableError",
    "error_from_daemon",
]


class ErrorCode(enum.IntEnum):
    """The protocol's error codes (a ``u16`` on the wire). Numbers are never reused.

    A daemon newer than this client may send a code not listed here; it arrives as a plain
    ``int`` in :attr:`KeywardError.code`.
    """

    UNSUPPORTED_VERSION = 1
    BAD_REQUEST = 2
    TOO_LARGE = 3
    UNKNOWN_KEY = 4
    KEY_EXISTS = 5
    INVALID_KEY = 6
    DENIED = 7
    LOCKED = 8
    POLICY_VIOLATION = 9
    RATE_LIMITED = 10
    INTERNAL = 11
    NOT_INITIALIZED = 12
    ALREADY_INITIALIZED = 13
    WRONG_PASSPHRASE = 14
    UNAVAILABLE = 15
    BATCH_EXCEEDS_BURST = 16
    INVALID_CONFIG = 17
    NO_PASSPHRASE = 18


class KeywardError(Exception):
    """A call to keywardd failed.

    ``code`` is the protocol's error code: the daemon's own when it refused the request, the
    code the daemon would have sent when the client refused it locally (e.g.
    :attr:`ErrorCode.TOO_LARGE` for a request above the daemon's frame limit,
    :attr:`ErrorCode.UNAVAILABLE` when the daemon cannot be reached), and ``None`` only for a
    :class:`ProtocolError` about a malformed response, which has no code on the wire.
    """

    #: The code used when none is given.
    default_code: Optional[int] = None

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: Optional[int] = _known(code if code is not None else self.default_code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class LockedError(KeywardError):
    """The keystore is locked (:attr:`ErrorCode.LOCKED`) or not initialised yet
    (:attr:`ErrorCode.NOT_INITIALIZED`): an admin must run ``keyward unlock`` (or ``init``)."""

    default_code = ErrorCode.LOCKED


class DeniedError(KeywardError):
    """This user may not make the request, or may not use this daemon at all
    (:attr:`ErrorCode.DENIED`)."""

    default_code = ErrorCode.DENIED


class PolicyError(KeywardError):
    """The payload breaks the key's policy (:attr:`ErrorCode.POLICY_VIOLATION`), e.g. a
    denied parameter such as ``address`` or a stale ``timestamp``."""

    default_code = ErrorCode.POLICY_VIOLATION


_RETRY_IN = re.compile(r"retry in (\d+) ms")


class RateLimitedError(KeywardError):
    """The key's rate limit is exhausted (:attr:`ErrorCode.RATE_LIMITED`).

    :attr:`retry_after_ms` is the time to wait in milliseconds, as the daemon computed it
    from the key's token bucket (a protocol version 3 daemon sends it as a field; from an
    older one it is read from the message), and :attr:`retry_after` the same in seconds.
    Both are ``None`` when waiting cannot help: :class:`BatchExceedsBurstError`. Wait that
    long, then build the payload again with a fresh timestamp and sign it.
    """

    default_code = ErrorCode.RATE_LIMITED

    def __init__(
        self, message: str, code: Optional[int] = None, retry_after_ms: Optional[int] = None
    ) -> None:
        super().__init__(message, code)
        if retry_after_ms is None:
            found = _RETRY_IN.search(message)
            retry_after_ms = int(found.group(1)) if found else None
        #: Milliseconds to wait before the key has a token again, or ``None``.
        self.retry_after_ms: Optional[int] = retry_after_ms
        #: The same in seconds, or ``None``.
        self.retry_after: Optional[float] = (
            retry_after_ms / 1000.0 if retry_after_ms is not None else None
        )


class BatchExceedsBurstError(RateLimitedError):
    """A batch holds more payloads than the key's ``burst`` (or more orders than its
    ``orders_per_minute``) (:attr:`ErrorCode.BATCH_EXCEEDS_BURST`): it can never succeed,
    so waiting does not help; split the batch. A subclass of :class:`RateLimitedError`
    because older daemons answered this case with ``RATE_LIMITED``; :attr:`retry_after`
    is ``None``."""

    default_code = ErrorCode.BATCH_EXCEEDS_BURST

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message, code)
        self.retry_after_ms = None
        self.retry_after = None


class UnknownKeyError(KeywardError):
    """No key by that name, or none this user may see (:attr:`ErrorCode.UNKNOWN_KEY`)."""

    default_code = ErrorCode.UNKNOWN_KEY


class ProtocolError(KeywardError):
    """The two sides do not understand each other: a malformed or unexpected response
    (``code`` is ``None``), a protocol version the daemon does not speak
    (:attr:`ErrorCode.UNSUPPORTED_VERSION`), or a request the daemon could not decode
    (:attr:`ErrorCode.BAD_REQUEST`)."""


class UnavailableError(KeywardError):
    """keywardd cannot be reached or trusted: no socket, nothing listening, a timeout, the
    connection closed before the answer, a socket whose server the client does not trust,
    or a daemon shutting down or at its connection limit (:attr:`ErrorCode.UNAVAILABLE`).
    """

    default_code = ErrorCode.UNAVAILABLE


_CLASSES: Dict[int, Type[KeywardError]] = {
    ErrorCode.UNSUPPORTED_VERSION: ProtocolError,
    ErrorCode.BAD_REQUEST: ProtocolError,
    ErrorCode.UNKNOWN_KEY: UnknownKeyError,
    ErrorCode.DENIED: DeniedError,
    ErrorCode.LOCKED: LockedError,
    ErrorCode.NOT_INITIALIZED: LockedError,
    ErrorCode.POLICY_VIOLATION: PolicyError,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.BATCH_EXCEEDS_BURST: BatchExceedsBurstError,
    ErrorCode.UNAVAILABLE: UnavailableError,
}


def _known(code: Optional[int]) -> Optional[int]:
    if code is None:
        return None
    try:
        return ErrorCode(code)
    except ValueError:
        return int(code)


def error_from_daemon(code: int, message: str) -> KeywardError:
    """The exception for an ``Error { code, message }`` response from the daemon."""
    cls = _CLASSES.get(code, KeywardError)
    if not message:
        name = _known(code)
        label = name.name.lower().replace("_", "-") if isinstance(name, ErrorCode) else str(code)
        message = f"keywardd refused the request: {label}"
    return cls(message, code)
