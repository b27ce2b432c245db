"""The socket trust rule, and where the socket is: a server run by another user, in a
directory that user made under /tmp, gets not one byte, from either client."""

import asyncio
import os

import pytest
from conftest import needs_root, other_uid
from fakes import fork_as, squatter, wait_child

import keyward
from keyward import _core


def squat(connections):
    """Starts the other user's fake server; returns (pid, socket path, report fd)."""
    uid = other_uid()
    directory = f"/tmp/keyward-squat-{os.getpid()}-{os.urandom(4).hex()}"
    ready_r, ready_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = fork_as(uid, lambda: squatter(directory, connections, ready_w, report_w))
    os.close(ready_w)
    os.close(report_w)
    assert os.read(ready_r, 1) == b"R", "the fake server did not start"
    os.close(ready_r)
    return uid, pid, directory, report_r


def bytes_received(report_r, connections):
    data = b""
    while data.count(b"\n") < connections:
        chunk = os.read(report_r, 100)
        if not chunk:
            break
        data += chunk
    os.close(report_r)
    return [int(n) for n in data.split()]


@needs_root
def test_a_stranger_socket_in_tmp_gets_zero_bytes(monkeypatch):
    uid, pid, directory, report = squat(connections=3)
    path = os.path.join(directory, "keyward.sock")
    try:
        st = os.lstat(directory)
        assert st.st_uid == uid and st.st_mode & 0o777 == 0o700  # "protected", but in /tmp

        with pytest.raises(keyward.UnavailableError) as caught:
            keyward.Client(path)
        message = str(caught.value)
        assert f"uid {uid}" in message and path in message, message
        assert "KEYWARD_SOCK" in message
        import pwd

        assert f"({pwd.getpwuid(uid).pw_name})" in message
        assert caught.value.code == keyward.ErrorCode.UNAVAILABLE

        # Through KEYWARD_SOCK too, and from the asyncio client.
        monkeypatch.setenv("KEYWARD_SOCK", path)
        with pytest.raises(keyward.UnavailableError):
            keyward.Client()

        async def main():
            await keyward.AsyncClient(path).sign("binance-main", b"symbol=BTCUSDT")

        with pytest.raises(keyward.UnavailableError) as caught:
            asyncio.run(main())
        assert f"uid {uid}" in str(caught.value)
    finally:
        counts = bytes_received(report, 3)
        assert wait_child(pid) == 0
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    assert counts == [0, 0, 0]


@needs_root
def test_the_squatter_would_have_received_bytes_had_the_client_trusted_it(monkeypatch):
    """The zero above is the trust rule's doing: with the check disabled, the same server
    receives the Hello."""
    monkeypatch.setattr(_core, "check_trust", lambda sock, path: None)
    uid, pid, directory, report = squat(connections=1)
    try:
        with pytest.raises(keyward.UnavailableError):
            keyward.Client(os.path.join(directory, "keyward.sock"), timeout=0.5)
    finally:
        counts = bytes_received(report, 1)
        assert wait_child(pid) == 0
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    assert counts == [6]  # 00 00 00 02 00 01: Hello


def test_directory_rule(tmp_path):
    """The directory rule alone, on real directories: owner, modes, a root-only parent."""
    import socket as s

    parent = tmp_path / "parent"
    parent.mkdir(mode=0o755)
    directory = parent / "keyward"
    directory.mkdir(mode=0o700)
    path = directory / "keyward.sock"
    listener = s.socket(s.AF_UNIX)
    listener.bind(str(path))
    me = os.getuid()
    protected = _core._protected_by_directory
    if me == 0:
        assert protected(str(path), 0)
        os.chmod(directory, 0o770)
        assert not protected(str(path), 0)  # group-writable directory
        os.chmod(directory, 0o700)
        os.chmod(parent, 0o775)
        assert not protected(str(path), 0)  # group-writable parent
        os.chmod(parent, 0o1777)
        assert not protected(str(path), 0)  # a /tmp-like parent
        os.chmod(parent, 0o755)
        link = parent / "link"
        link.symlink_to(directory)
        assert not protected(str(link / "keyward.sock"), 0)  # a symlinked directory
    assert not protected(str(path), me + 1)  # owned by someone else
    assert not protected("/tmp/keyward.sock", 0)  # /tmp itself
    listener.close()


def test_default_socket_path_rule(monkeypatch):
    seen = []

    def isdir(path):
        seen.append(path)
        return path == "/run/user/4321"

    monkeypatch.setattr(_core.os, "getuid", lambda: 4321)
    monkeypatch.setattr(_core.os.path, "isdir", isdir)
    monkeypatch.delenv("KEYWARD_SOCK", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/999")
    assert keyward.socket_path() == "/run/user/999/keyward/keyward.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    assert keyward.socket_path() == "/run/user/4321/keyward/keyward.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert keyward.socket_path() == "/run/user/4321/keyward/keyward.sock"
    monkeypatch.setattr(_core.os, "getuid", lambda: 4322)
    assert keyward.socket_path() == "/tmp/keyward-4322/keyward.sock"
    assert seen[-1] == "/run/user/4322"
    monkeypatch.setenv("KEYWARD_SOCK", "")
    assert keyward.socket_path() == "/tmp/keyward-4322/keyward.sock"
    monkeypatch.setenv("KEYWARD_SOCK", "/srv/k.sock")
    assert keyward.socket_path() == "/srv/k.sock"
    assert keyward.socket_path("/explicit.sock") == "/explicit.sock"
