//! `keywardd` starting and stopping, as a process: where it agrees to listen, where it
//! refuses to (with a clear message and a nonzero exit), and a clean SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use keyward_protocol::{
    PROTOCOL_VERSION, Request, Response, decode_response, encode_request, frame,
};
use keyward_tests::Daemon;
use nix::sys::signal::Signal;

const TIMEOUT: Duration = Duration::from_secs(10);

/// True if a keywardd on `socket` completes the handshake.
fn answers_hello(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let hello = encode_request(
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
        u32::MAX,
    )
    .unwrap();
    if stream.write_all(&hello).is_err() {
        return false;
    }
    let mut header = [0u8; frame::HEADER_LEN];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).unwrap();
    matches!(
        decode_response(&body),
        Ok(Response::Welcome(welcome)) if welcome.version == PROTOCOL_VERSION
    )
}

/// Starts a daemon that must refuse to start: returns its stderr after checking it exited
/// nonzero with a one-line-per-record log whose last record names the reason.
fn refused(socket: &Path) -> String {
    let mut daemon = Daemon::launch_on(socket, &[]);
    let status = daemon.wait_exit();
    let stderr = daemon.log();
    assert!(
        !status.success(),
        "keywardd started on {} although it should refuse; stderr:\n{stderr}",
        socket.display()
    );
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn creates_a_missing_socket_directory_0700_and_the_socket_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("a").join("b").join("keyward.sock");
    let _daemon = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));
    let dir_mode = fs::metadata(socket.parent().unwrap()).unwrap().mode() & 0o7777;
    let socket_meta = fs::symlink_metadata(&socket).unwrap();
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(dir_mode, 0o700);
    assert_eq!(socket_meta.mode() & 0o7777, 0o600);
}

#[test]
fn refuses_a_socket_directory_that_group_or_others_can_write() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in [0o777, 0o770, 0o1777, 0o702] {
        let dir = tmp.path().join(format!("run-{mode:o}"));
        fs::create_dir(&dir).unwrap();
        chmod(&dir, mode);
        let socket = dir.join("keyward.sock");
        let stderr = refused(&socket);
        assert!(
            stderr.contains("writable by group or others")
                && stderr.contains(dir.to_str().unwrap()),
            "mode {mode:o}: the message should name the directory and the problem:\n{stderr}"
        );
        assert!(!socket.exists(), "mode {mode:o}: a socket was created");
        // The daemon must not "fix" a directory it refuses.
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, mode);
    }
}

#[test]
fn refuses_a_socket_directory_owned_by_another_uid() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: only root can chown a directory to another uid (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("theirs");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let socket = dir.join("keyward.sock");
    let stderr = refused(&socket);
    assert!(
        stderr.contains("owned by uid 65534") && stderr.contains(dir.to_str().unwrap()),
        "the message should name the directory and its owner:\n{stderr}"
    );
    assert!(!socket.exists());
}

#[test]
fn refuses_a_second_daemon_on_a_live_socket_and_leaves_the_first_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("run").join("keyward.sock");
    let mut first = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));

    let stderr = refused(&socket);
    assert!(
        stderr.contains("already listening") && stderr.contains(socket.to_str().unwrap()),
        "the message should say another keywardd listens there:\n{stderr}"
    );
    // The refused daemon must not have removed the first one's socket on its way out.
    assert!(socket.exists(), "the second daemon deleted the live socket");
    assert!(answers_hello(&socket), "the first daemon stopped serving");
    first.assert_running();
}

#[test]
fn refuses_a_socket_path_that_is_not_a_socket_and_leaves_the_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let path = dir.join("keyward.sock");
    fs::write(&path, b"precious").unwrap();
    let stderr = refused(&path);
    assert!(stderr.contains("not a socket"), "{stderr}");
    assert_eq!(fs::read(&path).unwrap(), b"precious");
}

#[test]
fn replaces_a_stale_socket_left_by_a_daemon_that_was_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("run").join("keyward.sock");
    let mut first = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");
    assert!(!answers_hello(&socket));

    let _second = Daemon::start_on(&socket, &[]);
    assert!(answers_hello(&socket));
}

#[test]
fn sigterm_and_sigint_remove_the_socket_and_exit_0_even_with_an_idle_client_connected() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("run").join("keyward.sock");
        let mut daemon = Daemon::start_on(&socket, &[]);
        assert!(answers_hello(&socket));
        // A bot that keeps its connection open between orders must not hold up shutdown.
        let idle = UnixStream::connect(&socket).unwrap();
        let asked = Instant::now();
        daemon.signal(signal);
        let status = daemon.wait_exit();
        let stderr = daemon.log();
        assert!(
            status.success(),
            "{signal}: exited with {status}; stderr:\n{stderr}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{signal}: shutdown took {:?} with an idle client connected",
            asked.elapsed()
        );
        assert!(!socket.exists(), "{signal}: the socket file is still there");
        assert!(!stderr.contains("panicked"), "{stderr}");
        drop(idle);
    }
}

#[test]
fn a_listener_that_is_not_keywardd_is_not_mistaken_for_a_stale_socket() {
    // Something else listens on the path (say, a second keywardd still starting up, or
    // another program): it is live, so the daemon must refuse rather than delete it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let socket = dir.join("keyward.sock");
    let _other = UnixListener::bind(&socket).unwrap();
    let stderr = refused(&socket);
    assert!(stderr.contains("already listening"), "{stderr}");
    assert!(socket.exists());
}

/// `keywardd --check-config` (issue 19 §1): what `ExecReload=` runs before it signals the
/// daemon, so that a broken file fails `systemctl reload` instead of being ignored.
mod check_config {
    use super::*;
    use keyward_tests::{Output, keywardd_bin, run};
    use std::process::Command;

    fn check(args: &[&str], home: &Path) -> Output {
        run(
            Command::new(keywardd_bin())
                .args(args)
                .env("HOME", home)
                .env_remove("XDG_CONFIG_HOME"),
            None,
        )
    }

    #[test]
    fn a_good_file_exits_0_with_one_ok_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keywardd.toml");
        fs::write(&path, "[keys.a]\nallow_uids = [0]\n").unwrap();
        let out = check(&["--check-config", path.to_str().unwrap()], dir.path());
        out.success();
        assert_eq!(
            out.stdout_text(),
            format!("keywardd: config OK: {}\n", path.display())
        );
        assert_eq!(out.stderr, "");
    }

    #[test]
    fn a_broken_file_exits_1_with_the_mistake_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keywardd.toml");
        for (text, mistake) in [
            ("[keys.a\nallow_uids = [0]\n", "line 1"),
            (
                "[keys.a]\nrate_per_second = 5\n",
                "unknown field `rate_per_second`",
            ),
            (
                "[keys.a]\nallow_uids = [\"no-such-user-kw\"]\n",
                "no-such-user-kw",
            ),
            ("[daemon]\naudit_required = true\n", "audit_log is not"),
        ] {
            fs::write(&path, text).unwrap();
            let out = check(&["--check-config", path.to_str().unwrap()], dir.path());
            let line = out.error_line(1);
            assert!(
                line.starts_with("keywardd: ") && line.contains(path.to_str().unwrap()),
                "{line}"
            );
            assert!(line.contains(mistake), "{text:?}: {line}");
            assert!(out.stdout.is_empty(), "{out:#?}");
        }
        let missing = dir.path().join("missing.toml");
        let out = check(&["--check-config", missing.to_str().unwrap()], dir.path());
        assert!(out.error_line(1).contains("No such file"), "{out:#?}");
    }

    #[test]
    fn without_a_file_it_checks_the_one_the_daemon_would_read() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("named.toml");
        fs::write(&named, "[keys.a]\nallow_uids = [\"no-such-user-kw\"]\n").unwrap();
        // --config names the file, as in keywardd.service's ExecStart=.
        let out = check(
            &["--config", named.to_str().unwrap(), "--check-config"],
            dir.path(),
        );
        assert!(out.error_line(1).contains("no-such-user-kw"), "{out:#?}");
        // Else the default path under $HOME; absent, the built-in defaults.
        let out = check(&["--check-config"], dir.path());
        out.success();
        assert!(out.stdout_text().contains("built-in defaults"), "{out:#?}");
        let default = dir.path().join(".config/keyward/keywardd.toml");
        fs::create_dir_all(default.parent().unwrap()).unwrap();
        fs::write(&default, "[defaults]\nburst = \"x\"\n").unwrap();
        let out = check(&["--check-config"], dir.path());
        assert!(
            out.error_line(1).contains(default.to_str().unwrap()),
            "{out:#?}"
        );
    }
}

/// When stderr is the journal (issue 19 §4), every line starts with its syslog priority, so
/// `journalctl -p warning` shows warnings and errors, and "AUDIT LOG WRITE FAILED" is an
/// error; elsewhere the lines stay as a person reads them.
mod journal {
    use super::*;

    fn config(dir: &Path) -> String {
        let path = dir.join("keywardd.toml");
        // /dev/full: every audit write fails (ENOSPC), which must be logged at error.
        fs::write(
            &path,
            "[daemon]\naudit_log = \"/dev/full\"\n\n\
             [keys.ed]\nformat = \"binance\"\ntimestamp_window_ms = 5000\n",
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Makes the daemon log at each priority: info (start), warning (a denial), error (the
    /// audit write), debug (a connection).
    fn provoke(daemon: &Daemon) -> String {
        daemon.generate("ed", "ed25519");
        let mut client = daemon.client();
        // No timestamp: a policy violation, logged as a warning.
        let err = client.sign("ed", b"symbol=X").unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
        let started = Instant::now();
        loop {
            let log = daemon.log();
            if log.contains("AUDIT LOG WRITE FAILED") || started.elapsed() > TIMEOUT {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lines_to_the_journal_start_with_their_syslog_priority() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let daemon = Daemon::start_journal(&["--config", &config]);
        let log = provoke(&daemon);
        let line = |needle: &str| {
            log.lines()
                .find(|line| line.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle:?}:\n{log}"))
        };
        assert!(line("AUDIT LOG WRITE FAILED").starts_with("<3>"), "{log}");
        assert!(line("denied: ").starts_with("<4>"), "{log}");
        assert!(line("keywardd listening").starts_with("<6>"), "{log}");
        // Structured fields follow the message.
        assert!(
            line("denied: ").contains("key=\"ed\"") || line("denied: ").contains("key=ed"),
            "{log}"
        );
        for line in log.lines() {
            assert!(
                ["<3>", "<4>", "<6>", "<7>"]
                    .iter()
                    .any(|p| line.starts_with(p)),
                "a line without a priority: {line:?}\n{log}"
            );
        }
    }

    /// A bot names its own process (comm): a line break there must not forge a journal
    /// entry at a priority of its choosing.
    #[test]
    fn a_process_name_with_a_line_break_forges_no_journal_line() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let daemon = Daemon::start_journal(&["--config", &config]);
        daemon.generate("ed", "ed25519");
        let python_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/src");
        let script = format!(
            "import ctypes, keyward\n\
             ctypes.CDLL(None).prctl(15, b'ev\\n<3>FORGED', 0, 0, 0)\n\
             c = keyward.Client({:?})\n\
             try:\n    c.sign('ed', b'symbol=X')\nexcept keyward.KeywardError:\n    pass\n",
            daemon.socket().to_str().unwrap()
        );
        let out = keyward_tests::run(
            std::process::Command::new("python3")
                .args(["-c", &script])
                .env("PYTHONPATH", python_src),
            None,
        );
        assert_eq!(out.code, Some(0), "{out:#?}");
        let started = Instant::now();
        let log = loop {
            let log = daemon.log();
            if log.contains("FORGED") || started.elapsed() > TIMEOUT {
                break log;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            log.contains("comm=\"ev?<3>FORGED\"") || log.contains("comm=ev?<3>FORGED"),
            "{log}"
        );
        assert!(
            !log.lines().any(|line| line.starts_with("<3>FORGED")),
            "{log}"
        );
    }

    #[test]
    fn a_journal_stream_that_is_not_stderr_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        // Inherited from a parent whose stderr was the journal, but ours is a file.
        let mut daemon =
            Daemon::start_with_env(&[("JOURNAL_STREAM", "1:1")], &["--config", &config]);
        let log = provoke(&daemon);
        assert!(!log.lines().any(|line| line.starts_with('<')), "{log}");
        assert!(
            log.contains(" ERROR ") && log.contains("AUDIT LOG WRITE FAILED"),
            "{log}"
        );
        daemon.assert_running();
    }
}
