//! `keyward` without a daemon: usage errors are exit 2, an unreachable daemon is exit 3, each
//! with one line on stderr that says what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixListener;
use std::process::{Command, Output, Stdio};

const KEYWARD: &str = env!("CARGO_BIN_EXE_keyward");

/// A socket path where no daemon runs.
const NOWHERE: &str = "/nonexistent/keyward-test/keyward.sock";

fn keyward(args: &[&str]) -> Output {
    Command::new(KEYWARD)
        .args(args)
        .env_remove("KEYWARD_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts the exit code and exactly one line on stderr, and returns that line.
#[track_caller]
fn one_error_line(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("stderr does not end with a newline: {stderr:?}"));
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "stderr is not one line:\n{stderr}"
    );
    line.to_owned()
}

/// Wrong subcommands, missing or unknown arguments, invalid values.
const BAD_USAGE: [&[&str]; 6] = [
    &["frobnicate"],
    &["sign"],
    &["generate", "k", "--scheme", "rsa-1024"],
    &["sign", "k", "payload", "--encoding", "base32"],
    &["import", "k"],
    &["list", "--no-such-flag"],
];

fn with_socket<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--socket", NOWHERE];
    all.extend_from_slice(args);
    all
}

#[test]
fn bad_usage_exits_2_naming_the_problem() {
    for args in BAD_USAGE {
        let out = keyward(&with_socket(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(stderr.starts_with("keyward: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bad_usage_exits_2_with_one_line_on_stderr() {
    for args in BAD_USAGE {
        let line = one_error_line(&keyward(&with_socket(args)), 2);
        assert!(
            line.starts_with("keyward: ") && line.contains("keyward --help"),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn secret_format_without_an_hmac_scheme_is_a_usage_error() {
    // Decided from the arguments alone: the daemon is not needed (and not running) to know.
    for extra in [&[][..], &["--scheme", "ed25519"]] {
        let mut args = vec![
            "--socket",
            NOWHERE,
            "import",
            "k",
            "--file",
            "/dev/null",
            "--secret-format",
            "hex",
        ];
        args.extend_from_slice(extra);
        let line = one_error_line(&keyward(&args), 2);
        assert!(line.contains("--secret-format"), "{line}");
    }
}

#[test]
fn no_daemon_at_the_socket_path_is_exit_3_naming_the_path() {
    for command in [&["list"][..], &["sign", "k", "payload"], &["pubkey", "k"]] {
        let mut args = vec!["--socket", NOWHERE];
        args.extend_from_slice(command);
        let line = one_error_line(&keyward(&args), 3);
        assert!(line.contains(NOWHERE), "{line}");
    }
    // The same through KEYWARD_SOCK.
    let out = Command::new(KEYWARD)
        .arg("list")
        .env("KEYWARD_SOCK", NOWHERE)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(one_error_line(&out, 3).contains(NOWHERE));
}

#[test]
fn a_stale_socket_file_with_nothing_listening_is_exit_3_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("keyward.sock");
    drop(UnixListener::bind(&socket).unwrap());
    let path = socket.to_str().unwrap();
    let line = one_error_line(&keyward(&["--socket", path, "list"]), 3);
    assert!(line.contains(path), "{line}");
}

#[test]
fn help_lists_the_exit_codes() {
    let out = keyward(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for code in [
        "2  usage",
        "3  daemon unreachable",
        "4  denied",
        "5  keystore locked",
    ] {
        assert!(
            help.contains(code),
            "--help does not document exit code {code:?}"
        );
    }
}

/// A payload in argv is visible to every local user in `ps`: `sign --help` says so and
/// recommends stdin.
#[test]
fn sign_help_warns_that_argv_is_visible_in_ps() {
    let out = keyward(&["sign", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("visible") && help.contains("`ps`"), "{help}");
    assert!(help.contains("stdin"), "{help}");
}
