//! The audit log: one JSON object per line for every request that reaches a decision.
//!
//! Never a secret: imported material and passphrases are never in a record; payloads appear
//! as SHA-256 and length, and in full only with `audit_payloads = true`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use base64::Engine as _;
use keyward_protocol::Request;
use serde_json::{Value, json};

use crate::peer::Peer;

/// What a request was about, taken from it before it is handled.
#[derive(Debug, Default)]
pub(crate) struct Subject {
    pub(crate) kind: &'static str,
    pub(crate) key: Option<String>,
    /// SHA-256 and length of each payload, and (only if configured) the payloads themselves.
    payloads: Vec<(String, usize, Option<Value>)>,
    batch: bool,
}

impl Subject {
    /// A connection refused before any request was read.
    pub(crate) fn connection() -> Subject {
        Subject {
            kind: "connect",
            ..Subject::default()
        }
    }
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

#[derive(Debug)]
pub(crate) struct AuditLog {
    file: Option<Mutex<File>>,
    payloads: bool,
    required: bool,
    /// False after a failed write, until one succeeds (so the failure is logged once).
    healthy: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot be written")]
pub(crate) struct AuditUnavailable;

impl AuditLog {
    /// No audit log.
    pub(crate) fn disabled() -> AuditLog {
        AuditLog {
            file: None,
            payloads: false,
            required: false,
            healthy: AtomicBool::new(true),
        }
    }

    /// Opens (creating 0600) `path` for appending.
    pub(crate) fn open(path: &Path, payloads: bool, required: bool) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        // `mode` applies only when the file is created: tighten an existing regular file
        // (never a device such as /dev/null).
        let meta = file.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "audit log {} was readable by others (mode {:o}); setting it to 0600",
                path.display(),
                meta.permissions().mode() & 0o7777
            );
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(AuditLog {
            file: Some(Mutex::new(file)),
            payloads,
            required,
            healthy: AtomicBool::new(true),
        })
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
                if self.file.is_some() {
                    subject.payloads = vec![describe(payload)];
                }
            }
            Request::SignBatch { key, payloads } => {
                subject.key = Some(key.clone());
                subject.batch = true;
                if self.file.is_some() {
                    subject.payloads = payloads.iter().map(|p| describe(p)).collect();
                }
            }
            Request::PublicKey { key } => subject.key = Some(key.clone()),
            Request::Import { name, .. }
            | Request::Generate { name, .. }
            | Request::Remove { name } => {
                subject.key = Some(name.clone());
            }
            _ => {}
        }
        subject
    }

    /// Appends one record. A failure is logged loudly; it is an error for the caller only
    /// when the log is required.
    pub(crate) fn record(
        &self,
        peer: &Peer,
        subject: &Subject,
        decision: Decision,
        reason: &str,
        latency: Duration,
    ) -> Result<(), AuditUnavailable> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut record = json!({
            "time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "uid": peer.uid,
            "gid": peer.gid,
            "pid": peer.pid,
            "exe": peer.exe,
            "request": subject.kind,
            "key": subject.key,
            "decision": decision.name(),
            "reason": reason,
            "latency_us": u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        });
        if let Some(fields) = record.as_object_mut() {
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
        let mut line = record.to_string();
        line.push('\n');
        let written = file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .write_all(line.as_bytes());
        match written {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::warn!("audit log writable again");
                }
                Ok(())
            }
            Err(err) => {
                crate::stats::global().record_audit_failure();
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(
                        "AUDIT LOG WRITE FAILED: {err}; {}",
                        if self.required {
                            "signing is refused until it can be written"
                        } else {
                            "signing goes on unaudited"
                        }
                    );
                }
                if self.required {
                    Err(AuditUnavailable)
                } else {
                    Ok(())
                }
            }
        }
    }
}
