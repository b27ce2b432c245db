"""The blocking client."""

import socket
import struct
import threading
from types import TracebackType
from typing import Callable, Iterable, List, Optional, Type, TypeVar

from . import _core as core
from . import protocol as p
from .errors import ErrorCode, KeywardError, ProtocolError, UnavailableError

__all__ = ["Client"]

T = TypeVar("T")

_RECV_BUFFER = 64 * 1024
_HEADER = struct.Struct(">I")


class _NotDelivered(Exception):
    """The daemon had closed the connection before the request was written in full, without
    a word: it cannot have processed the request, so sending it again is safe."""


class Client:
    """A blocking connection to ``keywardd``.

    ``path`` is the daemon's socket: the argument, else ``$KEYWARD_SOCK`` if set and not
    empty, else :func:`keyward.default_socket_path`. ``timeout`` (seconds, ``None`` for none)
    bounds connecting and each read and write. The constructor connects, checks that the
    socket's server can be trusted (before sending a single byte) and performs the handshake,
    so a missing daemon fails here with :class:`~keyward.UnavailableError`.

    One request is answered at a time: calls from several threads are serialized on the one
    connection (open a client per thread to sign in parallel).

    A connection that fails half-way through an exchange (I/O error, timeout, malformed
    answer, the daemon closing) is never reused: the call raises, and the next call opens a
    new connection, once. A request is sent again only when it provably never reached the
    daemon: the connection had been closed by the daemon (e.g. it restarted) before the
    request was written. A request that may have been processed is never resent; its call
    raises :class:`~keyward.UnavailableError`. Errors reported by the daemon leave the
    connection usable.

    The daemon closes a connection that goes ``idle_timeout_secs`` (default 600) without a
    request, and a restarted daemon has closed every connection of the old one. Before each
    request the client looks, without waiting, whether that happened (the daemon closed the
    connection or sent its notice); if so it opens a new connection (the same trust check
    and handshake) and sends the request there, since nothing of it was sent on the old one.
    So a bot can hold one client for its lifetime, however long it pauses between orders.
    """

    def __init__(self, path: Optional[core.PathLike] = None, timeout: Optional[float] = 5.0):
        self.path: str = core.socket_path(path)
        self.timeout: Optional[float] = timeout
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        # The idle check's poll of the connection in `_sock`: set with it, used while it is.
        self._readable: core.Poll = core.not_connected
        self._closed = False
        self._max_frame = p.DEFAULT_MAX_FRAME
        self._version = p.PROTOCOL_VERSION
        self._welcome: Optional[p.WelcomeResponse] = None
        self._buf = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buf)
        with self._lock:
            self._connect()

    # ---- lifetime ----

    def close(self) -> None:
        """Closes the connection; further calls raise :class:`~keyward.UnavailableError`."""
        with self._lock:
            self._closed = True
            self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._sock else "disconnected"
        return f"<keyward.Client {self.path!r} {state}>"

    @property
    def max_frame(self) -> int:
        """The largest request body the daemon accepts, from its Hello."""
        return self._max_frame

    # ---- calls ----

    def sign(self, key: str, payload: core.Payload) -> bytes:
        """Signs ``payload`` (the exact bytes; a ``str`` is UTF-8 encoded) with the key named
        ``key`` and returns the raw signature. Encode it as the exchange wants: ``.hex()``
        for Binance/Bybit HMAC, base64 for RSA and Ed25519 keys."""
        return self._call(core.sign_frame(key, payload), core.expect_signature_body)

    def sign_batch(self, key: str, payloads: Iterable[core.Payload]) -> List[bytes]:
        """Signs each payload with the key named ``key`` in one round trip; the signatures
        come back in the order of the payloads. The batch succeeds or fails as a whole."""
        frame, count = core.sign_batch_frame(key, payloads)
        return self._call(frame, lambda body: core.expect_signatures(core.decode(body), count))

    def list(self) -> List[p.KeyInfo]:
        """The keys this user may see, sorted by name."""
        return self._call(core.LIST_FRAME, lambda body: core.expect_keys(core.decode(body)))

    def public_key(self, name: str) -> str:
        """The public key of the key named ``name``, as SPKI PEM (what exchanges ask you to
        upload). HMAC keys have none: :class:`~keyward.KeywardError` with code
        ``INVALID_KEY``."""
        frame = core.public_key_frame(name)
        return self._call(frame, lambda body: core.expect_public_key(core.decode(body)))

    def status(self) -> p.Status:
        """The keystore's state: locked or not, usable keys, auto-lock timers."""
        return self._call(core.STATUS_FRAME, lambda body: core.expect_status(core.decode(body)))

    def status_report(self) -> p.StatusReportResponse:
        """The keystore's state and, to an admin, each key's order rules (``order_rules``;
        ``None`` for other users and from a protocol version 2 daemon)."""
        return self._call(
            core.STATUS_FRAME, lambda body: core.expect_status_report(core.decode(body))
        )

    def stats(self) -> p.Stats:
        """The daemon's counters (needs an admin or the status right; protocol version 3)."""
        core.check_version("stats", self._version)
        return self._call(core.STATS_FRAME, lambda body: core.expect_stats(core.decode(body)))

    def reload(self) -> bool:
        """Has the daemon re-read its config file (admin; protocol version 3). ``True``: its
        ``[daemon]`` section changed too, which applies only at the next start. An invalid
        file raises :class:`~keyward.KeywardError` with code ``INVALID_CONFIG``; the old
        policy stays in force."""
        core.check_version("reload", self._version)
        return self._call(
            core.RELOAD_FRAME, lambda body: core.expect_reloaded(core.decode(body))
        )

    def sign_passphrase(self, key: str) -> bytes:
        """The key's HMAC of the passphrase stored with it (``KC-API-PASSPHRASE`` of a KuCoin
        key of version 2 or 3 is its base64). A key without one raises
        :class:`~keyward.KeywardError` with code ``NO_PASSPHRASE``. Whoever may sign with the
        key may ask; protocol version 3."""
        core.check_version("sign-passphrase", self._version)
        frame = core.frame_of(p.encode_request(p.SignPassphraseRequest(key)))
        return self._call(frame, core.expect_signature_body)

    def set_passphrase(self, key: str, passphrase: Optional[bytes]) -> None:
        """Stores ``passphrase`` with the HMAC key ``key``, sealed in its key file; ``None``
        removes it. The daemon never returns it, only :meth:`sign_passphrase` of it (admin;
        protocol version 3)."""
        core.check_version("set-passphrase", self._version)
        frame = core.frame_of(p.encode_request(p.SetPassphraseRequest(key, passphrase)))
        self._call(frame, lambda body: core.expect_ok(core.decode(body)))

    @property
    def protocol_version(self) -> int:
        """The protocol version agreed with the daemon: 3, or 2 with an older daemon."""
        return self._version

    @property
    def daemon(self) -> Optional[p.WelcomeResponse]:
        """The daemon's version (``daemon_version``, ``daemon_commit``) from its Hello;
        ``None`` from a protocol version 2 daemon."""
        return self._welcome

    def call(self, request: p.Request) -> p.Response:
        """Sends any request and returns the daemon's response as it is (an
        :class:`~keyward.protocol.ErrorResponse` is returned, not raised)."""
        return self._call(core.frame_of(p.encode_request(request)), core.decode)

    # ---- the exchange ----

    def _call(self, frame: bytes, parse: Callable[[bytes], T]) -> T:
        """Sends one request frame and returns ``parse`` of its response's body. A body that
        does not decode breaks the connection, as any failure half-way does."""
        with self._lock:
            body = self._send(frame)
            try:
                return parse(body)
            except p.DecodeError:
                # The stream position is intact, but a daemon that sends garbage once is
                # not trusted with the next answer either (as the Rust client does).
                self._drop()
                raise

    def _send(self, frame: bytes) -> bytes:
        fresh = False
        if self._sock is None:
            if self._closed:
                raise UnavailableError("this keyward.Client is closed")
            self._connect()
            fresh = True
        elif self._readable(0) and core.closed_by_daemon(self._sock):
            # Closed while idle (idle_timeout_secs, or a restart), and nothing of this
            # request was sent: send it on a new connection instead of reading the daemon's
            # idle notice as its answer. (The poll is the cheap first half of the same
            # check: see core.idle_watch.)
            self._connect()
            fresh = True
        core.check_size(frame, self._max_frame)
        try:
            return self._exchange(frame)
        except _NotDelivered:
            if fresh:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
        # The daemon closed this connection while the request was being written, without a
        # word: the request never reached it. Reconnect once and send it there.
        self._connect()
        core.check_size(frame, self._max_frame)
        try:
            return self._exchange(frame)
        except _NotDelivered:
            raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None

    def _connect(self) -> None:
        """Opens a connection, checks its server and performs the handshake."""
        self._drop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not None:
                # Kernel timeouts on a blocking socket: a read is one syscall, with no poll
                # first. A timed-out operation fails with EAGAIN. They bound connect too.
                secs = int(self.timeout)
                tv = struct.pack("@ll", secs, int((self.timeout - secs) * 1e6))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            try:
                sock.connect(self.path)
            except OSError as err:
                raise core.connect_error(self.path, err) from None
            core.check_trust(sock, self.path)
            readable = core.idle_watch(sock)
        except BaseException:
            sock.close()
            raise
        self._readable = readable
        self._sock = sock
        for version, hello in core.HELLO_FRAMES.items():
            try:
                body = self._exchange(hello)
            except _NotDelivered:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
            try:
                agreed = core.expect_hello(core.decode(body), version)
            except BaseException:
                self._drop()
                raise
            if agreed is not None:
                self._max_frame, self._welcome = agreed
                self._version = version
                return
        self._drop()
        raise ProtocolError(
            "keywardd speaks none of this client's protocol versions",
            ErrorCode.UNSUPPORTED_VERSION,
        )

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _exchange(self, frame: bytes) -> bytes:
        """Writes one request frame and reads its response's body. Any failure drops the
        connection, whose stream position is then unknown."""
        sock = self._sock
        assert sock is not None
        try:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError) as write_err:
                # The daemon closed its end; it may have said why first (e.g. "denied").
                try:
                    body = self._read(sock)
                except (KeywardError, OSError):
                    raise _NotDelivered() from None
                if core.is_error_body(body):
                    self._drop()
                    return body
                # Any other answer cannot be to a request the daemon did not receive whole.
                raise core.io_error(write_err) from None
            except OSError as err:
                raise core.io_error(err) from None
            try:
                return self._read(sock)
            except ConnectionResetError:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
            except OSError as err:
                raise core.io_error(err) from None
        except BaseException:
            self._drop()
            raise

    def _read(self, sock: socket.socket) -> bytes:
        """Reads exactly one response frame and returns its body. The daemon never sends
        anything unasked, so bytes beyond the frame are a protocol violation, not a next
        answer."""
        view = self._view
        got = sock.recv_into(view)
        if got >= p.HEADER_LEN:
            # The common case, a whole small answer in one read, with no call but the unpack.
            total = p.HEADER_LEN + _HEADER.unpack_from(view)[0]
            if got == total and got > p.HEADER_LEN:
                return bytes(view[p.HEADER_LEN : total])
        while got < p.HEADER_LEN:
            if got == 0 or (n := sock.recv_into(view[got:])) == 0:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER)
            got += n
        total = p.HEADER_LEN + core.read_frame_header(self._buf[: p.HEADER_LEN])
        if got == total:
            return bytes(view[p.HEADER_LEN : total])
        if got > total:
            raise ProtocolError("keywardd sent bytes after its response")
        if total > len(view):
            big = memoryview(bytearray(total))
            big[:got] = view[:got]
            view = big
        while got < total:
            n = sock.recv_into(view[got:total])
            if n == 0:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER)
            got += n
        return bytes(view[p.HEADER_LEN : total])
