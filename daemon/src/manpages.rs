//! keywardd(8), rendered from the same clap definition as `--help` so the two cannot drift,
//! and keywardd.toml(5) from [`crate::config_doc`]. `keywardd --manpages DIR` (hidden;
//! packaging/build-deb calls it) writes them.

use std::path::Path;

use anyhow::Context as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

/// Writes `keywardd.8` and `keywardd.toml.5` into `dir`.
pub(crate) fn write_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, page: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))
    };
    write("keywardd.8", &daemon_page()?)?;
    write(
        "keywardd.toml.5",
        crate::config_doc::man_page(env!("CARGO_PKG_VERSION")).as_bytes(),
    )
}

/// clap_mangen's page, with what `--help` has no room for: exit status, signals, files.
fn daemon_page() -> std::io::Result<Vec<u8>> {
    let cmd = crate::command();
    // NAME reads "keywardd - holds ...", not "keywardd - keywardd: holds ...".
    let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
    let about = about
        .strip_prefix("keywardd: ")
        .unwrap_or(&about)
        .to_owned();
    let man = Man::new(cmd.about(about))
        .section("8")
        .source(format!("keyward {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (
            "0",
            "after SIGTERM or SIGINT: requests in flight finished, keys locked",
        ),
        (
            "1",
            "cannot start, or failed while running (the reason is the last log line)",
        ),
        ("2", "usage error"),
    ] {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["SIGNALS"]);
    roff.control("TP", []);
    roff.text([bold("SIGTERM, SIGINT")]);
    roff.text([roman(
        "Finish the requests in flight (10 s at most), lock, remove the socket it created, exit 0.",
    )]);
    roff.control("TP", []);
    roff.text([bold("SIGHUP")]);
    roff.text([roman(
        "Reload the policy from the config file (a broken file keeps the old policy) and reopen \
         the audit log (log rotation). Check a file first with --check-config.",
    )]);
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in [
        (
            "KEYWARD_LOG",
            "Log filter (tracing's EnvFilter syntax); default: info.",
        ),
        (
            "CREDENTIALS_DIRECTORY",
            "If it holds a file named passphrase (systemd LoadCredentialEncrypted=), unlock with it at start.",
        ),
        (
            "LISTEN_FDS, LISTEN_PID",
            "Socket activation: serve the socket systemd passes instead of creating one.",
        ),
        (
            "NOTIFY_SOCKET, WATCHDOG_USEC",
            "sd_notify readiness, status and watchdog (each ping follows a Hello answered through the daemon's own socket).",
        ),
        (
            "JOURNAL_STREAM",
            "When it names stderr, log lines start with their syslog priority (<3> error, <4> warning, <6> info, <7> debug).",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["FILES"]);
    for (path, meaning) in [
        (
            "/etc/keyward/keywardd.toml",
            "The system service's config file (keywardd.toml(5)).",
        ),
        ("/var/lib/keyward", "The system service's keystore."),
        (
            "/run/keyward/keyward.sock",
            "The system service's socket (keywardd.socket).",
        ),
        (
            "/var/log/keyward/audit.jsonl",
            "The audit log, when keywardd.toml names it.",
        ),
        (
            "/etc/logrotate.d/keyward",
            "Rotates the audit log (SIGHUP reopens it).",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(path)]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        italic("keyward"),
        roman("(1), "),
        italic("keywardd.toml"),
        roman("(5), "),
        italic("systemd-creds"),
        roman("(1); /usr/share/doc/keyward/OPERATIONS.md"),
    ]);
    roff.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_pages_render() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        let daemon = std::fs::read_to_string(dir.path().join("keywardd.8")).unwrap();
        assert!(daemon.contains("\\-\\-require\\-mlock") && daemon.contains("SIGHUP"));
        assert!(
            !daemon.contains("manpages"),
            "the hidden flag is documented"
        );
        let config = std::fs::read_to_string(dir.path().join("keywardd.toml.5")).unwrap();
        assert!(config.contains("max_payload_bytes"));
    }
}
