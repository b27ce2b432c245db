//! KuCoin's API passphrase, stored sealed with its key (issue 13): signed on request for
//! whoever may sign with the key, never shown, audited, kept across lock, unlock and
//! restart, and refused to version 2 connections.

use super::*;

use keyward_client::exchanges::kucoin::{self, Passphrase};
use keyward_client::exchanges::{HttpRequest, Options};
use keyward_client::{Request, Response, Signature};
use keyward_tests::keystore::KeystoreDir;
use keyward_tests::raw::{RawConn, Reply};
use keyward_tests::verify::openssl_hmac_hex;

const KEYSTORE_PASSPHRASE: &[u8] = b"kucoin test keystore passphrase";
const KUCOIN_SECRET: &[u8] = b"f03a5284-5c39-4aaa-9b20-dea10bdcf8e3";
const KUCOIN_PASSPHRASE: &[u8] = b"kucoin-api-passphrase-never-shown-7Qx";
const SECOND_PASSPHRASE: &[u8] = b"second-kucoin-passphrase-never-shown-3Zr";
/// The secret of `golden-okx` in the version 2 keystore fixture (daemon/testdata/keystore-v2).
const GOLDEN_OKX_SECRET: &[u8] = b"golden okx hmac secret 0123456789";

/// base64(HMAC-SHA256(secret, passphrase)) by the OpenSSL CLI: KuCoin's `KC-API-PASSPHRASE`
/// for API keys of version 2 and 3.
fn expected_header(secret: &[u8], passphrase: &[u8]) -> String {
    let hex = openssl_hmac_hex("sha256", secret, passphrase);
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Signature::new(Scheme::HmacSha256, bytes).to_base64()
}

fn passphrase_header(client: &mut Client, key: &str) -> String {
    let request = HttpRequest::get("/api/v1/accounts", "currency=BTC");
    let headers = kucoin::headers(
        client,
        key,
        &request,
        Passphrase::Stored,
        2,
        &Options::default(),
    )
    .unwrap();
    headers
        .into_iter()
        .find(|(name, _)| *name == "KC-API-PASSPHRASE")
        .map(|(_, value)| value)
        .unwrap()
}

fn unlock(daemon: &Daemon) {
    daemon
        .keyward_with_passphrases(&["unlock"], &[KEYSTORE_PASSPHRASE])
        .success();
}

fn version_of(key_file: &Path) -> [u8; 4] {
    fs::read(key_file).unwrap()[8..12].try_into().unwrap()
}

/// `keyward import` of the KuCoin secret in `secret_file` as `kucoin`, with the passphrase in
/// `passphrase_file`.
fn import_kucoin(daemon: &Daemon, secret_file: &Path, passphrase_file: &Path) -> Output {
    daemon.keyward([
        "import",
        "kucoin",
        "--file",
        secret_file.to_str().unwrap(),
        "--scheme",
        "hmac-sha256",
        "--format",
        "kucoin",
        "--api-key",
        "kc-id",
        "--api-passphrase-file",
        passphrase_file.to_str().unwrap(),
    ])
}

/// Every secret of this file must stay out of `bytes`.
#[track_caller]
fn assert_no_secret(bytes: &[u8], place: &str) {
    for (what, secret) in [
        ("the KuCoin passphrase", KUCOIN_PASSPHRASE),
        ("the second passphrase", SECOND_PASSPHRASE),
        ("the KuCoin secret", KUCOIN_SECRET),
    ] {
        assert_no_run(bytes, secret, what, place);
    }
}

#[test]
fn a_kucoin_passphrase_is_sealed_signed_on_request_and_survives_lock_and_restart() {
    let store = KeystoreDir::new();
    let config = ConfigFile::new("");
    let audit_path = config.dir().join("audit.jsonl");
    // Payload rules on the key: its passphrase is not a KuCoin request, and is still signed.
    config.set(&format!(
        "[daemon]\naudit_log = \"{}\"\n\n\
         [keys.kucoin]\nformat = \"kucoin\"\ndeny_paths = [\"/api/v1/withdrawals\"]\n",
        audit_path.display()
    ));
    let args = ["--config", config.path()];
    let mut daemon = Daemon::start_with_keystore(store.path(), &args);
    daemon
        .keyward_with_passphrases(&["init"], &[KEYSTORE_PASSPHRASE])
        .success();
    let secret_file = daemon.write("kucoin.secret", KUCOIN_SECRET);
    let passphrase_file = daemon.write("kucoin.passphrase", &[KUCOIN_PASSPHRASE, b"\n"].concat());
    import_kucoin(&daemon, &secret_file, &passphrase_file).success();
    let expected = expected_header(KUCOIN_SECRET, KUCOIN_PASSPHRASE);
    let mut client = daemon.client();
    assert_eq!(passphrase_header(&mut client, "kucoin"), expected);
    assert_eq!(
        kucoin::signed_passphrase(&mut client, "kucoin").unwrap(),
        expected
    );
    // The payload rules still judge every request: a withdrawal is refused.
    let withdraw = HttpRequest::post("/api/v1/withdrawals", r#"{"currency":"BTC"}"#);
    refused_with(
        kucoin::headers(
            &mut client,
            "kucoin",
            &withdraw,
            None,
            2,
            &Options::default(),
        ),
        ErrorCode::PolicyViolation,
    );
    // A value given is sent as it is, as before.
    let get = HttpRequest::get("/api/v1/accounts", "");
    let given = kucoin::headers(
        &mut client,
        "kucoin",
        &get,
        "pre-signed",
        2,
        &Options::default(),
    );
    assert!(
        given
            .unwrap()
            .contains(&("KC-API-PASSPHRASE", "pre-signed".to_owned()))
    );

    // Sealed: version 3, and no byte run of the passphrase anywhere in the keystore.
    let key_file = store.path().join("keys/kucoin.key");
    assert_eq!(version_of(&key_file), [0, 0, 0, 3]);
    for (path, _) in keyward_tests::keystore::snapshot(store.path()) {
        assert_no_secret(
            &fs::read(store.path().join(&path)).unwrap(),
            "a keystore file",
        );
    }

    // Locked: no signature; unlocked again: the same one.
    daemon.keyward(["lock"]).success();
    refused_with(client.sign_passphrase("kucoin"), ErrorCode::Locked);
    unlock(&daemon);
    assert_eq!(passphrase_header(&mut client, "kucoin"), expected);
    drop(client);

    // Restarted: the same.
    assert!(daemon.stop().success());
    let log_before_restart = daemon.log();
    let mut daemon = Daemon::start_with_keystore(store.path(), &args);
    unlock(&daemon);
    let mut client = daemon.client();
    assert_eq!(passphrase_header(&mut client, "kucoin"), expected);

    // An admin replaces it, from a file; then removes it: a clear error, and the file is a
    // version 2 file again.
    let second_file = daemon.write("second.passphrase", SECOND_PASSPHRASE);
    daemon
        .keyward([
            "passphrase",
            "kucoin",
            "--file",
            second_file.to_str().unwrap(),
        ])
        .success();
    assert_eq!(
        passphrase_header(&mut client, "kucoin"),
        expected_header(KUCOIN_SECRET, SECOND_PASSPHRASE)
    );
    daemon
        .keyward(["passphrase", "kucoin", "--remove"])
        .success();
    assert_eq!(version_of(&key_file), [0, 0, 0, 2]);
    let message = refused_with(client.sign_passphrase("kucoin"), ErrorCode::NoPassphrase);
    assert!(message.contains("no stored passphrase"), "{message}");
    let cli = daemon.keyward([
        "passphrase",
        "nope",
        "--file",
        second_file.to_str().unwrap(),
    ]);
    assert_no_secret(cli.stderr.as_bytes(), "keyward's error");
    cli.error_line(1);
    // Only HMAC keys sign a passphrase; every error is one line with no secret in it.
    client.generate("ed", KeyKind::Ed25519, None, None).unwrap();
    let message = refused_with(
        client.set_passphrase("ed", Some(SecretBytes::new(SECOND_PASSPHRASE.to_vec()))),
        ErrorCode::BadRequest,
    );
    assert_no_secret(message.as_bytes(), "an error message");
    refused_with(
        client.set_passphrase("kucoin", Some(SecretBytes::new(Vec::new()))),
        ErrorCode::BadRequest,
    );
    refused_with(client.sign_passphrase("missing"), ErrorCode::UnknownKey);

    // A version 2 connection cannot send either request.
    let mut v2 = RawConn::connect(daemon.socket());
    assert!(matches!(
        v2.request(&Request::Hello { version: 2 }),
        Reply::Response(Response::Hello { version: 2, .. })
    ));
    for request in [
        Request::SignPassphrase {
            key: "kucoin".into(),
        },
        Request::SetPassphrase {
            key: "kucoin".into(),
            passphrase: Some(SecretBytes::new(SECOND_PASSPHRASE.to_vec())),
        },
    ] {
        match v2.request(&request) {
            Reply::Response(Response::Error { code, message }) => {
                assert_eq!(code, ErrorCode::BadRequest, "{message}");
                assert!(message.contains("needs protocol version 3"), "{message}");
            }
            other => panic!("{request:?} on version 2: {other:?}"),
        }
    }
    drop(client);
    assert!(daemon.stop().success());

    // Audited like a signature, with no payload hash, and no secret in either log.
    let audit = fs::read(&audit_path).unwrap();
    let audit_text = String::from_utf8(audit.clone()).unwrap();
    let records: Vec<Value> = audit_text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|record: &Value| record["request"] == "sign-passphrase")
        .collect();
    let decisions: Vec<&str> = records
        .iter()
        .map(|record| record["decision"].as_str().unwrap())
        .collect();
    assert!(
        decisions.iter().filter(|d| **d == "allow").count() >= 6,
        "{audit_text}"
    );
    assert!(decisions.contains(&"error"), "{audit_text}");
    for record in &records {
        assert!(record["key"].as_str().is_some(), "{record}");
        assert!(
            record.get("payload_sha256").is_none_or(Value::is_null),
            "{record}"
        );
    }
    assert!(
        audit_text.contains("\"request\":\"set-passphrase\""),
        "{audit_text}"
    );
    assert_no_secret(&audit, "the audit log");
    for passphrase in [KUCOIN_PASSPHRASE, SECOND_PASSPHRASE] {
        assert!(
            !audit_text.contains(&sha256_hex(passphrase)),
            "a passphrase's SHA-256 is in the audit log"
        );
    }
    for log in [log_before_restart, daemon.log()] {
        assert_no_secret(log.as_bytes(), "the daemon's log");
    }
}

/// A key file written before passphrases (the version 2 fixture) reads as a key without
/// one; storing one rewrites it as version 3, which reads after a restart.
#[test]
fn a_key_file_from_before_passphrases_reads_and_takes_one() {
    let store = KeystoreDir::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/testdata/keystore-v2");
    fs::create_dir(store.path()).unwrap();
    fs::create_dir(store.path().join("keys")).unwrap();
    for file in ["header", "keys/golden-okx.key"] {
        fs::copy(fixture.join(file), store.path().join(file)).unwrap();
    }
    for dir in [store.path().to_owned(), store.path().join("keys")] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    }
    let unlock_golden = |daemon: &Daemon| {
        daemon
            .keyward_with_passphrases(&["unlock"], &[b"golden fixture passphrase"])
            .success();
    };
    let mut daemon = Daemon::start_with_keystore(store.path(), &[]);
    unlock_golden(&daemon);
    let mut client = daemon.client();
    refused_with(
        client.sign_passphrase("golden-okx"),
        ErrorCode::NoPassphrase,
    );
    client
        .set_passphrase(
            "golden-okx",
            Some(SecretBytes::new(KUCOIN_PASSPHRASE.to_vec())),
        )
        .unwrap();
    let key_file = store.path().join("keys/golden-okx.key");
    assert_eq!(version_of(&key_file), [0, 0, 0, 3]);
    drop(client);
    assert!(daemon.stop().success());

    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    unlock_golden(&daemon);
    let mut client = daemon.client();
    assert_eq!(
        passphrase_header(&mut client, "golden-okx"),
        expected_header(GOLDEN_OKX_SECRET, KUCOIN_PASSPHRASE)
    );
    // The okx key's metadata is as it was (the fixture's golden-ed holds no real Ed25519 key,
    // so only golden-okx is usable).
    let listed = client.list().unwrap();
    let okx = listed.iter().find(|key| key.name == "golden-okx").unwrap();
    assert_eq!(okx.api_key.as_deref(), Some("golden-okx-api-key"));
    assert_eq!(okx.format, Some(keyward_client::PayloadFormat::Okx));
}

/// Whoever may sign with the key may have its passphrase signed, nobody else; setting one
/// is for admins.
#[test]
fn only_a_uid_that_may_sign_with_the_key_gets_its_passphrase_signed() {
    if !can_switch_uid("only_a_uid_that_may_sign_with_the_key_gets_its_passphrase_signed") {
        return;
    }
    let config = ConfigFile::new("[keys.bot-kucoin]\nallow_uids = [65534]\n");
    let daemon = start(&config);
    daemon.open_permissions_to_everyone();
    let mut admin = daemon.client();
    for name in ["bot-kucoin", "other-kucoin"] {
        admin
            .import(
                name,
                Some(Scheme::HmacSha256),
                SecretBytes::new(KUCOIN_SECRET.to_vec()),
                None,
                None,
                None,
            )
            .unwrap();
        admin
            .set_passphrase(name, Some(SecretBytes::new(KUCOIN_PASSPHRASE.to_vec())))
            .unwrap();
    }
    let mut bot = connect_as(NOBODY, &daemon).unwrap();
    assert_eq!(
        bot.client
            .sign_passphrase("bot-kucoin")
            .unwrap()
            .to_base64(),
        expected_header(KUCOIN_SECRET, KUCOIN_PASSPHRASE)
    );
    let message = refused_with(
        bot.client.sign_passphrase("other-kucoin"),
        ErrorCode::Denied,
    );
    assert!(message.contains("may not use key"), "{message}");
    refused_with(
        bot.client
            .set_passphrase("bot-kucoin", Some(SecretBytes::new(b"bot's own".to_vec()))),
        ErrorCode::Denied,
    );
    refused_with(
        bot.client.set_passphrase("bot-kucoin", None),
        ErrorCode::Denied,
    );
    assert_eq!(
        admin.sign_passphrase("bot-kucoin").unwrap().to_base64(),
        expected_header(KUCOIN_SECRET, KUCOIN_PASSPHRASE),
        "the bot's refused request changed the passphrase"
    );
    assert_no_secret(daemon.log().as_bytes(), "the daemon's log");
}

/// `import --api-passphrase-file` is all or nothing: when the daemon refuses the passphrase
/// (here one over its 256-byte limit) after it imported the key, keyward removes the key
/// again, says so in one line with no secret in it and exits 1; nothing of the key is left
/// in `list` or on disk, and the name is free for the next attempt.
#[test]
fn an_import_whose_passphrase_is_refused_leaves_no_key_behind() {
    let store = KeystoreDir::new();
    let daemon = Daemon::start_with_keystore(store.path(), &[]);
    daemon
        .keyward_with_passphrases(&["init"], &[KEYSTORE_PASSPHRASE])
        .success();
    let secret_file = daemon.write("kucoin.secret", KUCOIN_SECRET);
    // 8 × 37 bytes: the client sends it, the daemon refuses it once the key is in.
    let too_long = KUCOIN_PASSPHRASE.repeat(8);
    assert!(too_long.len() > 256);
    let too_long_file = daemon.write("too-long.passphrase", &too_long);
    let import = |passphrase_file: &Path| import_kucoin(&daemon, &secret_file, passphrase_file);

    let cli = import(&too_long_file);
    let line = cli.error_line(1);
    assert_eq!(
        line,
        format!(
            "keyward: storing the passphrase of kucoin failed; the key was not kept: \
             the passphrase must be 1 to 256 bytes, not {}",
            too_long.len()
        )
    );
    assert!(cli.stdout.is_empty(), "{cli:#?}");
    assert_no_secret(cli.stderr.as_bytes(), "keyward's error");

    let listed = daemon.keyward(["list", "--json"]);
    let keys: Value = serde_json::from_slice(&listed.success().stdout).unwrap();
    assert_eq!(keys, Value::Array(vec![]), "a key was left behind");
    assert!(
        !store.path().join("keys/kucoin.key").exists(),
        "its key file was left behind"
    );
    for (path, _) in keyward_tests::keystore::snapshot(store.path()) {
        assert_no_secret(
            &fs::read(store.path().join(&path)).unwrap(),
            "a keystore file",
        );
    }

    // The same import with a passphrase the daemon takes succeeds under the same name.
    let passphrase_file = daemon.write("kucoin.passphrase", KUCOIN_PASSPHRASE);
    import(&passphrase_file).success();
    let mut client = daemon.client();
    assert_eq!(
        passphrase_header(&mut client, "kucoin"),
        expected_header(KUCOIN_SECRET, KUCOIN_PASSPHRASE)
    );
}
