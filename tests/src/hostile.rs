//! Clients of other uids that hold many connections open: for the tests of the connection
//! limits. The daemon judges a connection by the uid that called connect() (SO_PEERCRED), so
//! the connections must be made by a process of that uid: a Perl script run through
//! `setpriv` (Perl because it is on every Debian machine and readable by any uid, unlike a
//! Python under /root/.pyenv).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::{Daemon, Output, keyward_bin, run};

/// Opens ARGV[1] connections to the socket ARGV[0]; with ARGV[2] = "half", every second one
/// sends a 4-byte length prefix of 60,000 and 1,000 bytes of the body, then stops. Prints
/// "connected N", waits for a line (or EOF) on stdin, then reads what each connection has
/// received without waiting and prints "answered A closed C open O": A connections got bytes
/// (an error frame), C were closed with nothing, O are still open and silent.
const PERL_HOLDER: &str = r#"
use strict; use Socket; use IO::Handle; use Fcntl; use POSIX qw(EAGAIN);
my ($path, $n, $mode) = @ARGV;
my @socks;
for my $i (0 .. $n - 1) {
    socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket $i: $!";
    connect($s, pack_sockaddr_un($path)) or die "connect $i: $!";
    if ($mode eq "half" && $i % 2) {
        syswrite($s, pack("N", 60000) . ("\x01" x 1000));
    }
    push @socks, $s;
}
print "connected $n\n"; STDOUT->flush;
my $line = <STDIN>;
my ($answered, $closed, $open) = (0, 0, 0);
for my $s (@socks) {
    my $flags = fcntl($s, F_GETFL, 0);
    fcntl($s, F_SETFL, $flags | O_NONBLOCK);
    my $got = sysread($s, my $buf, 65536);
    if (defined $got) { if ($got > 0) { $answered++ } else { $closed++ } }
    elsif ($! == EAGAIN) { $open++ }
    else { $closed++ }
}
print "answered $answered closed $closed open $open\n"; STDOUT->flush;
"#;

/// A process of another uid holding connections to a daemon.
#[derive(Debug)]
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// What a [`Holder`]'s connections had received when it let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Connections that received bytes (the daemon's error frame).
    pub answered: usize,
    /// Connections the daemon closed without a word.
    pub closed: usize,
    /// Connections still open and silent.
    pub open: usize,
}

impl Holder {
    /// Opens `n` connections to `socket` as `uid` (gid `uid`, no supplementary groups),
    /// every second one half-sending a large frame when `half_sent`; returns once all are
    /// connected. The open-file limit is raised for it (to 8192) first.
    pub fn open(socket: &Path, uid: u32, n: usize, half_sent: bool) -> Holder {
        let script = format!(
            "ulimit -n 8192 && exec setpriv --reuid={uid} --regid={uid} --clear-groups \
             perl -e \"$0\" \"$@\""
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(PERL_HOLDER)
            .arg(socket)
            .arg(n.to_string())
            .arg(if half_sent { "half" } else { "idle" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot run perl through setpriv");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("cannot read from the holder");
        assert_eq!(
            line.trim(),
            format!("connected {n}"),
            "the holder of {n} connections as uid {uid} failed"
        );
        Holder {
            child,
            stdin,
            stdout,
        }
    }

    /// Lets go of every connection and says what they had received.
    pub fn release(mut self) -> Held {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"go\n");
        }
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("cannot read from the holder");
        let _ = self.child.wait();
        let numbers: Vec<usize> = line
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        match numbers[..] {
            [answered, closed, open] => Held {
                answered,
                closed,
                open,
            },
            _ => panic!("the holder printed {line:?}"),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `keyward` in the daemon's temporary directory, where any uid can run it (the
/// build tree may be in a directory other uids cannot enter).
pub fn keyward_for_everyone(daemon: &Daemon) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = daemon.dir().join("keyward-for-everyone");
    if !copy.exists() {
        std::fs::copy(keyward_bin(), &copy).expect("cannot copy keyward");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .expect("cannot chmod the keyward copy");
    }
    copy
}

/// Runs `keyward --socket SOCKET ARGS` as `uid` (gid `uid`, no supplementary groups), with
/// `stdin` as its standard input.
pub fn keyward_as(daemon: &Daemon, uid: u32, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let keyward = keyward_for_everyone(daemon);
    run(
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(keyward)
            .arg("--socket")
            .arg(daemon.socket())
            .args(args)
            .env_remove("KEYWARD_SOCK"),
        stdin,
    )
}

/// The daemon's resident set size (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("cannot read the daemon's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmRSS line")
}
