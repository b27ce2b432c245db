//! `keywardd`: holds exchange API keys in memory and signs for local bots over a Unix socket.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when it cannot start or fails
//! while running (the reason is the last log line), 2 for a command-line usage error.
//!
//! Signals: SIGTERM/SIGINT finish requests in flight, lock, remove the socket and exit;
//! SIGHUP reloads the policy part of the config file (a bad file keeps the old policy;
//! reload.rs).

mod audit;
mod config;
mod config_doc;
mod connection;
mod daemon;
mod failure;
mod handler;
mod harden;
mod import;
mod keyring;
mod keystore;
mod lifecycle;
mod limits;
mod manpages;
mod os;
mod payload;
mod peer;
mod policy;
mod private_dir;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod properties;
mod refusals;
mod reload;
mod server;
mod signer;
mod socket;
mod stats;
mod store;
mod systemd;
mod throttle;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::config::{Config, DaemonConfig};
use crate::daemon::{Daemon, Settings};
use crate::lifecycle::AutoLock;
use crate::store::Store;

/// `keywardd --version` and the start line: the release and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KEYWARD_GIT_COMMIT"),
    ")"
);

/// keywardd: ssh-agent for exchange API keys.
///
/// Holds signing keys in memory and signs payloads for local bots over a Unix socket; the
/// bots never see a private key. Runs in the foreground and logs to stderr. Flags override
/// the config file.
#[derive(Debug, Parser)]
#[command(name = "keywardd", version = VERSION, about, long_about = None)]
struct Args {
    /// Config file (TOML) [default: $XDG_CONFIG_HOME/keyward/keywardd.toml, else
    /// ~/.config/keyward/keywardd.toml; absent = built-in defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Socket to listen on [default: $XDG_RUNTIME_DIR/keyward/keyward.sock, else
    /// /run/user/$UID/keyward/keyward.sock if /run/user/$UID exists, else
    /// /tmp/keyward-$UID/keyward.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Keystore directory [default: $XDG_DATA_HOME/keyward, else ~/.local/share/keyward].
    #[arg(long, value_name = "DIR", conflicts_with = "ephemeral")]
    keystore: Option<PathBuf>,

    /// Keep keys in memory only: nothing is written, everything is lost at exit.
    #[arg(long)]
    ephemeral: bool,

    /// Largest request frame accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = keyward_protocol::DEFAULT_MAX_FRAME,
          value_parser = clap::value_parser!(u32).range(1024..=16 * 1024 * 1024))]
    max_frame: u32,

    /// Lock after this many seconds without a signature (0: never) [default: 0].
    #[arg(long, value_name = "SECS")]
    idle_lock: Option<u64>,

    /// Lock this many seconds after unlock, however busy (0: never) [default: 0].
    #[arg(long, value_name = "SECS")]
    max_unlock: Option<u64>,

    /// Unlock at start with the passphrase in this file (its first line). Without it, a file
    /// named `passphrase` in $CREDENTIALS_DIRECTORY (systemd LoadCredentialEncrypted=) is used.
    #[arg(long, value_name = "PATH", conflicts_with = "ephemeral")]
    passphrase_file: Option<PathBuf>,

    /// Refuse to start unless all memory can be locked (mlockall), so no key can reach swap.
    #[arg(long)]
    require_mlock: bool,

    /// Check a config file and exit: 0 and one "OK" line on stdout when keywardd would accept
    /// it, 1 and the one-line error on stderr when not. FILE defaults to the file keywardd
    /// would read (--config, else the default path). Run it before a reload.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    check_config: Option<Option<PathBuf>>,

    /// Write the man pages keywardd(8) and keywardd.toml(5) into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true)]
    manpages: Option<PathBuf>,
}

/// keywardd's clap definition, as `--help` and the man page see it.
fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.manpages {
        return match manpages::write_all(dir) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("keywardd: {err:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(file) = &args.check_config {
        return check_config(&args, file.as_deref());
    }
    init_logging();
    tracing::info!("keywardd {VERSION} starting");
    // First, before anything opens a file descriptor (the config file, /proc in harden):
    // fd 3 must still be the socket the service manager passed (see systemd::take_listener).
    let activated = match systemd::take_listener() {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("{err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(args, activated) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `keywardd --check-config [FILE]`: validates the file as a start or a reload would (the
/// same parser, the same user and group lookups), without touching the daemon.
fn check_config(args: &Args, file: Option<&std::path::Path>) -> std::process::ExitCode {
    let source = match file {
        Some(path) => Some((path.to_owned(), true)),
        None => config_source(args),
    };
    let checked = match &source {
        Some((path, must_exist)) => config::load(path, *must_exist)
            .map(|_| match path.exists() {
                true => path.display().to_string(),
                false => format!("{} is absent: built-in defaults", path.display()),
            })
            .map_err(anyhow::Error::from),
        None => config::parse("")
            .map(|_| "built-in defaults (no config file)".to_owned())
            .map_err(anyhow::Error::msg),
    };
    match checked {
        Ok(what) => {
            println!("keywardd: config OK: {what}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("keywardd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if stderr_is_the_journal() {
        // The journal stamps the time and the unit itself; the prefix is the priority.
        builder
            .with_ansi(false)
            .event_format(journal::Format)
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .init();
    }
}

/// True when stderr is connected to the journal: `$JOURNAL_STREAM` names its device and inode
/// (systemd.exec(5)). Checked against stderr itself, since the variable is inherited by
/// children whose stderr was redirected elsewhere.
fn stderr_is_the_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    nix::sys::stat::fstat(std::io::stderr()).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

mod journal {
    //! Log lines for the journal: each starts with its syslog priority, `<3>` error,
    //! `<4>` warning, `<6>` info, `<7>` debug and trace (sd-daemon(3)), so that
    //! `journalctl -p warning` shows the warnings and errors; the message follows, then the
    //! event's fields as `name=value`.

    use std::fmt;

    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    pub(super) struct Format;

    /// The sd-daemon(3) priority of a level.
    pub(super) fn priority(level: Level) -> u8 {
        match level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        }
    }

    impl<S, N> FormatEvent<S, N> for Format
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut line = String::new();
            ctx.field_format()
                .format_fields(Writer::new(&mut line), event)?;
            // One event, one journal entry: a line break inside (from an error's text) would
            // start an entry of its own, at the priority its text claims.
            let line = line.replace('\n', "\\n").replace('\r', "\\r");
            writeln!(writer, "<{}>{line}", priority(*event.metadata().level()))
        }
    }
}

fn non_zero_secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The config file to read and whether it must exist (it must when named on the command line).
fn config_source(args: &Args) -> Option<(PathBuf, bool)> {
    match &args.config {
        Some(path) => Some((path.clone(), true)),
        None => config::default_path().map(|path| (path, false)),
    }
}

/// Threads for admin work: tokio's blocking pool, which nothing else uses.
const ADMIN_THREADS: usize = 1;

fn run(args: Args, activated: Option<std::os::unix::net::UnixListener>) -> anyhow::Result<()> {
    let config = match config_source(&args) {
        Some((path, must_exist)) => config::load(&path, must_exist)?,
        None => config::parse("").map_err(anyhow::Error::msg)?,
    };
    let limits = &config.daemon.limits;
    if limits.frame_budget < u64::from(args.max_frame) {
        anyhow::bail!(
            "daemon.frame_budget_bytes ({}) is smaller than --max-frame ({}): a request of the \
             largest size could never be received; raise frame_budget_bytes",
            limits.frame_budget,
            args.max_frame
        );
    }
    let kdf = keystore::KdfParams::default();
    // Before any thread or key exists, so every later allocation is covered.
    harden::harden(u64::from(kdf.m_cost_kib) * 1024, limits, args.require_mlock)?;
    // Requests are served and signed on each connection's own thread (server.rs). The
    // runtime keeps the accept loop, signals, timers and auto-lock: one worker is plenty.
    // Its blocking pool is where admin work runs (key generation and parsing, Argon2id,
    // keystore files); one thread bounds it to one core, so it can never take the CPU a
    // signature needs on a small machine (admin work is serialised by the admin lock anyway).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(ADMIN_THREADS)
        .thread_name("keywardd-rt")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, config, kdf, activated))
}

/// `$XDG_DATA_HOME/keyward`, else `~/.local/share/keyward`.
fn default_keystore_dir() -> anyhow::Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(data) = non_empty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(data).join("keyward"));
    }
    let home =
        non_empty("HOME").context("neither XDG_DATA_HOME nor HOME is set; pass --keystore DIR")?;
    Ok(PathBuf::from(home).join(".local/share/keyward"))
}

/// The passphrase for unlocking at start, if one was provided for headless operation.
fn headless_passphrase(
    args: &Args,
) -> anyhow::Result<Option<(PathBuf, keyward_protocol::SecretBytes)>> {
    let path = match &args.passphrase_file {
        Some(path) => path.clone(),
        None => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if PathBuf::from(&dir).join("passphrase").is_file() => {
                PathBuf::from(dir).join("passphrase")
            }
            _ => return Ok(None),
        },
    };
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
    );
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some((
        path,
        keyward_protocol::SecretBytes::new(line.to_vec()),
    )))
}

fn open_store(
    args: &Args,
    config: &DaemonConfig,
    kdf: keystore::KdfParams,
) -> anyhow::Result<Store> {
    if args.ephemeral {
        return Ok(Store::Ephemeral);
    }
    let dir = match args.keystore.as_ref().or(config.keystore.as_ref()) {
        Some(dir) => dir.clone(),
        None => default_keystore_dir()?,
    };
    let store = Store::open(&dir, kdf)
        .with_context(|| format!("cannot open the keystore {}", dir.display()))?;
    if store.is_initialized() {
        tracing::info!(keystore = %dir.display(), "keystore opened (locked; `keyward unlock`)");
    } else {
        tracing::info!(keystore = %dir.display(), "no keystore yet; `keyward init` creates it");
    }
    Ok(store)
}

fn open_audit(config: &DaemonConfig) -> anyhow::Result<AuditLog> {
    match &config.audit_log {
        Some(path) => AuditLog::open(
            path,
            config.audit_payloads,
            config.audit_required,
            config
                .audit_timeout_ms
                .map_or(audit::DEFAULT_TIMEOUT, Duration::from_millis),
        )
        .with_context(|| format!("cannot open the audit log {}", path.display())),
        None => Ok(AuditLog::disabled()),
    }
}

async fn serve(
    args: Args,
    config: Config,
    kdf: keystore::KdfParams,
    activated: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    let notifier = systemd::Notifier::from_env();
    let socket_path = args
        .socket
        .clone()
        .or_else(|| config.daemon.socket.clone())
        .unwrap_or_else(socket::default_socket_path);
    let store = open_store(&args, &config.daemon, kdf)?;
    let settings = Settings {
        max_frame: args.max_frame,
        limits: config.daemon.limits.clone(),
        auto_lock: AutoLock {
            idle: non_zero_secs(args.idle_lock.or(config.daemon.idle_lock_secs).unwrap_or(0)),
            max_unlocked: non_zero_secs(
                args.max_unlock
                    .or(config.daemon.max_unlock_secs)
                    .unwrap_or(0),
            ),
        },
    };
    let source = reload::ConfigSource {
        file: config_source(&args),
        daemon_at_start: config.daemon.clone(),
    };
    let daemon = Daemon::new(
        settings,
        store,
        config.policy,
        open_audit(&config.daemon)?,
        source,
    );
    // An ephemeral daemon starts with no keys at all: every table would be "unknown".
    if !daemon.lifecycle.is_ephemeral() {
        daemon.warn_about_unknown_key_tables("start");
    }
    reload::log_order_rules(&daemon.policy(), "start");
    if let Some((path, passphrase)) = headless_passphrase(&args)? {
        daemon
            .unlock(passphrase)
            .await
            .map_err(|failure| anyhow::anyhow!("{}", failure.message))
            .with_context(|| format!("cannot unlock with the passphrase in {}", path.display()))?;
        let auto_lock = &daemon.settings.auto_lock;
        if auto_lock.idle.is_some() || auto_lock.max_unlocked.is_some() {
            tracing::warn!(
                "auto-lock is on, and the passphrase in {} is read at start only: after an \
                 auto-lock, signing stops until someone runs `keyward unlock` (or keywardd \
                 restarts)",
                path.display()
            );
        }
    }

    // Socket-activated, the socket unit owns the file (path, mode, group): the daemon
    // neither creates nor removes it.
    let (listener, socket_path, owns_socket_file) = match activated {
        Some(listener) => {
            let path = listener
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(PathBuf::from))
                .unwrap_or_default();
            if args.socket.as_ref().is_some_and(|given| *given != path) {
                tracing::warn!(
                    "--socket is ignored: serving the socket the service manager passed"
                );
            }
            let listener = tokio::net::UnixListener::from_std(listener)
                .context("cannot serve the socket passed by the service manager")?;
            tracing::info!(socket = %path.display(), "keywardd listening (socket-activated)");
            (listener, path, false)
        }
        None => {
            let listener =
                socket::bind(&socket_path, config.daemon.socket_gid).context("cannot listen")?;
            tracing::info!(socket = %socket_path.display(), "keywardd listening");
            (listener, socket_path, true)
        }
    };

    let shutdown = CancellationToken::new();
    spawn_signal_handlers(&daemon, notifier.clone(), shutdown.clone())?;
    tokio::spawn(auto_lock(
        Arc::clone(&daemon),
        notifier.clone(),
        shutdown.clone(),
    ));
    if let Some(notifier) = &notifier {
        if let Some(every) = systemd::watchdog_interval() {
            tokio::spawn(watchdog(
                notifier.clone(),
                every,
                socket_path.clone(),
                shutdown.clone(),
            ));
        }
        // Served: the listener is listening and the accept loop starts on the next line (a
        // client connecting now waits in the backlog). The headless unlock is done.
        notifier.ready(&systemd::status_line(&daemon.status()));
    }

    server::run(listener, Arc::clone(&daemon), shutdown).await;

    if owns_socket_file && let Err(err) = std::fs::remove_file(&socket_path) {
        tracing::warn!("cannot remove {}: {err}", socket_path.display());
    }
    daemon.lock("shutdown").await;
    daemon.refusals.flush(&daemon.audit, true);
    daemon.audit.flush();
    let (dropped, failed) = (daemon.audit.dropped(), daemon.audit.failed());
    if dropped + failed > 0 {
        tracing::error!(
            "audit records lost since start: {dropped} dropped (queue full), {failed} not written"
        );
    }
    tracing::info!(refused = daemon.refusals.total(), "keywardd stopped");
    Ok(())
}

/// SIGTERM/SIGINT start a graceful shutdown; SIGHUP reloads the policy.
fn spawn_signal_handlers(
    daemon: &Arc<Daemon>,
    notifier: Option<systemd::Notifier>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: finishing requests in flight"),
            _ = sigint.recv() => tracing::info!("SIGINT: finishing requests in flight"),
        }
        if let Some(notifier) = &notifier {
            notifier.stopping();
        }
        shutdown.cancel();
    });
    let daemon = Arc::clone(daemon);
    tokio::spawn(async move {
        while sighup.recv().await.is_some() {
            // The outcome is logged by reload(); a signal has nobody to answer. Off the
            // runtime: reopening the audit log may wait on a slow disk.
            let daemon = Arc::clone(&daemon);
            let _ = tokio::task::spawn_blocking(move || reload::reload(&daemon, "SIGHUP")).await;
        }
    });
    Ok(())
}

/// Checks the auto-lock deadlines once a second, records the refusal counts that are due,
/// and tells systemd when the state changes
/// (`systemctl status` shows the line).
async fn auto_lock(
    daemon: Arc<Daemon>,
    notifier: Option<systemd::Notifier>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reported: Option<String> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => daemon.enforce_auto_lock().await,
        }
        // Refused connections are recorded per uid and interval (refusals.rs).
        daemon.refusals.flush(&daemon.audit, false);
        if let Some(notifier) = &notifier {
            let line = systemd::status_line(&daemon.status());
            if reported.as_deref() != Some(line.as_str()) {
                notifier.status(&line);
                reported = Some(line);
            }
        }
    }
}

/// Sends WATCHDOG=1 every `every` (half of the unit's WatchdogSec=) until shutdown, but only
/// after the daemon has served a request through its own socket: a Hello over a fresh
/// connection, which goes through the accept loop, a connection thread and the framing, the
/// path every bot's request takes (issue 19 §5). A live runtime whose accept loop is stuck,
/// whose connection threads cannot start, or whose socket is gone stops the pings, and
/// systemd restarts the daemon.
async fn watchdog(
    notifier: systemd::Notifier,
    every: Duration,
    socket: PathBuf,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = tokio::select! {
            () = shutdown.cancelled() => return,
            probe = tokio::time::timeout(every, serves_hello(&socket)) => probe,
        };
        match probe.unwrap_or_else(|_| Err(format!("no answer within {every:?}"))) {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    tracing::warn!("watchdog: the socket serves requests again");
                }
                notifier.watchdog();
            }
            Err(err) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(
                        "watchdog: cannot get an answer through {}: {err}; not telling the \
                         service manager that keywardd is alive",
                        socket.display()
                    );
                }
            }
        }
    }
}

/// Connects to `socket` and completes the Hello handshake.
async fn serves_hello(socket: &std::path::Path) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|err| format!("cannot connect: {err}"))?;
    let hello = keyward_protocol::Request::Hello {
        version: keyward_protocol::PROTOCOL_VERSION,
    };
    let frame =
        keyward_protocol::encode_request(&hello, u32::MAX).map_err(|err| err.to_string())?;
    stream
        .write_all(&frame)
        .await
        .map_err(|err| format!("cannot send: {err}"))?;
    let mut header = [0u8; keyward_protocol::frame::HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|err| format!("no answer: {err}"))?;
    let len = keyward_protocol::frame::body_len(header, keyward_protocol::MAX_RESPONSE_FRAME)
        .map_err(|err| err.to_string())?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|err| format!("no answer: {err}"))?;
    match keyward_protocol::decode_response(&body) {
        Ok(keyward_protocol::Response::Welcome(_)) => Ok(()),
        Ok(_) => Err("an answer that is not Welcome".to_owned()),
        Err(err) => Err(format!("malformed answer: {err}")),
    }
}
