//! Who may sign what (issue 4), end to end with the real `keywardd` and `keyward`: the socket
//! group, per-key allow lists (uids, primary and supplementary groups), payload rules, rate
//! limits, the audit log, SIGHUP reload and config validation at start.
//!
//! Other users are real other uids: `setpriv` runs a copy of `keyward`, or a small Perl relay
//! that connects to the socket as that user and hands the connection to a Rust [`Client`] in
//! this process (so the daemon's `SO_PEERCRED` sees the other user, and the test still gets
//! typed errors and a connection it can keep open across a SIGHUP). Tests that need another
//! uid skip when not run as root; CI runs them as root.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_client::{Client, Error, ErrorCode, KeyKind, Scheme, SecretBytes};
use keyward_tests::verify::{Check, assert_python_verifies_all};
use keyward_tests::{Daemon, Output, is_root, keyward_bin, keywardd_bin, openssl, run};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A spare gid for the socket group, and one for a group of bots; neither needs to exist in
/// /etc/group (the config takes numbers, and setpriv takes numeric groups).
const SOCKET_GID: u32 = 4242;
const BOT_GID: u32 = 4343;

/// Another user, as setpriv makes it: real and effective uid/gid, and exactly these
/// supplementary groups.
#[derive(Debug, Clone, Copy)]
struct User {
    uid: u32,
    gid: u32,
    groups: &'static [u32],
}

/// `nobody`/`nogroup` with no supplementary groups.
const NOBODY: User = User {
    uid: 65534,
    gid: 65534,
    groups: &[],
};

impl User {
    /// `setpriv --reuid U --regid G (--clear-groups | --groups=...) PROGRAM`.
    fn command(self, program: &Path) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid));
        if self.groups.is_empty() {
            command.arg("--clear-groups");
        } else {
            let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            command.arg(format!("--groups={}", groups.join(",")));
        }
        command.arg(program);
        command
    }
}

/// Skips (returns false) when not root: only root can run a client as another uid.
fn can_switch_uid(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: it needs root to run clients as other uids with setpriv");
    false
}

/// A config file in a private temporary directory (which also holds the audit log when a
/// test asks for one). `set` rewrites it, for SIGHUP.
#[derive(Debug)]
struct ConfigFile {
    dir: TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let dir = tempfile::Builder::new()
            .prefix("keyward-policy-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("keywardd.toml");
        let config = ConfigFile { dir, path };
        config.set(text);
        config
    }

    fn set(&self, text: &str) {
        fs::write(&self.path, text).unwrap();
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Starts an ephemeral daemon with `--config FILE`.
fn start(config: &ConfigFile) -> Daemon {
    Daemon::start(&["--config", config.path()])
}

/// Makes the test directory traversable (0755) and puts a 0755 copy of `keyward` in it, so
/// other uids can reach the socket's directory and run the CLI; the socket directory and the
/// socket keep the modes the daemon gave them.
fn keyward_for_everyone(daemon: &Daemon) -> PathBuf {
    fs::set_permissions(daemon.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let copy = daemon.dir().join("keyward");
    if !copy.exists() {
        fs::copy(keyward_bin(), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    }
    copy
}

/// Writes a file other users may read (a passphrase or key file for a CLI run as them).
fn world_readable(daemon: &Daemon, name: &str, bytes: &[u8]) -> String {
    let path = daemon.write(name, bytes);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `keyward --socket SOCKET ARGS` as `user`.
///
/// Retries while exec fails with ETXTBSY: a process forked by another test thread while
/// [`keyward_for_everyone`] was writing the copy holds that write descriptor until it execs
/// its own program, and the kernel refuses to run a file open for writing meanwhile.
fn keyward_as(
    user: User,
    keyward: &Path,
    daemon: &Daemon,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    let started = Instant::now();
    loop {
        let mut command = user.command(keyward);
        command
            .arg("--socket")
            .arg(daemon.socket())
            .args(args)
            .env_remove("KEYWARD_SOCK");
        let out = run(&mut command, stdin);
        let busy = out.code == Some(126) && out.stderr.contains("Text file busy");
        if !busy || started.elapsed() > Duration::from_secs(5) {
            return out;
        }
        sleep(Duration::from_millis(10));
    }
}

/// Connects to the socket in ARGV[0] and relays bytes both ways between it and stdin/stdout
/// (one socketpair end, shared with the test) until either side closes. Perl, because it is
/// on every Debian machine and any uid can run it.
const PERL_RELAY: &str = r#"
use strict; use Socket; use IO::Select;
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!\n";
my %to = (fileno(STDIN) => $s, fileno($s) => \*STDOUT);
my $select = IO::Select->new(\*STDIN, $s);
while (1) {
    for my $from ($select->can_read) {
        my $n = sysread($from, my $buf, 65536);
        exit 0 unless $n;
        my $off = 0;
        while ($off < $n) {
            my $w = syswrite($to{fileno($from)}, $buf, $n - $off, $off);
            defined $w or exit 0;
            $off += $w;
        }
    }
}
"#;

/// A client connection made by another user (through [`PERL_RELAY`]).
#[derive(Debug)]
struct Bridged {
    client: Client,
    child: Child,
}

impl Bridged {
    /// The pid the daemon sees for this connection (setpriv execs Perl in place).
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to the daemon as `user`, with the handshake done.
fn connect_as(user: User, daemon: &Daemon) -> Result<Bridged, Error> {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = {
        let mut command = user.command(Path::new("/usr/bin/perl"));
        command
            .arg("-e")
            .arg(PERL_RELAY)
            .arg(daemon.socket())
            .stdin(Stdio::from(OwnedFd::from(theirs.try_clone().unwrap())))
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::null());
        // The command (and its copies of our socketpair end) is dropped here, so the relay's
        // exit is an EOF for the client.
        command.spawn().unwrap()
    };
    let mut bridged_child = child;
    let client = Client::from_stream(ours).and_then(|mut client| {
        client.set_timeout(Some(Duration::from_secs(10)))?;
        Ok(client)
    });
    match client {
        Ok(client) => Ok(Bridged {
            client,
            child: bridged_child,
        }),
        Err(err) => {
            let _ = bridged_child.kill();
            let _ = bridged_child.wait();
            Err(err)
        }
    }
}

/// The daemon's message and code, from a failed call.
#[track_caller]
fn daemon_error(err: &Error) -> (ErrorCode, &str) {
    match err {
        Error::Daemon { code, message } => (*code, message.as_str()),
        other => panic!("expected an error from the daemon, got {other:?}"),
    }
}

/// Asserts `result` is the daemon refusing with `code`; returns its message.
#[track_caller]
fn refused_with<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) -> String {
    let err = result.expect_err("the daemon accepted a request it must refuse");
    let (got, message) = daemon_error(&err);
    assert_eq!(got, code, "wrong error code; message: {message}");
    message.to_owned()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `PREFIX&timestamp=<now in ms>`.
fn fresh(prefix: &str) -> String {
    format!("{prefix}&timestamp={}", now_ms())
}

/// The pid of this test's `keywardd` (the one serving its socket).
fn daemon_pid(daemon: &Daemon) -> Pid {
    let socket = daemon.socket().as_os_str().as_bytes();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"keywardd")) && args.contains(&socket) {
            return Pid::from_raw(pid);
        }
    }
    panic!("no keywardd process serves {}", daemon.socket().display());
}

/// Waits until `needle` occurs at least `count` times in the daemon's log; returns the log.
#[track_caller]
fn wait_for_log(daemon: &Daemon, needle: &str, count: usize) -> String {
    let started = Instant::now();
    loop {
        let log = daemon.log();
        if log.matches(needle).count() >= count {
            return log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon did not log {needle:?} ({count}×) within 10 s; its stderr:\n{log}"
        );
        sleep(Duration::from_millis(10));
    }
}

/// SHA-256 of `bytes` in hex, by the OpenSSL CLI (not by keyward's own crypto).
fn sha256_hex(bytes: &[u8]) -> String {
    let out = run(
        Command::new("openssl").args(["dgst", "-sha256", "-r"]),
        Some(bytes),
    );
    assert_eq!(out.code, Some(0), "openssl dgst failed: {out:#?}");
    let hex = out
        .stdout_text()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(hex.len(), 64, "{out:#?}");
    hex
}

/// Where the first `len`-byte run of `secret` (or the whole of a shorter one) occurs in
/// `haystack`, if any does.
fn find_run(haystack: &[u8], secret: &[u8], len: usize) -> Option<(usize, usize)> {
    let len = len.min(secret.len());
    secret.windows(len).enumerate().find_map(|(at, run)| {
        haystack
            .windows(len)
            .position(|window| window == run)
            .map(|found| (at, found))
    })
}

/// Asserts that no 16-byte run of `secret` occurs in `haystack`.
#[track_caller]
fn assert_no_run(haystack: &[u8], secret: &[u8], what: &str, place: &str) {
    if let Some((at, found)) = find_run(haystack, secret, 16) {
        panic!(
            "{place} holds 16 bytes of {what} (secret offset {at}, found at byte {found}):\n{}",
            String::from_utf8_lossy(haystack)
        );
    }
}

/// Names of the keys in `keyward list --json` output.
fn listed_names(out: &Output) -> Vec<String> {
    out.success();
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The socket group and per-key allow lists
// ---------------------------------------------------------------------------------------------

#[test]
fn with_a_socket_group_only_members_connect_and_each_signs_only_its_own_keys() {
    if !can_switch_uid("with_a_socket_group_only_members_connect_and_each_signs_only_its_own_keys")
    {
        return;
    }
    let config = ConfigFile::new(&format!(
        "[daemon]\nsocket_group = {SOCKET_GID}\n\n\
         [keys.a]\nallow_uids = [65534]\n\n\
         [keys.b]\nallow_gids = [{BOT_GID}]\n"
    ));
    let daemon = start(&config);
    let me = nix::unistd::geteuid().as_raw();

    let socket = fs::metadata(daemon.socket()).unwrap();
    assert!(socket.file_type().is_socket());
    assert_eq!(
        (socket.mode() & 0o7777, socket.uid(), socket.gid()),
        (0o660, me, SOCKET_GID),
        "the socket must be 0660, owned by the daemon and the socket group"
    );
    let dir = fs::metadata(daemon.socket().parent().unwrap()).unwrap();
    assert_eq!(
        (dir.mode() & 0o7777, dir.uid(), dir.gid()),
        (0o750, me, SOCKET_GID),
        "the socket's directory must be 0750, owned by the daemon and the socket group"
    );

    // Key a: uid 65534. Key b: group 4343. Key c: no table, so only the daemon's uid.
    let public = [
        ("a", daemon.generate("a", "ed25519")),
        ("b", daemon.generate("b", "ed25519")),
        ("c", daemon.generate("c", "ed25519")),
    ];
    let keyward = keyward_for_everyone(&daemon);

    // Not in the socket group: the kernel refuses the connect (EACCES on the 0750
    // directory), the CLI says so with exit 4, and the daemon never hears of it — even for
    // uid 65534, whom key a's policy allows: the group is the first gate.
    let outsiders = [
        User {
            uid: 65531,
            gid: 65531,
            groups: &[],
        },
        NOBODY,
        User {
            uid: 65531,
            gid: 65531,
            groups: &[BOT_GID],
        },
    ];
    let log_before = daemon.log();
    for user in outsiders {
        for args in [
            &["list"][..],
            &["sign", "a", "symbol=BTCUSDT&timestamp=1"],
            &["generate", "x", "--scheme", "ed25519"],
        ] {
            let out = keyward_as(user, &keyward, &daemon, args, None);
            let line = out.error_line(4);
            assert!(
                line.contains("permission denied"),
                "{user:?} {args:?}: expected EACCES, got {line}"
            );
            assert!(out.stdout.is_empty());
        }
        let refused = connect_as(user, &daemon).expect_err("an outsider connected");
        assert!(
            matches!(refused, Error::Disconnected | Error::Io(_)),
            "{refused:?}"
        );
    }
    assert_eq!(
        daemon.log(),
        log_before,
        "the daemon logged something for peers its socket's permissions keep out"
    );

    // A member of the socket group with no right to any key reaches the daemon, which
    // refuses it at once and logs that.
    let idle_member = User {
        uid: 65530,
        gid: 65530,
        groups: &[SOCKET_GID],
    };
    let out = keyward_as(idle_member, &keyward, &daemon, &["list"], None);
    assert!(
        out.error_line(4)
            .contains("uid 65530 may not use this keywardd"),
        "{out:#?}"
    );
    assert!(
        daemon.log()[log_before.len()..].contains("refused a connection"),
        "{}",
        daemon.log()
    );

    // Members: by uid (a), by supplementary group (b), by primary group (b).
    let by_uid = User {
        uid: 65534,
        gid: 65534,
        groups: &[SOCKET_GID],
    };
    let by_supplementary = User {
        uid: 65533,
        gid: 65533,
        groups: &[SOCKET_GID, BOT_GID],
    };
    let by_primary = User {
        uid: 65532,
        gid: BOT_GID,
        groups: &[SOCKET_GID],
    };
    let payload = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000";
    let mut signed = Vec::new();
    for (user, own) in [(by_uid, "a"), (by_supplementary, "b"), (by_primary, "b")] {
        let out = keyward_as(
            user,
            &keyward,
            &daemon,
            &["sign", own, "--encoding", "raw"],
            Some(payload),
        );
        out.success();
        signed.push((own, out.stdout.clone()));

        for other in ["a", "b", "c"].into_iter().filter(|k| *k != own) {
            let out = keyward_as(user, &keyward, &daemon, &["sign", other], Some(payload));
            let line = out.error_line(4);
            assert!(
                line.contains(&format!("uid {} may not use key \"{other}\"", user.uid)),
                "{user:?} signing {other}: {line}"
            );
            assert!(out.stdout.is_empty());
            let out = keyward_as(user, &keyward, &daemon, &["pubkey", other], None);
            assert!(out.error_line(4).contains(&format!("\"{other}\"")));
        }
        keyward_as(user, &keyward, &daemon, &["pubkey", own], None).success();

        let listed = keyward_as(user, &keyward, &daemon, &["list", "--json"], None);
        assert_eq!(
            listed_names(&listed),
            [own],
            "{user:?} must see exactly its own key"
        );
    }
    let checks: Vec<Check<'_>> = signed
        .iter()
        .map(|(key, signature)| {
            let pem = &public.iter().find(|(name, _)| name == key).unwrap().1;
            Check::new("ed25519", pem, payload, signature)
        })
        .collect();
    assert_python_verifies_all(&checks);

    // Every admin request is refused to both kinds of member, by name.
    let pass = world_readable(&daemon, "pass", b"members-may-not-init-this\n");
    let pass2 = world_readable(&daemon, "pass2", b"members-may-not-set-this\n");
    let secret = world_readable(&daemon, "secret", b"members-may-not-import-this-secret");
    let admin: [(&[&str], &str); 7] = [
        (&["generate", "x", "--scheme", "ed25519"], "generate"),
        (
            &["import", "x", "--file", &secret, "--scheme", "hmac-sha256"],
            "import",
        ),
        (&["remove", "a"], "remove"),
        (&["lock"], "lock"),
        (&["unlock", "--passphrase-file", &pass], "unlock"),
        (&["init", "--passphrase-file", &pass], "init"),
        (
            &[
                "passwd",
                "--passphrase-file",
                &pass,
                "--new-passphrase-file",
                &pass2,
            ],
            "change-passphrase",
        ),
    ];
    for user in [by_uid, by_supplementary] {
        for (args, kind) in admin {
            let out = keyward_as(user, &keyward, &daemon, args, None);
            let line = out.error_line(4);
            assert!(
                line.contains(&format!("uid {} may not {kind}", user.uid)),
                "{user:?} {args:?}: {line}"
            );
        }
    }
    // Nothing changed: the same three keys, and the daemon still serves its own uid.
    assert_eq!(
        listed_names(&daemon.keyward(["list", "--json"])),
        ["a", "b", "c"]
    );
    daemon.sign("c", payload, &[]);
}

/// User and group names are accepted where numbers are: `nobody` / `nogroup` (Debian).
#[test]
fn user_and_group_names_in_the_config_resolve() {
    if !can_switch_uid("user_and_group_names_in_the_config_resolve") {
        return;
    }
    if nix::unistd::Group::from_name("nogroup")
        .ok()
        .flatten()
        .is_none()
    {
        eprintln!("SKIPPED user_and_group_names_in_the_config_resolve: no group `nogroup`");
        return;
    }
    let config = ConfigFile::new(
        "[daemon]\nsocket_group = \"nogroup\"\n\
         [keys.by-name]\nallow_uids = [\"nobody\"]\n\
         [keys.by-group]\nallow_gids = [\"nogroup\"]\n",
    );
    let daemon = start(&config);
    assert_eq!(fs::metadata(daemon.socket()).unwrap().gid(), 65534);
    daemon.generate("by-name", "ed25519");
    daemon.generate("by-group", "ed25519");
    daemon.generate("root-only", "ed25519");
    let keyward = keyward_for_everyone(&daemon);
    // 65533 in group nogroup (primary): reaches the socket, may use by-group only.
    let member = User {
        uid: 65533,
        gid: 65534,
        groups: &[],
    };
    for (user, own) in [
        (NOBODY, &["by-group", "by-name"][..]),
        (member, &["by-group"]),
    ] {
        let listed = keyward_as(user, &keyward, &daemon, &["list", "--json"], None);
        assert_eq!(listed_names(&listed), own, "{user:?}");
        for key in own {
            keyward_as(user, &keyward, &daemon, &["sign", key, "x"], None).success();
        }
        keyward_as(user, &keyward, &daemon, &["sign", "root-only", "x"], None).error_line(4);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Payload policy
// ---------------------------------------------------------------------------------------------

#[test]
fn stale_missing_denied_and_oversize_payloads_are_each_refused_with_their_own_reason() {
    let config = ConfigFile::new(
        "[keys.guarded]\n\
         timestamp_window_ms = 5000\n\
         deny_params = [\"address\", \"Name\"]\n\
         max_payload_bytes = 256\n",
    );
    let daemon = start(&config);
    let guarded = daemon.generate("guarded", "ed25519");
    daemon.generate("open", "ed25519");

    // Refused by `guarded` with exit 4 and one line; the same payload signs with `open`, so
    // the refusal is the policy's and not some other problem with the payload.
    let refused = |payload: &str| -> String {
        let out = daemon.keyward(["sign", "guarded", payload]);
        let line = out.error_line(4).to_owned();
        assert!(out.stdout.is_empty(), "{payload:?} printed a signature");
        daemon.keyward(["sign", "open", payload]).success();
        line
    };
    // "timestamp is N ms from the daemon's clock" → N.
    let skew = |line: &str| -> u64 {
        let rest = line
            .split("timestamp is ")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        rest.split(' ').next().unwrap().parse().unwrap()
    };

    let now = now_ms();
    let stale = refused(&format!(
        "symbol=BTCUSDT&side=SELL&timestamp={}",
        now - 60_000
    ));
    assert!(
        stale.contains("ms from the daemon's clock; this key allows ±5000 ms"),
        "{stale}"
    );
    assert!((60_000..70_000).contains(&skew(&stale)), "{stale}");
    let future = refused(&format!("symbol=BTCUSDT&timestamp={}", now + 60_000));
    assert!((50_000..=60_000).contains(&skew(&future)), "{future}");
    // Seconds are not milliseconds: 1000× too small is stale, not accepted.
    let seconds = refused(&format!("symbol=BTCUSDT&timestamp={}", now / 1000));
    assert!(seconds.contains("this key allows ±5000 ms"), "{seconds}");
    let stale_us = refused(&format!(
        "symbol=BTCUSDT&timestamp={}",
        (now - 60_000) * 1000
    ));
    assert!((60_000..70_000).contains(&skew(&stale_us)), "{stale_us}");

    let missing = refused("symbol=BTCUSDT&side=BUY&quantity=1");
    assert!(
        missing.contains("this key requires exactly one timestamp parameter within ±5000 ms"),
        "{missing}"
    );
    let twice = refused(&format!("timestamp={now}&symbol=X&timestamp={now}"));
    assert!(twice.contains("exactly one timestamp"), "{twice}");
    let not_a_number = refused("symbol=BTCUSDT&timestamp=soon");
    assert!(not_a_number.contains("is not a number"), "{not_a_number}");

    let denied = refused(&fresh("coin=USDT&network=TRX&address=TXyz&amount=100"));
    assert!(
        denied.contains("parameter \"address\" is not allowed for this key"),
        "{denied}"
    );
    // Names are compared decoded and case-insensitively, whatever the config's case.
    for sneaky in ["addr%65ss", "ADDRESS", "%61ddress", "Address"] {
        let line = refused(&fresh(&format!("coin=USDT&{sneaky}=TXyz&amount=100")));
        assert!(
            line.contains("is not allowed for this key"),
            "{sneaky}: {line}"
        );
    }
    let line = refused(&fresh("coin=USDT&name=x"));
    assert!(line.contains("\"name\" is not allowed"), "{line}");

    // Exactly at the limit signs; one byte over is refused.
    let at_limit = {
        let mut payload = format!("symbol=BTCUSDT&timestamp={}&pad=", now_ms());
        payload.push_str(&"p".repeat(256 - payload.len()));
        payload
    };
    assert_eq!(at_limit.len(), 256);
    daemon.sign("guarded", at_limit.as_bytes(), &[]);
    let over = format!("{at_limit}p");
    let oversize = refused(&over);
    assert!(
        oversize.contains("payload of 257 bytes exceeds this key's limit of 256 bytes"),
        "{oversize}"
    );

    // Four rules, four different reasons.
    let reasons = [&stale, &missing, &denied, &oversize];
    for (i, a) in reasons.iter().enumerate() {
        for b in &reasons[i + 1..] {
            assert_ne!(a, b);
        }
    }

    // JSON bodies: the top-level fields are the parameters.
    let json = |fields: &str| format!("{{\"symbol\":\"BTCUSDT\",{fields}}}");
    for bad in [
        format!("\"address\":\"TXyz\",\"timestamp\":{}", now_ms()),
        // A JSON escape spells the same name.
        format!("\"addr\\u0065ss\":\"TXyz\",\"timestamp\":{}", now_ms()),
    ] {
        let line = refused(&json(&bad));
        assert!(
            line.contains("is not allowed for this key"),
            "{bad}: {line}"
        );
    }
    let line = refused(&json("\"side\":\"BUY\""));
    assert!(line.contains("exactly one timestamp"), "{line}");
    let line = refused(&json(&format!("\"timestamp\":{}", now_ms() - 60_000)));
    assert!(line.contains("this key allows ±5000 ms"), "{line}");
    let line = refused("{\"symbol\":\"BTCUSDT\",");
    assert!(line.contains("not a valid JSON object"), "{line}");

    // Fresh, clean payloads sign and verify: a query, microseconds, JSON (number and string
    // timestamps).
    let good = [
        fresh("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000"),
        format!("symbol=BTCUSDT&side=BUY&timestamp={}", now_ms() * 1000),
        json(&format!("\"side\":\"BUY\",\"timestamp\":{}", now_ms())),
        json(&format!("\"side\":\"BUY\",\"timestamp\":\"{}\"", now_ms())),
        at_limit.clone(),
    ];
    let mut signatures = Vec::new();
    for payload in &good {
        signatures.push(daemon.sign("guarded", payload.as_bytes(), &["--encoding", "raw"]));
    }

    // Through the Rust client: the code is PolicyViolation, and one bad payload refuses the
    // whole batch.
    let mut client = daemon.client();
    let stale_payload = format!("symbol=X&timestamp={}", now_ms() - 60_000);
    let message = refused_with(
        client.sign("guarded", stale_payload.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    assert!(message.contains("this key allows ±5000 ms"), "{message}");
    let (one, two) = (fresh("symbol=A"), fresh("symbol=B"));
    let withdrawal = fresh("coin=USDT&address=TXyz");
    for batch in [
        vec![one.as_bytes(), withdrawal.as_bytes(), two.as_bytes()],
        vec![one.as_bytes(), two.as_bytes(), stale_payload.as_bytes()],
        vec![over.as_bytes(), one.as_bytes()],
    ] {
        refused_with(
            client.sign_batch("guarded", &batch),
            ErrorCode::PolicyViolation,
        );
    }
    let batch = client
        .sign_batch("guarded", &[one.as_bytes(), two.as_bytes()])
        .unwrap();
    let mut checks: Vec<Check<'_>> = good
        .iter()
        .zip(&signatures)
        .map(|(payload, signature)| Check::new("ed25519", &guarded, payload.as_bytes(), signature))
        .collect();
    checks.push(Check::new(
        "ed25519",
        &guarded,
        one.as_bytes(),
        batch[0].as_bytes(),
    ));
    checks.push(Check::new(
        "ed25519",
        &guarded,
        two.as_bytes(),
        batch[1].as_bytes(),
    ));
    assert_python_verifies_all(&checks);
}

/// Binance signs `totalParams`, "the query string concatenated with the request body" with
/// no separator between them (Binance API docs, SIGNED endpoint security). A withdrawal
/// sent as query `...&recvWindow=5000` plus body `address=...` is signed as one payload in
/// which `address` is glued to the previous value: the daemon must still see the denied
/// parameter, or `deny_params = ["address"]` stops no withdrawal a compromised bot sends.
#[test]
fn a_denied_parameter_cannot_hide_in_binance_query_plus_body_concatenation() {
    let config = ConfigFile::new(
        "[keys.guarded]\ntimestamp_window_ms = 5000\ndeny_params = [\"address\"]\n",
    );
    let daemon = start(&config);
    daemon.generate("guarded", "ed25519");
    let mut client = daemon.client();
    for (query, body) in [
        // recvWindow's value swallows the body's first parameter name.
        (
            fresh("coin=USDT&network=TRX&amount=100") + "&recvWindow=5000",
            "address=TXevil",
        ),
        // An empty-valued parameter last in the query: "name=address=TXevil".
        (
            fresh("coin=USDT&network=TRX&amount=100") + "&name=",
            "address=TXevil",
        ),
    ] {
        let total = format!("{query}{body}");
        let message = refused_with(
            client.sign("guarded", total.as_bytes()),
            ErrorCode::PolicyViolation,
        );
        assert!(message.contains("address"), "{total}: {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Rate limit
// ---------------------------------------------------------------------------------------------

/// "…; retry in N ms" → N.
fn retry_ms(message: &str) -> u64 {
    let rest = message
        .split("retry in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no retry hint in {message:?}"));
    rest.strip_suffix(" ms")
        .unwrap_or_else(|| panic!("no retry hint in {message:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_burst_beyond_the_bucket_is_rate_limited_until_it_refills() {
    let config = ConfigFile::new(
        "[keys.limited]\nrate_per_sec = 5\nburst = 3\n\n\
         [keys.twin]\nrate_per_sec = 5\nburst = 3\n\n\
         [keys.slow]\nrate_per_sec = 0.1\nburst = 1\n",
    );
    let daemon = start(&config);
    let public = daemon.generate("limited", "ed25519");
    for name in ["twin", "open", "slow"] {
        daemon.generate(name, "ed25519");
    }
    let payload = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000";
    let mut client = daemon.client();

    let burst_started = Instant::now();
    for _ in 0..3 {
        client.sign("limited", payload).unwrap();
    }
    let message = refused_with(client.sign("limited", payload), ErrorCode::RateLimited);
    let refused_at = Instant::now();
    assert!(
        burst_started.elapsed() < Duration::from_millis(150),
        "four signatures took {:?}: too slow to test a 5/s bucket",
        burst_started.elapsed()
    );
    assert!(
        message.starts_with("rate limit of key \"limited\" reached (5/s); retry in "),
        "{message}"
    );
    let wait = retry_ms(&message);
    assert!((1..=200).contains(&wait), "one token at 5/s: {message}");

    // Every key has its own bucket: a twin with the same limit and a key without one are
    // unaffected.
    for _ in 0..3 {
        client.sign("twin", payload).unwrap();
    }
    for _ in 0..20 {
        client.sign("open", payload).unwrap();
    }
    // A batch larger than the burst could never pass: it says so instead of "retry".
    let message = refused_with(
        client.sign_batch("limited", &[&payload[..]; 4]),
        ErrorCode::RateLimited,
    );
    assert!(
        message.contains("exceeds key \"limited\"'s burst of 3"),
        "{message}"
    );

    // After the advised wait, one token is back: one signature passes, and a burst of three
    // right after is refused again (the bucket refills at 5/s, it is not reset).
    sleep(
        (refused_at + Duration::from_millis(wait + 20)).saturating_duration_since(Instant::now()),
    );
    let signature = client.sign("limited", payload).unwrap();
    let message = refused_with(
        client.sign_batch("limited", &[&payload[..]; 3]),
        ErrorCode::RateLimited,
    );
    assert!((200..=600).contains(&retry_ms(&message)), "{message}");

    // The CLI: exit 6 and the retry hint in its one line.
    daemon.sign("slow", payload, &[]);
    let out = daemon.keyward_stdin(["sign", "slow"], payload);
    let line = out.error_line(6);
    assert!(line.contains("rate limit of key \"slow\""), "{line}");
    assert!(retry_ms(line) > 5000, "one token at 0.1/s: {line}");
    assert!(out.stdout.is_empty());

    assert_python_verifies_all(&[Check::new(
        "ed25519",
        &public,
        payload,
        signature.as_bytes(),
    )]);
}

// ---------------------------------------------------------------------------------------------
// 4. The audit log
// ---------------------------------------------------------------------------------------------

/// What one audit record must say.
#[derive(Debug)]
struct Expected {
    uid: u32,
    gid: u32,
    /// None: not known to the test (a CLI process), only checked to be a number.
    pid: Option<u32>,
    exe: PathBuf,
    request: &'static str,
    key: Option<&'static str>,
    decision: &'static str,
    /// A fragment of the reason ("" for allowed requests, whose reason is empty).
    reason: &'static str,
    /// The payloads of a sign (one) or sign-batch (several).
    payloads: Vec<Vec<u8>>,
}

const AUDIT_HMAC_SECRET: &[u8] = b"kX9vQ2mT7pL4wZ8nR3yB6cF1hJ5dG0sA-audit-hmac-secret-never-logged";
const DENIED_IMPORT_SECRET: &[u8] = b"a-secret-that-nobody-tried-to-import-unlawfully";
const PEM_PASSPHRASE: &str = "pem-passphrase-must-never-be-audited";
const INIT_PASSPHRASE: &[u8] = b"init-passphrase-must-never-be-audited";
const UNLOCK_PASSPHRASE: &[u8] = b"unlock-passphrase-must-never-be-audited";

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap()
}

/// The base64 body of a PEM document, joined into one line.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    std::str::from_utf8(pem)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn the_audit_log_has_one_line_per_decision_with_the_right_peer_and_no_secret() {
    if !can_switch_uid("the_audit_log_has_one_line_per_decision_with_the_right_peer_and_no_secret")
    {
        return;
    }
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n\n\
         [keys.ed]\nallow_uids = [65534]\ndeny_params = [\"address\"]\n\n\
         [keys.rl]\nallow_uids = [65534]\nrate_per_sec = 0.1\nburst = 1\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    let log_at_start = daemon.log();

    // An encrypted RSA key for the PEM import, and its decrypted forms to search for.
    let pem_file = config.dir().join("rsa.pem");
    let pass_arg = format!("pass:{PEM_PASSPHRASE}");
    let encrypted_pem = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-aes-256-cbc",
        "-pass",
        &pass_arg,
    ]);
    fs::write(&pem_file, &encrypted_pem).unwrap();
    let pem_file = pem_file.to_str().unwrap();
    let der = openssl(&[
        "pkey", "-in", pem_file, "-passin", &pass_arg, "-outform", "DER",
    ]);
    let plain_pem = openssl(&["pkey", "-in", pem_file, "-passin", &pass_arg]);

    let me = nix::unistd::geteuid().as_raw();
    let my_gid = nix::unistd::getegid().as_raw();
    let my_exe = canonical(Path::new("/proc/self/exe"));
    let perl = canonical(Path::new("/usr/bin/perl"));
    let mut expected: Vec<Expected> = Vec::new();
    let mine = |request, key, decision, reason, payloads: &[&[u8]]| Expected {
        uid: me,
        gid: my_gid,
        pid: Some(std::process::id()),
        exe: my_exe.clone(),
        request,
        key,
        decision,
        reason,
        payloads: payloads.iter().map(|p| p.to_vec()).collect(),
    };

    // The daemon's own uid: keys in, a list, signatures, an init it cannot do (ephemeral),
    // an unknown key.
    let mut root = daemon.client();
    root.generate("ed", KeyKind::Ed25519, None).unwrap();
    expected.push(mine("generate", Some("ed"), "allow", "", &[]));
    root.generate("rl", KeyKind::Ed25519, None).unwrap();
    expected.push(mine("generate", Some("rl"), "allow", "", &[]));
    root.import(
        "hm",
        Some(Scheme::HmacSha256),
        SecretBytes::new(AUDIT_HMAC_SECRET.to_vec()),
        None,
        Some("binance-api-key-id".into()),
    )
    .unwrap();
    expected.push(mine("import", Some("hm"), "allow", "", &[]));
    root.import(
        "pem",
        None,
        SecretBytes::new(encrypted_pem.clone()),
        Some(SecretBytes::new(PEM_PASSPHRASE.as_bytes().to_vec())),
        None,
    )
    .unwrap();
    expected.push(mine("import", Some("pem"), "allow", "", &[]));
    root.list().unwrap();
    expected.push(mine("list", None, "allow", "", &[]));
    let p1 = b"symbol=AUDITONE&side=BUY&timestamp=1";
    root.sign("ed", p1).unwrap();
    expected.push(mine("sign", Some("ed"), "allow", "", &[p1]));
    let p2 = b"symbol=AUDITTWO&side=SELL&timestamp=2";
    root.sign("pem", p2).unwrap();
    expected.push(mine("sign", Some("pem"), "allow", "", &[p2]));
    root.sign("hm", p2).unwrap();
    expected.push(mine("sign", Some("hm"), "allow", "", &[p2]));
    assert!(
        root.init(SecretBytes::new(INIT_PASSPHRASE.to_vec()))
            .is_err()
    );
    expected.push(mine("init", None, "error", "", &[]));
    let p3 = b"symbol=AUDITTHREE&timestamp=3";
    refused_with(root.sign("nope", p3), ErrorCode::UnknownKey);
    expected.push(mine("sign", Some("nope"), "error", "nope", &[p3]));

    // uid 65534 on a connection of its own.
    let mut bot = connect_as(NOBODY, &daemon).unwrap();
    let bot_pid = bot.pid();
    let theirs = |request, key, decision, reason, payloads: &[&[u8]]| Expected {
        uid: NOBODY.uid,
        gid: NOBODY.gid,
        pid: Some(bot_pid),
        exe: perl.clone(),
        request,
        key,
        decision,
        reason,
        payloads: payloads.iter().map(|p| p.to_vec()).collect(),
    };
    let p4 = b"symbol=AUDITFOUR&timestamp=4";
    bot.client.sign("ed", p4).unwrap();
    expected.push(theirs("sign", Some("ed"), "allow", "", &[p4]));
    let p5 = b"symbol=AUDITFIVE&timestamp=5";
    refused_with(bot.client.sign("hm", p5), ErrorCode::Denied);
    expected.push(theirs(
        "sign",
        Some("hm"),
        "deny",
        "uid 65534 may not use key \"hm\"",
        &[p5],
    ));
    let p6 = b"coin=USDT&address=TAUDITSIX&amount=6";
    refused_with(bot.client.sign("ed", p6), ErrorCode::PolicyViolation);
    expected.push(theirs(
        "sign",
        Some("ed"),
        "deny",
        "parameter \"address\" is not allowed",
        &[p6],
    ));
    let p7 = b"symbol=AUDITSEVEN&timestamp=7";
    bot.client.sign("rl", p7).unwrap();
    expected.push(theirs("sign", Some("rl"), "allow", "", &[p7]));
    let p8 = b"symbol=AUDITEIGHT&timestamp=8";
    refused_with(bot.client.sign("rl", p8), ErrorCode::RateLimited);
    expected.push(theirs("sign", Some("rl"), "deny", "retry in", &[p8]));
    refused_with(
        bot.client
            .unlock(SecretBytes::new(UNLOCK_PASSPHRASE.to_vec())),
        ErrorCode::Denied,
    );
    expected.push(theirs(
        "unlock",
        None,
        "deny",
        "uid 65534 may not unlock",
        &[],
    ));
    refused_with(
        bot.client.import(
            "stolen",
            Some(Scheme::HmacSha256),
            SecretBytes::new(DENIED_IMPORT_SECRET.to_vec()),
            None,
            None,
        ),
        ErrorCode::Denied,
    );
    expected.push(theirs(
        "import",
        Some("stolen"),
        "deny",
        "uid 65534 may not import",
        &[],
    ));
    refused_with(
        bot.client.generate("mine", KeyKind::Ed25519, None),
        ErrorCode::Denied,
    );
    expected.push(theirs(
        "generate",
        Some("mine"),
        "deny",
        "uid 65534 may not generate",
        &[],
    ));
    bot.client.list().unwrap();
    expected.push(theirs("list", None, "allow", "", &[]));
    let (p9, p10) = (
        &b"symbol=AUDITNINE&timestamp=9"[..],
        &b"AUDITTEN\xff\x00"[..],
    );
    bot.client.sign_batch("ed", &[p9, p10]).unwrap();
    expected.push(theirs("sign-batch", Some("ed"), "allow", "", &[p9, p10]));
    drop(bot);

    // uid 65534 through the CLI: the record names the CLI's executable.
    let p11 = b"symbol=AUDITELEVEN&timestamp=11";
    keyward_as(NOBODY, &keyward, &daemon, &["sign", "ed"], Some(p11)).success();
    expected.push(Expected {
        pid: None,
        exe: canonical(&keyward),
        ..theirs("sign", Some("ed"), "allow", "", &[p11])
    });

    // The file: 0600, one line per decision, each a JSON object saying the right things.
    let meta = fs::metadata(&audit_path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600, "the audit log must be 0600");
    let bytes = fs::read(&audit_path).unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.ends_with('\n'), "the last record is not a whole line");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per request that reached a decision; the log:\n{text}"
    );
    let mut last_time = String::new();
    for (line, want) in lines.iter().zip(&expected) {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        let fields = record
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let ctx = format!("{want:?}\n{line}");
        for field in [
            "time",
            "uid",
            "gid",
            "pid",
            "exe",
            "request",
            "key",
            "decision",
            "reason",
            "latency_us",
        ] {
            assert!(fields.contains_key(field), "no {field:?}: {ctx}");
        }
        let time = fields["time"].as_str().unwrap();
        assert!(
            time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
            "time is not RFC 3339 UTC: {ctx}"
        );
        assert!(*time >= *last_time, "records out of order: {ctx}");
        last_time = time.to_owned();
        assert_eq!(fields["uid"], want.uid, "{ctx}");
        assert_eq!(fields["gid"], want.gid, "{ctx}");
        match want.pid {
            Some(pid) => assert_eq!(fields["pid"], pid, "{ctx}"),
            None => assert!(fields["pid"].as_u64().is_some_and(|p| p > 1), "{ctx}"),
        }
        assert_eq!(
            fields["exe"].as_str().map(PathBuf::from).as_ref(),
            Some(&want.exe),
            "{ctx}"
        );
        assert_eq!(fields["request"], want.request, "{ctx}");
        assert_eq!(fields["key"].as_str(), want.key, "{ctx}");
        assert_eq!(fields["decision"], want.decision, "{ctx}");
        let reason = fields["reason"].as_str().unwrap();
        if want.decision == "allow" {
            assert_eq!(reason, "", "{ctx}");
        } else {
            assert!(!reason.is_empty() && reason.contains(want.reason), "{ctx}");
        }
        assert!(fields["latency_us"].as_u64().is_some(), "{ctx}");
        assert!(
            !fields.contains_key("payload"),
            "payload shown without audit_payloads: {ctx}"
        );
        let hashes: Vec<Value> = want
            .payloads
            .iter()
            .map(|p| Value::from(sha256_hex(p)))
            .collect();
        let lens: Vec<Value> = want.payloads.iter().map(|p| Value::from(p.len())).collect();
        match want.request {
            "sign" => {
                assert_eq!(fields["payload_sha256"], hashes[0], "{ctx}");
                assert_eq!(fields["payload_len"], lens[0], "{ctx}");
            }
            "sign-batch" => {
                assert_eq!(fields["payload_sha256"], Value::from(hashes), "{ctx}");
                assert_eq!(fields["payload_len"], Value::from(lens), "{ctx}");
            }
            _ => assert!(
                !fields.contains_key("payload_sha256") && !fields.contains_key("payload_len"),
                "{ctx}"
            ),
        }
    }

    // No payload (audit_payloads is off), and no byte of any secret, in the audit log or
    // in the daemon's own log.
    let daemon_log = daemon.log();
    let daemon_log = daemon_log.as_bytes();
    for payload in [&p1[..], p2, p3, p4, p5, p6, p7, p8, p9, p11] {
        assert_no_run(&bytes, payload, "a payload", "the audit log");
    }
    assert!(
        !text.contains("TAUDITSIX"),
        "a payload's value is in the audit log"
    );
    let secrets: [(&str, &[u8]); 8] = [
        ("the HMAC secret", AUDIT_HMAC_SECRET),
        ("the refused import's secret", DENIED_IMPORT_SECRET),
        ("the RSA key's DER", &der),
        ("the RSA key's PEM", &pem_body(&plain_pem)),
        ("the encrypted PEM", &pem_body(&encrypted_pem)),
        ("the PEM passphrase", PEM_PASSPHRASE.as_bytes()),
        ("the init passphrase", INIT_PASSPHRASE),
        ("the unlock passphrase", UNLOCK_PASSPHRASE),
    ];
    for (what, secret) in secrets {
        // The search can fail: it finds the secret when it is there.
        assert!(find_run(&[b"x", secret, b"y"].concat(), secret, 16).is_some());
        assert_no_run(&bytes, secret, what, "the audit log");
        assert_no_run(daemon_log, secret, what, "the daemon's log");
    }
    // Each denial also left one summary line in the daemon's log.
    let new_log = daemon.log()[log_at_start.len()..].to_owned();
    assert_eq!(
        new_log.matches("denied: ").count(),
        expected.iter().filter(|e| e.decision == "deny").count(),
        "{new_log}"
    );
}

#[test]
fn audit_payloads_puts_the_payload_in_each_record() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\naudit_payloads = true\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None).unwrap();
    let text = b"symbol=SHOWNINAUDIT&timestamp=1";
    let binary = b"\xff\x00\x80";
    client.sign("ed", text).unwrap();
    client.sign("ed", binary).unwrap();
    client.sign_batch("ed", &[text, binary]).unwrap();

    let log = fs::read_to_string(&audit_path).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // generate, sign, sign, sign-batch.
    assert_eq!(records.len(), 4, "{log}");
    assert!(records[0].get("payload").is_none(), "{log}");
    assert_eq!(
        records[1]["payload"]["text"],
        "symbol=SHOWNINAUDIT&timestamp=1"
    );
    assert_eq!(records[2]["payload"]["base64"], "/wCA");
    assert_eq!(
        records[3]["payload"],
        serde_json::json!([{ "text": "symbol=SHOWNINAUDIT&timestamp=1" }, { "base64": "/wCA" }])
    );
    assert_eq!(records[1]["payload_sha256"], sha256_hex(text));
}

/// An audit log that already exists (created by an administrator, or by logrotate with its
/// own `create` mode) is still 0600 once keywardd has opened it: "opened append-only with
/// 0600" holds whoever made the file.
#[test]
fn an_existing_audit_log_is_made_0600() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    fs::write(&audit_path, b"").unwrap();
    fs::set_permissions(&audit_path, fs::Permissions::from_mode(0o644)).unwrap();
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    daemon.client().list().unwrap();
    let mode = fs::metadata(&audit_path).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the audit log is {mode:o}");
    assert_eq!(fs::read_to_string(&audit_path).unwrap().lines().count(), 1);
}

/// Without `audit_payloads`, no part of a payload reaches the audit log: not even through
/// the reason of a refusal (a malformed `timestamp=` value is not quoted back).
#[test]
fn without_audit_payloads_a_refusal_reason_quotes_no_payload() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n\n[keys.ed]\ntimestamp_window_ms = 5000\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None).unwrap();
    let payload = format!(
        "symbol=BTCUSDT&timestamp=strategy-7f3a9c-{}",
        "x".repeat(2000)
    );
    refused_with(
        client.sign("ed", payload.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    let log = fs::read(&audit_path).unwrap();
    assert_eq!(log.iter().filter(|&&b| b == b'\n').count(), 2);
    assert_no_run(
        &log,
        b"strategy-7f3a9c-xxxxxxxx",
        "the payload",
        "the audit log",
    );
}

/// The mode of /dev/full, which the next tests use as an audit log that cannot be written
/// (opening it for append works; every write fails with ENOSPC). They also check the daemon
/// left it alone.
fn dev_full_mode() -> Option<u32> {
    let meta = fs::metadata("/dev/full").ok()?;
    meta.file_type().is_char_device().then(|| meta.mode())
}

#[test]
fn with_audit_required_an_unwritable_log_stops_signing() {
    let Some(mode) = dev_full_mode() else {
        eprintln!("SKIPPED with_audit_required_an_unwritable_log_stops_signing: no /dev/full");
        return;
    };
    let config = ConfigFile::new(
        "[daemon]\naudit_log = \"/dev/full\"\naudit_required = true\n\n\
         [keys.ed]\ntimestamp_window_ms = 5000\n",
    );
    let daemon = start(&config);
    daemon.generate("ed", "ed25519");
    let mut client = daemon.client();
    for _ in 0..2 {
        let message = refused_with(
            client.sign("ed", fresh("a=1").as_bytes()),
            ErrorCode::Unavailable,
        );
        assert!(message.contains("audit"), "{message}");
        let message = refused_with(
            client.sign_batch("ed", &[fresh("a=1").as_bytes()]),
            ErrorCode::Unavailable,
        );
        assert!(message.contains("audit"), "{message}");
    }
    // Refusals are still refusals (not "unavailable"): the policy comes first.
    refused_with(client.sign("ed", b"a=1"), ErrorCode::PolicyViolation);
    let out = daemon.keyward(["sign", "ed", &fresh("a=1")]);
    assert!(out.error_line(1).contains("audit"), "{out:#?}");
    let log = daemon.log();
    assert_eq!(
        log.matches("AUDIT LOG WRITE FAILED").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(
        log.contains("signing is refused until it can be written"),
        "{log}"
    );
    assert_eq!(dev_full_mode(), Some(mode), "the daemon changed /dev/full");
}

#[test]
fn without_audit_required_an_unwritable_log_is_reported_once_and_signing_goes_on() {
    let Some(mode) = dev_full_mode() else {
        eprintln!("SKIPPED without_audit_required_...: no /dev/full");
        return;
    };
    let config = ConfigFile::new("[daemon]\naudit_log = \"/dev/full\"\n");
    let daemon = start(&config);
    let public = daemon.generate("ed", "ed25519");
    let mut client = daemon.client();
    let payload = b"symbol=BTCUSDT&timestamp=1";
    let signatures: Vec<_> = (0..3)
        .map(|_| client.sign("ed", payload).unwrap())
        .collect();
    let log = daemon.log();
    assert_eq!(
        log.matches("AUDIT LOG WRITE FAILED").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(log.contains("signing goes on unaudited"), "{log}");
    assert!(log.contains(" ERROR "), "not logged loudly:\n{log}");
    assert_python_verifies_all(&[Check::new(
        "ed25519",
        &public,
        payload,
        signatures[2].as_bytes(),
    )]);
    assert_eq!(dev_full_mode(), Some(mode), "the daemon changed /dev/full");
}

// ---------------------------------------------------------------------------------------------
// 5. SIGHUP
// ---------------------------------------------------------------------------------------------

#[test]
fn sighup_swaps_the_allow_lists_and_a_broken_config_keeps_the_old_policy() {
    if !can_switch_uid("sighup_swaps_the_allow_lists_and_a_broken_config_keeps_the_old_policy") {
        return;
    }
    let config = ConfigFile::new("[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534]\n");
    let daemon = start(&config);
    let public_a = daemon.generate("a", "ed25519");
    daemon.generate("b", "ed25519");
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    let pid = daemon_pid(&daemon);
    let payload = b"symbol=BTCUSDT&timestamp=1700000000000";
    let sign = |key: &str| {
        keyward_as(
            NOBODY,
            &keyward,
            &daemon,
            &["sign", key, "--encoding", "raw"],
            Some(payload),
        )
    };
    let signs = |key: &str| {
        let out = sign(key);
        out.success();
        out.stdout
    };
    let refused = |key: &str| {
        let out = sign(key);
        assert!(
            out.error_line(4)
                .contains(&format!("may not use key \"{key}\"")),
            "{out:#?}"
        );
    };

    // A bot that keeps its connection open across the reload.
    let mut held = connect_as(NOBODY, &daemon).unwrap();
    signs("b");
    refused("a");
    held.client.sign("b", payload).unwrap();
    refused_with(held.client.sign("a", payload), ErrorCode::Denied);

    // Allow 65534 on a instead of b.
    config.set("[keys.a]\nallow_uids = [65534]\n\n[keys.b]\nallow_uids = []\n");
    kill(pid, Signal::SIGHUP).unwrap();
    wait_for_log(&daemon, "SIGHUP: policy reloaded", 1);
    let signature = signs("a");
    refused("b");
    // Policy is checked per request, not per connection: the open connection follows it.
    held.client.sign("a", payload).unwrap();
    refused_with(held.client.sign("b", payload), ErrorCode::Denied);
    assert_eq!(
        listed_names(&keyward_as(
            NOBODY,
            &keyward,
            &daemon,
            &["list", "--json"],
            None
        )),
        ["a"]
    );

    // Broken configs, each of which would give b back (and take a away) if any part of it
    // were applied: each is rejected whole, with the mistake named in the log.
    let broken = [
        (
            "[keys.a]\nallow_uids = []\n\n[keys.b\nallow_uids = [65534]\n",
            "line 4",
        ),
        (
            "[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534]\nrate_per_second = 5\n",
            "unknown field `rate_per_second`",
        ),
        (
            "[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534, \"no-such-user-kw\"]\n",
            "keys.b.allow_uids: unknown user \"no-such-user-kw\"",
        ),
    ];
    for (round, (text, mistake)) in broken.into_iter().enumerate() {
        config.set(text);
        kill(pid, Signal::SIGHUP).unwrap();
        let log = wait_for_log(
            &daemon,
            "SIGHUP: the new config is invalid, the old policy stays in force: ",
            round + 1,
        );
        let line = log
            .lines()
            .filter(|line| line.contains("SIGHUP: the new config is invalid"))
            .nth(round)
            .unwrap();
        assert!(line.contains(" ERROR "), "{line}");
        assert!(
            line.contains(config.path()),
            "the error names the file: {line}"
        );
        assert!(line.contains(mistake), "expected {mistake:?} in: {line}");
        signs("a");
        refused("b");
        held.client.sign("a", payload).unwrap();
        refused_with(held.client.sign("b", payload), ErrorCode::Denied);
    }
    assert_eq!(daemon.log().matches("SIGHUP: policy reloaded").count(), 1);

    // A good config after the bad ones is applied again: reload still works.
    config.set("[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534]\n");
    kill(pid, Signal::SIGHUP).unwrap();
    wait_for_log(&daemon, "SIGHUP: policy reloaded", 2);
    signs("b");
    refused("a");
    assert_python_verifies_all(&[Check::new("ed25519", &public_a, payload, &signature)]);
}

// ---------------------------------------------------------------------------------------------
// 6. Config validation at start
// ---------------------------------------------------------------------------------------------

/// Runs `keywardd --ephemeral --socket <tmp>/run/keyward.sock --config <tmp>/bad.toml` with
/// `text` in the config file; asserts it exits 1 within 10 s, logged exactly one error, and
/// created no socket (nor its directory). Returns that error line and the config path.
fn start_fails(text: Option<&str>) -> (String, String) {
    let dir = tempfile::Builder::new()
        .prefix("keyward-badconfig-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("bad.toml");
    if let Some(text) = text {
        fs::write(&config, text).unwrap();
    }
    let socket = dir.path().join("run").join("keyward.sock");
    let mut child = Command::new(keywardd_bin())
        .arg("--ephemeral")
        .arg("--socket")
        .arg(&socket)
        .arg("--config")
        .arg(&config)
        .env("HOME", dir.path())
        .env("KEYWARD_LOG", "info")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "keywardd started with a bad config:\n{}",
                text.unwrap_or("(none)")
            );
        }
        sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "{text:?}: {status}; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !socket.parent().unwrap().exists(),
        "a socket directory was created for a daemon that cannot start"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line, not:\n{stderr}");
    let last = stderr.lines().last().unwrap();
    assert_eq!(last, errors[0], "the error is the last line:\n{stderr}");
    (last.to_owned(), config.to_str().unwrap().to_owned())
}

/// What keywardd says about the config `text`, after "PATH: " (which must be there).
fn config_error(text: &str) -> String {
    let (line, path) = start_fails(Some(text));
    let (_, message) = line
        .split_once(&format!("{path}: "))
        .unwrap_or_else(|| panic!("the error does not name the file {path}: {line}"));
    message.to_owned()
}

#[test]
fn a_bad_config_stops_keywardd_at_start_with_one_line_naming_the_mistake() {
    let cases: &[(&str, &[&str])] = &[
        // Unknown keys (their line numbers: the next test).
        (
            "[daemon]\nsocket_group = 4242\nsocket_groupp = 4242\n",
            &["unknown field `socket_groupp`"],
        ),
        (
            "[defaults]\nallow_uids = []\n\n[keys.\"binance-main\"]\nallow_uids = [1001]\nallow_params = [\"symbol\"]\n",
            &["unknown field `allow_params`"],
        ),
        ("[policy]\nallow_uids = []\n", &["unknown field `policy`"]),
        // Bad values.
        (
            "[keys.k]\nrate_per_sec = -5\n",
            &["keys.k.rate_per_sec must be a positive number"],
        ),
        (
            "[keys.k]\nrate_per_sec = 5\nburst = 0\n",
            &["keys.k.burst must be at least 1"],
        ),
        (
            "[keys.k]\nburst = 3\n",
            &["keys.k.burst needs keys.k.rate_per_sec"],
        ),
        (
            "[keys.k]\ntimestamp_window_ms = \"5s\"\n",
            &["line 2", "invalid type: string \"5s\""],
        ),
        (
            "[keys.k]\nmax_payload_bytes = 0\n",
            &["keys.k.max_payload_bytes must be positive"],
        ),
        (
            "[keys.k]\ndeny_params = [\"address=x\"]\n",
            &["keys.k.deny_params", "is not a parameter name"],
        ),
        ("[keys.\"../escape\"]\n", &["invalid key name"]),
        ("[daemon]\naudit_required = true\n", &["audit_log is not"]),
        ("[keys.k\nallow_uids = []\n", &["line 1"]),
        // Unknown user and group names.
        (
            "[keys.k]\nallow_uids = [\"no-such-user-kw\"]\n",
            &["keys.k.allow_uids: unknown user \"no-such-user-kw\""],
        ),
        (
            "[daemon]\nadmin_uids = [\"no-such-user-kw\"]\n",
            &["daemon.admin_uids: unknown user \"no-such-user-kw\""],
        ),
        (
            "[keys.k]\nallow_gids = [\"no-such-group-kw\"]\n",
            &["keys.k.allow_gids: unknown group \"no-such-group-kw\""],
        ),
        (
            "[daemon]\nsocket_group = \"no-such-group-kw\"\n",
            &["daemon.socket_group: unknown group \"no-such-group-kw\""],
        ),
    ];
    for (text, fragments) in cases {
        let message = config_error(text);
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{text:?}: expected {fragment:?} in: {message}"
            );
        }
    }
    // A config file named on the command line must exist.
    let (line, path) = start_fails(None);
    assert!(line.contains(&format!("cannot read {path}")), "{line}");
}

/// The line number in a config error is the mistake's line, including the commonest case:
/// an unknown key at the start of its line.
#[test]
fn a_config_error_gives_the_line_of_the_mistake() {
    for (text, line) in [
        ("[daemon]\nsocket_group = 4242\nsocket_groupp = 4242\n", 3),
        (
            "[defaults]\nallow_uids = []\n\n[keys.\"binance-main\"]\nallow_uids = [1001]\nallow_params = [\"symbol\"]\n",
            6,
        ),
        ("[keys.k]\n  allow_uid = [1]\n", 2),
        ("[keys.k]\ntimestamp_window_ms = \"5s\"\n", 2),
        ("\n\n[keys.k]\nrate_per_sec = 5\n\n[keys.j]\nrate = 1\n", 7),
    ] {
        let message = config_error(text);
        assert!(
            message.starts_with(&format!("line {line}: ")),
            "{text:?}: expected line {line}: {message}"
        );
    }
}

/// A uid that is not a number or a name the config can use is named as such, with its line.
#[test]
fn a_negative_uid_in_the_config_is_named_clearly() {
    let message = config_error("[keys.k]\nallow_uids = [1001, -1]\n");
    assert!(
        message.starts_with("line 2: ") && message.contains("-1"),
        "{message}"
    );
}

#[test]
fn a_peer_refused_at_connect_leaves_one_deny_record_in_the_audit_log() {
    if !can_switch_uid("a_peer_refused_at_connect_leaves_one_deny_record_in_the_audit_log") {
        return;
    }
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    // No key and no admin right for nobody: it is refused before anything it sends is read.
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    daemon.open_permissions_to_everyone();
    let keyward = keyward_for_everyone(&daemon);
    let out = keyward_as(NOBODY, &keyward, &daemon, &["list"], None);
    assert!(
        out.error_line(4)
            .contains("uid 65534 may not use this keywardd")
    );
    let text = fs::read_to_string(&audit_path).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{text}");
    let record = &records[0];
    assert_eq!(record["request"], "connect");
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["uid"], 65534);
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("may not use this keywardd")
    );
}
