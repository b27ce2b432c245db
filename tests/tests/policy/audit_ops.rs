//! 4b. The audit log in operation (issues 19 §2 and 16 §2): rotation by SIGHUP, refused
//! connections aggregated, and a log disk that is full or read-only, with and without
//! `audit_required`.

use super::*;

/// Parses every complete record of an audit log; a line that is not JSON (a record cut off
/// by a full disk) is returned apart, and must be followed by a line break.
fn records(text: &str) -> (Vec<Value>, Vec<String>) {
    let mut good = Vec::new();
    let mut broken = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(record) => good.push(record),
            Err(_) => broken.push(line.to_owned()),
        }
    }
    (good, broken)
}

#[test]
fn sighup_reopens_the_audit_log_that_logrotate_moved_away() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    client.sign("ed", b"before=1").unwrap();
    audit_log(&audit_path, 2);
    // logrotate's default: rename, then reload the daemon.
    let rotated = config.dir().join("audit.jsonl.1");
    fs::rename(&audit_path, &rotated).unwrap();
    client.sign("ed", b"between=1").unwrap();
    kill(daemon_pid(&daemon), Signal::SIGHUP).unwrap();
    wait_for_log(&daemon, "audit log reopened", 1);
    client.sign("ed", b"after=1").unwrap();
    let new = audit_log(&audit_path, 1);
    let old = audit_log(&rotated, 3);
    let sha = |payload: &[u8]| Value::from(sha256_hex(payload));
    let (new, _) = records(&new);
    let (old, _) = records(&old);
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["payload_sha256"], sha(b"after=1"));
    assert_eq!(old.len(), 3, "{old:?}");
    assert_eq!(old[2]["payload_sha256"], sha(b"between=1"));
    assert_eq!(
        fs::metadata(&audit_path).unwrap().mode() & 0o7777,
        0o600,
        "the new file must be 0600 too"
    );
}

/// `keyward reload` (what `systemctl reload` runs) reopens the audit log too, and fails,
/// saying so, when it cannot: the new policy is in force but the records still go to the old
/// file, and an operator rotating logs must be told rather than see a reload that "worked".
#[test]
fn keyward_reload_reopens_the_audit_log_and_fails_when_it_cannot() {
    let config = ConfigFile::new("");
    let logs = config.dir().join("logs");
    fs::create_dir(&logs).unwrap();
    let audit_path = logs.join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    let rotated = config.dir().join("audit.jsonl.1");
    fs::rename(&audit_path, &rotated).unwrap();
    daemon.keyward(["reload"]).success();
    client.sign("ed", b"after=1").unwrap();
    audit_log(&audit_path, 1);
    // The directory is gone: the path cannot be reopened.
    fs::rename(&audit_path, config.dir().join("audit.jsonl.2")).unwrap();
    fs::remove_dir(&logs).unwrap();
    let out = daemon.keyward(["reload"]);
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stderr.contains("new policy is in force") && out.stderr.contains("audit log"),
        "{out:#?}"
    );
}

/// The shipped logrotate snippet, run by logrotate itself on a running daemon's audit log:
/// the file is renamed, the daemon reopens its path, nothing is lost. Only the path, the
/// `su` line (the test's files are root's) and the signal's target are changed.
#[test]
fn logrotate_with_the_shipped_snippet_rotates_a_running_daemons_audit_log() {
    let Some(logrotate) = ["/usr/sbin/logrotate", "/sbin/logrotate"]
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
    else {
        eprintln!("SKIPPED: logrotate is not installed (CI installs it; apt install logrotate)");
        return;
    };
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    client.sign("ed", b"before=1").unwrap();
    audit_log(&audit_path, 2);

    let shipped = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/keyward.logrotate"),
    )
    .unwrap();
    let signal = "systemctl kill --signal=HUP --kill-whom=main keywardd.service";
    assert!(shipped.contains(signal), "{shipped}");
    let snippet = shipped
        .replace("/var/log/keyward/audit.jsonl", audit_path.to_str().unwrap())
        .replace("su keyward keyward", "su root root")
        .replace(signal, &format!("kill -HUP {}", daemon_pid(&daemon)));
    let conf = config.dir().join("logrotate.conf");
    fs::write(&conf, snippet).unwrap();
    let out = run(
        Command::new(logrotate)
            .arg("--force")
            .arg("--state")
            .arg(config.dir().join("logrotate.state"))
            .arg(&conf),
        None,
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    wait_for_log(&daemon, "audit log reopened", 1);
    client.sign("ed", b"after=1").unwrap();

    let new = audit_log(&audit_path, 1);
    let (new, _) = records(&new);
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        new[0]["payload_sha256"],
        Value::from(sha256_hex(b"after=1"))
    );
    let rotated: Vec<PathBuf> = fs::read_dir(config.dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit.jsonl-")
        })
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let (old, _) = records(&fs::read_to_string(&rotated[0]).unwrap());
    assert_eq!(old.len(), 2, "{old:?}");
    assert_eq!(
        old[1]["payload_sha256"],
        Value::from(sha256_hex(b"before=1"))
    );
}

#[test]
fn a_flood_of_refused_connections_is_a_few_records_with_a_count() {
    if !can_switch_uid("a_flood_of_refused_connections_is_a_few_records_with_a_count") {
        return;
    }
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let mut daemon = start(&config);
    daemon.open_permissions_to_everyone();
    keyward_for_everyone(&daemon);
    const CONNECTS: usize = 2000;
    // One process of uid 65534 connecting CONNECTS times, reading each refusal.
    let script = format!(
        "import socket\n\
         for _ in range({CONNECTS}):\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   s.connect({:?})\n\
         \x20   assert s.recv(4096)\n\
         \x20   s.close()\n",
        daemon.socket().to_str().unwrap()
    );
    let out = run(
        NOBODY
            .command(Path::new("/usr/bin/python3"))
            .args(["-c", &script]),
        None,
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    let log = daemon.log();
    daemon.stop();
    // Stopping records the count of the interval in progress.
    let (records, broken) = records(&audit_log(&audit_path, 2));
    assert!(broken.is_empty(), "{broken:?}");
    let refusals: Vec<&Value> = records
        .iter()
        .filter(|r| r["request"] == "connect" && r["uid"] == 65534)
        .collect();
    assert!(
        (2..=4).contains(&refusals.len()),
        "{} records for {CONNECTS} refusals; the first: {:?}",
        refusals.len(),
        refusals.first()
    );
    let total: u64 = refusals.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(
        total, CONNECTS as u64,
        "every refusal is counted: {refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .all(|r| r["decision"] == "deny" && r["user"] == "nobody" && r["comm"] == "python3")
    );
    let warnings = log.matches("refused").count();
    assert!((1..=4).contains(&warnings), "{warnings} warnings:\n{log}");
}

/// A tmpfs of a few pages mounted on a directory of the test, unmounted when dropped:
/// a real full or read-only disk for the audit log (root ignores permission bits, so a
/// chmod would prove nothing). `None` where mounting is not allowed.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(test: &str) -> Option<SmallDisk> {
        if !is_root() {
            eprintln!("SKIPPED {test}: mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("keyward-disk-")
            .tempdir()
            .unwrap();
        let out = run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
                .arg(dir.path()),
            None,
        );
        if out.code != Some(0) {
            eprintln!(
                "SKIPPED {test}: cannot mount a tmpfs here: {}",
                out.stderr.trim()
            );
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a file until writes fail.
    fn fill(&self) {
        let mut filler = fs::File::create(self.path().join("filler")).unwrap();
        let block = [0u8; 4096];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
        // Byte by byte into what is left of the last page.
        while std::io::Write::write_all(&mut filler, &block[..1]).is_ok() {}
    }

    fn free(&self) {
        fs::remove_file(self.path().join("filler")).unwrap();
    }

    fn remount(&self, option: &str) {
        run(
            Command::new("mount")
                .args(["-o", &format!("remount,{option}")])
                .arg(self.path()),
            None,
        )
        .success();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(self.dir.path()), None);
    }
}

fn disk_daemon(disk: &SmallDisk, required: bool) -> (ConfigFile, Daemon, PathBuf) {
    let audit_path = disk.path().join("audit.jsonl");
    // What a full disk left of the last record before a restart: a line cut off.
    fs::write(&audit_path, "{\"time\":\"2026-01-01T00:00:00Z\",\"uid\":10").unwrap();
    let config = ConfigFile::new(&format!(
        "[daemon]\naudit_log = \"{}\"\naudit_required = {required}\naudit_payloads = true\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    daemon.generate("ed", "ed25519");
    (config, daemon, audit_path)
}

#[test]
fn with_audit_required_a_full_log_disk_stops_signing_until_it_recovers() {
    let test = "with_audit_required_a_full_log_disk_stops_signing_until_it_recovers";
    let Some(disk) = SmallDisk::mount(test) else {
        return;
    };
    let (_config, daemon, audit_path) = disk_daemon(&disk, true);
    let mut client = daemon.client();
    client.sign("ed", b"ok=1").unwrap();

    // Full: no signature leaves the daemon without its record on disk. (The audit file's
    // last page may still take a record or two.)
    disk.fill();
    let mut released = Vec::new();
    let first_refusal = (0..10).find(|i| {
        let payload = format!("full{i}={}", "x".repeat(900));
        match client.sign("ed", payload.as_bytes()) {
            Ok(_) => {
                released.push(payload);
                false
            }
            Err(err) => {
                let (code, message) = daemon_error(&err);
                assert_eq!(code, ErrorCode::Unavailable, "{message}");
                assert!(message.contains("audit"), "{message}");
                true
            }
        }
    });
    assert!(first_refusal.is_some(), "a full disk never stopped signing");
    for _ in 0..3 {
        refused_with(client.sign("ed", b"still=1"), ErrorCode::Unavailable);
    }
    wait_for_log(&daemon, "AUDIT LOG WRITE FAILED", 1);
    disk.free();
    client.sign("ed", b"recovered=1").unwrap();
    wait_for_log(&daemon, "audit log writable again", 1);
    client.sign("ed", b"rw=1").unwrap();

    // Every signature released has its record; every record after a cut-off one parses.
    let text = audit_log(&audit_path, 4);
    let (good, broken) = records(&text);
    assert_eq!(good[0]["request"], "generate", "{text}");
    let signed: Vec<&str> = good
        .iter()
        .filter(|r| r["decision"] == "allow" && r["request"] == "sign")
        .map(|r| r["payload"]["text"].as_str().unwrap())
        .collect();
    for payload in ["ok=1", "recovered=1", "rw=1"]
        .into_iter()
        .chain(released.iter().map(String::as_str))
    {
        assert!(signed.contains(&payload), "{payload} not recorded:\n{text}");
    }
    assert!(broken.len() <= 2, "more than two cut-off records:\n{text}");
    assert!(text.ends_with('\n'));
}

#[test]
fn without_audit_required_a_full_log_disk_never_stops_signing() {
    let test = "without_audit_required_a_full_log_disk_never_stops_signing";
    let Some(disk) = SmallDisk::mount(test) else {
        return;
    };
    let (_config, daemon, audit_path) = disk_daemon(&disk, false);
    let mut client = daemon.client();
    client.sign("ed", b"ok=1").unwrap();
    audit_log(&audit_path, 2);
    disk.fill();
    for _ in 0..10 {
        client.sign("ed", &[b'x'; 900]).unwrap();
    }
    let log = wait_for_log(&daemon, "AUDIT LOG WRITE FAILED", 1);
    assert!(log.contains("signing goes on unaudited"), "{log}");
    disk.free();
    client.sign("ed", b"after=1").unwrap();
    // The record after the failures starts on a line of its own and parses.
    let text = audit_log(&audit_path, 3);
    let (good, broken) = records(&text);
    assert_eq!(good[0]["request"], "generate", "{text}");
    assert_eq!(good.last().unwrap()["payload"]["text"], "after=1", "{text}");
    assert!(broken.len() <= 2, "{text}");
}

/// A read-only log disk: at start keywardd refuses to run (the audit log is a promise it
/// could not keep from the first request); at a reload (logrotate) the new file cannot be
/// made, and records go on to the file already open, with the error in the log.
#[test]
fn a_read_only_log_disk_stops_the_start_and_keeps_the_old_file_at_a_reload() {
    let Some(disk) =
        SmallDisk::mount("a_read_only_log_disk_stops_the_start_and_keeps_the_old_file_at_a_reload")
    else {
        return;
    };
    let audit_path = disk.path().join("audit.jsonl");
    let config = ConfigFile::new(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    disk.remount("ro");
    let mut refused = Daemon::launch_on(
        &config.dir().join("run").join("keyward.sock"),
        &["--config", config.path()],
    );
    assert_eq!(refused.wait_exit().code(), Some(1));
    let log = refused.log();
    let last = log.lines().last().unwrap();
    assert!(
        last.contains("cannot open the audit log") && last.contains("Read-only file system"),
        "{log}"
    );
    disk.remount("rw");

    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    fs::rename(&audit_path, disk.path().join("audit.jsonl.1")).unwrap();
    // Read-only for new opens through the path, while the daemon's open file stays writable
    // (the kernel refuses to remount a filesystem read-only under a file open for writing).
    let ro = disk.path().to_str().unwrap();
    run(Command::new("mount").args(["--bind", ro, ro]), None).success();
    run(
        Command::new("mount").args(["-o", "remount,bind,ro", ro]),
        None,
    )
    .success();
    kill(daemon_pid(&daemon), Signal::SIGHUP).unwrap();
    let log = wait_for_log(&daemon, "cannot reopen the audit log", 1);
    assert!(log.contains("Read-only file system"), "{log}");
    client.sign("ed", b"kept=1").unwrap();
    run(Command::new("umount").arg(ro), None).success();
    let (records, _) = records(&audit_log(&disk.path().join("audit.jsonl.1"), 2));
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(!audit_path.exists());
}
