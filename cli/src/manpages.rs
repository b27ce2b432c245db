//! The man pages keyward(1) and keyward-SUBCOMMAND(1), rendered from the same clap
//! definition as `--help` ([`crate::completions::command`]), so the two cannot drift.
//! `keyward manpages DIR` (hidden; packaging/build-deb calls it) writes them.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// Writes `keyward.1` and one `keyward-SUBCOMMAND.1` per visible subcommand into `dir`.
pub(crate) fn write_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = crate::completions::command();
    // NAME reads "keyward - the command line ...", not "keyward - keyward: the command ...".
    let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
    let about = about.strip_prefix("keyward: ").unwrap_or(&about).to_owned();
    let mut cmd = cmd.about(about).disable_help_subcommand(true);
    cmd.build();
    let source = format!("keyward {}", env!("CARGO_PKG_VERSION"));
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_page(dir, &Man::new(sub.clone()).source(&source), None)?;
    }
    write_page(dir, &Man::new(cmd.clone()).source(&source), Some(&cmd))
}

fn write_page(dir: &Path, man: &Man, top: Option<&clap::Command>) -> anyhow::Result<()> {
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    render(man, top, &mut page)?;
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))
}

/// clap_mangen's sections, with keyward(1)'s table of exit codes under EXIT STATUS rather
/// than clap_mangen's generic EXTRA, and ENVIRONMENT, FILES and SEE ALSO added.
fn render(man: &Man, top: Option<&clap::Command>, out: &mut dyn Write) -> std::io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut roff = Roff::default();
    match top {
        Some(cmd) => {
            man.render_subcommands_section(out)?;
            roff.control("SH", ["EXIT STATUS"]);
            let help = cmd
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            roff.control("nf", []);
            for line in help.lines().skip_while(|line| line.ends_with(':')) {
                roff.text([roman(line)]);
            }
            roff.control("fi", []);
            roff.control("SH", ["ENVIRONMENT"]);
            roff.control("TP", []);
            roff.text([bold("KEYWARD_SOCK")]);
            roff.text([roman(
                "The daemon's socket, when --socket is not given. The system service's is \
                 /run/keyward/keyward.sock.",
            )]);
            roff.control("SH", ["FILES"]);
            roff.control("TP", []);
            roff.text([bold("$XDG_RUNTIME_DIR/keyward/keyward.sock")]);
            roff.text([roman("The default socket of a session's keywardd.")]);
            roff.control("TP", []);
            roff.text([bold("/run/keyward/keyward.sock")]);
            roff.text([roman(
                "The system service's socket (members of group keyward).",
            )]);
            roff.control("SH", ["SEE ALSO"]);
            roff.text([roman(
                "keywardd(8), keywardd.toml(5); /usr/share/doc/keyward/OPERATIONS.md",
            )]);
        }
        None => {
            roff.control("SH", ["SEE ALSO"]);
            roff.text([roman("keyward(1), keywardd(8)")]);
        }
    }
    roff.to_writer(out)?;
    if top.is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page renders (clap_mangen panics on some definitions), and each subcommand's
    /// page documents that subcommand's options.
    #[test]
    fn pages_render_for_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        let page = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let top = page("keyward.1");
        assert!(
            top.contains("EXIT STATUS") && top.contains("keyward\\-sign(1)"),
            "{top}"
        );
        assert!(page("keyward-sign.1").contains("\\-\\-encoding"));
        assert!(page("keyward-completions.1").contains("fish"));
        assert!(
            !dir.path().join("keyward-manpages.1").exists(),
            "hidden command documented"
        );
        assert!(!dir.path().join("keyward-help.1").exists());
    }
}
