"""What the blocking and the asyncio client share: the socket path, the trust rule, request
frames and turning responses into results. Only the I/O differs between the two clients."""

import errno
import logging
import os
import pwd
import select
import socket
import stat
import struct
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import protocol as p
from .errors import (
    ErrorCode,
    KeywardError,
    ProtocolError,
    RateLimitedError,
    UnavailableError,
    error_from_daemon,
)

_log = logging.getLogger("keyward")

#: The environment variable naming the daemon's socket.
SOCKET_ENV = "KEYWARD_SOCK"

PathLike = Union[str, "os.PathLike[str]"]
Payload = Union[bytes, bytearray, memoryview, str]

#: The Hello of each version the clients offer, newest first: a version 3 client falls back
#: to version 2 when the daemon does not speak 3 (docs/PROTOCOL.md section 3).
HELLO_FRAMES: Dict[int, bytes] = {
    version: p.frame(p.encode_request(p.HelloRequest(version)))
    for version in range(p.PROTOCOL_VERSION, p.MIN_PROTOCOL_VERSION - 1, -1)
}
HELLO_FRAME = HELLO_FRAMES[p.PROTOCOL_VERSION]


# ---- where the socket is ----


def default_socket_path() -> str:
    """The socket path used when none is given and ``KEYWARD_SOCK`` is unset or empty.

    1. ``$XDG_RUNTIME_DIR/keyward/keyward.sock`` if ``XDG_RUNTIME_DIR`` is set and not empty;
    2. ``/run/user/$UID/keyward/keyward.sock`` if the directory ``/run/user/$UID`` exists;
    3. otherwise ``/tmp/keyward-$UID/keyward.sock``;

    ``$UID`` being this process's real user id.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "keyward", "keyward.sock")
    uid = os.getuid()
    if os.path.isdir(f"/run/user/{uid}"):
        return f"/run/user/{uid}/keyward/keyward.sock"
    return f"/tmp/keyward-{uid}/keyward.sock"


def socket_path(path: Optional[PathLike] = None) -> str:
    """The socket to use: ``path`` if given, else ``$KEYWARD_SOCK`` if set and not empty,
    else :func:`default_socket_path`."""
    if path is not None:
        return os.fspath(path)
    return os.environ.get(SOCKET_ENV) or default_socket_path()


# ---- whom to trust ----


def _peer_uid(sock: socket.socket) -> int:
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is None:
        raise UnavailableError(
            "cannot check who runs the server of a socket on this platform (no SO_PEERCRED)"
        )
    creds = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _protected_by_directory(path: str, uid: int) -> bool:
    """True when the socket at ``path`` sits in a directory that ``uid`` owns and nobody else
    can write, whose parent only root can write. Nothing is followed: a socket or directory
    that is a symlink does not qualify."""
    directory = os.path.dirname(path) or "."
    try:
        sock_st = os.lstat(path)
        dir_st = os.lstat(directory)
        # `dir/..` is the parent the kernel resolves, even when `directory` ends in `..`.
        parent_st = os.lstat(os.path.join(directory, ".."))
    except OSError:
        return False
    return (
        stat.S_ISSOCK(sock_st.st_mode)
        and stat.S_ISDIR(dir_st.st_mode)
        and dir_st.st_uid == uid
        and dir_st.st_mode & 0o022 == 0
        # A directory anyone could have made in /tmp never qualifies: /tmp is writable by
        # others (its sticky bit does not make it root's alone).
        and stat.S_ISDIR(parent_st.st_mode)
        and parent_st.st_uid == 0
        and parent_st.st_mode & 0o022 == 0
    )


def _user_name(uid: int) -> Optional[str]:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def check_trust(sock: socket.socket, path: str) -> None:
    """Refuses the server at the other end of ``sock`` unless it runs as this user or root, or
    owns a directory around the socket that only it can write, inside one that only root can
    write. Called after connect and before the first byte is sent."""
    uid = _peer_uid(sock)
    if uid == os.getuid() or uid == 0:
        return
    if _protected_by_directory(path, uid):
        return
    name = _user_name(uid)
    who = f"uid {uid} ({name})" if name else f"uid {uid}"
    raise UnavailableError(
        f"refusing socket {path}: its server runs as {who}, not you (uid {os.getuid()}) or "
        f"root, and its directory is not protected; set {SOCKET_ENV} to your daemon's socket"
    )


def connect_error(path: str, err: OSError) -> UnavailableError:
    """The error for a socket that could not be connected to."""
    if isinstance(err, FileNotFoundError):
        why = f"no keywardd socket at {path} (is the daemon running?)"
    elif isinstance(err, ConnectionRefusedError):
        why = f"nothing is listening on {path} (is the daemon running?)"
    elif isinstance(err, PermissionError):
        why = f"permission denied connecting to {path} (may this user use keywardd?)"
    elif is_timeout(err):
        why = f"timed out connecting to keywardd at {path} (is it at its connection limit?)"
    else:
        why = f"cannot connect to keywardd at {path}: {err.strerror or err}"
    return UnavailableError(why)


def is_timeout(err: BaseException) -> bool:
    """True for a socket timeout, whether from SO_RCVTIMEO/SO_SNDTIMEO (EAGAIN) or Python."""
    return isinstance(err, (socket.timeout, TimeoutError)) or (
        isinstance(err, OSError) and err.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    )


def io_error(err: OSError) -> UnavailableError:
    """The error for a failed read or write on an established connection."""
    if is_timeout(err):
        return UnavailableError("timed out waiting for keywardd; the connection was closed")
    return UnavailableError(f"I/O error on the connection to keywardd: {err.strerror or err}")


Poll = Callable[[int], List[Tuple[int, int]]]


def idle_watch(sock: socket.socket) -> Poll:
    """``poll`` of ``sock`` for what :func:`closed_by_daemon` looks for: called with 0, it
    returns an empty list exactly when that function's zero-wait ``recv`` would find nothing
    (no byte, no end of stream, no error: ``POLLIN``, ``POLLHUP`` and ``POLLERR`` cover them
    all). So a client asks it first and calls :func:`closed_by_daemon` only when it reports
    something: the same rule, without the 4 KiB buffer and the exception that make most of
    the ``recv``'s cost in the common, quiet case (about 1.8 us against 0.4 us). Valid as long
    as ``sock`` is open.

    The check is not skipped after a recent answer: a daemon restarting (or shutting down)
    closes its connections at any moment, not only past ``idle_timeout_secs``. A request
    written after that, unchecked, would get the daemon's closing notice as its answer: the
    error the check exists to spare the user."""
    watch = select.poll()
    watch.register(sock, select.POLLIN)
    return watch.poll


def not_connected(timeout: int) -> List[Tuple[int, int]]:
    """The :data:`Poll` of a client before its first connection; never called."""
    raise AssertionError("no connection to poll")


def closed_by_daemon(sock: socket.socket) -> bool:
    """True when the daemon has closed this connection, or sent something unasked, while it
    sat idle between requests: a zero-wait look finds the end of the stream, bytes, or an
    error. The daemon closes a connection idle past ``idle_timeout_secs`` (after one
    ``UNAVAILABLE`` error frame saying so), and a restarting daemon closes them all; it
    sends nothing unasked otherwise. Nothing of the next request has been sent, so it can go
    on a new connection. What the daemon said is read and logged (``keyward`` logger, debug);
    the connection is then of no further use. Only meaningful when no answer is due."""
    try:
        data = sock.recv(_UNASKED_LIMIT, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False  # open and quiet, as it should be
    except OSError as err:
        _log.debug("keywardd connection lost while idle: %s", err)
        return True
    _log.debug("keywardd had closed the idle connection: %s", _unasked_reason(data))
    return True


# Enough for the daemon's one closing error frame.
_UNASKED_LIMIT = 4096


def _unasked_reason(data: bytes) -> str:
    """What the daemon sent before closing: its message if it is one whole error frame."""
    if not data:
        return "end of stream"
    body_len = len(data) - p.HEADER_LEN
    if body_len > 0 and int.from_bytes(data[: p.HEADER_LEN], "big") == body_len:
        try:
            response = decode(data[p.HEADER_LEN :])
        except ProtocolError:
            pass
        else:
            if isinstance(response, p.ErrorResponse):
                return response.message
    return f"{len(data)} unasked bytes"


CLOSED_BEFORE_ANSWER = (
    "keywardd closed the connection before answering; the request may or may not have been "
    "processed, so it was not sent again"
)


# ---- requests ----


def payload_bytes(payload: Payload) -> bytes:
    """A payload as bytes: a ``str`` is UTF-8 encoded, bytes-like objects taken as they are."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"a payload is bytes or str, not {type(payload).__name__}")


def sign_frame(key: str, payload: Payload) -> bytes:
    """The whole frame of ``Sign``, the hot path: the codec encodes each key's name once;
    a frame is then its cached prefix, the payload's length and the payload, joined."""
    head = _SIGN_HEADS.get(key) if type(key) is str else None
    pack1, pack2, prefix = head or _sign_head(key)
    data = payload if type(payload) is bytes else payload_bytes(payload)
    m = len(data)
    if m < 0x80:
        return pack1(len(prefix) + 1 + m, prefix, m) + data
    if m < 0x4000:
        return pack2(len(prefix) + 2 + m, prefix, (m & 0x7F) | 0x80, m >> 7) + data
    length = p._varint(m)
    return b"".join((_HEADER.pack(len(prefix) + len(length) + m), prefix, length, data))


#: Per key name: packers of the frame header, the prefix and a payload length of one and of
#: two bytes (as a varint), and the prefix: what every ``Sign`` frame of that key starts with
#: (variant 1 and the name, encoded by the codec itself). Bounded: a bot uses a handful of
#: names, and a client fed ever new names only starts over. Shared by every client and thread: a dict's get and set are atomic, and
#: two threads that miss at once only both build the same entry.
_SignHead = Tuple[Callable[..., bytes], Callable[..., bytes], bytes]
_SIGN_HEADS: Dict[str, _SignHead] = {}
_SIGN_HEADS_MAX = 256


def _sign_head(key: str) -> _SignHead:
    # The body of an empty payload is the prefix and the payload's length, 0.
    prefix = p.encode_request(p.SignRequest(key, b""))[:-1]
    n = len(prefix)
    head = (struct.Struct(f">I{n}sB").pack, struct.Struct(f">I{n}sBB").pack, prefix)
    if type(key) is str:  # not a subclass, whose hash or equality could be its own
        if len(_SIGN_HEADS) >= _SIGN_HEADS_MAX:
            _SIGN_HEADS.clear()
        _SIGN_HEADS[key] = head
    return head


def sign_batch_frame(key: str, payloads: Iterable[Payload]) -> Tuple[bytes, int]:
    """The frame of ``SignBatch`` and the number of payloads."""
    data = [payload_bytes(payload) for payload in payloads]
    return frame_of(p.encode_request(p.SignBatchRequest(key, data))), len(data)


def frame_of(body: bytes) -> bytes:
    """A request body with its header (the size limit is checked by :func:`check_size`)."""
    return _HEADER.pack(len(body)) + body


_HEADER = struct.Struct(">I")
LIST_FRAME = frame_of(p.encode_request(p.ListRequest()))
STATUS_FRAME = frame_of(p.encode_request(p.StatusRequest()))
STATS_FRAME = frame_of(p.encode_request(p.StatsRequest()))
RELOAD_FRAME = frame_of(p.encode_request(p.ReloadRequest()))


def check_version(request: str, version: int) -> None:
    """Refuses locally a version 3 request on a version 2 connection."""
    if version < 3:
        raise ProtocolError(
            f"keywardd speaks protocol version {version}, which has no {request} request "
            "(upgrade keywardd)",
            ErrorCode.UNSUPPORTED_VERSION,
        )


def public_key_frame(name: str) -> bytes:
    return frame_of(p.encode_request(p.PublicKeyRequest(name)))


def check_size(frame: bytes, max_frame: int) -> None:
    """Refuses locally (nothing is sent, the connection stays usable) a request whose body
    exceeds the daemon's ``max_frame``."""
    if len(frame) - p.HEADER_LEN > max_frame:
        raise KeywardError(
            f"request of {len(frame) - p.HEADER_LEN} bytes exceeds the daemon's limit of "
            f"{max_frame} bytes",
            ErrorCode.TOO_LARGE,
        )


# ---- responses ----


def decode(body: bytes) -> p.Response:
    """Decodes a response body strictly, as a :class:`~keyward.protocol.DecodeError`-raising
    :class:`ProtocolError`."""
    return p.decode_response(body)


def expect_signature_body(body: bytes) -> bytes:
    """The signature in the body of a ``Signature`` response; anything else is decoded and
    reported. The common case (scheme and length each one byte) skips the generic decoder,
    with the same strictness."""
    if len(body) >= 3 and body[0] == 1 and body[1] < _SCHEME_COUNT and body[2] < 0x80:
        if len(body) == 3 + body[2]:
            return body[3:]
    return expect_signature(decode(body))


_SCHEME_COUNT = len(p.Scheme)


def is_error_body(body: bytes) -> bool:
    """True when ``body`` is a well-formed ``Error`` response."""
    try:
        return isinstance(decode(body), p.ErrorResponse)
    except ProtocolError:
        return False


def unexpected(response: p.Response, expected: str) -> KeywardError:
    """The daemon's own error if it sent one, else a :class:`ProtocolError`."""
    if isinstance(response, p.ErrorResponse):
        return error_from_daemon(response.code, response.message)
    if isinstance(response, p.RateLimitedResponse):
        return RateLimitedError(response.message, ErrorCode.RATE_LIMITED, response.retry_after_ms)
    return ProtocolError(
        f"keywardd sent an unexpected response ({type(response).__name__}; expected {expected})"
    )


def expect_hello(
    response: p.Response, asked: int
) -> Optional[Tuple[int, Optional[p.WelcomeResponse]]]:
    """Checks the answer to a Hello of version ``asked``: ``(max_frame, welcome)``, where
    ``welcome`` (the daemon's version) is ``None`` from a version 2 daemon; or ``None`` when
    the daemon does not speak ``asked`` and the next older version should be tried."""
    if isinstance(response, p.WelcomeResponse) and response.version == asked:
        return response.max_frame, response
    if isinstance(response, p.HelloResponse) and response.version == asked and asked < 3:
        return response.max_frame, None
    if isinstance(response, (p.HelloResponse, p.WelcomeResponse)):
        raise ProtocolError(
            f"keywardd does not speak protocol version {asked}: it answered "
            f"with version {response.version}",
            ErrorCode.UNSUPPORTED_VERSION,
        )
    if (
        isinstance(response, p.ErrorResponse)
        and response.code == ErrorCode.UNSUPPORTED_VERSION
        and asked > p.MIN_PROTOCOL_VERSION
    ):
        return None
    raise unexpected(response, "hello")


def expect_signature(response: p.Response) -> bytes:
    if isinstance(response, p.SignatureResponse):
        return response.signature
    raise unexpected(response, "signature")


def expect_signatures(response: p.Response, count: int) -> List[bytes]:
    if isinstance(response, p.SignaturesResponse):
        if len(response.signatures) != count:
            raise ProtocolError(
                f"keywardd sent {len(response.signatures)} signatures for {count} payloads"
            )
        return response.signatures
    raise unexpected(response, "signatures")


def expect_keys(response: p.Response) -> List[p.KeyInfo]:
    if isinstance(response, p.KeysResponse):
        return response.keys
    raise unexpected(response, "key list")


def expect_public_key(response: p.Response) -> str:
    if isinstance(response, p.KeyResponse):
        pem = response.key.public_key_pem
        if pem is None:
            raise KeywardError(
                f"key {response.key.name!r} is an {response.key.scheme} key: it has no "
                "public key",
                ErrorCode.INVALID_KEY,
            )
        return pem
    raise unexpected(response, "key")


def expect_status_report(response: p.Response) -> p.StatusReportResponse:
    """The answer to Status in either version (version 2 has no order rules)."""
    if isinstance(response, p.StatusReportResponse):
        return response
    if isinstance(response, p.StatusResponse):
        return p.StatusReportResponse(response.status, None)
    raise unexpected(response, "status")


def expect_status(response: p.Response) -> p.Status:
    return expect_status_report(response).status


def expect_stats(response: p.Response) -> p.Stats:
    if isinstance(response, p.StatsResponse):
        return response.stats
    raise unexpected(response, "stats")


def expect_reloaded(response: p.Response) -> bool:
    if isinstance(response, p.ReloadedResponse):
        return response.daemon_section_changed
    raise unexpected(response, "reloaded")


def expect_ok(response: p.Response) -> None:
    if isinstance(response, p.OkResponse):
        return None
    raise unexpected(response, "ok")


def read_frame_header(header: Union[bytes, bytearray]) -> int:
    """The body length of a response header, refusing one above 16 MiB before the body."""
    n = int.from_bytes(header, "big")
    if 0 < n <= p.MAX_RESPONSE_FRAME:
        return n
    try:
        return p.body_len(bytes(header), p.MAX_RESPONSE_FRAME)
    except p.FrameError as err:
        raise ProtocolError(f"keywardd sent a bad frame header: {err.message}") from None
