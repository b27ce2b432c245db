//! The audit log: one JSON object per line for every request that reaches a decision.
//!
//! Never a secret: imported material and passphrases are never in a record; payloads appear
//! as SHA-256 and length, and in full only with `audit_payloads = true`.
//!
//! Records are written by a thread of their own from a bounded queue ([`QUEUE_CAPACITY`]),
//! so a slow or hung log disk never holds up a request that does not have to wait for it:
//! - without `audit_required`, nothing waits on the disk. A record that finds the queue full
//!   is dropped and counted ([`AuditLog::dropped`]); a record the disk refuses is counted too
//!   ([`AuditLog::failed`]), and signing goes on.
//! - with `audit_required`, a signature is released only once its record is written and
//!   flushed to the disk (`fdatasync`), or known to have failed, in which case it is not
//!   released. A full queue, a write error, or a writer that has been stuck for longer than
//!   `audit_timeout_ms` fails the signature at once (`Unavailable`); a request never waits
//!   longer than `audit_timeout_ms` for its record. Records of refusals and admin requests
//!   never wait.
//!
//! Each record starts on a fresh line: after a write that failed half-way (a full disk), or
//! when the file does not end in a newline at open, the next record is preceded by `\n`, so
//! the half-written line stays alone and every complete record is its own line.
//!
//! The file is reopened by [`AuditLog::reopen`] on every reload (SIGHUP), for log rotation.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::Engine as _;
use keyward_protocol::Request;
use serde_json::{Value, json};

use crate::peer::Peer;

/// Records waiting for the writer thread at most. At ~300 B a record this is ~1.2 MiB, and
/// at 20 signatures/s it covers more than three minutes of a stalled disk.
pub(crate) const QUEUE_CAPACITY: usize = 4096;

/// Bytes of records waiting for the writer thread at most: with `audit_payloads` a record
/// carries its payloads (up to a frame each), and under `mlockall` every queued byte is locked
/// memory. A record that would pass this counts as a full queue.
pub(crate) const QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// How long [`AuditLog::reopen`] and [`AuditLog::flush`] wait for the writer thread.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Default of `audit_timeout_ms`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

/// What a request was about, taken from it before it is handled.
#[derive(Debug, Default)]
pub(crate) struct Subject {
    pub(crate) kind: &'static str,
    pub(crate) key: Option<String>,
    /// SHA-256 and length of each payload, and (only if configured) the payloads themselves.
    payloads: Vec<(String, usize, Option<Value>)>,
    batch: bool,
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    Deny,
    Error,
}

impl Decision {
    fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }
}

/// Whether the caller waits for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The record goes to the queue; nothing waits on the disk.
    No,
    /// With `audit_required`: a signature is released only once its record is on disk.
    ForDisk,
}

#[derive(Debug)]
pub(crate) struct AuditLog {
    writer: Option<Writer>,
    payloads: bool,
    required: bool,
    /// The longest a request waits for its record (`audit_timeout_ms`).
    timeout: Duration,
    state: Arc<State>,
}

#[derive(Debug)]
struct Writer {
    queue: SyncSender<Job>,
}

/// What the request paths and the writer thread share.
#[derive(Debug, Default)]
struct State {
    /// Records dropped because the queue was full (never with a signature under
    /// `audit_required`, which is refused instead).
    dropped: AtomicU64,
    /// Records the disk refused (write or fdatasync failed).
    failed: AtomicU64,
    /// False after a failed write, until one succeeds (so the failure is logged once).
    healthy: AtomicBool,
    /// When the writer began the batch it is writing (ms since the epoch), 0 when idle: a
    /// writer stuck in a write for longer than the timeout fails required signatures at once
    /// instead of making each wait the whole timeout.
    busy_since_ms: AtomicU64,
    /// Whether a queue-full drop has been logged since the queue last had room.
    drop_reported: AtomicBool,
    /// Bytes of the records in the queue (bounded by [`QUEUE_BYTES`]).
    queued_bytes: AtomicU64,
}

enum Job {
    Record {
        line: String,
        /// Answered with whether the record reached the disk.
        ack: Option<SyncSender<bool>>,
    },
    /// Reopen the file at its path (log rotation).
    Reopen(SyncSender<Result<(), String>>),
    /// Answered once every record queued before it is written (shutdown).
    Flush(SyncSender<()>),
}

#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot be written")]
pub(crate) struct AuditUnavailable;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AuditLog {
    /// No audit log.
    pub(crate) fn disabled() -> AuditLog {
        AuditLog {
            writer: None,
            payloads: false,
            required: false,
            timeout: DEFAULT_TIMEOUT,
            state: Arc::new(State::default()),
        }
    }

    /// Opens (creating 0600) `path` for appending, and starts the writer thread.
    pub(crate) fn open(
        path: &Path,
        payloads: bool,
        required: bool,
        timeout: Duration,
    ) -> std::io::Result<AuditLog> {
        let file = open_file(path)?;
        let state = Arc::new(State {
            healthy: AtomicBool::new(true),
            ..State::default()
        });
        let (queue, jobs) = mpsc::sync_channel(QUEUE_CAPACITY);
        let mut thread = WriterThread {
            path: path.to_owned(),
            fresh_line: !ends_in_newline(&file),
            file,
            required,
            state: Arc::clone(&state),
        };
        std::thread::Builder::new()
            .name("keywardd-audit".into())
            .spawn(move || thread.run(&jobs))?;
        Ok(AuditLog {
            writer: Some(Writer { queue }),
            payloads,
            required,
            timeout,
            state,
        })
    }

    /// Records dropped, since start, because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Records the disk refused, since start.
    pub(crate) fn failed(&self) -> u64 {
        self.state.failed.load(Ordering::Relaxed)
    }

    /// Extracts what the record will say about `request` (hashes, never secret fields).
    pub(crate) fn subject(&self, request: &Request) -> Subject {
        let describe = |payload: &[u8]| {
            let hash = digest::digest(&digest::SHA256, payload);
            let shown = self.payloads.then(|| match std::str::from_utf8(payload) {
                Ok(text) => json!({ "text": text }),
                Err(_) => {
                    json!({ "base64": base64::engine::general_purpose::STANDARD.encode(payload) })
                }
            });
            (hex::encode(hash.as_ref()), payload.len(), shown)
        };
        let mut subject = Subject {
            kind: request.kind(),
            ..Subject::default()
        };
        match request {
            // Payloads are hashed only when there is a log to write them to: without one,
            // the signing path pays nothing for the audit.
            Request::Sign { key, payload } => {
                subject.key = Some(key.clone());
                if self.writer.is_some() {
                    subject.payloads = vec![describe(payload)];
                }
            }
            Request::SignBatch { key, payloads } => {
                subject.key = Some(key.clone());
                subject.batch = true;
                if self.writer.is_some() {
                    subject.payloads = payloads.iter().map(|p| describe(p)).collect();
                }
            }
            // No payload hash: the signed bytes are the stored passphrase, and a hash of a
            // passphrase in the log would let anyone who reads it guess the passphrase.
            Request::PublicKey { key }
            | Request::SignPassphrase { key }
            | Request::SetPassphrase { key, .. } => subject.key = Some(key.clone()),
            Request::Import { name, .. }
            | Request::Generate { name, .. }
            | Request::Remove { name } => {
                subject.key = Some(name.clone());
            }
            _ => {}
        }
        subject
    }

    /// Appends one record of a decision. Without `audit_required` (or with `Wait::No`) it is
    /// queued and `Ok` at once. With `audit_required` and `Wait::ForDisk`, `Ok` means the
    /// record is on disk; any doubt is `Err`, and the caller must not release a signature.
    pub(crate) fn record(
        &self,
        peer: &Peer,
        subject: &Subject,
        decision: Decision,
        reason: &str,
        latency: Duration,
        wait: Wait,
    ) -> Result<(), AuditUnavailable> {
        if self.writer.is_none() {
            return Ok(());
        }
        let mut record = peer_fields(peer);
        if let Some(fields) = record.as_object_mut() {
            fields.insert("request".into(), json!(subject.kind));
            fields.insert("key".into(), json!(subject.key));
            fields.insert("decision".into(), json!(decision.name()));
            fields.insert("reason".into(), json!(reason));
            fields.insert(
                "latency_us".into(),
                json!(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
            );
            if subject.batch {
                fields.insert(
                    "payload_sha256".into(),
                    subject.payloads.iter().map(|p| json!(p.0)).collect(),
                );
                fields.insert(
                    "payload_len".into(),
                    subject.payloads.iter().map(|p| json!(p.1)).collect(),
                );
                if self.payloads {
                    fields.insert(
                        "payload".into(),
                        subject.payloads.iter().map(|p| json!(p.2)).collect(),
                    );
                }
            } else if let Some((hash, len, shown)) = subject.payloads.first() {
                fields.insert("payload_sha256".into(), json!(hash));
                fields.insert("payload_len".into(), json!(len));
                if let Some(shown) = shown {
                    fields.insert("payload".into(), shown.clone());
                }
            }
        }
        self.append(record, self.required && wait == Wait::ForDisk)
    }

    /// Appends a record that is not a request's decision (aggregated refusals). Never waits.
    pub(crate) fn note(&self, record: Value) {
        let _ = self.append(record, false);
    }

    fn append(&self, record: Value, durable: bool) -> Result<(), AuditUnavailable> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let mut line = record.to_string();
        line.push('\n');
        if !durable {
            if self.enqueue(writer, line, None) {
                self.state.drop_reported.store(false, Ordering::Relaxed);
            } else {
                self.count_drop();
            }
            return Ok(());
        }
        // A writer stuck for longer than the timeout will not answer this one in time either.
        let busy = self.state.busy_since_ms.load(Ordering::Relaxed);
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        if busy != 0 && now_ms().saturating_sub(busy) > timeout_ms {
            self.report_stuck();
            return Err(AuditUnavailable);
        }
        let (ack, answer) = mpsc::sync_channel(1);
        if !self.enqueue(writer, line, Some(ack)) {
            self.count_drop();
            return Err(AuditUnavailable);
        }
        // This blocks the connection's own thread (server.rs), never the runtime's.
        match answer.recv_timeout(self.timeout) {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuditUnavailable),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                self.report_stuck();
                Err(AuditUnavailable)
            }
        }
    }

    /// Queues a record unless the queue is full (by count or by bytes); false if not queued.
    fn enqueue(&self, writer: &Writer, line: String, ack: Option<SyncSender<bool>>) -> bool {
        let len = line.len() as u64;
        let queued = self.state.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if queued + len > QUEUE_BYTES || writer.queue.try_send(Job::Record { line, ack }).is_err() {
            self.state.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn count_drop(&self) {
        self.state.dropped.fetch_add(1, Ordering::Relaxed);
        crate::stats::global().record_audit_drop();
        if !self.state.drop_reported.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "AUDIT LOG QUEUE FULL ({QUEUE_CAPACITY} records waiting for the disk): {}",
                if self.required {
                    "signing is refused until the queue drains (audit_required)"
                } else {
                    "records are dropped and counted until it drains"
                }
            );
        }
    }

    fn report_stuck(&self) {
        if self.state.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(
                "AUDIT LOG WRITE FAILED: the disk has not answered for {} ms; signing is \
                 refused until it can be written",
                self.timeout.as_millis()
            );
        }
    }

    /// Reopens the file at its path (after logrotate moved it away), after every record
    /// queued before. On failure the old file stays in use and the error is returned.
    pub(crate) fn reopen(&self) -> Result<(), String> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let (ack, answer) = mpsc::sync_channel(1);
        if !send_within(&writer.queue, Job::Reopen(ack), CONTROL_TIMEOUT) {
            return Err(format!(
                "the audit log was not reopened: its queue stayed full for {CONTROL_TIMEOUT:?}"
            ));
        }
        answer
            .recv_timeout(CONTROL_TIMEOUT)
            .map_err(|_| format!("the audit log was not reopened within {CONTROL_TIMEOUT:?}"))?
    }

    /// Waits (at most a few seconds) until every queued record is written: at shutdown.
    pub(crate) fn flush(&self) {
        let Some(writer) = &self.writer else {
            return;
        };
        let (ack, answer) = mpsc::sync_channel(1);
        if !send_within(&writer.queue, Job::Flush(ack), CONTROL_TIMEOUT)
            || answer.recv_timeout(CONTROL_TIMEOUT).is_err()
        {
            tracing::error!("the audit log could not be flushed at shutdown");
        }
    }
}

/// Queues `job`, waiting at most `timeout` for room (for control jobs, never for records).
fn send_within(queue: &SyncSender<Job>, mut job: Job, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match queue.try_send(job) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                job = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TrySendError::Full(_)) => return false,
        }
    }
}

/// The fields that say who the peer is: numbers from the kernel, words from /proc.
pub(crate) fn peer_fields(peer: &Peer) -> Value {
    json!({
        "time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "uid": peer.uid,
        "user": peer.about.user,
        "gid": peer.gid,
        "pid": peer.pid,
        "comm": peer.about.comm,
        "unit": peer.about.unit,
        "exe": peer.exe,
    })
}

/// Opens the audit file for appending: created 0600; an existing regular file readable by
/// others is tightened to 0600 (never a device such as /dev/null).
fn open_file(path: &Path) -> std::io::Result<File> {
    // Readable too, for the check of its last byte (ends_in_newline).
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "audit log {} was readable by others (mode {:o}); setting it to 0600",
            path.display(),
            meta.permissions().mode() & 0o7777
        );
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// True if `file` is empty, not a regular file, or ends in `\n`.
fn ends_in_newline(file: &File) -> bool {
    let Ok(meta) = file.metadata() else {
        return true;
    };
    if !meta.is_file() || meta.len() == 0 {
        return true;
    }
    let mut last = [0u8; 1];
    matches!(file.read_at(&mut last, meta.len() - 1), Ok(1) if last[0] == b'\n')
}

/// The writer thread's own state.
struct WriterThread {
    path: PathBuf,
    file: File,
    /// The next record must be preceded by `\n` (the file does not end in one).
    fresh_line: bool,
    required: bool,
    state: Arc<State>,
}

/// Records written in one go at most (one fdatasync for all of them under audit_required).
const BATCH: usize = 256;

impl WriterThread {
    fn run(&mut self, jobs: &Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.state.busy_since_ms.store(now_ms(), Ordering::Relaxed);
            self.handle(batch);
            self.state.busy_since_ms.store(0, Ordering::Relaxed);
        }
    }

    fn handle(&mut self, batch: Vec<Job>) {
        let mut acks = Vec::new();
        let mut pending_sync = false;
        for job in batch {
            match job {
                Job::Record { line, ack } => {
                    let written = self.write(&line);
                    self.state
                        .queued_bytes
                        .fetch_sub(line.len() as u64, Ordering::Relaxed);
                    if let Some(ack) = ack {
                        pending_sync |= written;
                        acks.push((ack, written));
                    }
                }
                Job::Reopen(answer) => {
                    self.settle(&mut acks, &mut pending_sync);
                    let _ = answer.send(self.reopen());
                }
                Job::Flush(answer) => {
                    self.settle(&mut acks, &mut pending_sync);
                    let _ = answer.send(());
                }
            }
        }
        self.settle(&mut acks, &mut pending_sync);
    }

    /// Makes the written records that someone waits for durable, and answers them.
    fn settle(&mut self, acks: &mut Vec<(SyncSender<bool>, bool)>, pending_sync: &mut bool) {
        if acks.is_empty() {
            return;
        }
        let synced = !*pending_sync || self.sync();
        for (ack, written) in acks.drain(..) {
            let _ = ack.send(written && synced);
        }
        *pending_sync = false;
    }

    fn sync(&mut self) -> bool {
        match self.file.sync_data() {
            Ok(()) => true,
            // Not a regular file (a pipe, a character device): nothing to flush.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => true,
            Err(err) => {
                self.failed(&err);
                false
            }
        }
    }

    /// Appends `line`, after a `\n` if the file does not end in one. False if it failed.
    fn write(&mut self, line: &str) -> bool {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if self.fresh_line {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line.as_bytes());
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) => {
                    self.failed(&ErrorKind::WriteZero.into());
                    return false;
                }
                Ok(n) => {
                    // Part of this record is in the file: until it is finished, or the
                    // next record starts on a line of its own, the file ends mid-line.
                    self.fresh_line = true;
                    rest = &rest[n..];
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    self.failed(&err);
                    return false;
                }
            }
        }
        self.fresh_line = false;
        if !self.state.healthy.swap(true, Ordering::Relaxed) {
            tracing::warn!("audit log writable again");
        }
        true
    }

    fn failed(&self, err: &std::io::Error) {
        self.state.failed.fetch_add(1, Ordering::Relaxed);
        crate::stats::global().record_audit_failure();
        if self.state.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(
                "AUDIT LOG WRITE FAILED: {err}; {}",
                if self.required {
                    "signing is refused until it can be written"
                } else {
                    "signing goes on unaudited"
                }
            );
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        match open_file(&self.path) {
            Ok(file) => {
                self.fresh_line = !ends_in_newline(&file);
                self.file = file;
                tracing::info!(path = %self.path.display(), "audit log reopened");
                Ok(())
            }
            Err(err) => {
                let message = format!(
                    "cannot reopen the audit log {}: {err}; records go on to the file open before",
                    self.path.display()
                );
                tracing::error!("{message}");
                Err(message)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer::new(1000, 1000, Some(42), vec![], None)
    }

    fn subject() -> Subject {
        Subject {
            kind: "sign",
            ..Subject::default()
        }
    }

    /// Records a sign request of [`peer`] with `decision` and `reason`.
    fn record(
        log: &AuditLog,
        decision: Decision,
        reason: &str,
        wait: Wait,
    ) -> Result<(), AuditUnavailable> {
        log.record(&peer(), &subject(), decision, reason, Duration::ZERO, wait)
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn a_record_starts_on_a_fresh_line_after_a_half_written_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // What a full disk leaves behind: a record cut off mid-line.
        std::fs::write(
            &path,
            "{\"time\":\"2026-01-01\",\"uid\":1\n{\"time\":\"2026-01-0",
        )
        .unwrap();
        let log = AuditLog::open(&path, false, true, DEFAULT_TIMEOUT).unwrap();
        record(&log, Decision::Allow, "", Wait::ForDisk).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let last = text.lines().last().unwrap();
        let record: Value = serde_json::from_str(last).unwrap();
        assert_eq!(record["uid"], 1000, "{text}");
    }

    #[test]
    fn records_are_written_in_order_and_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, false, false, DEFAULT_TIMEOUT).unwrap();
        for i in 0..10 {
            record(&log, Decision::Allow, &i.to_string(), Wait::No).unwrap();
        }
        log.flush();
        let rotated = dir.path().join("audit.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        record(&log, Decision::Deny, "before", Wait::No).unwrap();
        log.reopen().unwrap();
        record(&log, Decision::Deny, "after", Wait::No).unwrap();
        // A reload without a rotation reopens the same file: no blank line either.
        log.reopen().unwrap();
        record(&log, Decision::Deny, "again", Wait::No).unwrap();
        log.flush();
        let old: Vec<String> = lines(&rotated)
            .iter()
            .map(|r| r["reason"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            old,
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "before"]
        );
        let new = lines(&path);
        assert_eq!(new.len(), 2);
        assert_eq!(new[0]["reason"], "after");
        assert_eq!(new[1]["reason"], "again");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!((log.dropped(), log.failed()), (0, 0));
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, false, false, DEFAULT_TIMEOUT).unwrap();
        std::fs::remove_file(&path).unwrap();
        // A directory where the file was: the open fails whoever we are (root included).
        std::fs::create_dir(&path).unwrap();
        let err = log.reopen().unwrap_err();
        assert!(err.contains("cannot reopen the audit log"), "{err}");
        record(&log, Decision::Allow, "", Wait::No).unwrap();
        log.flush();
        assert_eq!(log.failed(), 0);
    }

    #[test]
    fn a_full_disk_fails_required_signatures_and_counts_without_audit_required() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let required =
            AuditLog::open(Path::new("/dev/full"), false, true, DEFAULT_TIMEOUT).unwrap();
        assert!(record(&required, Decision::Allow, "", Wait::ForDisk).is_err());
        assert_eq!(required.failed(), 1);
        let optional =
            AuditLog::open(Path::new("/dev/full"), false, false, DEFAULT_TIMEOUT).unwrap();
        for _ in 0..3 {
            record(&optional, Decision::Allow, "", Wait::ForDisk).unwrap();
        }
        optional.flush();
        assert_eq!(optional.failed(), 3);
    }

    #[test]
    fn a_hung_writer_fails_required_signatures_within_the_timeout_and_drops_the_rest() {
        // A FIFO nobody reads: the writer blocks in open... so open it ourselves first with a
        // reader that never reads, and fill the pipe.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let timeout = Duration::from_millis(200);
        let required = AuditLog::open(&fifo, false, true, timeout).unwrap();
        let big = "x".repeat(60_000);
        let started = Instant::now();
        let mut refused = 0;
        for _ in 0..5 {
            if record(&required, Decision::Allow, &big, Wait::ForDisk).is_err() {
                refused += 1;
            }
        }
        // The pipe (64 KiB) takes the first record; then the writer hangs. The first refusal
        // waits the timeout, the later ones fail at once.
        assert!(refused >= 4, "{refused}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        let optional = AuditLog::open(&fifo, false, false, timeout).unwrap();
        let started = Instant::now();
        for _ in 0..(2 * QUEUE_CAPACITY) {
            record(&optional, Decision::Allow, "", Wait::ForDisk).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(optional.dropped() >= 100, "{}", optional.dropped());

        // Large records (audit_payloads with big payloads) are bounded by bytes, not count.
        let large = AuditLog::open(&fifo, true, false, timeout).unwrap();
        let mib = "y".repeat(1024 * 1024);
        for _ in 0..40 {
            record(&large, Decision::Allow, &mib, Wait::No).unwrap();
        }
        let queued = 40 - large.dropped();
        assert!(
            queued <= QUEUE_BYTES / (1024 * 1024) + 1,
            "{queued} MiB queued"
        );
        drop(reader);
    }
}
