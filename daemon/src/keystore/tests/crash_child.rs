//! A writer killed at any moment (a child process re-running this test) leaves every key
//! whole or absent.

use super::*;

/// The secret of crash-test key `name`: recognisable, so a torn write cannot pass for whole.
fn crash_secret(name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    (0..300 + bytes.len())
        .map(|i| bytes[i % bytes.len()] ^ (i as u8))
        .collect()
}

const CRASH_CHILD_ENV: &str = "KEYWARD_KEYSTORE_CRASH_CHILD";
const CRASH_PASSPHRASES: [&[u8]; 2] = [b"crash passphrase one", b"crash passphrase two"];

/// Unlocks with whichever crash-test passphrase is current.
fn crash_unlock(store: &Keystore) -> (DataKey, usize) {
    for (i, pass) in CRASH_PASSPHRASES.iter().enumerate() {
        if let Ok(key) = store.unlock(pass) {
            return (key, i);
        }
    }
    panic!("neither passphrase unlocks the keystore");
}

/// The child: stores, removes and changes the passphrase in a loop until it is killed
/// (or, should the parent die, for ten seconds).
fn crash_child(dir: &Path) {
    let started = std::time::Instant::now();
    let mut store = Keystore::open(dir).unwrap().unwrap();
    let (key, mut current) = crash_unlock(&store);
    let round = std::process::id();
    let mut i = 0u32;
    while started.elapsed() < std::time::Duration::from_secs(10) {
        let name = format!("k-{round}-{i}");
        let rec = record(&name, Scheme::HmacSha256, Some("id"), crash_secret(&name));
        store.store(&key, &rec).unwrap();
        if i % 3 == 2 {
            store.remove(&format!("k-{round}-{}", i - 1)).unwrap();
        }
        if i % 4 == 3 {
            let next = 1 - current;
            store
                .change_passphrase(CRASH_PASSPHRASES[current], CRASH_PASSPHRASES[next], FAST)
                .unwrap();
            current = next;
        }
        i += 1;
    }
}

#[test]
fn a_writer_killed_at_any_moment_leaves_every_key_whole_or_absent() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ks");
    Keystore::init(&dir, CRASH_PASSPHRASES[0], FAST).unwrap();
    // This test's name as the harness knows it (without the crate name).
    let module = module_path!().split_once("::").unwrap().1;
    let test_name =
        format!("{module}::a_writer_killed_at_any_moment_leaves_every_key_whole_or_absent");

    let (mut keys_seen, mut torn_writes) = (0, std::collections::BTreeSet::new());
    for _ in 0..12 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &test_name, "--test-threads=1", "--quiet"])
            .env(CRASH_CHILD_ENV, &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut delay = [0u8; 1];
        aws_lc_rs::rand::fill(&mut delay).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + u64::from(delay[0])));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "the child ended on its own: {status}"
        );

        torn_writes.extend(
            snapshot(&dir)
                .into_keys()
                .filter(|p| p.to_string_lossy().contains(".kw-tmp-")),
        );
        let store = Keystore::open(&dir).unwrap().unwrap();
        let (key, _) = crash_unlock(&store);
        let loaded = store.load_all(&key);
        assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
        for rec in &loaded.records {
            assert_eq!(&rec.secret[..], &crash_secret(&rec.meta.name)[..]);
        }
        keys_seen = loaded.records.len();
    }
    assert!(keys_seen > 0, "the children never stored a key");
    eprintln!(
        "{keys_seen} keys whole; {} interrupted writes left a temporary file",
        torn_writes.len()
    );
}
