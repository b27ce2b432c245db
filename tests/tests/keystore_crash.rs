//! Crash safety with the real daemon: keywardd is killed with SIGKILL in the middle of a
//! stream of imports, generates, removes and a `passwd`, fifty times at random moments.
//! After every kill a new daemon on the same keystore unlocks with the old or the new
//! passphrase (the new one whenever `passwd` was acknowledged), and every key is whole (it
//! signs, and the signature verifies under its recorded public key) or absent: every
//! acknowledged import or generate is there, every acknowledged remove is gone, and `status`
//! reports no unreadable key. Temporary files a crash left behind are deleted when the
//! daemon starts (once older than a minute, fsio::TEMP_MAX_AGE: a younger one may belong to
//! a write in flight); younger ones are ignored.
//!
//! The kill times and where the `passwd` falls come from a seeded generator: the seed is
//! printed, and `KEYWARD_CRASH_SEED=N` replays a run.
// Helpers outside #[test] functions may unwrap too: a panic there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_client::{Client, ErrorCode, KeyInfo, KeyKind, SecretBytes};
use keyward_tests::Daemon;
use keyward_tests::keystore::{KeystoreDir, TestKey, make_key, spki_pem};
use keyward_tests::verify::{Check, assert_python_verifies_all};

const ITERATIONS: usize = 50;
/// The latest a kill comes after its round's stream starts. The passphrase change takes
/// about 0.3 s from a few tens of ms in; imports and generates a few ms each.
const MAX_KILL_AFTER_MS: u64 = 500;
/// The latest operation before which the passphrase change comes: early in some rounds
/// (the kill is likely to cut it off), late in others (the kill cuts off an import, a
/// generate or a remove instead).
const MAX_PASSWD_AT: u64 = 120;
/// Operations planned per round (more than any round gets through before its kill).
const OPS_PER_ROUND: usize = 150;
const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timestamp=1";
/// Prefix of the keystore's temporary files (daemon/src/keystore/fsio.rs).
const TEMP_PREFIX: &str = ".kw-tmp-";

/// xorshift64*: reproducible from its seed, and enough to spread kills over time.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What the test knows about a key name it has asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Acknowledged (or seen since): must be present and whole.
    Present,
    /// Its import, generate or remove was cut off by the kill: present and whole, or absent.
    Either,
    /// Removed with acknowledgement (or never seen after a cut-off import): must be absent.
    Absent,
}

#[derive(Debug, Clone)]
struct Known {
    expect: Expect,
    scheme: &'static str,
    /// SPKI PEM file or HMAC secret file checking its signatures; for a generated key whose
    /// generate was cut off, unknown until it is first seen.
    verify_key: Option<PathBuf>,
    /// The public key the daemon acknowledged (generated keys), to compare with later.
    public_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Op {
    Import(TestKey),
    Generate(String, KeyKind),
    Remove(String),
    Passwd(Vec<u8>),
}

/// Runs `ops` one after another over one connection until one fails (the daemon was
/// killed); returns each op attempted with its outcome.
fn run_ops(
    socket: PathBuf,
    passphrase: Vec<u8>,
    ops: Vec<Op>,
) -> Vec<(Op, Result<Option<KeyInfo>, String>)> {
    let mut done = Vec::new();
    let Ok(mut client) = Client::connect(&socket) else {
        return done;
    };
    for op in ops {
        let result = match &op {
            Op::Import(key) => {
                let scheme = key.is_hmac().then(|| key.scheme.parse().unwrap());
                client
                    .import(
                        &key.name,
                        scheme,
                        SecretBytes::new(key.material()),
                        None,
                        None,
                        None,
                    )
                    .map(Some)
            }
            Op::Generate(name, kind) => client.generate(name, *kind, None, None).map(Some),
            Op::Remove(name) => client.remove(name).map(|()| None),
            Op::Passwd(new) => client
                .change_passphrase(
                    SecretBytes::new(passphrase.clone()),
                    SecretBytes::new(new.clone()),
                )
                .map(|()| None),
        };
        let failed = result.is_err();
        done.push((op, result.map_err(|err| err.to_string())));
        if failed {
            break;
        }
    }
    done
}

/// Unlocks with the first of `candidates` that works; returns its index.
fn unlock_with_one_of(daemon: &Daemon, candidates: &[&[u8]]) -> usize {
    let mut client = daemon.client();
    for (i, passphrase) in candidates.iter().enumerate() {
        match client.unlock(SecretBytes::new(passphrase.to_vec())) {
            Ok(()) => return i,
            Err(err) if err.code() == Some(ErrorCode::WrongPassphrase) => {}
            Err(err) => panic!("unlock failed: {err}; log:\n{}", daemon.log()),
        }
    }
    panic!(
        "none of the {} candidate passphrases unlocks the keystore; log:\n{}",
        candidates.len(),
        daemon.log()
    )
}

/// Checks the restarted, unlocked daemon against what is known, and settles every
/// `Either` to what was found.
fn verify(
    daemon: &Daemon,
    known: &mut BTreeMap<String, Known>,
    scratch: &Path,
    round: usize,
    stats: &mut BTreeMap<&'static str, usize>,
) {
    let mut client = daemon.client();
    let status = client.status().unwrap();
    assert!(
        status.unreadable.is_empty(),
        "round {round}: unreadable keys after a crash: {:?}",
        status.unreadable
    );
    let listed: BTreeMap<String, KeyInfo> = client
        .list()
        .unwrap()
        .into_iter()
        .map(|info| (info.name.clone(), info))
        .collect();
    assert_eq!(status.keys as usize, listed.len());
    // Every file in keys/ that is not a leftover temporary file is a key that loaded.
    let files: Vec<String> = fs::read_dir(daemon_keystore_keys(scratch))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with(".kw-tmp-"))
        .collect();
    assert_eq!(
        files.len(),
        listed.len(),
        "round {round}: files {files:?} vs keys {:?}",
        listed.keys()
    );
    for name in listed.keys() {
        let entry = known
            .get(name)
            .unwrap_or_else(|| panic!("round {round}: a key {name} nobody asked for"));
        assert_ne!(
            entry.expect,
            Expect::Absent,
            "round {round}: {name} was removed (or never made) but is back"
        );
    }
    let mut signatures = Vec::new();
    for (name, entry) in known.iter_mut() {
        let Some(info) = listed.get(name) else {
            assert_ne!(
                entry.expect,
                Expect::Present,
                "round {round}: acknowledged key {name} is lost"
            );
            if entry.expect == Expect::Either {
                *stats
                    .entry("cut-off key operation: key absent")
                    .or_default() += 1;
            }
            entry.expect = Expect::Absent;
            continue;
        };
        if entry.expect == Expect::Either {
            *stats
                .entry("cut-off key operation: key present")
                .or_default() += 1;
        }
        entry.expect = Expect::Present;
        assert_eq!(info.scheme.name(), entry.scheme, "round {round}: {name}");
        if let Some(public) = &entry.public_key {
            assert_eq!(
                info.public_key.as_ref(),
                Some(public),
                "round {round}: {name}'s public key changed"
            );
        }
        if entry.verify_key.is_none() {
            // A generated key whose acknowledgement was cut off: check it against the public
            // key it has now, which proves its halves belong together.
            let path = scratch.join(format!("{name}.pub.pem"));
            fs::write(&path, spki_pem(info.public_key.as_deref().unwrap())).unwrap();
            entry.verify_key = Some(path);
            entry.public_key.clone_from(&info.public_key);
        }
        let signature = client
            .sign(name, PAYLOAD)
            .unwrap_or_else(|err| panic!("round {round}: {name} cannot sign: {err}"))
            .into_bytes();
        signatures.push((entry.scheme, entry.verify_key.clone().unwrap(), signature));
    }
    let checks: Vec<Check<'_>> = signatures
        .iter()
        .map(|(scheme, key, signature)| Check::new(scheme, key, PAYLOAD, signature))
        .collect();
    assert_python_verifies_all(&checks);
}

/// The temporary files in the keystore directory and its keys/ directory.
fn temp_files(scratch: &Path) -> Vec<PathBuf> {
    let keystore = scratch.join("keystore");
    [keystore.clone(), keystore.join("keys")]
        .iter()
        .flat_map(|dir| fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(TEMP_PREFIX))
        })
        .collect()
}

/// Ages what the kill left behind past the daemon's one-minute grace, plants one more
/// old temporary file in each directory (as a kill mid-write leaves, whether or not this
/// one did) and one young one in keys/; returns the old ones (which the next start must
/// delete) and the young one (which it must leave, and never load).
fn plant_temp_files(scratch: &Path, round: usize) -> (Vec<PathBuf>, PathBuf) {
    let keystore = scratch.join("keystore");
    for dir in [&keystore, &keystore.join("keys")] {
        fs::write(
            dir.join(format!("{TEMP_PREFIX}planted{round:02}")),
            b"half a key",
        )
        .unwrap();
    }
    let old = SystemTime::now() - Duration::from_secs(3600);
    let aged = temp_files(scratch);
    for path in &aged {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let young = keystore
        .join("keys")
        .join(format!("{TEMP_PREFIX}young{round:02}"));
    fs::write(&young, b"a write in flight").unwrap();
    (aged, young)
}

/// After a start: the old temporary files are gone, the young one is still there (it is
/// deleted once old, at a later start).
fn assert_temp_files_cleaned(scratch: &Path, aged: &[PathBuf], young: &Path, round: usize) {
    let left: Vec<PathBuf> = temp_files(scratch);
    for path in aged {
        assert!(
            !left.contains(path),
            "round {round}: {} survived a start",
            path.display()
        );
    }
    assert!(
        left.iter().any(|p| p == young),
        "round {round}: a young temporary file was deleted"
    );
}

fn daemon_keystore_keys(scratch: &Path) -> PathBuf {
    scratch.join("keystore").join("keys")
}

#[test]
fn a_daemon_killed_mid_write_leaves_every_key_whole_or_absent_and_one_passphrase_working() {
    let started = Instant::now();
    let seed = std::env::var("KEYWARD_CRASH_SEED")
        .ok()
        .map(|text| text.parse().expect("KEYWARD_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            u64::try_from(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos(),
            )
            .unwrap_or(1)
        })
        | 1;
    eprintln!("KEYWARD_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let store = KeystoreDir::new();
    let scratch = store.scratch().to_path_buf();
    assert_eq!(store.path(), scratch.join("keystore"));
    // Key material to import, reused under new names (the daemon does not mind).
    let pool: Vec<TestKey> = [
        ("pool-ed", "ed25519"),
        ("pool-rsa", "rsa-2048"),
        ("pool-ec", "ecdsa-p256"),
        ("pool-hmac", "hmac-sha256"),
        ("pool-hmac512", "hmac-sha512"),
    ]
    .into_iter()
    .map(|(name, kind)| make_key(&scratch, name, kind))
    .collect();

    let passphrase = |n: usize| format!("crash test passphrase number {n:02}").into_bytes();
    let mut current = 0;
    let mut pending: Option<usize> = None;
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut stats = BTreeMap::<&'static str, usize>::new();
    let mut kill_times = Vec::new();

    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    daemon
        .keyward_with_passphrases(&["init"], &[&passphrase(0)])
        .success();
    drop(daemon);

    let mut planted: Option<(Vec<PathBuf>, PathBuf)> = None;
    for round in 0..ITERATIONS {
        let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
        if let Some((aged, young)) = planted.take() {
            assert_temp_files_cleaned(&scratch, &aged, &young, round);
        }
        // Unlock: the new passphrase if its change may have happened, else the current one.
        let candidates: Vec<Vec<u8>> = match pending.take() {
            Some(new) => vec![passphrase(new), passphrase(current)],
            None => vec![passphrase(current)],
        };
        let refs: Vec<&[u8]> = candidates.iter().map(Vec::as_slice).collect();
        let which = unlock_with_one_of(&daemon, &refs);
        if candidates.len() == 2 {
            *stats
                .entry(if which == 0 {
                    "cut-off passwd: new passphrase"
                } else {
                    "cut-off passwd: old passphrase"
                })
                .or_default() += 1;
            if which == 0 {
                current += 1;
            }
        }
        verify(&daemon, &mut known, &scratch, round, &mut stats);

        // The stream: imports and generates of every kind, a remove of an earlier key, and
        // one passphrase change a few operations in.
        let next = current + 1;
        let passwd_at = usize::try_from(rng.below(MAX_PASSWD_AT)).unwrap();
        let kill_after = rng.below(MAX_KILL_AFTER_MS + 1);
        kill_times.push(kill_after);
        let mut removable: Vec<String> = known
            .iter()
            .filter(|(_, k)| k.expect == Expect::Present)
            .map(|(name, _)| name.clone())
            .collect();
        let mut ops = Vec::new();
        for j in 0..OPS_PER_ROUND {
            if j == passwd_at {
                ops.push(Op::Passwd(passphrase(next)));
            }
            let name = format!("r{round:02}-{j:03}");
            ops.push(match j % 6 {
                0 | 3 => {
                    let template = &pool[(j / 6 + round) % pool.len()];
                    Op::Import(TestKey {
                        name: format!("{name}-{}", template.name),
                        ..template.clone()
                    })
                }
                1 => Op::Generate(format!("{name}-gen-ed"), KeyKind::Ed25519),
                2 => Op::Generate(format!("{name}-gen-ec"), KeyKind::EcdsaP256),
                4 if !removable.is_empty() => Op::Remove(removable.remove(j % removable.len())),
                _ => Op::Import(TestKey {
                    name: format!("{name}-ed"),
                    ..pool[0].clone()
                }),
            });
        }
        let socket = daemon.socket().to_path_buf();
        let current_passphrase = passphrase(current);
        let worker = thread::spawn(move || run_ops(socket, current_passphrase, ops));
        thread::sleep(Duration::from_millis(kill_after));
        daemon.kill();
        let done = worker.join().unwrap();

        let mut cut_off = "nothing (the kill fell between two operations)";
        for (op, result) in &done {
            let acked = result.is_ok();
            match op {
                Op::Import(key) => {
                    if !acked {
                        cut_off = "an import";
                    }
                    known.insert(
                        key.name.clone(),
                        Known {
                            expect: if acked {
                                Expect::Present
                            } else {
                                Expect::Either
                            },
                            scheme: key.scheme,
                            verify_key: Some(key.verify_key.clone()),
                            public_key: None,
                        },
                    );
                }
                Op::Generate(name, kind) => {
                    if !acked {
                        cut_off = "a generate";
                    }
                    let scheme = match kind {
                        KeyKind::Ed25519 => "ed25519",
                        _ => "ecdsa-p256-sha256",
                    };
                    let (verify_key, public_key) = match result {
                        Ok(Some(info)) => {
                            let public = info.public_key.clone().unwrap();
                            let path = scratch.join(format!("{name}.pub.pem"));
                            fs::write(&path, spki_pem(&public)).unwrap();
                            (Some(path), Some(public))
                        }
                        _ => (None, None),
                    };
                    known.insert(
                        name.clone(),
                        Known {
                            expect: if acked {
                                Expect::Present
                            } else {
                                Expect::Either
                            },
                            scheme,
                            verify_key,
                            public_key,
                        },
                    );
                }
                Op::Remove(name) => {
                    if !acked {
                        cut_off = "a remove";
                    }
                    known.get_mut(name).unwrap().expect = if acked {
                        Expect::Absent
                    } else {
                        Expect::Either
                    };
                }
                Op::Passwd(_) => {
                    if acked {
                        current = next;
                    } else {
                        cut_off = "the passphrase change";
                        pending = Some(next);
                    }
                }
            }
        }
        eprintln!(
            "round {round}: killed after {kill_after} ms, passwd before op {passwd_at}, \
             {} operations done, cut off {cut_off}",
            done.iter().filter(|(_, r)| r.is_ok()).count()
        );
        *stats.entry(cut_off).or_default() += 1;
        planted = Some(plant_temp_files(&scratch, round));
    }

    // The last kill, checked too.
    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    let (aged, young) = planted.take().unwrap();
    assert_temp_files_cleaned(&scratch, &aged, &young, ITERATIONS);
    let candidates: Vec<Vec<u8>> = match pending {
        Some(new) => vec![passphrase(new), passphrase(current)],
        None => vec![passphrase(current)],
    };
    let refs: Vec<&[u8]> = candidates.iter().map(Vec::as_slice).collect();
    unlock_with_one_of(&daemon, &refs);
    verify(&daemon, &mut known, &scratch, ITERATIONS, &mut stats);
    daemon.stop();
    let present = known
        .values()
        .filter(|k| k.expect == Expect::Present)
        .count();
    kill_times.sort_unstable();
    eprintln!(
        "{ITERATIONS} kills in {:.1} s (seed {seed}; kills at {:?} ms); {present} keys \
         present at the end; {stats:?}",
        started.elapsed().as_secs_f64(),
        kill_times
    );
    assert!(present > 20, "too few operations completed to prove much");
}
