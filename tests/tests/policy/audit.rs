//! 4. The audit log.

use super::*;

/// What one audit record must say.
#[derive(Debug)]
struct Expected {
    uid: u32,
    gid: u32,
    /// None: not known to the test (a CLI process), only checked to be a number.
    pid: Option<u32>,
    exe: PathBuf,
    request: &'static str,
    key: Option<&'static str>,
    decision: &'static str,
    /// A fragment of the reason ("" for allowed requests, whose reason is empty).
    reason: &'static str,
    /// The payloads of a sign (one) or sign-batch (several).
    payloads: Vec<Vec<u8>>,
}

const AUDIT_HMAC_SECRET: &[u8] = b"kX9vQ2mT7pL4wZ8nR3yB6cF1hJ5dG0sA-audit-hmac-secret-never-logged";
const DENIED_IMPORT_SECRET: &[u8] = b"a-secret-that-nobody-tried-to-import-unlawfully";
const PEM_PASSPHRASE: &str = "pem-passphrase-must-never-be-audited";
const INIT_PASSPHRASE: &[u8] = b"init-passphrase-must-never-be-audited";
const UNLOCK_PASSPHRASE: &[u8] = b"unlock-passphrase-must-never-be-audited";

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap()
}

/// The base64 body of a PEM document, joined into one line.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    std::str::from_utf8(pem)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn the_audit_log_has_one_line_per_decision_with_the_right_peer_and_no_secret() {
    if !can_switch_uid("the_audit_log_has_one_line_per_decision_with_the_right_peer_and_no_secret")
    {
        return;
    }
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n\n\
         [keys.ed]\nallow_uids = [65534]\nformat = \"binance\"\ndeny_params = [\"address\"]\n\n\
         [keys.rl]\nallow_uids = [65534]\nrate_per_sec = 0.1\nburst = 1\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    let log_at_start = daemon.log();

    // An encrypted RSA key for the PEM import, and its decrypted forms to search for.
    let pem_file = config.dir().join("rsa.pem");
    let pass_arg = format!("pass:{PEM_PASSPHRASE}");
    let encrypted_pem = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-aes-256-cbc",
        "-pass",
        &pass_arg,
    ]);
    fs::write(&pem_file, &encrypted_pem).unwrap();
    let pem_file = pem_file.to_str().unwrap();
    let der = openssl(&[
        "pkey", "-in", pem_file, "-passin", &pass_arg, "-outform", "DER",
    ]);
    let plain_pem = openssl(&["pkey", "-in", pem_file, "-passin", &pass_arg]);

    let me = nix::unistd::geteuid().as_raw();
    let my_gid = nix::unistd::getegid().as_raw();
    let my_exe = canonical(Path::new("/proc/self/exe"));
    let perl = canonical(Path::new("/usr/bin/perl"));
    let mut expected: Vec<Expected> = Vec::new();
    let mine = |request, key, decision, reason, payloads: &[&[u8]]| Expected {
        uid: me,
        gid: my_gid,
        pid: Some(std::process::id()),
        exe: my_exe.clone(),
        request,
        key,
        decision,
        reason,
        payloads: payloads.iter().map(|p| p.to_vec()).collect(),
    };

    // The daemon's own uid: keys in, a list, signatures, an init it cannot do (ephemeral),
    // an unknown key.
    let mut root = daemon.client();
    root.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    expected.push(mine("generate", Some("ed"), "allow", "", &[]));
    root.generate("rl", KeyKind::Ed25519, None, None).unwrap();
    expected.push(mine("generate", Some("rl"), "allow", "", &[]));
    root.import(
        "hm",
        Some(Scheme::HmacSha256),
        SecretBytes::new(AUDIT_HMAC_SECRET.to_vec()),
        None,
        Some("binance-api-key-id".into()),
        None,
    )
    .unwrap();
    expected.push(mine("import", Some("hm"), "allow", "", &[]));
    root.import(
        "pem",
        None,
        SecretBytes::new(encrypted_pem.clone()),
        Some(SecretBytes::new(PEM_PASSPHRASE.as_bytes().to_vec())),
        None,
        None,
    )
    .unwrap();
    expected.push(mine("import", Some("pem"), "allow", "", &[]));
    root.list().unwrap();
    expected.push(mine("list", None, "allow", "", &[]));
    let p1 = b"symbol=AUDITONE&side=BUY&timestamp=1700000000001";
    root.sign("ed", p1).unwrap();
    expected.push(mine("sign", Some("ed"), "allow", "", &[p1]));
    let p2 = b"symbol=AUDITTWO&side=SELL&timestamp=1700000000002";
    root.sign("pem", p2).unwrap();
    expected.push(mine("sign", Some("pem"), "allow", "", &[p2]));
    root.sign("hm", p2).unwrap();
    expected.push(mine("sign", Some("hm"), "allow", "", &[p2]));
    assert!(
        root.init(SecretBytes::new(INIT_PASSPHRASE.to_vec()))
            .is_err()
    );
    expected.push(mine("init", None, "error", "", &[]));
    let p3 = b"symbol=AUDITTHREE&timestamp=1700000000003";
    refused_with(root.sign("nope", p3), ErrorCode::UnknownKey);
    expected.push(mine("sign", Some("nope"), "error", "nope", &[p3]));

    // uid 65534 on a connection of its own.
    let mut bot = connect_as(NOBODY, &daemon).unwrap();
    let bot_pid = bot.pid();
    let theirs = |request, key, decision, reason, payloads: &[&[u8]]| Expected {
        uid: NOBODY.uid,
        gid: NOBODY.gid,
        pid: Some(bot_pid),
        exe: perl.clone(),
        request,
        key,
        decision,
        reason,
        payloads: payloads.iter().map(|p| p.to_vec()).collect(),
    };
    let p4 = b"symbol=AUDITFOUR&timestamp=1700000000004";
    bot.client.sign("ed", p4).unwrap();
    expected.push(theirs("sign", Some("ed"), "allow", "", &[p4]));
    let p5 = b"symbol=AUDITFIVE&timestamp=1700000000005";
    refused_with(bot.client.sign("hm", p5), ErrorCode::Denied);
    expected.push(theirs(
        "sign",
        Some("hm"),
        "deny",
        "uid 65534 may not use key \"hm\"",
        &[p5],
    ));
    let p6 = b"coin=USDT&address=TAUDITSIX&amount=6";
    refused_with(bot.client.sign("ed", p6), ErrorCode::PolicyViolation);
    expected.push(theirs(
        "sign",
        Some("ed"),
        "deny",
        "parameter \"address\" is not allowed",
        &[p6],
    ));
    let p7 = b"symbol=AUDITSEVEN&timestamp=1700000000007";
    bot.client.sign("rl", p7).unwrap();
    expected.push(theirs("sign", Some("rl"), "allow", "", &[p7]));
    let p8 = b"symbol=AUDITEIGHT&timestamp=1700000000008";
    refused_with(bot.client.sign("rl", p8), ErrorCode::RateLimited);
    expected.push(theirs("sign", Some("rl"), "deny", "retry in", &[p8]));
    refused_with(
        bot.client
            .unlock(SecretBytes::new(UNLOCK_PASSPHRASE.to_vec())),
        ErrorCode::Denied,
    );
    expected.push(theirs(
        "unlock",
        None,
        "deny",
        "uid 65534 may not unlock",
        &[],
    ));
    refused_with(
        bot.client.import(
            "stolen",
            Some(Scheme::HmacSha256),
            SecretBytes::new(DENIED_IMPORT_SECRET.to_vec()),
            None,
            None,
            None,
        ),
        ErrorCode::Denied,
    );
    expected.push(theirs(
        "import",
        Some("stolen"),
        "deny",
        "uid 65534 may not import",
        &[],
    ));
    refused_with(
        bot.client.generate("mine", KeyKind::Ed25519, None, None),
        ErrorCode::Denied,
    );
    expected.push(theirs(
        "generate",
        Some("mine"),
        "deny",
        "uid 65534 may not generate",
        &[],
    ));
    bot.client.list().unwrap();
    expected.push(theirs("list", None, "allow", "", &[]));
    let (p9, p10) = (
        &b"symbol=AUDITNINE&timestamp=1700000000009"[..],
        // A Binance query, as the key's rules parse its payloads (the audit of binary
        // payloads: the_audit_log_records_payloads_only_when_asked_and_binary_as_base64).
        &b"symbol=AUDITTEN&timestamp=1700000000010"[..],
    );
    bot.client.sign_batch("ed", &[p9, p10]).unwrap();
    expected.push(theirs("sign-batch", Some("ed"), "allow", "", &[p9, p10]));
    drop(bot);

    // uid 65534 through the CLI: the record names the CLI's executable.
    let p11 = b"symbol=AUDITELEVEN&timestamp=1700000000011";
    keyward_as(NOBODY, &keyward, &daemon, &["sign", "ed"], Some(p11)).success();
    expected.push(Expected {
        pid: None,
        exe: canonical(&keyward),
        ..theirs("sign", Some("ed"), "allow", "", &[p11])
    });

    // The file: 0600, one line per decision, each a JSON object saying the right things.
    let meta = fs::metadata(&audit_path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600, "the audit log must be 0600");
    let text = audit_log(&audit_path, expected.len());
    let bytes = text.as_bytes().to_vec();
    assert!(text.ends_with('\n'), "the last record is not a whole line");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per request that reached a decision; the log:\n{text}"
    );
    let mut last_time = String::new();
    for (line, want) in lines.iter().zip(&expected) {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        let fields = record
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let ctx = format!("{want:?}\n{line}");
        for field in [
            "time",
            "uid",
            "gid",
            "pid",
            "exe",
            "request",
            "key",
            "decision",
            "reason",
            "latency_us",
        ] {
            assert!(fields.contains_key(field), "no {field:?}: {ctx}");
        }
        let time = fields["time"].as_str().unwrap();
        assert!(
            time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
            "time is not RFC 3339 UTC: {ctx}"
        );
        assert!(*time >= *last_time, "records out of order: {ctx}");
        last_time = time.to_owned();
        assert_eq!(fields["uid"], want.uid, "{ctx}");
        assert_eq!(fields["gid"], want.gid, "{ctx}");
        match want.pid {
            Some(pid) => assert_eq!(fields["pid"], pid, "{ctx}"),
            None => assert!(fields["pid"].as_u64().is_some_and(|p| p > 1), "{ctx}"),
        }
        assert_eq!(
            fields["exe"].as_str().map(PathBuf::from).as_ref(),
            Some(&want.exe),
            "{ctx}"
        );
        // Who, in words (issue 19 §3): the user name and the process name, which need no
        // ptrace rights (the kernel sets comm from the executable's name at exec, 15 bytes).
        let user = match want.uid {
            0 => "root",
            65534 => "nobody",
            _ => "",
        };
        if !user.is_empty() {
            assert_eq!(fields["user"], user, "{ctx}");
        }
        let comm: String = want
            .exe
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .chars()
            .take(15)
            .collect();
        assert_eq!(fields["comm"], comm.as_str(), "{ctx}");
        assert!(fields.contains_key("unit"), "{ctx}");
        assert_eq!(fields["request"], want.request, "{ctx}");
        assert_eq!(fields["key"].as_str(), want.key, "{ctx}");
        assert_eq!(fields["decision"], want.decision, "{ctx}");
        let reason = fields["reason"].as_str().unwrap();
        if want.decision == "allow" {
            assert_eq!(reason, "", "{ctx}");
        } else {
            assert!(!reason.is_empty() && reason.contains(want.reason), "{ctx}");
        }
        assert!(fields["latency_us"].as_u64().is_some(), "{ctx}");
        assert!(
            !fields.contains_key("payload"),
            "payload shown without audit_payloads: {ctx}"
        );
        let hashes: Vec<Value> = want
            .payloads
            .iter()
            .map(|p| Value::from(sha256_hex(p)))
            .collect();
        let lens: Vec<Value> = want.payloads.iter().map(|p| Value::from(p.len())).collect();
        match want.request {
            "sign" => {
                assert_eq!(fields["payload_sha256"], hashes[0], "{ctx}");
                assert_eq!(fields["payload_len"], lens[0], "{ctx}");
            }
            "sign-batch" => {
                assert_eq!(fields["payload_sha256"], Value::from(hashes), "{ctx}");
                assert_eq!(fields["payload_len"], Value::from(lens), "{ctx}");
            }
            _ => assert!(
                !fields.contains_key("payload_sha256") && !fields.contains_key("payload_len"),
                "{ctx}"
            ),
        }
    }

    // No payload (audit_payloads is off), and no byte of any secret, in the audit log or
    // in the daemon's own log.
    let daemon_log = daemon.log();
    let daemon_log = daemon_log.as_bytes();
    for payload in [&p1[..], p2, p3, p4, p5, p6, p7, p8, p9, p11] {
        assert_no_run(&bytes, payload, "a payload", "the audit log");
    }
    assert!(
        !text.contains("TAUDITSIX"),
        "a payload's value is in the audit log"
    );
    let secrets: [(&str, &[u8]); 8] = [
        ("the HMAC secret", AUDIT_HMAC_SECRET),
        ("the refused import's secret", DENIED_IMPORT_SECRET),
        ("the RSA key's DER", &der),
        ("the RSA key's PEM", &pem_body(&plain_pem)),
        ("the encrypted PEM", &pem_body(&encrypted_pem)),
        ("the PEM passphrase", PEM_PASSPHRASE.as_bytes()),
        ("the init passphrase", INIT_PASSPHRASE),
        ("the unlock passphrase", UNLOCK_PASSPHRASE),
    ];
    for (what, secret) in secrets {
        // The search can fail: it finds the secret when it is there.
        assert!(find_run(&[b"x", secret, b"y"].concat(), secret, 16).is_some());
        assert_no_run(&bytes, secret, what, "the audit log");
        assert_no_run(daemon_log, secret, what, "the daemon's log");
    }
    // Each denial also left one summary line in the daemon's log.
    let new_log = daemon.log()[log_at_start.len()..].to_owned();
    assert_eq!(
        new_log.matches("denied: ").count(),
        expected.iter().filter(|e| e.decision == "deny").count(),
        "{new_log}"
    );
}

#[test]
fn audit_payloads_puts_the_payload_in_each_record() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\naudit_payloads = true\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    let text = b"symbol=SHOWNINAUDIT&timestamp=1";
    let binary = b"\xff\x00\x80";
    client.sign("ed", text).unwrap();
    client.sign("ed", binary).unwrap();
    client.sign_batch("ed", &[text, binary]).unwrap();

    let log = audit_log(&audit_path, 4);
    let records: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // generate, sign, sign, sign-batch.
    assert_eq!(records.len(), 4, "{log}");
    assert!(records[0].get("payload").is_none(), "{log}");
    assert_eq!(
        records[1]["payload"]["text"],
        "symbol=SHOWNINAUDIT&timestamp=1"
    );
    assert_eq!(records[2]["payload"]["base64"], "/wCA");
    assert_eq!(
        records[3]["payload"],
        serde_json::json!([{ "text": "symbol=SHOWNINAUDIT&timestamp=1" }, { "base64": "/wCA" }])
    );
    assert_eq!(records[1]["payload_sha256"], sha256_hex(text));
}

/// An audit log that already exists (created by an administrator, or by logrotate with its
/// own `create` mode) is still 0600 once keywardd has opened it: "opened append-only with
/// 0600" holds whoever made the file.
#[test]
fn an_existing_audit_log_is_made_0600() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    fs::write(&audit_path, b"").unwrap();
    fs::set_permissions(&audit_path, fs::Permissions::from_mode(0o644)).unwrap();
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    daemon.client().list().unwrap();
    let mode = fs::metadata(&audit_path).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the audit log is {mode:o}");
    assert_eq!(audit_log(&audit_path, 1).lines().count(), 1);
}

/// Without `audit_payloads`, no part of a payload reaches the audit log: not even through
/// the reason of a refusal (a malformed `timestamp=` value is not quoted back).
#[test]
fn without_audit_payloads_a_refusal_reason_quotes_no_payload() {
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n\n[keys.ed]\nformat = \"binance\"\ntimestamp_window_ms = 5000\n",
        audit_path.display()
    ));
    let daemon = start(&config);
    let mut client = daemon.client();
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    let payload = format!(
        "symbol=BTCUSDT&timestamp=strategy-7f3a9c-{}",
        "x".repeat(2000)
    );
    refused_with(
        client.sign("ed", payload.as_bytes()),
        ErrorCode::PolicyViolation,
    );
    let log = audit_log(&audit_path, 2).into_bytes();
    assert_eq!(log.iter().filter(|&&b| b == b'\n').count(), 2);
    assert_no_run(
        &log,
        b"strategy-7f3a9c-xxxxxxxx",
        "the payload",
        "the audit log",
    );
}

/// The mode of /dev/full, which the next tests use as an audit log that cannot be written
/// (opening it for append works; every write fails with ENOSPC). They also check the daemon
/// left it alone.
fn dev_full_mode() -> Option<u32> {
    let meta = fs::metadata("/dev/full").ok()?;
    meta.file_type().is_char_device().then(|| meta.mode())
}

#[test]
fn with_audit_required_an_unwritable_log_stops_signing() {
    let Some(mode) = dev_full_mode() else {
        eprintln!("SKIPPED with_audit_required_an_unwritable_log_stops_signing: no /dev/full");
        return;
    };
    let config = ConfigFile::new(
        "[daemon]\naudit_log = \"/dev/full\"\naudit_required = true\n\n\
         [keys.ed]\nformat = \"binance\"\ntimestamp_window_ms = 5000\n",
    );
    let daemon = start(&config);
    daemon.generate("ed", "ed25519");
    let mut client = daemon.client();
    for _ in 0..2 {
        let message = refused_with(
            client.sign("ed", fresh("a=1").as_bytes()),
            ErrorCode::Unavailable,
        );
        assert!(message.contains("audit"), "{message}");
        let message = refused_with(
            client.sign_batch("ed", &[fresh("a=1").as_bytes()]),
            ErrorCode::Unavailable,
        );
        assert!(message.contains("audit"), "{message}");
    }
    // Refusals are still refusals (not "unavailable"): the policy comes first.
    refused_with(client.sign("ed", b"a=1"), ErrorCode::PolicyViolation);
    let out = daemon.keyward(["sign", "ed", &fresh("a=1")]);
    assert!(out.error_line(1).contains("audit"), "{out:#?}");
    let log = daemon.log();
    assert_eq!(
        log.matches("AUDIT LOG WRITE FAILED").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(
        log.contains("signing is refused until it can be written"),
        "{log}"
    );
    assert_eq!(dev_full_mode(), Some(mode), "the daemon changed /dev/full");
}

#[test]
fn without_audit_required_an_unwritable_log_is_reported_once_and_signing_goes_on() {
    let Some(mode) = dev_full_mode() else {
        eprintln!("SKIPPED without_audit_required_...: no /dev/full");
        return;
    };
    let config = ConfigFile::new("[daemon]\naudit_log = \"/dev/full\"\n");
    let daemon = start(&config);
    let public = daemon.generate("ed", "ed25519");
    let mut client = daemon.client();
    let payload = b"symbol=BTCUSDT&timestamp=1";
    let signatures: Vec<_> = (0..3)
        .map(|_| client.sign("ed", payload).unwrap())
        .collect();
    // Without audit_required nothing waits for the writer thread: its failure is logged
    // when it gets to the records, possibly after the signatures were answered.
    wait_for_log(&daemon, "AUDIT LOG WRITE FAILED", 1);
    // Every record failed, and was counted, yet the failure was logged once.
    let started = Instant::now();
    while audit_failures(&daemon) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "records not tried"
        );
        sleep(Duration::from_millis(20));
    }
    let log = daemon.log();
    assert_eq!(
        log.matches("AUDIT LOG WRITE FAILED").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(log.contains("signing goes on unaudited"), "{log}");
    assert!(log.contains(" ERROR "), "not logged loudly:\n{log}");
    assert_python_verifies_all(&[Check::new(
        "ed25519",
        &public,
        payload,
        signatures[2].as_bytes(),
    )]);
    assert_eq!(dev_full_mode(), Some(mode), "the daemon changed /dev/full");
}

/// The daemon's count of audit records the disk refused (`keyward stats`).
fn audit_failures(daemon: &Daemon) -> u64 {
    let out = daemon.keyward(["stats"]);
    out.success();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    stats["audit_failures"].as_u64().unwrap()
}

/// The second, independent guard of `audit_required` (the first is the /dev/full test
/// above): on a real file system that fills up while the daemon runs. While the log can be
/// written, every signature's record is on disk before the signature is answered; once the
/// disk is full no signature is answered; once space is back, signing resumes. Needs a tmpfs
/// of its own (root with CAP_SYS_ADMIN, as in CI); without one, only the first part runs.
#[test]
fn with_audit_required_signing_follows_the_logs_disk_as_it_fills_and_frees() {
    let test = "with_audit_required_signing_follows_the_logs_disk_as_it_fills_and_frees";
    let config_dir = tempfile::tempdir().unwrap();
    let mount = keyward_tests::disk::Tmpfs::mount(&config_dir.path().join("fs"), 64, test);
    let log_dir = match &mount {
        Some(mount) => mount.path().to_owned(),
        None => config_dir.path().to_owned(),
    };
    let log_path = log_dir.join("audit.log");
    let config = ConfigFile::new(&format!(
        "[daemon]\naudit_log = \"{}\"\naudit_required = true\n",
        log_path.display()
    ));
    let daemon = start(&config);
    daemon.generate("ed", "ed25519");
    let mut client = daemon.client();
    let allowed_signs = || {
        fs::read_to_string(&log_path)
            .unwrap()
            .lines()
            .filter(|line| line.contains("\"decision\":\"allow\"") && line.contains("\"sign"))
            .count()
    };
    for n in 1..=3 {
        client.sign("ed", fresh("a=1").as_bytes()).unwrap();
        assert_eq!(
            allowed_signs(),
            2 * n - 1,
            "a signature answered unrecorded"
        );
        client
            .sign_batch("ed", &[fresh("a=1").as_bytes(), fresh("b=2").as_bytes()])
            .unwrap();
        assert_eq!(allowed_signs(), 2 * n, "a batch answered unrecorded");
    }
    let Some(mount) = mount else {
        return;
    };

    mount.fill();
    // The log's last page may still have room for a few records: sign until the first
    // refusal, which must come within a page's worth of records.
    let mut signed_on_full_disk = 0;
    loop {
        match client.sign("ed", fresh("a=1").as_bytes()) {
            Ok(_) => signed_on_full_disk += 1,
            Err(err) => {
                assert_eq!(daemon_error(&err).0, ErrorCode::Unavailable, "{err}");
                break;
            }
        }
        assert!(
            signed_on_full_disk < 64,
            "a full disk never stopped signing"
        );
    }
    let recorded = allowed_signs();
    assert_eq!(
        recorded,
        6 + signed_on_full_disk,
        "a signature answered unrecorded"
    );
    for _ in 0..3 {
        let message = refused_with(
            client.sign("ed", fresh("a=1").as_bytes()),
            ErrorCode::Unavailable,
        );
        assert!(message.contains("audit"), "{message}");
        refused_with(
            client.sign_batch("ed", &[fresh("a=1").as_bytes()]),
            ErrorCode::Unavailable,
        );
    }
    assert_eq!(allowed_signs(), recorded, "the log grew on a full disk");
    assert_eq!(
        daemon.log().matches("AUDIT LOG WRITE FAILED").count(),
        1,
        "{}",
        daemon.log()
    );

    mount.free();
    client.sign("ed", fresh("a=1").as_bytes()).unwrap();
    assert_eq!(allowed_signs(), recorded + 1);
    assert!(
        daemon.log().contains("audit log writable again"),
        "{}",
        daemon.log()
    );
    drop(client);
    drop(daemon);
}
