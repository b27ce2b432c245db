//! What issue 18 promises a person at a shell: `--version` names the commit, and the bash
//! completion script from `keyward completions bash` loads and completes subcommands, options
//! and the names of the keys the running daemon lists. (packaging/test-deb checks the same
//! scripts as the Debian package installs them, and zsh and fish where they exist.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use keyward_tests::{Daemon, keyward, keyward_bin, keywardd_bin, run};

#[test]
fn version_names_the_release_and_the_commit() {
    for (bin, name) in [(keyward_bin(), "keyward"), (keywardd_bin(), "keywardd")] {
        let out = run(Command::new(bin).arg("--version"), None);
        out.success();
        let text = out.stdout_text().trim();
        let commit = text
            .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name} --version printed {text:?}"));
        assert!(
            commit == "unknown"
                || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
            "{text:?}"
        );
    }
}

/// Runs `script` in a bash that has sourced `keyward completions bash`, with `comp WORDS...`
/// printing the candidates for the last word, one per line.
fn bash_with_completions(script: &str) -> String {
    let registration = keyward(["completions", "bash"]);
    registration.success();
    let bin_dir = keyward_bin().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let program = format!(
        "{}\n{}\n{script}\n",
        registration.stdout_text(),
        r#"comp() {
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
    _clap_complete_keyward keyward "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    printf '%s\n' "${COMPREPLY[@]}"
}"#
    );
    let out = run(
        Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .env("PATH", path)
            .env_remove("KEYWARD_SOCK"),
        None,
    );
    out.success();
    out.stdout_text().to_owned()
}

#[test]
fn bash_completes_subcommands_options_and_key_names() {
    let daemon = Daemon::start(&[]);
    daemon
        .keyward(["generate", "binance-main", "--scheme", "ed25519"])
        .success();
    daemon
        .keyward(["generate", "bybit-rsa", "--scheme", "rsa-2048"])
        .success();
    let socket = daemon.socket().display().to_string();
    let out = bash_with_completions(&format!(
        "complete -p keyward\n\
         echo '# sub'; comp keyward compl\n\
         echo '# enc'; comp keyward sign --encoding base\n\
         echo '# key'; comp keyward sign --socket {socket} b\n\
         echo '# env'; KEYWARD_SOCK={socket} comp keyward remove bi\n\
         echo '# none'; KEYWARD_SOCK=/nonexistent/keyward.sock comp keyward pubkey b"
    ));
    let section = |name: &str| -> Vec<&str> {
        out.split(&format!("# {name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section {name} in {out}"))
            .lines()
            .take_while(|line| !line.starts_with("# "))
            .filter(|line| !line.is_empty())
            .collect()
    };
    assert!(out.starts_with("complete "), "not registered: {out}");
    assert_eq!(section("sub"), ["completions"]);
    assert_eq!(section("enc"), ["base64", "base64url"]);
    assert_eq!(section("key"), ["binance-main", "bybit-rsa"]);
    assert_eq!(section("env"), ["binance-main"]);
    // No daemon: no key names, and no error either.
    assert!(section("none").is_empty(), "{out}");
}

#[test]
fn completion_scripts_exist_for_bash_zsh_and_fish_only() {
    for shell in ["bash", "zsh", "fish"] {
        let out = keyward(["completions", shell]);
        out.success();
        assert!(
            out.stdout_text().contains("KEYWARD_COMPLETE"),
            "{shell}: {}",
            out.stdout_text()
        );
    }
    assert_eq!(keyward(["completions", "tcsh"]).code, Some(2));
}
