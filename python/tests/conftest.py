"""A real keywardd for the tests: `keywardd --ephemeral` (or `--keystore DIR`) on a socket in
a temporary directory, as tests/src/lib.rs starts it for the Rust tests, driven by the
`keyward` CLI for admin work (import, generate, init, lock).

The daemon binary is `$KEYWARD_DAEMON_BIN`, else <repo>/target/debug/keywardd; the CLI is
`$KEYWARD_CLI_BIN`, else `keyward` next to the daemon."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import REPO  # noqa: E402

import keyward  # noqa: E402

# Variables that would make a daemon under test depend on the machine it runs on.
FOREIGN_ENV = [
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "KEYWARD_SOCK",
    "CREDENTIALS_DIRECTORY",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


def daemon_bin() -> Path:
    path = Path(os.environ.get("KEYWARD_DAEMON_BIN") or REPO / "target" / "debug" / "keywardd")
    if not path.is_file():
        pytest.fail(
            f"{path} not found: build it (`cargo build -p keyward-daemon`) or set "
            "KEYWARD_DAEMON_BIN to a keywardd binary"
        )
    return path


def cli_bin() -> Path:
    path = Path(os.environ.get("KEYWARD_CLI_BIN") or daemon_bin().parent / "keyward")
    if not path.is_file():
        pytest.fail(f"{path} not found: build it or set KEYWARD_CLI_BIN")
    return path


class Daemon:
    """One keywardd under test. `stop()` and `start()` again keep the same socket path."""

    def __init__(
        self,
        root: Path,
        args: Sequence[str] = (),
        config: Optional[str] = None,
        keystore: bool = False,
        as_uid: Optional[int] = None,
    ) -> None:
        self.root = root
        self.socket = root / "run" / "keyward.sock"
        self.log_path = root / "keywardd.log"
        self.args: List[str] = list(args)
        self.as_uid = as_uid
        self.keystore = root / "keystore" if keystore else None
        if config is not None:
            cfg = root / "keywardd.toml"
            cfg.write_text(config)
            self.args += ["--config", str(cfg)]
        self.proc: Optional[subprocess.Popen] = None

    def command(self) -> List[str]:
        program = str(daemon_bin())
        prefix: List[str] = []
        if self.as_uid is not None:
            # A copy the other uid can execute, with its socket directory owned by that uid.
            copy = self.root / "keywardd"
            if not copy.exists():
                shutil.copy(program, copy)
                copy.chmod(0o755)
            program = str(copy)
            prefix = [
                "setpriv",
                f"--reuid={self.as_uid}",
                f"--regid={self.as_uid}",
                "--clear-groups",
            ]
        store = ["--keystore", str(self.keystore)] if self.keystore else ["--ephemeral"]
        return prefix + [program] + store + ["--socket", str(self.socket)] + self.args

    def start(self, extra: Sequence[str] = ()) -> "Daemon":
        env: Dict[str, str] = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        env["HOME"] = str(self.root)
        env["KEYWARD_LOG"] = "info"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command() + list(extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
        log.close()
        self.wait_until_serving()
        return self

    def wait_until_serving(self) -> None:
        started = time.monotonic()
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"keywardd exited at start ({self.proc.returncode}):\n{self.log()}")
            try:
                keyward.Client(self.socket, timeout=2).close()
                return
            except keyward.DeniedError:
                return  # it answered, if only to refuse us: it is up
            except keyward.UnavailableError as err:
                if time.monotonic() - started > START_TIMEOUT:
                    pytest.fail(f"keywardd did not serve ({err}):\n{self.log()}")
                time.sleep(0.01)

    def stop(self) -> int:
        """SIGTERM, then wait; asserts a clean exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"keywardd ignored SIGTERM:\n{self.log()}")
        code = self.proc.returncode
        self.proc = None
        return code

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, **kwargs) -> keyward.Client:
        return keyward.Client(self.socket, **kwargs)

    def keyward(self, *args: str, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "KEYWARD_SOCK"}
        return subprocess.run(
            [str(cli_bin()), "--socket", str(self.socket), *args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env=env,
            timeout=60,
        )

    def ok(self, *args: str, stdin: Optional[bytes] = None) -> bytes:
        out = self.keyward(*args, stdin=stdin)
        assert out.returncode == 0, (args, out.stderr.decode(errors="replace"), self.log())
        return out.stdout

    def import_key(self, name: str, material: bytes, *extra: str) -> None:
        path = self.root / f"{name}.key"
        path.write_bytes(material)
        path.chmod(0o600)
        self.ok("import", name, "--file", str(path), *extra)

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path


@pytest.fixture
def make_daemon():
    """Starts daemons for one test and stops them (checking they exit 0) afterwards."""
    made: List[Daemon] = []
    dirs: List[str] = []

    def make(
        args: Sequence[str] = (),
        config: Optional[str] = None,
        keystore: bool = False,
        as_uid: Optional[int] = None,
        start: bool = True,
        extra: Sequence[str] = (),
    ) -> Daemon:
        # Not pytest's tmp_path: another uid must be able to reach it (0755, root-owned).
        root = Path(tempfile.mkdtemp(prefix="keyward-pytest-"))
        root.chmod(0o755)
        dirs.append(str(root))
        if as_uid is not None:
            run = root / "run"
            run.mkdir(mode=0o700)
            os.chown(run, as_uid, as_uid)
        daemon = Daemon(root, args, config, keystore, as_uid)
        made.append(daemon)
        if start:
            daemon.start(extra)
        return daemon

    yield make
    failures = []
    for daemon in made:
        if daemon.proc is not None:
            died_early = daemon.proc.poll()
            code = daemon.stop()
            if died_early is not None or code != 0:
                failures.append(f"keywardd exited {code} (early: {died_early}):\n{daemon.log()}")
        if "panicked" in daemon.log():
            failures.append(f"keywardd panicked:\n{daemon.log()}")
    for root in dirs:
        shutil.rmtree(root, ignore_errors=True)
    assert not failures, "\n".join(failures)


@pytest.fixture
def daemon(make_daemon) -> Daemon:
    """A plain `keywardd --ephemeral` with no config."""
    return make_daemon()


def other_uid() -> int:
    """A uid that is neither root nor us, with a name if the system has `nobody`."""
    import pwd

    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 4242


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch uid")
