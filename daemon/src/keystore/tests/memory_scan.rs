//! No passphrase, data key or secret is left in this process's memory after use.

use super::*;

/// Needles are kept XOR-masked, so that the scan finds only copies the code under test left.
const MASK: u8 = 0xA5;

struct MaskedNeedles {
    windows: Vec<[u8; 16]>,
    /// Which (masked) first two bytes start a window: a cheap filter, so that long runs of
    /// one byte value (zeroed memory) do not each cost a comparison with every window.
    starts: Vec<bool>,
}

impl MaskedNeedles {
    fn new(masked: &[&[u8]]) -> Self {
        let mut windows = Vec::new();
        let mut starts = vec![false; 1 << 16];
        for needle in masked {
            for w in needle.windows(16) {
                starts[usize::from(u16::from_be_bytes([w[0], w[1]]))] = true;
                windows.push(w.try_into().unwrap());
            }
        }
        MaskedNeedles { windows, starts }
    }

    fn found_in(&self, hay: &[u8]) -> bool {
        hay.windows(16).any(|h| {
            self.starts[usize::from(u16::from_be_bytes([h[0] ^ MASK, h[1] ^ MASK]))]
                && self
                    .windows
                    .iter()
                    .any(|w| w.iter().zip(h).all(|(m, b)| *m == b ^ MASK))
        })
    }
}

/// Reads every private writable mapping of this process through /proc/self/mem.
fn scan_own_memory(needles: &MaskedNeedles, marker: &[u8]) -> (bool, bool) {
    use std::os::unix::fs::FileExt;
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    let mem = fs::File::open("/proc/self/mem").unwrap();
    let (mut found, mut saw_marker) = (false, false);
    let mut chunk = vec![0u8; 1 << 20];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut at = start;
        while at < end {
            // Overlap chunks by 15 bytes so no run straddling a boundary is missed.
            let len = usize::try_from((end - at).min(chunk.len() as u64)).unwrap();
            let Ok(n) = mem.read_at(&mut chunk[..len], at) else {
                break;
            };
            if n == 0 {
                break;
            }
            found |= needles.found_in(&chunk[..n]);
            saw_marker |= chunk[..n].windows(marker.len()).any(|w| w == marker);
            at += n as u64;
            if at < end {
                at -= 15.min(n as u64);
            }
        }
    }
    chunk.zeroize();
    (found, saw_marker)
}

#[test]
fn no_passphrase_or_key_is_left_in_memory_after_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ks");
    let masked_pass: Vec<u8> = random_bytes(40);
    let masked_secret: Vec<u8> = random_bytes(64);
    let masked_key;
    let marker = format!("marker-{}", std::process::id());
    {
        let pass = Zeroizing::new(masked_pass.iter().map(|b| b ^ MASK).collect::<Vec<u8>>());
        let secret = Zeroizing::new(masked_secret.iter().map(|b| b ^ MASK).collect::<Vec<u8>>());
        let (mut store, key) = Keystore::init(&dir, &pass, FAST).unwrap();
        store
            .store(
                &key,
                &KeyRecord {
                    meta: KeyMeta {
                        name: "k".into(),
                        scheme: Scheme::HmacSha256,
                        api_key: None,
                        created_unix: 0,
                        format: None,
                    },
                    secret,
                    passphrase: None,
                },
            )
            .unwrap();
        drop(key);
        store.change_passphrase(&pass, &pass, FAST).unwrap();
        let key = store.unlock(&pass).unwrap();
        let loaded = store.load_all(&key);
        assert_eq!(loaded.records.len(), 1);
        drop(loaded);
        // The last thing done with the passphrase: derive and unwrap.
        let key = store.unlock(&pass).unwrap();
        masked_key = key.0.iter().map(|b| b ^ MASK).collect::<Vec<u8>>();
    }
    let needles = MaskedNeedles::new(&[&masked_pass, &masked_secret, &masked_key]);
    let (found, saw_marker) = scan_own_memory(&needles, marker.as_bytes());
    assert!(saw_marker, "the scan must see the heap");
    assert!(
        !found,
        "a copy of the passphrase, the data key or a secret is left in memory"
    );
}
