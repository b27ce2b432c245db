//! The shipped unit files: hardening score, `systemd-analyze verify`, sysusers and tmpfiles in a
//! temporary root, the example config, and the memlock limit the unit grants.

use super::*;
use keyward_tests::Daemon;

/// The "Overall exposure level" figure `systemd-analyze security` printed.
fn exposure(out: &Output) -> f64 {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    text.lines()
        .find_map(|line| line.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in the output: {out:#?}"))
}

fn security(analyze: &Path, unit: &Path, threshold: u32) -> Output {
    run(
        Command::new(analyze)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={threshold}"))
            .arg(unit),
        None,
    )
}

/// `--threshold=N` compares on systemd's internal 0-100 scale (exposure × 10) and fails
/// when the exposure is above N: 9 passes 0.9 and fails 1.0, i.e. "below 1.0" (SAFE band).
const SAFE_THRESHOLD: u32 = 9;

#[test]
fn shipped_service_scores_in_the_safe_band() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let service = unit("keywardd.service");
    let out = security(&analyze, &service, SAFE_THRESHOLD);
    let score = exposure(&out);
    eprintln!("keywardd.service exposure: {score}");
    assert_eq!(
        out.code,
        Some(0),
        "exposure {score} is above the SAFE band (threshold {SAFE_THRESHOLD}): {out:#?}"
    );
    assert!(score < 1.0, "exposure {score} is not below 1.0");

    // The threshold really is enforced: a unit above it fails...
    assert_ne!(security(&analyze, &service, 0).code, Some(0));
    // ...and so does a weakened copy of ours at the CI threshold.
    let tmp = temp_dir();
    let weak = tmp.path().join("keywardd.service");
    let text = fs::read_to_string(&service).unwrap();
    let weakened: String = text
        .lines()
        .filter(|line| {
            ![
                "SystemCallFilter=",
                "PrivateNetwork=",
                "ProtectSystem=",
                "CapabilityBoundingSet=",
                "RestrictAddressFamilies=",
            ]
            .iter()
            .any(|setting| line.starts_with(setting))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    fs::write(&weak, weakened).unwrap();
    let out = security(&analyze, &weak, SAFE_THRESHOLD);
    assert_ne!(
        out.code,
        Some(0),
        "a unit without its sandbox scored {}; the CI check would not catch a weaker unit",
        exposure(&out)
    );
}

/// Settings that would score better and silently break keywardd's access control.
#[test]
fn service_sandbox_keeps_what_peer_credentials_need() {
    let text = fs::read_to_string(unit("keywardd.service")).unwrap();
    let setting = |name: &str| {
        // The last assignment wins, as in systemd.
        text.lines()
            .rev()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(str::trim)
    };
    // A user namespace maps every uid but the service's own to `nobody`, SO_PEERCRED
    // included: every bot would look like uid 65534 to the policy.
    assert!(
        !matches!(setting("PrivateUsers"), Some("yes" | "true" | "1" | "on")),
        "PrivateUsers= would turn every peer's uid into 65534"
    );
    // keywardd reads a peer's supplementary groups from /proc/PID/status; hiding other
    // users' processes would drop them, and allow_gids would stop matching.
    assert!(
        !matches!(
            setting("ProtectProc"),
            Some("invisible" | "noaccess" | "ptraceable")
        ),
        "ProtectProc= would hide bots' /proc/PID/status and with it their groups"
    );
    assert_eq!(setting("Type"), Some("notify"));
    let exec = setting("ExecStart").unwrap();
    assert!(exec.starts_with("/usr/local/bin/keywardd ") && exec.contains("--require-mlock"));
    assert!(setting("LimitMEMLOCK").is_some());
    assert!(setting("WatchdogSec").is_some());

    // One socket path everywhere.
    let socket = fs::read_to_string(unit("keywardd.socket")).unwrap();
    assert!(socket.contains("\nListenStream=/run/keyward/keyward.sock\n"));
    assert!(
        socket.contains("\nSocketMode=0660\n")
            && socket.contains("\nSocketGroup=keyward-clients\n")
    );
    let tmpfiles = fs::read_to_string(unit("keyward.tmpfiles")).unwrap();
    assert!(tmpfiles.contains("\nd /run/keyward "));
}

/// `systemctl reload` runs the unit's `ExecReload=` lines in order and fails at the first that
/// fails (issue 19 §1): the config is checked before the daemon is asked, so a broken file
/// fails the reload; a good one reaches the running daemon, which answers only once the new
/// policy is in force; and a file broken after the check fails the reload too, from the
/// daemon's own answer.
#[test]
fn exec_reload_checks_the_config_then_waits_for_the_daemons_reload() {
    let text = fs::read_to_string(unit("keywardd.service")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("ExecReload="))
        .collect();
    let config_in_exec_start = text
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .and_then(|exec| exec.split("--config ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let socket_in_unit = "/run/keyward/keyward.sock";
    assert_eq!(
        lines,
        [
            format!("/usr/local/bin/keywardd --check-config {config_in_exec_start}").as_str(),
            format!("/usr/local/bin/keyward --socket {socket_in_unit} reload").as_str(),
        ],
        "ExecReload= must check the file ExecStart= reads, then ask the daemon on its socket"
    );

    let tmp = temp_dir();
    let config = tmp.path().join("keywardd.toml");
    fs::write(&config, "[keys.a]\nallow_uids = [0]\n").unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    // Runs the lines as systemd does (in order, the first failure fails the reload), with the
    // built binaries, the config in the temp dir and the test daemon's socket. Returns the
    // failing line's stderr.
    let reload = |lines: &[&str]| -> Result<(), String> {
        for line in lines {
            let line = line
                .replace("/usr/local/bin/keywardd", keywardd_bin().to_str().unwrap())
                .replace("/usr/local/bin/keyward", keyward_bin().to_str().unwrap())
                .replace(config_in_exec_start, config.to_str().unwrap())
                .replace(socket_in_unit, daemon.socket().to_str().unwrap());
            let mut words = line.split_whitespace();
            let program = words.next().unwrap();
            let args: Vec<&str> = words.collect();
            let out = run(Command::new(program).args(&args), None);
            if out.code != Some(0) {
                return Err(out.stderr.trim().to_owned());
            }
        }
        Ok(())
    };
    let reloads = || stats_reloads(&daemon);
    fs::write(&config, "[keys.a]\nallow_uids = [\"no-such-user-kw\"]\n").unwrap();
    let err = reload(&lines).unwrap_err();
    assert!(err.contains("keywardd.toml"), "{err}");
    assert_eq!(
        reloads(),
        (0, 0),
        "the daemon was asked with a broken config"
    );
    fs::write(&config, "[keys.a]\nallow_uids = [0, 1]\n").unwrap();
    reload(&lines).unwrap();
    assert_eq!(reloads(), (1, 0), "a good config did not reach the daemon");
    // Broken between the check and the daemon's reload: the daemon's answer fails it.
    fs::write(&config, "[keys.a]\nallow_uids = [\"no-such-user-kw\"]\n").unwrap();
    let err = reload(&lines[1..]).unwrap_err();
    assert!(err.contains("keywardd.toml"), "{err}");
    assert_eq!(reloads(), (1, 1));
}

/// The daemon's (reloads, reload failures) counters, from `keyward stats`.
fn stats_reloads(daemon: &Daemon) -> (u64, u64) {
    let out = daemon.keyward(["stats"]);
    out.success();
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        stats["reloads"].as_u64().unwrap(),
        stats["reload_failures"].as_u64().unwrap(),
    )
}

/// A temporary root with the host's systemd units (for sysinit.target and friends), the
/// binaries where the units say, and `/bin/kill` for ExecReload=.
fn install_root(root: &Path) -> bool {
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("sysinit.target").exists());
    let Some(host_units) = host_units else {
        eprintln!("SKIPPED: no systemd unit directory with sysinit.target on this host");
        return false;
    };
    fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(
        Command::new("cp")
            .arg("-a")
            .arg(host_units)
            .arg(root.join("usr/lib/systemd/system")),
        None,
    )
    .success();
    fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    fs::copy(keywardd_bin(), root.join("usr/local/bin/keywardd")).unwrap();
    fs::copy(keyward_bin(), root.join("usr/local/bin/keyward")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    let kill = ["/usr/bin/kill", "/bin/kill"]
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .expect("no kill binary on this host");
    fs::copy(kill, root.join("usr/bin/kill")).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    true
}

fn verify(analyze: &Path, extra: &[&str], units: &[PathBuf]) -> Output {
    run(
        Command::new(analyze)
            .args(["verify", "--man=no"])
            .args(extra)
            .args(units),
        None,
    )
}

/// `systemd-analyze verify` exits 0 on many problems (an unknown setting, a value it cannot
/// parse): it only warns. So a clean result is exit 0 *and* nothing said about our units.
#[track_caller]
fn assert_clean(out: &Output, what: &str) {
    let complaints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| line.contains("keyward"))
        .collect();
    assert!(
        out.code == Some(0) && complaints.is_empty(),
        "systemd-analyze verify on {what}: {out:#?}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify_when_installed() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let tmp = temp_dir();
    let root = tmp.path().join("root");
    if !install_root(&root) {
        return;
    }
    let system = root.join("etc/systemd/system");
    let root_arg = format!("--root={}", root.display());
    for name in [
        "keywardd.service",
        "keywardd.socket",
        "keyward-user.service",
        "keyward-user.socket",
    ] {
        fs::copy(unit(name), system.join(name)).unwrap();
    }
    let out = verify(
        &analyze,
        &[&root_arg],
        &[
            system.join("keywardd.service"),
            system.join("keywardd.socket"),
        ],
    );
    assert_clean(&out, "the system units");

    // The user units, as system units in the root: settings, dependencies and the binary.
    let out = verify(
        &analyze,
        &[&root_arg],
        &[
            system.join("keyward-user.service"),
            system.join("keyward-user.socket"),
        ],
    );
    assert_clean(&out, "the user units in the temporary root");

    // And in user mode (which cannot take --root): ExecStart pointed at the built binary.
    let user = tmp.path().join("user");
    let runtime = tmp.path().join("runtime");
    fs::create_dir_all(&user).unwrap();
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let service = fs::read_to_string(unit("keyward-user.service"))
        .unwrap()
        .replace("/usr/local/bin/keywardd", keywardd_bin().to_str().unwrap());
    fs::write(user.join("keyward-user.service"), service).unwrap();
    fs::copy(
        unit("keyward-user.socket"),
        user.join("keyward-user.socket"),
    )
    .unwrap();
    let out = run(
        Command::new(&analyze)
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(["verify", "--man=no", "--user"])
            .arg(user.join("keyward-user.service"))
            .arg(user.join("keyward-user.socket")),
        None,
    );
    assert_clean(&out, "the user units in user mode");

    // verify does check the path in ExecStart=: without the binary it fails.
    fs::remove_file(root.join("usr/local/bin/keywardd")).unwrap();
    let out = verify(&analyze, &[&root_arg], &[system.join("keywardd.service")]);
    assert!(
        out.code != Some(0) && out.stderr.contains("/usr/local/bin/keywardd"),
        "verify passed with no keywardd installed: {out:#?}"
    );
}

#[test]
fn sysusers_and_tmpfiles_create_the_user_and_private_directories() {
    let (Some(sysusers), Some(tmpfiles)) = (tool("systemd-sysusers"), tool("systemd-tmpfiles"))
    else {
        return;
    };
    if !is_root() {
        eprintln!("SKIPPED: creating files owned by another user needs root");
        return;
    }
    let tmp = temp_dir();
    let root = tmp.path();
    fs::create_dir(root.join("etc")).unwrap();
    let root_arg = format!("--root={}", root.display());
    // Absolute paths: both tools resolve relative ones inside the root.
    let sysusers_file = fs::canonicalize(unit("keyward.sysusers")).unwrap();
    let tmpfiles_file = fs::canonicalize(unit("keyward.tmpfiles")).unwrap();
    run(
        Command::new(sysusers).arg(&root_arg).arg(sysusers_file),
        None,
    )
    .success();
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|line| line.starts_with("keyward:"))
        .unwrap_or_else(|| panic!("no keyward user in {passwd}"))
        .split(':')
        .collect();
    let uid: u32 = entry[2].parse().unwrap();
    let gid: u32 = entry[3].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system uid: {entry:?}");
    assert_eq!(entry[5], "/var/lib/keyward");
    let groups = fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        groups
            .lines()
            .any(|line| line.starts_with(&format!("keyward:x:{gid}:"))),
        "no keyward group"
    );
    // The bots' group (issue 19 §7): the socket's, not the daemon's, and nobody in it yet.
    let clients: Vec<&str> = groups
        .lines()
        .find(|line| line.starts_with("keyward-clients:"))
        .unwrap_or_else(|| panic!("no keyward-clients group in {groups}"))
        .split(':')
        .collect();
    let clients_gid: u32 = clients[2].parse().unwrap();
    assert!(clients_gid != gid && clients_gid < 1000, "{clients:?}");
    assert_eq!(clients[3], "", "{clients:?}");

    run(
        Command::new(tmpfiles)
            .arg(&root_arg)
            .arg("--create")
            .arg(tmpfiles_file),
        None,
    )
    .success();
    for (path, mode, owner, group) in [
        // The bots reach the socket; only the daemon reads the policy in /etc/keyward.
        ("run/keyward", 0o750, uid, clients_gid),
        ("var/lib/keyward", 0o700, uid, gid),
        ("var/log/keyward", 0o700, uid, gid),
        ("etc/keyward", 0o750, 0, gid),
    ] {
        let meta = fs::metadata(root.join(path)).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (mode, owner, group),
            "/{path}: mode, owner, group"
        );
    }
}

/// The example policy file in systemd/ is valid for this keywardd, the commented-out key
/// table included (with names that exist on any host substituted).
#[test]
fn example_config_is_accepted() {
    let tmp = temp_dir();
    let dir = tmp.path();
    let audit = dir.join("audit.jsonl");
    let text = fs::read_to_string(unit("keywardd.toml"))
        .unwrap()
        .replace("\"keyward\"", "\"root\"")
        .replace("\"keyward-clients\"", "\"root\"")
        .replace("\"bot-binance\"", "\"root\"")
        .replace("/var/log/keyward/audit.jsonl", audit.to_str().unwrap())
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            // Uncomment the example key table (and only settings, not prose).
            Some(rest) if rest.starts_with("[keys.") || rest.contains(" = ") => rest.to_owned(),
            _ => line.to_owned(),
        })
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    assert!(text.contains("\n[keys.\"binance-main\"]\n"), "{text}");
    let config = dir.join("keywardd.toml");
    fs::write(&config, text).unwrap();
    let socket = dir.join("run").join("keyward.sock");
    let daemon = start_plain(
        dir,
        &socket,
        &[&os("--config"), &os(&config), &os("--ephemeral")],
    );
    stop_plain(daemon);
    assert!(
        audit.exists(),
        "the audit log named in the example was not opened"
    );
}

/// `LimitMEMLOCK=` of the shipped unit lets keywardd lock its memory with
/// `--require-mlock` as an unprivileged user, under `MALLOC_ARENA_MAX=2` like the unit.
/// Raising the hard limit needs CAP_SYS_RESOURCE; without it the test says so and passes.
#[test]
fn unit_memlock_limit_lets_an_unprivileged_keywardd_lock_its_memory() {
    let (Some(prlimit), Some(setpriv)) = (tool("prlimit"), tool("setpriv")) else {
        return;
    };
    if !is_root() {
        eprintln!("SKIPPED: switching to another user needs root");
        return;
    }
    let text = fs::read_to_string(unit("keywardd.service")).unwrap();
    let limit = text
        .lines()
        .find_map(|line| line.strip_prefix("LimitMEMLOCK="))
        .expect("no LimitMEMLOCK= in keywardd.service");
    let bytes: u64 = match limit.strip_suffix('M') {
        Some(mib) => mib.parse::<u64>().unwrap() * 1024 * 1024,
        None => match limit.strip_suffix('G') {
            Some(gib) => gib.parse::<u64>().unwrap() * 1024 * 1024 * 1024,
            None => limit.parse().unwrap(),
        },
    };
    let probe = run(
        Command::new(&prlimit)
            .arg(format!("--memlock={bytes}:{bytes}"))
            .arg("true"),
        None,
    );
    if probe.code != Some(0) {
        eprintln!(
            "SKIPPED: cannot raise RLIMIT_MEMLOCK to {limit} here (no CAP_SYS_RESOURCE): {}",
            probe.stderr.trim()
        );
        return;
    }

    let tmp = temp_dir();
    let dir = tmp.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let program = dir.join("keywardd");
    fs::copy(keywardd_bin(), &program).unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let socket = home.join("run").join("keyward.sock");
    let log = dir.join("keywardd.log");
    let mut child = Command::new(&prlimit)
        .arg(format!("--memlock={bytes}:{bytes}"))
        .arg(&setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&program)
        .args(["--ephemeral", "--require-mlock", "--socket"])
        .arg(&socket)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("MALLOC_ARENA_MAX", "2")
        .env("KEYWARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "keywardd refused LimitMEMLOCK={limit} ({status}): {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < READY_TIMEOUT, "keywardd did not listen");
        sleep(Duration::from_millis(10));
    }
    // Keys, an RSA burst and the blocking pool's threads: the allocations that would hit
    // the limit if it were too small (a refused mmap aborts the daemon).
    let keyward = |args: &[&str], stdin: Option<&[u8]>| {
        run(
            Command::new(keyward_bin())
                .arg("--socket")
                .arg(&socket)
                .args(args),
            stdin,
        )
    };
    for i in 0..20 {
        keyward(
            &["generate", &format!("ed{i}"), "--scheme", "ed25519"],
            None,
        )
        .success();
    }
    keyward(&["generate", "rsa", "--scheme", "rsa-4096"], None).success();
    let mut client = Client::connect(&socket).unwrap();
    let payloads: Vec<Vec<u8>> = (0..64).map(|i| format!("n={i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    client.sign_batch("rsa", &refs).unwrap();
    // A thread per connection, its stack locked in full: 1,000 idle connections (the cap is
    // 1,024) must fit under the limit too, and a connection made after them still signs.
    let idle: Vec<Client> = (0..1000)
        .map(|i| {
            Client::connect(&socket).unwrap_or_else(|err| {
                panic!(
                    "connection {i} under LimitMEMLOCK={limit} failed ({err}): {}",
                    fs::read_to_string(&log).unwrap_or_default()
                )
            })
        })
        .collect();
    let mut last = Client::connect(&socket).unwrap();
    last.sign_batch("rsa", &refs[..2]).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let locked = status
        .lines()
        .find(|line| line.starts_with("VmLck:"))
        .unwrap()
        .to_owned();
    eprintln!(
        "under LimitMEMLOCK={limit}, {} idle connections: {locked}",
        idle.len()
    );
    assert!(!locked.ends_with(" 0 kB"), "memory is not locked: {locked}");
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_with_timeout(&mut child, STOP_TIMEOUT).expect("keywardd did not stop");
    assert!(
        status.success(),
        "{status}: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
}
