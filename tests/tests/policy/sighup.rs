//! 5. SIGHUP.

use super::*;

#[test]
fn sighup_swaps_the_allow_lists_and_a_broken_config_keeps_the_old_policy() {
    if !can_switch_uid("sighup_swaps_the_allow_lists_and_a_broken_config_keeps_the_old_policy") {
        return;
    }
    let config = ConfigFile::new("[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534]\n");
    let daemon = start(&config);
    let public_a = daemon.generate("a", "ed25519");
    daemon.generate("b", "ed25519");
    let keyward = keyward_for_everyone(&daemon);
    daemon.open_permissions_to_everyone();
    let pid = daemon_pid(&daemon);
    let payload = b"symbol=BTCUSDT&timestamp=1700000000000";
    let sign = |key: &str| {
        keyward_as(
            NOBODY,
            &keyward,
            &daemon,
            &["sign", key, "--encoding", "raw"],
            Some(payload),
        )
    };
    let signs = |key: &str| {
        let out = sign(key);
        out.success();
        out.stdout
    };
    let refused = |key: &str| {
        let out = sign(key);
        assert!(
            out.error_line(4)
                .contains(&format!("may not use key \"{key}\"")),
            "{out:#?}"
        );
    };

    // A bot that keeps its connection open across the reload.
    let mut held = connect_as(NOBODY, &daemon).unwrap();
    signs("b");
    refused("a");
    held.client.sign("b", payload).unwrap();
    refused_with(held.client.sign("a", payload), ErrorCode::Denied);

    // Allow 65534 on a instead of b.
    config.set("[keys.a]\nallow_uids = [65534]\n\n[keys.b]\nallow_uids = []\n");
    kill(pid, Signal::SIGHUP).unwrap();
    wait_for_log(&daemon, "SIGHUP: policy reloaded", 1);
    let signature = signs("a");
    refused("b");
    // Policy is checked per request, not per connection: the open connection follows it.
    held.client.sign("a", payload).unwrap();
    refused_with(held.client.sign("b", payload), ErrorCode::Denied);
    assert_eq!(
        listed_names(&keyward_as(
            NOBODY,
            &keyward,
            &daemon,
            &["list", "--json"],
            None
        )),
        ["a"]
    );

    // Broken configs, each of which would give b back (and take a away) if any part of it
    // were applied: each is rejected whole, with the mistake named in the log.
    let broken = [
        (
            "[keys.a]\nallow_uids = []\n\n[keys.b\nallow_uids = [65534]\n",
            "line 4",
        ),
        (
            "[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534]\nrate_per_second = 5\n",
            "unknown field `rate_per_second`",
        ),
        (
            "[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534, \"no-such-user-kw\"]\n",
            "keys.b.allow_uids: unknown user \"no-such-user-kw\"",
        ),
    ];
    for (round, (text, mistake)) in broken.into_iter().enumerate() {
        config.set(text);
        kill(pid, Signal::SIGHUP).unwrap();
        let log = wait_for_log(
            &daemon,
            "SIGHUP: the new config is invalid, the old policy stays in force: ",
            round + 1,
        );
        let line = log
            .lines()
            .filter(|line| line.contains("SIGHUP: the new config is invalid"))
            .nth(round)
            .unwrap();
        assert!(line.contains(" ERROR "), "{line}");
        assert!(
            line.contains(config.path()),
            "the error names the file: {line}"
        );
        assert!(line.contains(mistake), "expected {mistake:?} in: {line}");
        signs("a");
        refused("b");
        held.client.sign("a", payload).unwrap();
        refused_with(held.client.sign("b", payload), ErrorCode::Denied);
    }
    assert_eq!(daemon.log().matches("SIGHUP: policy reloaded").count(), 1);

    // A good config after the bad ones is applied again: reload still works.
    config.set("[keys.a]\nallow_uids = []\n\n[keys.b]\nallow_uids = [65534]\n");
    kill(pid, Signal::SIGHUP).unwrap();
    wait_for_log(&daemon, "SIGHUP: policy reloaded", 2);
    signs("b");
    refused("a");
    assert_python_verifies_all(&[Check::new("ed25519", &public_a, payload, &signature)]);
}
