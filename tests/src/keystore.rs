//! Daemons on a persistent keystore (not `--ephemeral`), and the secret parts of test keys.
//!
//! - [`Daemon::start_with_keystore`] starts `keywardd --keystore DIR` on a keystore the test
//!   owns, outside the daemon's own temporary directory, so a test can stop (or SIGKILL, with
//!   [`Daemon::kill`]) a daemon and start another on the same keystore.
//!   [`Daemon::try_start_with_keystore`] also returns how a daemon that refused to start
//!   exited (a wrong headless passphrase, a damaged header).
//! - [`key_secrets`] asks Python's `cryptography` (not keyward) for every secret part of a
//!   PEM private key: its PKCS#8 DER, the RSA primes and exponents, the Ed25519 seed, the
//!   ECDSA scalar, and where in the DER the secret parts lie.
//! - [`appendix_reader`] is the Python keystore reader printed in docs/KEYSTORE.md, run as
//!   it is printed: an independent implementation of the format.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::{Daemon, Output, StartFailure, keywardd_bin, python, run, temp_dir};

impl Daemon {
    /// Starts `keywardd --keystore KEYSTORE --socket <tmp>/run/keyward.sock ARGS` (no
    /// `--ephemeral`) and waits until it serves. `keystore` need not exist yet (`keyward
    /// init` creates it). Panics with the daemon's log if it exits instead.
    pub fn start_with_keystore(keystore: &Path, args: &[&str]) -> Daemon {
        Daemon::try_start_with_keystore(keystore, args, &[]).unwrap_or_else(|failed| {
            panic!(
                "keywardd exited at start (code {:?}); its stderr:\n{}",
                failed.code, failed.log
            )
        })
    }

    /// Like [`Daemon::start_with_keystore`], with extra environment variables (set after the
    /// machine's own keyward and systemd variables are removed, so `CREDENTIALS_DIRECTORY`
    /// can be given), and returning how the daemon exited if it stops before serving.
    pub fn try_start_with_keystore(
        keystore: &Path,
        args: &[&str],
        env: &[(&str, &OsStr)],
    ) -> Result<Daemon, StartFailure> {
        let dir = temp_dir();
        let socket = dir.path().join("run").join("keyward.sock");
        let home = dir.path().to_path_buf();
        let mut command = Command::new(keywardd_bin());
        // Set after the harness has removed the machine's own variables (see `launch`), so
        // that a test can give e.g. CREDENTIALS_DIRECTORY.
        for (key, value) in env {
            command.env(key, value);
        }
        let store_args = [OsStr::new("--keystore"), keystore.as_os_str()];
        let mut daemon = Daemon::launch(command, dir, &home, socket, &store_args, args);
        daemon.wait_until_serving()?;
        Ok(daemon)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon with SIGKILL (no chance to clean up) and reaps it. Dropping the
    /// `Daemon` afterwards checks nothing more.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
    }

    /// Runs `keyward --socket <socket> ARGS...` followed by `--passphrase-file FILE` for each
    /// of `passphrases` written to a file first (the first for `--passphrase-file`, a second
    /// for `--new-passphrase-file`, as `passwd` takes them).
    pub fn keyward_with_passphrases(&self, args: &[&str], passphrases: &[&[u8]]) -> Output {
        let flags = ["--passphrase-file", "--new-passphrase-file"];
        assert!(passphrases.len() <= flags.len(), "at most two passphrases");
        let mut full: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let scratch = tempfile::tempdir().expect("cannot create a scratch directory");
        for (i, (flag, passphrase)) in flags.iter().zip(passphrases).enumerate() {
            let path = scratch.path().join(format!("passphrase-{i}"));
            fs::write(&path, passphrase).expect("cannot write a passphrase file");
            full.push(flag.into());
            full.push(path.into());
        }
        self.keyward(full)
    }
}

/// A temporary directory holding a keystore path that does not exist yet (`DIR/keystore`),
/// so that `init` creates it with the modes it chooses.
#[derive(Debug)]
pub struct KeystoreDir {
    parent: TempDir,
    path: PathBuf,
}

impl KeystoreDir {
    /// A fresh, not yet created, keystore path.
    pub fn new() -> KeystoreDir {
        let parent = temp_dir();
        let path = parent.path().join("keystore");
        KeystoreDir { parent, path }
    }

    /// The keystore directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scratch directory next to the keystore (for passphrase files, keys, copies).
    pub fn scratch(&self) -> &Path {
        self.parent.path()
    }
}

impl Default for KeystoreDir {
    fn default() -> Self {
        KeystoreDir::new()
    }
}

/// Every regular file under `dir`, recursively, with its contents, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", current.display()));
        for entry in entries {
            let entry = entry.expect("cannot read a directory entry");
            let kind = entry.file_type().expect("cannot stat a directory entry");
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                files.push((entry.path(), crate::read(&entry.path())));
            }
        }
    }
    files.sort();
    files
}

/// The secret parts of a private key, as Python's `cryptography` sees them.
#[derive(Debug, Clone)]
pub struct KeySecrets {
    /// `rsa`, `ed25519` or `ec`.
    pub kind: String,
    /// The PKCS#8 DER (`PrivateKeyInfo`, unencrypted) as `cryptography` writes it.
    pub der: Vec<u8>,
    /// The public key as SPKI PEM.
    pub public_pem: Vec<u8>,
    /// Named secret values, big-endian, minimal length: RSA `d`, `p`, `q`, `dp`, `dq`, `qinv`;
    /// the Ed25519 `seed`; the ECDSA `scalar` (32 bytes).
    pub parts: Vec<(String, Vec<u8>)>,
}

impl KeySecrets {
    /// The named part; panics if the key has none of that name.
    pub fn part(&self, name: &str) -> &[u8] {
        self.parts
            .iter()
            .find(|(part, _)| part == name)
            .map(|(_, bytes)| bytes.as_slice())
            .unwrap_or_else(|| panic!("the {} key has no part {name}", self.kind))
    }

    /// The smallest stretch of the DER that holds every secret part, widened by `margin`
    /// bytes on each side (within the DER). For RSA it starts just before `d` (what precedes
    /// is the public modulus and exponent); for ECDSA it ends shortly after the scalar (what
    /// follows is the public point). A run of the DER that lies entirely outside it is public
    /// information and may legitimately be found elsewhere (in the public key).
    pub fn secret_span_of_der(&self, margin: usize) -> &[u8] {
        &self.der[self.secret_range_of_der(margin)]
    }

    /// Where [`KeySecrets::secret_span_of_der`] lies in the DER.
    pub fn secret_range_of_der(&self, margin: usize) -> std::ops::Range<usize> {
        let mut start = usize::MAX;
        let mut end = 0;
        for (name, bytes) in &self.parts {
            let at = find(&self.der, bytes)
                .unwrap_or_else(|| panic!("{name} does not occur in the {} DER", self.kind));
            start = start.min(at);
            end = end.max(at + bytes.len());
        }
        start.saturating_sub(margin)..(end + margin).min(self.der.len())
    }

    /// The private key as a PEM `PRIVATE KEY` with 64-character lines, as OpenSSL writes it.
    pub fn pkcs8_pem(&self) -> String {
        pem("PRIVATE KEY", &self.der)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    crate::scan::find_run(haystack, needle, needle.len()).map(|(_, at)| at)
}

const KEY_SECRETS_PY: &str = r#"
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

pem = open(sys.argv[1], "rb").read()
password = open(sys.argv[2], "rb").read() if len(sys.argv) > 2 else None
key = serialization.load_pem_private_key(pem, password)

def be(n, width=None):
    return n.to_bytes(width or (n.bit_length() + 7) // 8, "big").hex()

der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())
public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
if isinstance(key, rsa.RSAPrivateKey):
    n = key.private_numbers()
    kind, parts = "rsa", [("d", be(n.d)), ("p", be(n.p)), ("q", be(n.q)),
                          ("dp", be(n.dmp1)), ("dq", be(n.dmq1)), ("qinv", be(n.iqmp))]
elif isinstance(key, ed25519.Ed25519PrivateKey):
    kind, parts = "ed25519", [("seed", key.private_bytes_raw().hex())]
elif isinstance(key, ec.EllipticCurvePrivateKey):
    kind, parts = "ec", [("scalar", be(key.private_numbers().private_value, 32))]
else:
    sys.exit("unsupported key type")
print("kind", kind)
print("der", der.hex())
print("public", public.hex())
for name, value in parts:
    print("part", name, value)
"#;

/// Extracts the secret parts of the PEM private key in `pem` (encrypted ones with the
/// password in the file `password`) with Python's `cryptography`.
pub fn key_secrets(pem: &Path, password: Option<&Path>) -> KeySecrets {
    let mut command = python();
    command.arg("-c").arg(KEY_SECRETS_PY).arg(pem);
    if let Some(password) = password {
        command.arg(password);
    }
    let out = run(&mut command, None);
    assert_eq!(
        out.code,
        Some(0),
        "Python could not read the key (is `cryptography` installed?): {out:#?}"
    );
    let mut secrets = KeySecrets {
        kind: String::new(),
        der: Vec::new(),
        public_pem: Vec::new(),
        parts: Vec::new(),
    };
    for line in out.stdout_text().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["kind", kind] => secrets.kind = (*kind).to_owned(),
            ["der", hex] => secrets.der = unhex(hex),
            ["public", hex] => secrets.public_pem = unhex(hex),
            ["part", name, hex] => secrets.parts.push(((*name).to_owned(), unhex(hex))),
            _ => panic!("unexpected line from the key reader: {line:?}"),
        }
    }
    assert!(
        !secrets.der.is_empty() && !secrets.parts.is_empty(),
        "the key reader printed nothing useful: {out:#?}"
    );
    secrets
}

/// Lowercase or uppercase hex to bytes; panics on anything else.
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("invalid hex"))
        .collect()
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// A DER `SubjectPublicKeyInfo` as a PEM `PUBLIC KEY`, exactly as OpenSSL writes it.
pub fn spki_pem(der: &[u8]) -> String {
    pem("PUBLIC KEY", der)
}

/// DER as PEM with 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let mut pem = format!("-----BEGIN {label}-----\n");
    let body = base64(der);
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// `n` bytes from the kernel's random number generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    std::io::Read::read_exact(
        &mut File::open("/dev/urandom").expect("cannot open /dev/urandom"),
        &mut bytes,
    )
    .expect("cannot read /dev/urandom");
    bytes
}

/// The Python reader of docs/KEYSTORE.md's appendix, copied out of the document into
/// `dir/kwread.py` (so a test runs the code the document prints, not a copy of it).
pub fn appendix_reader(dir: &Path) -> PathBuf {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("KEYSTORE.md");
    let text = fs::read_to_string(&doc)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", doc.display()));
    let (_, after) = text
        .split_once("## Appendix: a reader in Python")
        .expect("docs/KEYSTORE.md has no appendix reader");
    let (_, code) = after
        .split_once("```python\n")
        .expect("the appendix has no python block");
    let (code, _) = code
        .split_once("\n```")
        .expect("the appendix's python block is not closed");
    let path = dir.join("kwread.py");
    fs::write(&path, code).expect("cannot write the reader");
    path
}

const KEYS_FROM_HEADER_PY: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import kwread
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
import struct
store, passphrase = sys.argv[2], open(sys.argv[3], "rb").read()
header = open(store + "/header", "rb").read()
_, m, t, p = struct.unpack(">4I", header[8:24])
kek = Argon2id(salt=header[24:40], length=32, iterations=t, lanes=p, memory_cost=m).derive(passphrase)
print(kek.hex())
print(kwread.read_header(store + "/header", passphrase).hex())
"#;

/// The key-encryption key (Argon2id of the passphrase) and the data key of the keystore in
/// `keystore`, computed by the appendix reader of docs/KEYSTORE.md and Python's `cryptography`.
pub fn derive_keys(keystore: &Path, passphrase: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let scratch = tempfile::tempdir().expect("cannot create a scratch directory");
    appendix_reader(scratch.path());
    let passphrase_file = scratch.path().join("passphrase");
    fs::write(&passphrase_file, passphrase).expect("cannot write the passphrase");
    let out = run(
        python()
            .arg("-c")
            .arg(KEYS_FROM_HEADER_PY)
            .arg(scratch.path())
            .arg(keystore)
            .arg(&passphrase_file),
        None,
    );
    assert_eq!(out.code, Some(0), "the appendix reader failed: {out:#?}");
    let lines: Vec<&str> = out.stdout_text().lines().collect();
    assert_eq!(lines.len(), 2, "{out:#?}");
    (unhex(lines[0]), unhex(lines[1]))
}

/// A private key or HMAC secret made for a test, outside keyward.
#[derive(Debug, Clone)]
pub struct TestKey {
    /// Its name in the daemon.
    pub name: String,
    /// keyward scheme name, e.g. `ed25519`.
    pub scheme: &'static str,
    /// The file `keyward import --file` reads: a PEM private key or the secret as text.
    pub file: PathBuf,
    /// Further `keyward import` arguments (`--scheme` for HMAC).
    pub import_args: Vec<String>,
    /// What checks its signatures: the public key as SPKI PEM (made by OpenSSL from the
    /// private key), or the raw HMAC secret.
    pub verify_key: PathBuf,
}

impl TestKey {
    /// True for HMAC secrets.
    pub fn is_hmac(&self) -> bool {
        self.scheme.starts_with("hmac-")
    }

    /// The HMAC secret, or the PEM file's bytes.
    pub fn material(&self) -> Vec<u8> {
        crate::read(&self.file)
    }
}

/// Makes a key of `kind` (`rsa-2048`, `ed25519`, `ecdsa-p256`, `hmac-sha256` or
/// `hmac-sha512`) named `name`, in files under `dir`. Private keys come from `openssl
/// genpkey`, their public halves from `openssl pkey -pubout`; an HMAC secret is 64 random
/// lowercase hex characters, the shape of a Binance or Bybit secret.
pub fn make_key(dir: &Path, name: &str, kind: &str) -> TestKey {
    let file = dir.join(format!("{name}.key-material"));
    let verify_key = dir.join(format!("{name}.verify"));
    let (scheme, genpkey): (&'static str, &[&str]) = match kind {
        "rsa-2048" => (
            "rsa-pkcs1v15-sha256",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ),
        "ed25519" => ("ed25519", &["-algorithm", "ed25519"]),
        "ecdsa-p256" => (
            "ecdsa-p256-sha256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        "hmac-sha256" | "hmac-sha512" => {
            let scheme = if kind == "hmac-sha256" {
                "hmac-sha256"
            } else {
                "hmac-sha512"
            };
            let secret = hex(&random_bytes(32));
            fs::write(&file, &secret).expect("cannot write a secret");
            fs::write(&verify_key, &secret).expect("cannot write a secret");
            return TestKey {
                name: name.to_owned(),
                scheme,
                file,
                import_args: vec!["--scheme".into(), scheme.into()],
                verify_key,
            };
        }
        other => panic!("make_key does not know {other}"),
    };
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend(["-out", path_str(&file)]);
    crate::openssl(&args);
    crate::openssl(&[
        "pkey",
        "-in",
        path_str(&file),
        "-pubout",
        "-out",
        path_str(&verify_key),
    ]);
    TestKey {
        name: name.to_owned(),
        scheme,
        file,
        import_args: Vec::new(),
        verify_key,
    }
}

/// One key of every scheme, named `<prefix>rsa`, `<prefix>ed`, `<prefix>ec`,
/// `<prefix>hmac256`, `<prefix>hmac512`.
pub fn keys_of_every_scheme(dir: &Path, prefix: &str) -> Vec<TestKey> {
    [
        ("rsa", "rsa-2048"),
        ("ed", "ed25519"),
        ("ec", "ecdsa-p256"),
        ("hmac256", "hmac-sha256"),
        ("hmac512", "hmac-sha512"),
    ]
    .into_iter()
    .map(|(name, kind)| make_key(dir, &format!("{prefix}{name}"), kind))
    .collect()
}

/// A path as `&str` (test paths are UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

impl Daemon {
    /// Imports `key` with `keyward import` and asserts it succeeded.
    pub fn import_key(&self, key: &TestKey) {
        let extra: Vec<&str> = key.import_args.iter().map(String::as_str).collect();
        self.import(&key.name, &key.file, &extra);
    }

    /// Signs `payload` with every key over one connection and checks each signature with
    /// Python's `cryptography` under the key's own verification key (and that it fails for
    /// another payload). Returns the raw signatures, in order.
    #[track_caller]
    pub fn assert_keys_sign_verifiably(&self, keys: &[TestKey], payload: &[u8]) -> Vec<Vec<u8>> {
        let mut client = self.client();
        let signatures: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| {
                client
                    .sign(&key.name, payload)
                    .unwrap_or_else(|err| {
                        panic!("key {} cannot sign: {err}; log:\n{}", key.name, self.log())
                    })
                    .into_bytes()
            })
            .collect();
        let checks: Vec<crate::verify::Check<'_>> = keys
            .iter()
            .zip(&signatures)
            .map(|(key, signature)| {
                crate::verify::Check::new(key.scheme, &key.verify_key, payload, signature)
            })
            .collect();
        crate::verify::assert_python_verifies_all(&checks);
        signatures
    }
}

/// A PKCS#8 DER as a PEM `PRIVATE KEY`.
pub fn private_pem(der: &[u8]) -> String {
    pem("PRIVATE KEY", der)
}
