"""The asyncio client."""

import asyncio
import socket
import sys
from types import TracebackType
from typing import Any, Awaitable, Callable, Iterable, List, Optional, Type, TypeVar

from . import _core as core
from . import protocol as p
from .errors import ErrorCode, KeywardError, ProtocolError, UnavailableError

__all__ = ["AsyncClient"]

T = TypeVar("T")


class _NotDelivered(Exception):
    """See keyward.client._NotDelivered: the request provably never reached the daemon."""


async def _with_timeout(awaitable: Awaitable[T], timeout: Optional[float]) -> T:
    if timeout is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)


class AsyncClient:
    """An asyncio connection to ``keywardd``, with the same calls as :class:`keyward.Client`.

    Connect with ``async with AsyncClient() as client:`` or ``await client.connect()``; a
    call on a client that is not connected yet connects first. ``path`` and ``timeout`` are
    as for :class:`keyward.Client` (``timeout`` bounds the connection and each whole call).

    Calls from several tasks are serialized on the one connection. A call that fails
    half-way, times out or is cancelled leaves the connection broken: it is closed, never
    read again, and the next call opens a new one. A request is sent again only when the
    daemon had closed the connection before the request was written (it restarted while the
    client sat idle), never when it may have been processed. A connection the daemon closed
    while idle (``idle_timeout_secs``, or a restart) is noticed before the request is sent,
    without waiting, and reopened, as by :class:`keyward.Client`.
    """

    def __init__(self, path: Optional[core.PathLike] = None, timeout: Optional[float] = 5.0):
        self.path: str = core.socket_path(path)
        self.timeout: Optional[float] = timeout
        self._lock: Optional[asyncio.Lock] = None
        self._sock: Optional[socket.socket] = None
        # The idle check's poll of the connection in `_sock`: set with it, used while it is.
        self._readable: core.Poll = core.not_connected
        self._closed = False
        self._max_frame = p.DEFAULT_MAX_FRAME
        self._version = p.PROTOCOL_VERSION
        self._welcome: Optional[p.WelcomeResponse] = None

    # ---- lifetime ----

    async def connect(self) -> "AsyncClient":
        """Connects, checks the socket's server and performs the handshake (again, if the
        client was connected)."""
        async with self._guard():
            self._closed = False
            await _with_timeout(self._connect(), self.timeout)
        return self

    async def close(self) -> None:
        """Closes the connection; further calls raise :class:`~keyward.UnavailableError`."""
        async with self._guard():
            self._closed = True
            self._drop()

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._sock else "disconnected"
        return f"<keyward.AsyncClient {self.path!r} {state}>"

    @property
    def max_frame(self) -> int:
        """The largest request body the daemon accepts, from its Hello."""
        return self._max_frame

    # ---- calls ----

    async def sign(self, key: str, payload: core.Payload) -> bytes:
        """See :meth:`keyward.Client.sign`."""
        return await self._call(core.sign_frame(key, payload), core.expect_signature_body)

    async def sign_batch(self, key: str, payloads: Iterable[core.Payload]) -> List[bytes]:
        """See :meth:`keyward.Client.sign_batch`."""
        frame, count = core.sign_batch_frame(key, payloads)
        return await self._call(
            frame, lambda body: core.expect_signatures(core.decode(body), count)
        )

    async def list(self) -> List[p.KeyInfo]:
        """See :meth:`keyward.Client.list`."""
        return await self._call(core.LIST_FRAME, lambda body: core.expect_keys(core.decode(body)))

    async def public_key(self, name: str) -> str:
        """See :meth:`keyward.Client.public_key`."""
        frame = core.public_key_frame(name)
        return await self._call(frame, lambda body: core.expect_public_key(core.decode(body)))

    async def status(self) -> p.Status:
        """See :meth:`keyward.Client.status`."""
        frame = core.STATUS_FRAME
        return await self._call(frame, lambda body: core.expect_status(core.decode(body)))

    async def status_report(self) -> p.StatusReportResponse:
        """The keystore's state and, to an admin, each key's order rules (``order_rules``;
        ``None`` for other users and from a protocol version 2 daemon)."""
        return await self._call(
            core.STATUS_FRAME, lambda body: core.expect_status_report(core.decode(body))
        )

    async def stats(self) -> p.Stats:
        """The daemon's counters (needs an admin or the status right; protocol version 3)."""
        core.check_version("stats", self._version)
        return await self._call(core.STATS_FRAME, lambda body: core.expect_stats(core.decode(body)))

    async def reload(self) -> bool:
        """Has the daemon re-read its config file (admin; protocol version 3). ``True``: its
        ``[daemon]`` section changed too, which applies only at the next start. An invalid
        file raises :class:`~keyward.KeywardError` with code ``INVALID_CONFIG``; the old
        policy stays in force."""
        core.check_version("reload", self._version)
        return await self._call(
            core.RELOAD_FRAME, lambda body: core.expect_reloaded(core.decode(body))
        )

    async def sign_passphrase(self, key: str) -> bytes:
        """The key's HMAC of the passphrase stored with it (``KC-API-PASSPHRASE`` of a KuCoin
        key of version 2 or 3 is its base64). A key without one raises
        :class:`~keyward.KeywardError` with code ``NO_PASSPHRASE``. Whoever may sign with the
        key may ask; protocol version 3."""
        core.check_version("sign-passphrase", self._version)
        frame = core.frame_of(p.encode_request(p.SignPassphraseRequest(key)))
        return await self._call(frame, core.expect_signature_body)

    async def set_passphrase(self, key: str, passphrase: Optional[bytes]) -> None:
        """Stores ``passphrase`` with the HMAC key ``key``, sealed in its key file; ``None``
        removes it. The daemon never returns it, only :meth:`sign_passphrase` of it (admin;
        protocol version 3)."""
        core.check_version("set-passphrase", self._version)
        frame = core.frame_of(p.encode_request(p.SetPassphraseRequest(key, passphrase)))
        await self._call(frame, lambda body: core.expect_ok(core.decode(body)))

    @property
    def protocol_version(self) -> int:
        """The protocol version agreed with the daemon: 3, or 2 with an older daemon."""
        return self._version

    @property
    def daemon(self) -> Optional[p.WelcomeResponse]:
        """The daemon's version (``daemon_version``, ``daemon_commit``) from its Hello;
        ``None`` from a protocol version 2 daemon."""
        return self._welcome

    async def call(self, request: p.Request) -> p.Response:
        """See :meth:`keyward.Client.call`."""
        return await self._call(core.frame_of(p.encode_request(request)), core.decode)

    # ---- the exchange ----

    def _guard(self) -> asyncio.Lock:
        # Created on first use, inside the running loop (Python 3.9 binds locks at creation).
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _call(self, frame: bytes, parse: Callable[[bytes], T]) -> T:
        async with self._guard():
            try:
                body = await _with_timeout(self._call_locked(frame), self.timeout)
            except (asyncio.TimeoutError, TimeoutError):
                self._drop()
                raise UnavailableError(
                    "timed out waiting for keywardd; the connection was closed"
                ) from None
            try:
                return parse(body)
            except p.DecodeError:
                # The stream position is intact, but a daemon that sends garbage once is
                # not trusted with the next answer either (as the Rust client does).
                self._drop()
                raise

    async def _call_locked(self, frame: bytes) -> bytes:
        fresh = False
        if self._sock is None:
            if self._closed:
                raise UnavailableError("this keyward.AsyncClient is closed")
            await self._connect()
            fresh = True
        elif self._readable(0) and core.closed_by_daemon(self._sock):
            # Closed while idle (idle_timeout_secs, or a restart), and nothing of this
            # request was sent: send it on a new connection. See keyward.Client._send.
            await self._connect()
            fresh = True
        core.check_size(frame, self._max_frame)
        try:
            return await self._exchange(frame)
        except _NotDelivered:
            if fresh:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
        # Closed by the daemon while idle: the request never reached it. Reconnect once.
        await self._connect()
        core.check_size(frame, self._max_frame)
        try:
            return await self._exchange(frame)
        except _NotDelivered:
            raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None

    async def _connect(self) -> None:
        self._drop()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            try:
                await loop.sock_connect(sock, self.path)
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
                body = await self._exchange(hello)
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

    async def _exchange(self, frame: bytes) -> bytes:
        sock = self._sock
        assert sock is not None
        loop = asyncio.get_running_loop()
        try:
            try:
                await loop.sock_sendall(sock, frame)
            except (BrokenPipeError, ConnectionResetError) as write_err:
                try:
                    body = await self._read(loop, sock)
                except (KeywardError, OSError):
                    raise _NotDelivered() from None
                if core.is_error_body(body):
                    self._drop()
                    return body
                raise core.io_error(write_err) from None
            except OSError as err:
                raise core.io_error(err) from None
            try:
                return await self._read(loop, sock)
            except ConnectionResetError:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER) from None
            except OSError as err:
                raise core.io_error(err) from None
        except BaseException:
            # Includes cancellation: part of a frame may be left on the socket.
            self._drop()
            raise

    async def _read(self, loop: Any, sock: socket.socket) -> bytes:
        header = await self._read_exactly(loop, sock, p.HEADER_LEN)
        n = core.read_frame_header(header)
        return await self._read_exactly(loop, sock, n)

    @staticmethod
    async def _read_exactly(loop: Any, sock: socket.socket, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = await loop.sock_recv_into(sock, view[got:])
            if k == 0:
                raise UnavailableError(core.CLOSED_BEFORE_ANSWER)
            got += k
        return bytes(buf)


