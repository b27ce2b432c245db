"""Fake servers that behave as keywardd never should, to test the client's side alone."""

import os
import socket
import struct
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, List, Optional

from keyward import protocol as p

HELLO_ANSWER = p.frame(
    p.encode_response(
        p.WelcomeResponse(p.PROTOCOL_VERSION, p.DEFAULT_MAX_FRAME, "0.0.0-fake", None)
    )
)
#: What a protocol version 2 daemon answers: to its own version, and to any other.
V2_HELLO_ANSWER = p.frame(p.encode_response(p.HelloResponse(2, p.DEFAULT_MAX_FRAME)))
V2_UNSUPPORTED = p.frame(
    p.encode_response(
        p.ErrorResponse(
            p.ErrorCode.UNSUPPORTED_VERSION,
            "protocol version 3 is not supported; this daemon speaks version 2",
        )
    )
)


def read_frame(conn: socket.socket) -> Optional[bytes]:
    """One request frame's body, or None at EOF."""
    header = b""
    while len(header) < 4:
        chunk = conn.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (n,) = struct.unpack(">I", header)
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


class FakeDaemon:
    """A server in a thread of this process: answers Hello, then hands each later request
    to `answer(body) -> bytes | None` (None: close the connection without answering).
    Every request body it receives is kept in `received`."""

    def __init__(
        self, path: Path, answer: Callable[[bytes], Optional[bytes]], speaks: int = 3
    ) -> None:
        self.path = path
        self.answer = answer
        #: The protocol version it speaks: 3, or 2 as an older keywardd would.
        self.speaks = speaks
        #: The Hello versions it was offered, in order.
        self.hellos: List[int] = []
        self.received: List[bytes] = []
        self.connections = 0
        #: The connection being served, for a test to write to or shut unasked.
        self.conn: Optional[socket.socket] = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.conn = conn
            with conn:
                if not self._hello(conn):
                    continue
                while True:
                    body = read_frame(conn)
                    if body is None:
                        break
                    self.received.append(body)
                    reply = self.answer(body)
                    if reply is None:
                        break
                    try:
                        conn.sendall(reply)
                    except OSError:
                        break

    def _hello(self, conn: socket.socket) -> bool:
        while True:
            body = read_frame(conn)
            if body is None:
                return False
            hello = p.decode_request(body)
            assert isinstance(hello, p.HelloRequest), hello
            self.hellos.append(hello.version)
            if hello.version != self.speaks:
                conn.sendall(V2_UNSUPPORTED)
                continue
            conn.sendall(HELLO_ANSWER if self.speaks == 3 else V2_HELLO_ANSWER)
            return True

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)


def fork_as(uid: int, child: Callable[[], None]) -> int:
    """Runs `child()` in a forked process as `uid` (gid `uid`, no supplementary groups)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            child()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("child process did not finish")


def squatter(directory: str, connections: int, ready_w: int, report_w: int) -> None:
    """The other user's fake keywardd: makes `directory` (0700, its own), listens on
    keyward.sock in it, and for each of `connections` connections reports on `report_w` how
    many bytes the client sent before closing. Runs in the child of `fork_as`."""
    os.mkdir(directory, 0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(directory, "keyward.sock"))
    listener.listen(4)
    listener.settimeout(15)
    os.write(ready_w, b"R")
    for _ in range(connections):
        conn, _ = listener.accept()
        conn.settimeout(10)
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        conn.close()
        os.write(report_w, f"{total}\n".encode())
