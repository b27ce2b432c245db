//! The daemon serves its own uid (and root) only, by the kernel's word (SO_PEERCRED), not by
//! file permissions: with the directory and socket opened to everyone, another uid still
//! gets "denied".
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use keyward_tests::{Daemon, Output, is_root, keyward_bin, run};

/// `nobody` on Debian; any uid other than the daemon's (root) will do.
const OTHER_UID: &str = "65534";

/// Skips (returns false) when not root: only root can run a client as another uid.
fn can_switch_uid(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: it needs root to run a client as uid {OTHER_UID} with setpriv \
         (CI runs the tests as root)"
    );
    false
}

/// A copy of `keyward` in the test's directory, where uid 65534 can reach and run it (the
/// build tree may be in a directory it cannot enter).
fn keyward_for_everyone(daemon: &Daemon) -> PathBuf {
    let copy = daemon.dir().join("keyward");
    fs::copy(keyward_bin(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// Runs `keyward --socket SOCKET ARGS` as uid/gid 65534 with no supplementary groups.
fn keyward_as_other_uid(keyward: &Path, socket: &Path, args: &[&str]) -> Output {
    let uid = format!("--reuid={OTHER_UID}");
    let gid = format!("--regid={OTHER_UID}");
    run(
        Command::new("setpriv")
            .args([uid.as_str(), gid.as_str(), "--clear-groups"])
            .arg(keyward)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .env_remove("KEYWARD_SOCK"),
        None,
    )
}

#[test]
fn a_client_of_another_uid_is_denied_even_with_the_socket_opened_to_everyone() {
    if !can_switch_uid("a_client_of_another_uid_is_denied_even_with_the_socket_opened_to_everyone")
    {
        return;
    }
    let mut daemon = Daemon::start(&[]);
    let public = daemon.generate("ed", "ed25519");
    let secret = daemon.write("hmac.secret", b"another-uid-must-not-use-this-secret");
    daemon.import("h", &secret, &["--scheme", "hmac-sha256"]);
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();

    // `list`, `sign` (argument and stdin forms), `pubkey`, and an admin request.
    for args in [
        &["list"][..],
        &["sign", "ed", "symbol=BTCUSDT&timestamp=1"],
        &["sign", "h", "symbol=BTCUSDT&timestamp=1"],
        &["pubkey", "ed"],
        &["remove", "ed"],
        &["generate", "mine", "--scheme", "ed25519"],
    ] {
        let out = keyward_as_other_uid(&keyward, daemon.socket(), args);
        // 4 is "denied": the connection was made (so file permissions let it through) and
        // the daemon refused it. 3 would mean it never reached the daemon.
        let line = out.error_line(4);
        assert!(
            line.contains(OTHER_UID),
            "the refusal should name the refused uid: {line}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed something: {out:#?}"
        );
    }
    assert!(
        daemon.log().contains("refused a connection"),
        "the daemon did not log the refusal:\n{}",
        daemon.log()
    );

    // Its own uid is still served, and the other uid changed nothing.
    daemon.assert_running();
    let list = daemon.keyward(["list"]);
    list.success();
    assert!(list.stdout_text().contains("ed") && !list.stdout_text().contains("mine"));
    let signature = daemon.sign("ed", b"symbol=BTCUSDT&timestamp=1", &["--encoding", "raw"]);
    keyward_tests::verify::assert_python_verifies(&keyward_tests::verify::Check::new(
        "ed25519",
        &public,
        b"symbol=BTCUSDT&timestamp=1",
        &signature,
    ));
}

#[test]
fn a_raw_connection_from_another_uid_is_answered_denied_without_being_read() {
    if !can_switch_uid("a_raw_connection_from_another_uid_is_answered_denied_without_being_read") {
        return;
    }
    let mut daemon = Daemon::start(&[]);
    daemon.generate("ed", "ed25519");
    daemon.open_permissions_to_everyone();
    // The other uid sends no Hello and holds the connection open: the daemon must still
    // answer at once (it answers a refused peer without reading anything) and close.
    let out = run(
        Command::new("setpriv")
            .args([
                format!("--reuid={OTHER_UID}"),
                format!("--regid={OTHER_UID}"),
                "--clear-groups".into(),
            ])
            .arg("/usr/bin/timeout")
            .arg("5")
            .arg("/usr/bin/perl")
            .arg("-e")
            .arg(PERL_RAW_CLIENT)
            .arg(daemon.socket()),
        None,
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    let text = out.stdout_text();
    // Response::Error is variant 6; ErrorCode::Denied is 7.
    assert!(
        text.starts_with("06 07 "),
        "expected an Error/Denied frame body, got {text:?}"
    );
    assert!(
        text.trim_end().ends_with("EOF"),
        "the daemon did not close: {text:?}"
    );
    daemon.assert_running();
    daemon.keyward(["list"]).success();
}

/// Connects to the socket in ARGV[0], sends nothing, prints the first response body as hex
/// bytes, then "EOF" once the daemon closes. Perl, because it is on every Debian machine and
/// readable by any uid (unlike a Python under /root/.pyenv).
const PERL_RAW_CLIENT: &str = r#"
use strict; use Socket;
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($ARGV[0])) or die "connect: $!";
my $n = sysread($s, my $header, 4); $n == 4 or die "short header";
my $len = unpack("N", $header);
my $body = ""; while (length($body) < $len) { sysread($s, my $chunk, $len - length($body)) or die "short body"; $body .= $chunk; }
print join(" ", map { sprintf "%02x", $_ } unpack("C*", $body)), " ";
my $more = sysread($s, my $rest, 1);
print defined($more) && $more == 0 ? "EOF\n" : "MORE\n";
"#;

#[test]
fn a_daemon_running_as_another_user_serves_that_user_lets_root_administer_and_refuses_others() {
    if !can_switch_uid(
        "a_daemon_running_as_another_user_serves_that_user_lets_root_administer_and_refuses_others",
    ) {
        return;
    }
    let daemon = Daemon::start_as(65534, &[]);
    // Root may administer: it generates a key and gets its public key back.
    let generated = daemon.keyward(["generate", "ed", "--scheme", "ed25519"]);
    generated.success();
    let public = daemon.write("ed.pub.pem", &generated.stdout);
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();

    // The daemon's own uid signs with it.
    let payload = b"symbol=BTCUSDT&timestamp=2";
    let as_uid = |uid: &str, args: &[&str], stdin: Option<&[u8]>| {
        run(
            Command::new("setpriv")
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(&keyward)
                .arg("--socket")
                .arg(daemon.socket())
                .args(args)
                .env_remove("KEYWARD_SOCK"),
            stdin,
        )
    };
    let own = as_uid("65534", &["sign", "ed", "--encoding", "raw"], Some(payload));
    own.success();
    keyward_tests::verify::assert_python_verifies(&keyward_tests::verify::Check::new(
        "ed25519",
        &public,
        payload,
        &own.stdout,
    ));
    let pem = as_uid("65534", &["pubkey", "ed"], None);
    pem.success();
    assert_eq!(pem.stdout, generated.stdout);

    // A third uid's client no longer trusts the socket once its directory is open to
    // everyone (exit 3, nothing sent); and the daemon itself refuses that uid whatever the
    // file permissions say: a raw connection gets Denied without being read.
    let other = as_uid("65533", &["list"], None);
    assert!(other.error_line(3).contains("uid 65534"), "{other:#?}");
    let other = as_uid("65533", &["sign", "ed", "x"], None);
    other.error_line(3);
    assert!(other.stdout.is_empty());
    let raw = run(
        Command::new("setpriv")
            .args(["--reuid=65533", "--regid=65533", "--clear-groups"])
            .args([
                "/usr/bin/timeout",
                "5",
                "/usr/bin/perl",
                "-e",
                PERL_RAW_CLIENT,
            ])
            .arg(daemon.socket()),
        None,
    );
    // Response::Error is variant 6; ErrorCode::Denied is 7.
    assert!(
        raw.stdout_text().starts_with("06 07 "),
        "the daemon did not refuse uid 65533: {raw:#?}"
    );
}

/// Connects to ARGV[1] as uid/gid ARGV[2] with the supplementary groups ARGV[3] (comma
/// separated, may be empty), then, still connected, regains root and joins the groups
/// ARGV[4] (the groups a process acquires *after* connect()), becomes the uid again, says
/// READY and waits for a line on stdin. Then it sends each hex frame body in ARGV[5..] and
/// prints each response body as hex, or CLOSED.
const PYTHON_LATE_GROUPS: &str = r#"
import os, socket, sys
path, uid = sys.argv[1], int(sys.argv[2])
at_connect = [int(g) for g in sys.argv[3].split(",") if g]
later = [int(g) for g in sys.argv[4].split(",") if g]
os.setgroups(at_connect)
os.setegid(uid)
os.seteuid(uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
os.seteuid(0)
os.setgroups(at_connect + later)
os.seteuid(uid)
print("READY", flush=True)
sys.stdin.readline()
def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
for body in sys.argv[5:]:
    frame = bytes.fromhex(body)
    try:
        s.sendall(len(frame).to_bytes(4, "big") + frame)
    except OSError:
        pass
    header = read_exact(4)
    reply = header and read_exact(int.from_bytes(header, "big"))
    print(reply.hex() if reply else "CLOSED", flush=True)
"#;

/// Runs PYTHON_LATE_GROUPS against a daemon that is stopped (SIGSTOP) from before the
/// connect until after the groups changed, so that the daemon accepts the connection, and
/// reads whatever it reads about the peer, only once the process has its later groups.
/// Returns the responses to Hello and a Sign with key `key`.
fn sign_with_groups_gained_after_connect(
    daemon: &Daemon,
    pid: u32,
    at_connect: &str,
    later: &str,
    key: &str,
) -> Vec<Option<keyward_client::Response>> {
    use std::io::{BufRead, BufReader, Write};
    let frames = [
        (keyward_client::Request::Hello {
            version: keyward_client::PROTOCOL_VERSION,
        }),
        (keyward_client::Request::Sign {
            key: key.into(),
            payload: b"symbol=BTCUSDT&timestamp=1".to_vec(),
        }),
    ]
    .map(|request| {
        // The frame minus its 4-byte length header, which the script writes itself.
        keyward_protocol::encode_request(&request, keyward_client::DEFAULT_MAX_FRAME).unwrap()[4..]
            .to_vec()
    });
    let daemon_pid = nix::unistd::Pid::from_raw(pid as i32);
    // Every thread stopped before the script connects, so none accepts it early.
    daemon.freeze();
    let mut child = keyward_tests::python()
        .args(["-c", PYTHON_LATE_GROUPS])
        .arg(daemon.socket())
        .args(["65534", at_connect, later])
        .args(
            frames
                .iter()
                .map(|frame| keyward_tests::keystore::hex(frame)),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    nix::sys::signal::kill(daemon_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(ready, "READY");
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let replies = lines
        .map(|line| {
            let line = line.unwrap();
            (line != "CLOSED").then(|| {
                keyward_protocol::decode_response(&keyward_tests::keystore::unhex(&line)).unwrap()
            })
        })
        .collect();
    assert!(child.wait().unwrap().success());
    replies
}

#[test]
fn groups_a_peer_gains_after_connect_grant_nothing() {
    if !can_switch_uid("groups_a_peer_gains_after_connect_grant_nothing") {
        return;
    }
    // Key b is allowed to group 4343 only. The connecting process is uid 65534; the daemon
    // must judge it by the groups it had at connect(), which the kernel recorded
    // (SO_PEERGROUPS), not by what /proc says when the daemon gets round to reading it: by
    // then the pid may be another process (pid reuse), or, as here, the same process with
    // other groups.
    const BOT_GID: &str = "4343";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keywardd.toml");
    fs::write(
        &config,
        format!("[keys.b]\nallow_gids = [{BOT_GID}]\n\n[keys.nobody]\nallow_uids = [65534]\n"),
    )
    .unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    daemon.generate("b", "ed25519");
    daemon.generate("nobody", "ed25519");
    daemon.open_permissions_to_everyone();
    let pid = daemon.pid();

    // In the group at connect(): signs (so the group does grant the key).
    let replies = sign_with_groups_gained_after_connect(&daemon, pid, BOT_GID, "", "b");
    assert!(
        matches!(replies[1], Some(keyward_client::Response::Signature { .. })),
        "a member of the key's group at connect should sign: {replies:?}"
    );
    // Joined the group only after connect(): refused.
    let replies = sign_with_groups_gained_after_connect(&daemon, pid, "", BOT_GID, "b");
    assert!(
        matches!(
            replies[1],
            Some(keyward_client::Response::Error {
                code: keyward_client::ErrorCode::Denied,
                ..
            })
        ),
        "a group joined after connect() granted the key: {replies:?}"
    );
    // The same connection may still use what its uid is granted.
    let replies = sign_with_groups_gained_after_connect(&daemon, pid, "", BOT_GID, "nobody");
    assert!(
        matches!(replies[1], Some(keyward_client::Response::Signature { .. })),
        "{replies:?}"
    );
}

/// Admin requests from a user the daemon serves but who is no admin: uid 65534 may sign with
/// its key, and is refused every admin request by its uid, whatever the file permissions;
/// made an admin in the config (`admin_uids`), the same uid may. (The policy tests check
/// the same for socket-group members; this is the peer-credential side.)
#[test]
fn a_served_uid_that_is_no_admin_is_refused_every_admin_request() {
    if !can_switch_uid("a_served_uid_that_is_no_admin_is_refused_every_admin_request") {
        return;
    }
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("keywardd.toml");
    fs::write(&config, format!("[keys.ed]\nallow_uids = [{OTHER_UID}]\n")).unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    daemon.generate("ed", "ed25519");
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    let pass = daemon.write_world_readable("pass", b"not-an-admin-passphrase\n");
    let pass2 = daemon.write_world_readable("pass2", b"not-an-admin-new-passphrase\n");
    let secret = daemon.write_world_readable("secret", b"not-an-admin-may-not-import-this");

    let signed = keyward_as_other_uid(&keyward, daemon.socket(), &["sign", "ed", "a=1"]);
    signed.success();
    for (args, kind) in keyward_tests::admin_commands(&secret, &pass, &pass2, "ed") {
        let out = keyward_as_other_uid(&keyward, daemon.socket(), &args);
        let line = out.error_line(4);
        assert!(
            line.contains(&format!("uid {OTHER_UID} may not {kind}")),
            "{args:?}: {line}"
        );
    }
    // Nothing changed: one key, still signing for its user.
    let list = daemon.keyward(["list", "--json"]);
    list.success();
    assert!(!list.stdout_text().contains("\"x\""), "{list:#?}");
    keyward_as_other_uid(&keyward, daemon.socket(), &["sign", "ed", "a=2"]).success();
    drop(daemon);

    // The refusal was the admin check: as an admin, the same uid generates.
    fs::write(&config, format!("[daemon]\nadmin_uids = [{OTHER_UID}]\n")).unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    keyward_as_other_uid(
        &keyward,
        daemon.socket(),
        &["generate", "x", "--scheme", "ed25519"],
    )
    .success();
}
