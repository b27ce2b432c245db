//! `keyward`: the command line for keywardd, in the spirit of ssh-add.

#![forbid(unsafe_code)]

mod completions;
mod demo;
mod exit;
mod input;
mod keys;
mod keystore;
mod manpages;
mod output;
mod passphrase;
mod sign;
mod stats;
mod verify;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keyward_client::{Client, KeyKind, PayloadFormat, Scheme};

/// `keyward --version`: the release and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KEYWARD_GIT_COMMIT"),
    ")"
);

/// keyward: ssh-agent for exchange API keys.
///
/// Talks to keywardd, which holds the keys: bots ask it for signatures and never see a
/// private key.
#[derive(Debug, Parser)]
#[command(name = "keyward", version = VERSION, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/keyward/keyward.sock, else
    /// /run/user/$UID/keyward/keyward.sock if /run/user/$UID exists, else
    /// /tmp/keyward-$UID/keyward.sock].
    #[arg(
        long,
        global = true,
        env = "KEYWARD_SOCK",
        value_name = "PATH",
        hide_env_values = true
    )]
    socket: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add a private key (PEM) or an HMAC secret.
    Import(keys::ImportArgs),
    /// Make a new key inside the daemon and print its public key (SPKI PEM).
    Generate {
        /// Name of the new key.
        name: String,
        /// What to generate.
        #[arg(long, value_parser = parse_kind)]
        scheme: KeyKind,
        /// The exchange's API key id that goes with this key (shown by `list`).
        #[arg(long, value_name = "ID")]
        api_key: Option<String>,
        /// The key's payload format, which payload rules parse its payloads in: binance,
        /// bybit, okx, kucoin, bitget, kraken, coinbase-jwt or raw (the config may override it).
        #[arg(long, value_parser = parse_format, value_name = "NAME")]
        format: Option<PayloadFormat>,
    },
    /// List the keys: name, scheme, bits, payload format, fingerprint, API key id.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a key's public key as SPKI PEM (the form exchanges ask you to upload).
    Pubkey {
        /// Key name.
        #[arg(add = completions::key_names())]
        name: String,
    },
    /// Store, replace or remove the exchange passphrase of an HMAC key (KuCoin), sealed with
    /// the key; the daemon only ever returns it signed.
    Passphrase(keys::PassphraseArgs),
    /// Delete a key.
    Remove {
        /// Key name.
        #[arg(add = completions::key_names())]
        name: String,
    },
    /// Sign a payload: the argument, or stdin byte for byte when absent.
    ///
    /// Prefer stdin (`printf '%s' "$PAYLOAD" | keyward sign KEY`): a payload given as an
    /// argument is visible to every local user in `ps` and /proc/PID/cmdline while the
    /// command runs.
    Sign {
        /// Key name.
        #[arg(add = completions::key_names())]
        name: String,
        /// The payload (e.g. a query string). Read from stdin when absent. Visible to other
        /// users in `ps` while keyward runs: prefer stdin.
        payload: Option<std::ffi::OsString>,
        /// How to print the signature [default: hex for HMAC keys, base64 otherwise].
        #[arg(long, value_enum, conflicts_with = "format")]
        encoding: Option<Encoding>,
        /// Build an exchange's signed request from the payload and print it, as the
        /// clients' exchange helpers do (docs/EXCHANGES.md). Not the key's payload format
        /// (that is `import`/`generate --format`): this says what the payload is. A trailing
        /// newline is dropped.
        #[arg(long, value_enum, value_name = "REQUEST")]
        format: Option<sign::RequestFormat>,
        /// With --format kraken: the URI path, e.g. /0/private/AddOrder.
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
    },
    /// Run a throwaway daemon, make keys, sign a Binance order and verify it.
    Demo,
    /// Create the encrypted keystore (asks for a new passphrase twice).
    Init(passphrase::PassphraseSource),
    /// Unlock the keystore: decrypt every key into the daemon's memory.
    Unlock(passphrase::PassphraseSource),
    /// Lock the keystore: the daemon drops every decrypted key.
    Lock,
    /// Show the keystore's state, key count, auto-lock timers and the daemon's version;
    /// to an admin, each key's order rules.
    ///
    /// Exits 5 when the keystore is locked and 7 when it is not initialised (after printing
    /// the state), so that monitoring can use it as a check. Users with the daemon's
    /// read-only status right (`status_uids`) may run it.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the daemon's counters: signatures per key, denials, rate limits, connections,
    /// unlocks, reloads (JSON).
    ///
    /// For node_exporter's textfile collector: `keyward stats --prometheus > DIR/keyward.prom.tmp
    /// && mv DIR/keyward.prom.tmp DIR/keyward.prom`. Needs an admin or the status right.
    Stats {
        /// Print the Prometheus text exposition format instead (metrics `keyward_*`).
        #[arg(long)]
        prometheus: bool,
    },
    /// Make the daemon re-read its config file and put the new policy in force (admin).
    ///
    /// Exits 8 with the one-line error when the new config is invalid: the old policy then
    /// stays in force.
    Reload,
    /// Change the keystore passphrase.
    Passwd(keystore::PasswdArgs),
    /// Print a shell completion script (key names are completed from the daemon's list).
    ///
    /// bash: `keyward completions bash > ~/.local/share/bash-completion/completions/keyward`;
    /// zsh: `keyward completions zsh > ~/.zfunc/_keyward` (a directory in $fpath);
    /// fish: `keyward completions fish > ~/.config/fish/completions/keyward.fish`.
    /// The Debian package installs all three.
    Completions {
        /// The shell.
        shell: completions::Shell,
    },
    /// Write the man pages keyward(1) and keyward-COMMAND(1) into DIR (for packaging).
    #[command(hide = true)]
    Manpages {
        /// Output directory.
        dir: PathBuf,
    },
}

/// Text encodings of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Encoding {
    /// Lowercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// URL-safe base64 without padding (JWT).
    Base64url,
    /// The raw bytes, with no newline.
    Raw,
}

fn parse_kind(s: &str) -> Result<KeyKind, String> {
    s.parse().map_err(|_| {
        let names: Vec<&str> = KeyKind::ALL.iter().map(|kind| kind.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

pub(crate) fn parse_format(s: &str) -> Result<PayloadFormat, String> {
    s.parse().map_err(|_| {
        let names: Vec<&str> = PayloadFormat::ALL.iter().map(|f| f.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

pub(crate) fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse().map_err(|_| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|scheme| scheme.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    completions::complete_if_requested();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // clap's message is several lines (usage, hints); keep the first, as every other
            // error is one line.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let _ = writeln!(std::io::stderr(), "keyward: {first} (see `keyward --help`)");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "keyward: {}", exit::one_line(&err));
            ExitCode::from(exit::code_for(&err))
        }
    }
}

/// A reader that went away (`keyward list | head -1`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn connect(socket: Option<&PathBuf>) -> anyhow::Result<Client> {
    Ok(match socket {
        Some(path) => Client::connect(path)?,
        None => Client::connect(keyward_client::default_socket_path())?,
    })
}

/// A connection for a command whose daemon-side work can take long (key derivation, key
/// generation, waiting for other admin work): no timeout, as a person is waiting and can
/// interrupt. Every other command keeps the client's default.
fn connect_admin(socket: Option<&PathBuf>) -> anyhow::Result<Client> {
    let mut client = connect(socket)?;
    client.set_timeout(None)?;
    Ok(client)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let socket = cli.socket.as_ref();
    match cli.command {
        Command::Demo => demo::run(),
        Command::Completions { shell } => Ok(completions::write(shell, &mut std::io::stdout())?),
        Command::Manpages { dir } => manpages::write_all(&dir),
        Command::Init(source) => keystore::init(&mut connect_admin(socket)?, &source),
        Command::Unlock(source) => keystore::unlock(&mut connect_admin(socket)?, &source),
        Command::Lock => keystore::lock(&mut connect_admin(socket)?),
        Command::Status { json } => keystore::status(&mut connect(socket)?, json),
        Command::Stats { prometheus } => stats::stats(&mut connect(socket)?, prometheus),
        Command::Reload => stats::reload(&mut connect_admin(socket)?),
        Command::Passwd(args) => keystore::passwd(&mut connect_admin(socket)?, &args),
        Command::Import(args) => {
            args.validate()?;
            keys::import(&mut connect_admin(socket)?, args)
        }
        Command::Generate {
            name,
            scheme,
            api_key,
            format,
        } => keys::generate(&mut connect_admin(socket)?, &name, scheme, api_key, format),
        Command::List { json } => keys::list(&mut connect(socket)?, json),
        Command::Pubkey { name } => keys::pubkey(&mut connect(socket)?, &name),
        Command::Remove { name } => keys::remove(&mut connect_admin(socket)?, &name),
        Command::Passphrase(args) => keys::passphrase(&mut connect_admin(socket)?, args),
        Command::Sign {
            name,
            payload,
            encoding,
            format,
            path,
        } => {
            let how = match format {
                Some(format) => sign::How::Request(format, path),
                None => sign::How::Signature(encoding),
            };
            sign::run(&mut connect(socket)?, &name, payload, how)
        }
    }
}
