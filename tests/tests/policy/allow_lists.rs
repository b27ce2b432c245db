//! 1. The socket group and per-key allow lists.

use super::*;

#[test]
fn with_a_socket_group_only_members_connect_and_each_signs_only_its_own_keys() {
    if !can_switch_uid("with_a_socket_group_only_members_connect_and_each_signs_only_its_own_keys")
    {
        return;
    }
    let config = ConfigFile::new(&format!(
        "[daemon]\nsocket_group = {SOCKET_GID}\n\n\
         [keys.a]\nallow_uids = [65534]\n\n\
         [keys.b]\nallow_gids = [{BOT_GID}]\n"
    ));
    let daemon = start(&config);
    let me = nix::unistd::geteuid().as_raw();

    let socket = fs::metadata(daemon.socket()).unwrap();
    assert!(socket.file_type().is_socket());
    assert_eq!(
        (socket.mode() & 0o7777, socket.uid(), socket.gid()),
        (0o660, me, SOCKET_GID),
        "the socket must be 0660, owned by the daemon and the socket group"
    );
    let dir = fs::metadata(daemon.socket().parent().unwrap()).unwrap();
    assert_eq!(
        (dir.mode() & 0o7777, dir.uid(), dir.gid()),
        (0o750, me, SOCKET_GID),
        "the socket's directory must be 0750, owned by the daemon and the socket group"
    );

    // Key a: uid 65534. Key b: group 4343. Key c: no table, so only the daemon's uid.
    let public = [
        ("a", daemon.generate("a", "ed25519")),
        ("b", daemon.generate("b", "ed25519")),
        ("c", daemon.generate("c", "ed25519")),
    ];
    let keyward = keyward_for_everyone(&daemon);

    // Not in the socket group: the kernel refuses the connect (EACCES on the 0750
    // directory), the CLI says so with exit 4, and the daemon never hears of it — even for
    // uid 65534, whom key a's policy allows: the group is the first gate.
    let outsiders = [
        User {
            uid: 65531,
            gid: 65531,
            groups: &[],
        },
        NOBODY,
        User {
            uid: 65531,
            gid: 65531,
            groups: &[BOT_GID],
        },
    ];
    let log_before = daemon.log();
    for user in outsiders {
        for args in [
            &["list"][..],
            &["sign", "a", "symbol=BTCUSDT&timestamp=1"],
            &["generate", "x", "--scheme", "ed25519"],
        ] {
            let out = keyward_as(user, &keyward, &daemon, args, None);
            let line = out.error_line(4);
            assert!(
                line.contains("permission denied"),
                "{user:?} {args:?}: expected EACCES, got {line}"
            );
            assert!(out.stdout.is_empty());
        }
        let refused = connect_as(user, &daemon).expect_err("an outsider connected");
        assert!(
            matches!(refused, Error::Disconnected | Error::Io(_)),
            "{refused:?}"
        );
    }
    assert_eq!(
        daemon.log(),
        log_before,
        "the daemon logged something for peers its socket's permissions keep out"
    );

    // A member of the socket group with no right to any key reaches the daemon, which
    // refuses it at once and logs that.
    let idle_member = User {
        uid: 65530,
        gid: 65530,
        groups: &[SOCKET_GID],
    };
    let out = keyward_as(idle_member, &keyward, &daemon, &["list"], None);
    assert!(
        out.error_line(4)
            .contains("uid 65530 may not use this keywardd"),
        "{out:#?}"
    );
    assert!(
        daemon.log()[log_before.len()..].contains("refused a connection"),
        "{}",
        daemon.log()
    );

    // Members: by uid (a), by supplementary group (b), by primary group (b).
    let by_uid = User {
        uid: 65534,
        gid: 65534,
        groups: &[SOCKET_GID],
    };
    let by_supplementary = User {
        uid: 65533,
        gid: 65533,
        groups: &[SOCKET_GID, BOT_GID],
    };
    let by_primary = User {
        uid: 65532,
        gid: BOT_GID,
        groups: &[SOCKET_GID],
    };
    let payload = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000";
    let mut signed = Vec::new();
    for (user, own) in [(by_uid, "a"), (by_supplementary, "b"), (by_primary, "b")] {
        let out = keyward_as(
            user,
            &keyward,
            &daemon,
            &["sign", own, "--encoding", "raw"],
            Some(payload),
        );
        out.success();
        signed.push((own, out.stdout.clone()));

        for other in ["a", "b", "c"].into_iter().filter(|k| *k != own) {
            let out = keyward_as(user, &keyward, &daemon, &["sign", other], Some(payload));
            let line = out.error_line(4);
            assert!(
                line.contains(&format!("uid {} may not use key \"{other}\"", user.uid)),
                "{user:?} signing {other}: {line}"
            );
            assert!(out.stdout.is_empty());
            let out = keyward_as(user, &keyward, &daemon, &["pubkey", other], None);
            assert!(out.error_line(4).contains(&format!("\"{other}\"")));
        }
        keyward_as(user, &keyward, &daemon, &["pubkey", own], None).success();

        let listed = keyward_as(user, &keyward, &daemon, &["list", "--json"], None);
        assert_eq!(
            listed_names(&listed),
            [own],
            "{user:?} must see exactly its own key"
        );
    }
    let checks: Vec<Check<'_>> = signed
        .iter()
        .map(|(key, signature)| {
            let pem = &public.iter().find(|(name, _)| name == key).unwrap().1;
            Check::new("ed25519", pem, payload, signature)
        })
        .collect();
    assert_python_verifies_all(&checks);

    // Every admin request is refused to both kinds of member, by name.
    let pass = daemon.write_world_readable("pass", b"members-may-not-init-this\n");
    let pass2 = daemon.write_world_readable("pass2", b"members-may-not-set-this\n");
    let secret = daemon.write_world_readable("secret", b"members-may-not-import-this-secret");
    let admin = keyward_tests::admin_commands(&secret, &pass, &pass2, "a");
    for user in [by_uid, by_supplementary] {
        for (args, kind) in &admin {
            let out = keyward_as(user, &keyward, &daemon, args, None);
            let line = out.error_line(4);
            assert!(
                line.contains(&format!("uid {} may not {kind}", user.uid)),
                "{user:?} {args:?}: {line}"
            );
        }
    }
    // Nothing changed: the same three keys, and the daemon still serves its own uid.
    assert_eq!(
        listed_names(&daemon.keyward(["list", "--json"])),
        ["a", "b", "c"]
    );
    daemon.sign("c", payload, &[]);
}

/// User and group names are accepted where numbers are: `nobody` / `nogroup` (Debian).
#[test]
fn user_and_group_names_in_the_config_resolve() {
    if !can_switch_uid("user_and_group_names_in_the_config_resolve") {
        return;
    }
    if nix::unistd::Group::from_name("nogroup")
        .ok()
        .flatten()
        .is_none()
    {
        eprintln!("SKIPPED user_and_group_names_in_the_config_resolve: no group `nogroup`");
        return;
    }
    let config = ConfigFile::new(
        "[daemon]\nsocket_group = \"nogroup\"\n\
         [keys.by-name]\nallow_uids = [\"nobody\"]\n\
         [keys.by-group]\nallow_gids = [\"nogroup\"]\n",
    );
    let daemon = start(&config);
    assert_eq!(fs::metadata(daemon.socket()).unwrap().gid(), 65534);
    daemon.generate("by-name", "ed25519");
    daemon.generate("by-group", "ed25519");
    daemon.generate("root-only", "ed25519");
    let keyward = keyward_for_everyone(&daemon);
    // 65533 in group nogroup (primary): reaches the socket, may use by-group only.
    let member = User {
        uid: 65533,
        gid: 65534,
        groups: &[],
    };
    for (user, own) in [
        (NOBODY, &["by-group", "by-name"][..]),
        (member, &["by-group"]),
    ] {
        let listed = keyward_as(user, &keyward, &daemon, &["list", "--json"], None);
        assert_eq!(listed_names(&listed), own, "{user:?}");
        for key in own {
            keyward_as(user, &keyward, &daemon, &["sign", key, "x"], None).success();
        }
        keyward_as(user, &keyward, &daemon, &["sign", "root-only", "x"], None).error_line(4);
    }
}
