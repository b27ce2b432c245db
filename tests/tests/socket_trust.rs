//! Clients trust a socket only if its server is their own uid or root, or owns a directory
//! that only it could have made. A fake server that another user planted in /tmp (the
//! default socket path's fallback directory) must receive zero bytes: no passphrase, no
//! key, no payload.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyward_tests::{Output, is_root, keyward_bin, run};

/// The squatter: `nobody` on Debian.
const SQUATTER_UID: u32 = 65534;
/// The victim, when the victim is not root.
const VICTIM_UID: u32 = 65533;

/// A fake keywardd run by another uid: it creates its directory itself (as that uid, mode
/// 0711 so others can reach the socket, which the client's rule must still refuse), accepts
/// connections, and prints how many bytes each one sent before it closed.
const FAKE_SERVER: &str = r#"
use strict; use Socket; use IO::Handle;
STDOUT->autoflush(1);
my $dir = $ARGV[0];
mkdir($dir, 0711) or die "mkdir $dir: $!";
chmod(0711, $dir) or die "chmod: $!";
socket(my $srv, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
bind($srv, pack_sockaddr_un("$dir/keyward.sock")) or die "bind: $!";
chmod(0777, "$dir/keyward.sock") or die "chmod: $!";
listen($srv, 16) or die "listen: $!";
print "READY\n";
while (accept(my $c, $srv)) {
    my $total = 0;
    while (1) { my $n = sysread($c, my $buf, 65536); last if !$n; $total += $n; }
    print "RECEIVED $total\n";
}
"#;

struct FakeServer {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
    dir: PathBuf,
}

impl FakeServer {
    /// Starts the fake server as `SQUATTER_UID`, creating `dir` (which must not exist).
    fn start(dir: &Path) -> FakeServer {
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={SQUATTER_UID}"))
            .arg(format!("--regid={SQUATTER_UID}"))
            .arg("--clear-groups")
            .args(["/usr/bin/perl", "-e", FAKE_SERVER])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the fake server");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        lines.read_line(&mut ready).unwrap();
        assert_eq!(ready, "READY\n", "the fake server did not start");
        let meta = fs::symlink_metadata(dir).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), SQUATTER_UID);
        FakeServer {
            child,
            lines,
            dir: dir.to_path_buf(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("keyward.sock")
    }

    /// The byte count of the next connection the fake server saw close.
    fn next_received(&mut self) -> usize {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix("RECEIVED ")
            .unwrap_or_else(|| panic!("unexpected line from the fake server: {line:?}"))
            .parse()
            .unwrap()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Asserts the client refused the fake server: exit 3, one line naming the squatter's uid,
/// nothing on stdout.
fn assert_refused(out: &Output, what: &str) {
    let line = out.error_line(3);
    assert!(
        line.contains(&format!("uid {SQUATTER_UID}")) && line.contains("refusing"),
        "{what}: the refusal should name the server's uid: {line}"
    );
    assert!(out.stdout.is_empty(), "{what} printed something: {out:#?}");
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: it needs root to run a fake server as another uid (CI is root)");
    true
}

#[test]
fn a_socket_planted_in_tmp_by_another_uid_receives_nothing_from_unlock_import_or_sign() {
    if skip_unless_root(
        "a_socket_planted_in_tmp_by_another_uid_receives_nothing_from_unlock_import_or_sign",
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let passphrase = work.path().join("passphrase");
    fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let secret = work.path().join("hmac.secret");
    fs::write(&secret, "the-secret-that-must-not-leave-this-host").unwrap();

    let squatted = Path::new("/tmp").join(format!("keyward-squat-{}", std::process::id()));
    let _ = fs::remove_dir_all(&squatted);
    let mut fake = FakeServer::start(&squatted);
    let socket = fake.socket();
    let keyward = |args: &[&str], stdin: Option<&[u8]>| {
        run(
            Command::new("/usr/bin/timeout")
                .arg("20")
                .arg(keyward_bin())
                .arg("--socket")
                .arg(&socket)
                .args(args)
                .env_remove("KEYWARD_SOCK"),
            stdin,
        )
    };

    let unlock = keyward(
        &["unlock", "--passphrase-file", passphrase.to_str().unwrap()],
        None,
    );
    assert_refused(&unlock, "unlock");
    assert_eq!(
        fake.next_received(),
        0,
        "unlock sent bytes to the fake server"
    );

    let import = keyward(
        &[
            "import",
            "stolen",
            "--file",
            secret.to_str().unwrap(),
            "--scheme",
            "hmac-sha256",
        ],
        None,
    );
    assert_refused(&import, "import");
    assert_eq!(
        fake.next_received(),
        0,
        "import sent bytes to the fake server"
    );

    let sign = keyward(
        &["sign", "binance-main"],
        Some(b"symbol=BTCUSDT&side=BUY&timestamp=1"),
    );
    assert_refused(&sign, "sign");
    assert_eq!(
        fake.next_received(),
        0,
        "sign sent bytes to the fake server"
    );
}

#[test]
fn a_squatted_default_socket_directory_gets_nothing_from_a_user_without_xdg_runtime_dir() {
    if skip_unless_root(
        "a_squatted_default_socket_directory_gets_nothing_from_a_user_without_xdg_runtime_dir",
    ) {
        return;
    }
    // The attack as the review ran it: the victim has no XDG_RUNTIME_DIR (cron, su, a
    // system service) and no /run/user/$UID, so its default socket is
    // /tmp/keyward-$UID/keyward.sock, which the squatter made first.
    assert!(
        !Path::new(&format!("/run/user/{VICTIM_UID}")).exists(),
        "this test needs uid {VICTIM_UID} to have no /run/user directory"
    );
    let squatted = PathBuf::from(format!("/tmp/keyward-{VICTIM_UID}"));
    let _ = fs::remove_dir_all(&squatted);
    let mut fake = FakeServer::start(&squatted);

    // A copy of `keyward` that the victim uid can run.
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let program = work.path().join("keyward");
    fs::copy(keyward_bin(), &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();

    let sign = run(
        Command::new("setpriv")
            .arg(format!("--reuid={VICTIM_UID}"))
            .arg(format!("--regid={VICTIM_UID}"))
            .arg("--clear-groups")
            .args(["/usr/bin/timeout", "20"])
            .arg(&program)
            .args(["sign", "binance-main"])
            .env_remove("KEYWARD_SOCK")
            .env_remove("XDG_RUNTIME_DIR"),
        Some(b"symbol=BTCUSDT&side=BUY&timestamp=1"),
    );
    assert_refused(&sign, "sign with the default socket");
    assert!(
        sign.stderr.contains(&squatted.display().to_string()),
        "the refusal should name the socket: {sign:#?}"
    );
    assert_eq!(
        fake.next_received(),
        0,
        "sign sent bytes to the fake server"
    );
}

#[test]
fn the_rust_client_library_refuses_before_the_first_byte_too() {
    if skip_unless_root("the_rust_client_library_refuses_before_the_first_byte_too") {
        return;
    }
    let squatted = Path::new("/tmp").join(format!("keyward-squat-lib-{}", std::process::id()));
    let _ = fs::remove_dir_all(&squatted);
    let mut fake = FakeServer::start(&squatted);
    let started = Instant::now();
    let err = keyward_client::Client::connect(fake.socket()).unwrap_err();
    assert!(
        matches!(
            err,
            keyward_client::Error::UntrustedServer {
                server_uid: SQUATTER_UID,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fake.next_received(), 0);

    // The async client applies the same rule.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime
        .block_on(keyward_client::AsyncClient::connect(fake.socket()))
        .unwrap_err();
    assert!(
        matches!(err, keyward_client::Error::UntrustedServer { .. }),
        "{err:?}"
    );
    assert_eq!(fake.next_received(), 0);
}
