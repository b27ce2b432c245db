//! `keyward completions SHELL`: completion scripts for bash, zsh and fish.
//!
//! The scripts are thin: at each <Tab> the shell runs `KEYWARD_COMPLETE=SHELL keyward -- WORDS`,
//! and keyward answers from its own clap definition ([`command`]), so completions cannot drift
//! from the options. Key names (`sign`, `pubkey`, `remove`) come from the daemon's `list`,
//! asked over the socket `--socket` names on the command line being completed, else
//! `KEYWARD_SOCK`, else the default; with no daemon they are simply not offered.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory as _, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

/// The environment variable that turns a run of `keyward` into a completion request.
const VAR: &str = "KEYWARD_COMPLETE";

/// The shells `keyward completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    /// Bash (install as /usr/share/bash-completion/completions/keyward).
    Bash,
    /// Zsh (install as _keyward in a directory of $fpath).
    Zsh,
    /// Fish (install as ~/.config/fish/completions/keyward.fish).
    Fish,
}

/// keyward's clap definition, as `--help`, the man pages and the completions see it.
pub(crate) fn command() -> clap::Command {
    crate::Cli::command()
}

/// Completes an argument that names an existing key (`#[arg(add = ...)]`).
pub(crate) fn key_names() -> ArgValueCandidates {
    ArgValueCandidates::new(listed_keys)
}

/// Answers a completion request and exits, if this run is one (`KEYWARD_COMPLETE` is set).
pub(crate) fn complete_if_requested() {
    clap_complete::CompleteEnv::with_factory(command)
        .var(VAR)
        .complete();
}

/// Writes the script that registers keyward's completions in `shell`.
pub(crate) fn write(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let name = "keyward";
    match shell {
        Shell::Bash => Bash.write_registration(VAR, name, name, name, out),
        Shell::Fish => Fish.write_registration(VAR, name, name, name, out),
        Shell::Zsh => {
            Zsh.write_registration(VAR, name, name, name, out)?;
            // Autoloaded from $fpath as `_keyward`, the file's body runs at the first <Tab>:
            // it registers the completer, which must then also answer that first <Tab>.
            writeln!(
                out,
                "\nif [ \"$funcstack[1]\" = \"_keyward\" ]; then\n    \
                 _clap_dynamic_completer_keyward \"$@\"\nfi"
            )
        }
    }
}

/// The keys the daemon lists to this user; none if it cannot be reached, or does not answer
/// within a second.
fn listed_keys() -> Vec<CompletionCandidate> {
    let Ok(mut client) = crate::connect(socket_in_words().as_ref()) else {
        return Vec::new();
    };
    if client.set_timeout(Some(Duration::from_secs(1))).is_err() {
        return Vec::new();
    }
    client.list().map_or_else(
        |_| Vec::new(),
        |keys| {
            keys.into_iter()
                .map(|key| CompletionCandidate::new(key.name).help(Some(key.scheme.name().into())))
                .collect()
        },
    )
}

/// `--socket PATH` (or `--socket=PATH`) on the command line being completed, which follows
/// `--` in this process's arguments; else `KEYWARD_SOCK`.
fn socket_in_words() -> Option<PathBuf> {
    let words: Vec<OsString> = std::env::args_os()
        .skip_while(|arg| arg != "--")
        .skip(1)
        .collect();
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        if word == "--socket" {
            found = words.get(i + 1).map(PathBuf::from);
        } else if let Some(path) = word.to_str().and_then(|w| w.strip_prefix("--socket=")) {
            found = Some(PathBuf::from(path));
        }
    }
    found.or_else(|| {
        std::env::var_os("KEYWARD_SOCK")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    })
}
