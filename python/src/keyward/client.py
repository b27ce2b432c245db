"""The blocking client."""

import socket
import struct
import threading
from types import TracebackType
from typing import Iterable, List, Optional, Type

from . import _core as core
from . import protocol as p
from .errors import KeywardError, ProtocolError, UnavailableError

__all__ = ["Client"]

_RECV_BUFFER = 64 * 1024


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
    """

    def __init__(self, path: Optional[core.PathLike] = None, timeout: Optional[float] = 5.0):
        self.path: str = core.socket_path(path)
        self.timeout: Optional[float] = timeout
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._closed = False
        self._max_frame = p.DEFAULT_MAX_FRAME
        self._buf = bytearray(_RECV_BUFFER)
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
        return core.expect_signature(self._call(core.sign_body(key, payload)))

    def sign_batch(self, key: str, payloads: Iterable[core.Payload]) -> List[bytes]:
        """Signs each payload with the key named ``key`` in one round trip; the signatures
        come back in the order of the payloads. The batch succeeds or fails as a whole."""
        body, count = core.sign_batch_body(key, payloads)
        return core.expect_signatures(self._call(body), count)

    def list(self) -> List[p.KeyInfo]:
        """The keys this user may see, sorted by name."""
        return core.expect_keys(self._call(core.LIST_BODY))

    def public_key(self, name: str) -> str:
        """The public key of the key named ``name``, as SPKI PEM (what exchanges ask you to
        upload). HMAC keys have none: :class:`~keyward.KeywardError` with code
        ``INVALID_KEY``."""
        return core.expect_public_key(self._call(core.public_key_body(name)))

    def status(self) -> p.Status:
        """The keystore's state: locked or not, usable keys, auto-lock timers."""
        return core.expect_status(self._call(core.STATUS_BODY))

    def call(self, request: p.Request) -> p.Response:
        """Sends any request and returns the daemon's response as it is (an
        :class:`~keyward.protocol.ErrorResponse` is returned, not raised)."""
        return self._call(p.encode_request(request))

    # ---- the exchange ----

    def _call(self, body: bytes) -> p.Response:
        with self._lock:
            fresh = False
            if self._sock is None:
                if self._closed:
                    raise UnavailableError("this keyward.Client is closed")
                self._connect()
                fresh = True
            frame = core.frame_request(body, self._max_frame)
            try:
                return self._exchange(frame)
            except _NotDelivered:
                if fresh:
                    raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
            # The daemon had closed this connection while it sat idle (it restarted, or shut
            # it down): the request never reached it. Reconnect once and send it there.
            self._connect()
            frame = core.frame_request(body, self._max_frame)
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
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        try:
            response = self._exchange(core.HELLO_FRAME)
        except _NotDelivered:
            raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
        try:
            self._max_frame = core.expect_hello(response)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _exchange(self, frame: bytes) -> p.Response:
        """Writes one request frame and reads its response. Any failure drops the
        connection, whose stream position is then unknown."""
        sock = self._sock
        assert sock is not None
        try:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError) as write_err:
                # The daemon closed its end; it may have said why first (e.g. "denied").
                try:
                    response = self._read(sock)
                except (KeywardError, OSError):
                    raise _NotDelivered() from None
                if isinstance(response, p.ErrorResponse):
                    self._drop()
                    return response
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

    def _read(self, sock: socket.socket) -> p.Response:
        """Reads exactly one response frame. The daemon never sends anything unasked, so bytes
        beyond the frame are a protocol violation, not a next answer."""
        buf = self._buf
        view = memoryview(buf)
        got = 0
        while got < p.HEADER_LEN:
            n = sock.recv_into(view[got:])
            if n == 0:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER)
            got += n
        total = p.HEADER_LEN + core.read_frame_header(bytes(view[: p.HEADER_LEN]))
        if got > total:
            raise ProtocolError("keywardd sent bytes after its response")
        if total > len(buf):
            big = bytearray(total)
            big[:got] = view[:got]
            view = memoryview(big)
        while got < total:
            n = sock.recv_into(view[got:total])
            if n == 0:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER)
            got += n
        return core.decode(bytes(view[p.HEADER_LEN : total]))
