//! The rule for a directory that guards secrets (the keystore) or the socket: a real
//! directory, owned by this process's effective uid, that nobody else can write. Whoever can
//! write there could swap the files inside (key files, the header) or the socket itself for
//! their own. The keystore is stricter still ([`check_owner_only`]): nobody else may even
//! read it.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// Checks a directory's metadata against the rule; the error is the reason, one line for
/// people ("it is writable by group or others ..."). Pass `symlink_metadata` to refuse a
/// symlink, `metadata` to judge what it points to.
pub(crate) fn check(meta: &Metadata) -> Result<(), String> {
    if meta.file_type().is_symlink() {
        return Err("it is a symlink, not a directory".to_owned());
    }
    if !meta.is_dir() {
        return Err("it is not a directory".to_owned());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it is owned by uid {}, not by this process's uid {me}",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "it is writable by group or others (mode {mode:04o}); run chmod 700 on it"
        ));
    }
    Ok(())
}

/// [`check`], and also no access at all for group or others (mode 0700): whoever can read
/// the keystore can copy the encrypted keys and search for the passphrase offline, out of
/// reach of the daemon's wrong-passphrase delay.
pub(crate) fn check_owner_only(meta: &Metadata) -> Result<(), String> {
    check(meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "it is readable by group or others (mode {mode:04o}), so the encrypted keys could be copied for an offline passphrase search; run chmod 700 on it"
        ));
    }
    Ok(())
}
