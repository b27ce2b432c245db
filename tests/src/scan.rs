//! Looking for runs of secret bytes in files and in another process's memory.
//!
//! [`Needles`] holds secrets and a run length `L`; it finds every place where at least `L`
//! consecutive bytes of a secret occur. It indexes every `L/2`-byte window of every secret
//! and looks only at every `L/2`-th position of the haystack: any run of `L` bytes contains
//! an aligned `L/2`-byte window, so nothing is missed, and each candidate is extended byte by
//! byte to its full length. That makes a scan of a daemon's ~100 MB of memory take well under
//! a second even in a debug build, where a hash lookup at every byte would take many.
//!
//! [`find_run`] and [`assert_no_run`] are the direct search for one secret in a small
//! haystack (a file, a log), secrets shorter than the run included.
//!
//! [`scan_process`] reads another process's memory through `/proc/PID/maps` and
//! `/proc/PID/mem`, which for keywardd (non-dumpable) needs root or `CAP_SYS_PTRACE`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where the first `len`-byte run of `secret` (or the whole of a shorter one) occurs in
/// `haystack`, if any does: (offset in the secret, offset in the haystack). A direct search,
/// for small haystacks (a file, a log) and secrets of any length; [`Needles`] is the indexed
/// one for a process's memory.
pub fn find_run(haystack: &[u8], secret: &[u8], len: usize) -> Option<(usize, usize)> {
    let len = len.min(secret.len());
    secret.windows(len).enumerate().find_map(|(at, run)| {
        haystack
            .windows(len)
            .position(|window| window == run)
            .map(|found| (at, found))
    })
}

/// Asserts that no 16-byte run of `secret` occurs in `haystack`.
#[track_caller]
pub fn assert_no_run(haystack: &[u8], secret: &[u8], what: &str, place: &str) {
    if let Some((at, found)) = find_run(haystack, secret, 16) {
        panic!(
            "{place} holds 16 bytes of {what} (secret offset {at}, found at byte {found}):\n{}",
            String::from_utf8_lossy(haystack)
        );
    }
}

/// Secrets to look for, and how long a run of one must be to count.
#[derive(Debug)]
pub struct Needles {
    run: usize,
    secrets: Vec<(String, Vec<u8>)>,
    /// Every `run / 2`-byte window of every secret → (secret index, offset in the secret).
    index: HashMap<Vec<u8>, Vec<(usize, usize)>>,
}

/// One run of a secret found in a haystack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The secret's label.
    pub label: String,
    /// Where the run starts in the haystack (an address, for memory).
    pub at: u64,
    /// Where the run starts in the secret.
    pub secret_offset: usize,
    /// How many consecutive bytes match (at least the run length).
    pub len: usize,
}

impl Needles {
    /// No secrets yet; runs of `run` bytes (even, at least 2) will count.
    pub fn new(run: usize) -> Needles {
        assert!(
            run >= 2 && run.is_multiple_of(2),
            "the run length must be even"
        );
        Needles {
            run,
            secrets: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Looks for runs of `bytes` (at least the run length long) under `label`.
    pub fn add(&mut self, label: impl Into<String>, bytes: &[u8]) {
        let label = label.into();
        assert!(
            bytes.len() >= self.run,
            "{label} is {} bytes, shorter than a run of {}",
            bytes.len(),
            self.run
        );
        let id = self.secrets.len();
        let half = self.run / 2;
        for (offset, window) in bytes.windows(half).enumerate() {
            self.index
                .entry(window.to_vec())
                .or_default()
                .push((id, offset));
        }
        self.secrets.push((label, bytes.to_vec()));
    }

    /// Looks for `bytes` as given and byte-reversed (as little-endian big-number limbs
    /// hold a big-endian number), the latter labelled `label (reversed)`.
    pub fn add_both_orders(&mut self, label: &str, bytes: &[u8]) {
        self.add(label, bytes);
        let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
        self.add(format!("{label} (reversed)"), &reversed);
    }

    /// The labels of every secret, in the order they were added.
    pub fn labels(&self) -> Vec<&str> {
        self.secrets
            .iter()
            .map(|(label, _)| label.as_str())
            .collect()
    }

    /// The run length.
    pub fn run(&self) -> usize {
        self.run
    }

    /// Every run of a secret in `haystack`, whose first byte is at address `base`.
    pub fn find_in(&self, haystack: &[u8], base: u64) -> Vec<Found> {
        let half = self.run / 2;
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        let mut position = 0;
        while position + half <= haystack.len() {
            if let Some(candidates) = self.index.get(&haystack[position..position + half]) {
                for &(id, offset) in candidates {
                    let secret = &self.secrets[id].1;
                    let mut left = 0;
                    while left < position
                        && left < offset
                        && haystack[position - left - 1] == secret[offset - left - 1]
                    {
                        left += 1;
                    }
                    let mut right = 0;
                    while position + half + right < haystack.len()
                        && offset + half + right < secret.len()
                        && haystack[position + half + right] == secret[offset + half + right]
                    {
                        right += 1;
                    }
                    let len = left + half + right;
                    let start = position - left;
                    if len >= self.run && seen.insert((start, id, offset - left)) {
                        found.push(Found {
                            label: self.secrets[id].0.clone(),
                            at: base + start as u64,
                            secret_offset: offset - left,
                            len,
                        });
                    }
                }
            }
            position += half;
        }
        found
    }
}

/// Every run of a secret in every regular file under `dir` (recursively).
pub fn scan_files(needles: &Needles, dir: &Path) -> Vec<(PathBuf, Found)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", current.display()));
        for entry in entries {
            let path = entry.expect("cannot read a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = crate::read(&path);
                found.extend(
                    needles
                        .find_in(&bytes, 0)
                        .into_iter()
                        .map(|hit| (path.clone(), hit)),
                );
            }
        }
    }
    found
}

/// One mapping of a process, from `/proc/PID/maps`.
#[derive(Debug, Clone)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `rw-p` and the like.
    pub perms: String,
    /// The path or pseudo-name (`[heap]`, `[stack]`), empty for anonymous memory.
    pub name: String,
    /// How many bytes of it were read (from `start`).
    pub read: u64,
}

impl Region {
    /// True if the address lies in the part of this region that was read.
    pub fn was_read(&self, address: u64) -> bool {
        self.start <= address && address < self.start + self.read
    }
}

/// What a scan of a process's memory saw and found.
#[derive(Debug)]
pub struct MemoryScan {
    /// Every mapping, with how much of it was read.
    pub regions: Vec<Region>,
    /// Every run of a secret, with the index of its region.
    pub found: Vec<(usize, Found)>,
}

impl MemoryScan {
    /// Total bytes read.
    pub fn bytes_read(&self) -> u64 {
        self.regions.iter().map(|region| region.read).sum()
    }

    /// The runs found of the secret labelled `label`.
    pub fn found(&self, label: &str) -> Vec<&Found> {
        self.found
            .iter()
            .filter(|(_, hit)| hit.label == label)
            .map(|(_, hit)| hit)
            .collect()
    }

    /// True if the address was in memory this scan read.
    pub fn was_read(&self, address: u64) -> bool {
        self.regions.iter().any(|region| region.was_read(address))
    }

    /// One line per run found: label, length, address, region.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for (region, hit) in &self.found {
            let region = &self.regions[*region];
            text.push_str(&format!(
                "  {} ({} bytes from offset {}) at {:#x} in {:#x}-{:#x} {} {}\n",
                hit.label,
                hit.len,
                hit.secret_offset,
                hit.at,
                region.start,
                region.end,
                region.perms,
                if region.name.is_empty() {
                    "[anonymous]"
                } else {
                    &region.name
                }
            ));
        }
        text
    }
}

/// Pseudo-mappings that are not the process's memory (the kernel's vDSO data pages), whose
/// reads fail or mean nothing.
const SKIPPED: [&str; 3] = ["[vvar]", "[vvar_vclock]", "[vsyscall]"];

/// Reads every readable mapping of process `pid` and finds every run of a secret in it.
/// Regions are read in 4 MiB chunks; a region that stops being readable part-way is kept
/// as far as it was read (see [`Region::read`]). Needs root for a non-dumpable process.
pub fn scan_process(pid: u32, needles: &Needles) -> MemoryScan {
    const CHUNK: u64 = 4 * 1024 * 1024;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/maps: {err}"));
    let mem = File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|err| panic!("cannot open /proc/{pid}/mem (not root?): {err}"));
    let mut scan = MemoryScan {
        regions: Vec::new(),
        found: Vec::new(),
    };
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = fields.nth(3).unwrap_or_default().to_owned();
        let (start, end) = range.split_once('-').expect("a maps range");
        let start = u64::from_str_radix(start, 16).expect("a maps address");
        let end = u64::from_str_radix(end, 16).expect("a maps address");
        let mut region = Region {
            start,
            end,
            perms: perms.to_owned(),
            name,
            read: 0,
        };
        if perms.starts_with('r') && !SKIPPED.contains(&region.name.as_str()) {
            let mut bytes = Vec::new();
            let mut address = start;
            while address < end {
                let len = (end - address).min(CHUNK);
                let mut chunk = vec![0u8; usize::try_from(len).expect("chunk fits")];
                match mem.read_at(&mut chunk, address) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        bytes.extend_from_slice(&chunk[..n]);
                        address += n as u64;
                    }
                }
            }
            region.read = bytes.len() as u64;
            let index = scan.regions.len();
            scan.found.extend(
                needles
                    .find_in(&bytes, start)
                    .into_iter()
                    .map(|hit| (index, hit)),
            );
        }
        scan.regions.push(region);
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_of_the_run_length_is_found_wherever_it_sits_and_shorter_ones_are_not() {
        let secret: Vec<u8> = crate::pattern(200);
        let mut needles = Needles::new(32);
        needles.add("s", &secret);
        for shift in 0..40 {
            for len in [31, 32, 33, 50] {
                let mut haystack = vec![0u8; 300];
                haystack[shift + 10..shift + 10 + len].copy_from_slice(&secret[70..70 + len]);
                let found = needles.find_in(&haystack, 1000);
                if len < 32 {
                    assert!(found.is_empty(), "shift {shift} len {len}: {found:?}");
                } else {
                    assert_eq!(
                        found,
                        vec![Found {
                            label: "s".into(),
                            at: 1000 + shift as u64 + 10,
                            secret_offset: 70,
                            len,
                        }],
                        "shift {shift} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn runs_at_the_very_start_and_end_of_haystack_and_secret_are_found() {
        let secret: Vec<u8> = crate::pattern(64);
        let mut needles = Needles::new(16);
        needles.add_both_orders("s", &secret);
        let mut haystack = secret[..16].to_vec();
        haystack.extend_from_slice(&[0; 5]);
        let reversed: Vec<u8> = secret.iter().rev().copied().collect();
        haystack.extend_from_slice(&reversed[48..]);
        let found = needles.find_in(&haystack, 0);
        let labels: Vec<(&str, u64, usize)> = found
            .iter()
            .map(|hit| (hit.label.as_str(), hit.at, hit.len))
            .collect();
        assert_eq!(labels, vec![("s", 0, 16), ("s (reversed)", 21, 16)]);
    }
}
