//! Socket activation, sd_notify (READY, STOPPING, STATUS, WATCHDOG) and the credential
//! passphrase, with `systemd-socket-activate` standing in for systemd.

use super::*;

/// The service manager's side of sd_notify: a datagram socket, read by a thread, each
/// message handed over in arrival order.
struct Notifications {
    path: PathBuf,
    messages: Receiver<String>,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: PathBuf) -> Notifications {
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|err| panic!("cannot bind {}: {err}", path.display()));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0; 4096];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if sender.send(text).is_err() {
                            return;
                        }
                    }
                    Err(err)
                        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        // Nobody listens any more: the test is over.
                        if sender.send(String::new()).is_err() {
                            return;
                        }
                    }
                    Err(err) => panic!("reading the notify socket: {err}"),
                }
            }
        });
        Notifications {
            path,
            messages,
            seen: Vec::new(),
        }
    }

    /// Waits for a message with the line `line` (e.g. `READY=1`) and returns it whole.
    fn wait_for(&mut self, line: &str, timeout: Duration) -> Option<String> {
        if let Some(found) = self.seen.iter().find(|m| m.lines().any(|l| l == line)) {
            return Some(found.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if message.is_empty() => {}
                Ok(message) => {
                    let matches = message.lines().any(|l| l == line);
                    self.seen.push(message.clone());
                    if matches {
                        return Some(message);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every message received so far, waiting `settle` for late ones.
    fn all(&mut self, settle: Duration) -> &[String] {
        let deadline = Instant::now() + settle;
        while let Ok(message) = self
            .messages
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if !message.is_empty() {
                self.seen.push(message);
            }
        }
        &self.seen
    }
}

/// `keywardd` started by `systemd-socket-activate -l SOCKET`: it is exec'd (same pid) on the
/// first connection, with LISTEN_FDS=1 and LISTEN_PID set, and only the variables passed
/// with `--setenv` (the environment is otherwise cleared here).
struct Activated {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl Activated {
    /// Listens on `dir/activation/keyward.sock` (and on `extra` more `-l` addresses); the
    /// daemon gets `args`, and `env` through `--setenv`. `flags` go to systemd-socket-activate
    /// before the listen addresses (e.g. `--datagram`).
    fn start(
        program: &Path,
        dir: &Path,
        flags: &[&str],
        extra: &[PathBuf],
        env: &[(&str, OsString)],
        args: &[OsString],
    ) -> Activated {
        let activation = dir.join("activation");
        fs::create_dir(&activation).unwrap();
        let socket = activation.join("keyward.sock");
        let log = dir.join("keywardd.log");
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(flags)
            .arg("--listen")
            .arg(&socket);
        for more in extra {
            command.arg("--listen").arg(more);
        }
        let mut has_log_filter = false;
        for (name, value) in env {
            has_log_filter |= *name == "KEYWARD_LOG";
            let mut assignment = OsString::from(format!("--setenv={name}="));
            assignment.push(value);
            command.arg(assignment);
        }
        if !has_log_filter {
            command.arg("--setenv=KEYWARD_LOG=info");
        }
        let child = command
            .arg(keywardd_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("cannot start systemd-socket-activate");
        let mut activated = Activated {
            child,
            socket,
            log,
            stopped: false,
        };
        // systemd-socket-activate creates the socket, then waits for a connection.
        let started = Instant::now();
        while !activated.socket.exists() {
            if let Some(status) = activated.child.try_wait().unwrap() {
                activated.stopped = true;
                panic!(
                    "systemd-socket-activate exited ({status}): {}",
                    activated.log()
                );
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "systemd-socket-activate did not create {}: {}",
                activated.socket.display(),
                activated.log()
            );
            sleep(Duration::from_millis(10));
        }
        activated
    }

    /// Connects once and hangs up: systemd-socket-activate execs keywardd on the first
    /// connection, and keywardd serves (and closes) this one like any other.
    fn trigger(&self) {
        // The file appears at bind(), a moment before listen(): until then, ECONNREFUSED.
        let started = Instant::now();
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(stream) => return drop(stream),
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
                    assert!(
                        started.elapsed() < READY_TIMEOUT,
                        "the passed socket never listened: {err}"
                    );
                    sleep(Duration::from_millis(10));
                }
                Err(err) => panic!("cannot connect to the passed socket: {err}"),
            }
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// A client whose reads time out, so an unserved socket fails the test instead of
    /// hanging it.
    fn client(&self) -> Client {
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client::from_stream(stream).unwrap_or_else(|err| {
            panic!(
                "the daemon does not answer: {err}; its log:\n{}",
                self.log()
            )
        })
    }

    fn keyward(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(
            Command::new(keyward_bin())
                .arg("--socket")
                .arg(&self.socket)
                .args(args)
                .env_remove("KEYWARD_SOCK"),
            stdin,
        )
    }

    /// Waits for the daemon to exit on its own.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_with_timeout(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("keywardd did not exit; its log:\n{}", self.log()));
        self.stopped = true;
        status
    }

    /// SIGTERM, then waits.
    fn stop(&mut self) -> ExitStatus {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        self.wait(STOP_TIMEOUT)
    }

    /// Waits for READY=1, and fails with the log and the likely reason if it does not come.
    fn ready(&mut self, notify: &mut Notifications) -> String {
        match notify.wait_for("READY=1", READY_TIMEOUT) {
            Some(message) => message,
            None => panic!(
                "no READY=1 on NOTIFY_SOCKET within {READY_TIMEOUT:?} of the first connection \
                 (is daemon/src/systemd.rs wired into keywardd's main?); messages: {:?}; log:\n{}",
                notify.seen,
                self.log()
            ),
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Generates an Ed25519 key through the CLI and returns the file holding its public PEM.
fn generate(activated: &Activated, dir: &Path, name: &str) -> PathBuf {
    let out = activated.keyward(&["generate", name, "--scheme", "ed25519"], None);
    out.success();
    let pem = dir.join(format!("{name}.pub.pem"));
    fs::write(&pem, &out.stdout).unwrap();
    pem
}

#[test]
fn socket_activated_daemon_signs_reports_ready_and_stopping_and_never_makes_a_socket() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    // Where this daemon would bind if it ignored the passed socket: it must stay absent.
    let own = dir.join("own").join("keyward.sock");
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[("NOTIFY_SOCKET", os(&notify.path)), ("HOME", os(dir))],
        &[os("--ephemeral"), os("--socket"), os(&own)],
    );
    daemon.trigger();
    let ready = daemon.ready(&mut notify);
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("0 keys")),
        "READY=1 should carry a STATUS= line with the key count: {ready:?}"
    );
    // READY=1 means served: a new connection is answered at once.
    let mut client = daemon.client();
    client.status().unwrap();

    let public = generate(&daemon, dir, "ed");
    let payload = b"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&timestamp=1700000000000";
    let signature = client.sign("ed", payload).unwrap();
    assert_python_verifies(&Check::new(
        "ed25519",
        &public,
        payload,
        signature.as_bytes(),
    ));

    assert_eq!(
        names_in(&dir.join("activation")),
        ["keyward.sock"],
        "the socket-activated daemon created a file next to the passed socket"
    );
    assert!(
        !own.exists() && !dir.join("own").exists(),
        "the socket-activated daemon bound --socket {} as well",
        own.display()
    );

    drop(client);
    let status = daemon.stop();
    let log = daemon.log();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM; log:\n{log}"
    );
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(5))
            .is_some(),
        "no STOPPING=1 after SIGTERM; messages: {:?}",
        notify.seen
    );
    // The socket belongs to whoever passed it (systemd removes it with RemoveOnStop=).
    assert!(
        daemon.socket.exists(),
        "keywardd removed a socket file it did not create"
    );
    assert!(!log.contains("panicked"), "keywardd panicked:\n{log}");
    let ready_count = notify
        .all(Duration::from_millis(100))
        .iter()
        .filter(|m| m.lines().any(|l| l == "READY=1"))
        .count();
    assert_eq!(
        ready_count, 1,
        "READY=1 must be sent once: {:?}",
        notify.seen
    );
}

/// Initialises a keystore in `dir/keystore` with [`PASSPHRASE`] through a daemon started the
/// ordinary way (not socket-activated), optionally generating an Ed25519 key `key`; returns
/// the keystore and that key's public PEM.
fn keystore_with_one_key(dir: &Path, key: Option<&str>) -> (PathBuf, Option<Vec<u8>>) {
    let keystore = dir.join("keystore");
    let passphrase_file = dir.join("passphrase");
    fs::write(&passphrase_file, PASSPHRASE).unwrap();
    let plain_socket = dir.join("plain").join("keyward.sock");
    let plain = start_plain(dir, &plain_socket, &[&os("--keystore"), &os(&keystore)]);
    let keyward = |args: &[&OsStr]| {
        run(
            Command::new(keyward_bin())
                .arg("--socket")
                .arg(&plain_socket)
                .args(args),
            None,
        )
    };
    keyward(&[
        OsStr::new("init"),
        OsStr::new("--passphrase-file"),
        passphrase_file.as_os_str(),
    ])
    .success();
    let public = key.map(|name| {
        let out = keyward(&[
            OsStr::new("generate"),
            OsStr::new(name),
            OsStr::new("--scheme"),
            OsStr::new("ed25519"),
        ]);
        out.success();
        out.stdout
    });
    stop_plain(plain);
    (keystore, public)
}

/// What systemd's LoadCredentialEncrypted= leaves: a private directory holding a read-only
/// file `passphrase` with `contents`.
fn credentials_dir(dir: &Path, contents: &[u8]) -> PathBuf {
    let credentials = dir.join("credentials");
    fs::create_dir(&credentials).unwrap();
    fs::set_permissions(&credentials, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(credentials.join("passphrase"), contents).unwrap();
    fs::set_permissions(
        credentials.join("passphrase"),
        fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    credentials
}

#[test]
fn credential_passphrase_unlocks_before_ready() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let (keystore, public_pem) = keystore_with_one_key(dir, Some("bot"));
    let public = dir.join("bot.pub.pem");
    fs::write(&public, public_pem.unwrap()).unwrap();
    let credentials = credentials_dir(dir, PASSPHRASE);

    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            ("CREDENTIALS_DIRECTORY", os(&credentials)),
            ("HOME", os(dir)),
        ],
        &[
            os("--keystore"),
            os(&keystore),
            os("--socket"),
            os(dir.join("own").join("keyward.sock")),
        ],
    );
    daemon.trigger();
    let ready = daemon.ready(&mut notify);
    // Asked the moment READY=1 arrived: already unlocked, no window in which a bot is
    // told "locked".
    let status = daemon.keyward(&["status"], None);
    status.success();
    assert!(
        status.stdout_text().contains("state: unlocked"),
        "`keyward status` right after READY=1 is not unlocked: {status:#?}"
    );
    assert!(
        ready.contains("STATUS=unlocked, 1 key"),
        "READY=1 should report the unlocked state and key count: {ready:?}"
    );

    let payload = b"symbol=ETHUSDT&timestamp=1700000000001";
    let signature = daemon.client().sign("bot", payload).unwrap();
    assert_python_verifies(&Check::new(
        "ed25519",
        &public,
        payload,
        signature.as_bytes(),
    ));

    assert!(daemon.stop().success(), "log:\n{}", daemon.log());
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(5))
            .is_some(),
        "no STOPPING=1: {:?}",
        notify.seen
    );
}

#[test]
fn a_wrong_credential_passphrase_exits_without_ready() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let (keystore, _) = keystore_with_one_key(dir, None);
    let credentials = credentials_dir(dir, b"not the passphrase\n");
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            ("CREDENTIALS_DIRECTORY", os(&credentials)),
            ("HOME", os(dir)),
        ],
        &[os("--keystore"), os(&keystore)],
    );
    daemon.trigger();
    let status = daemon.wait(READY_TIMEOUT);
    assert_eq!(status.code(), Some(1), "log:\n{}", daemon.log());
    assert!(
        daemon.log().contains("cannot unlock"),
        "the log should say why: {}",
        daemon.log()
    );
    let messages = notify.all(Duration::from_millis(200));
    assert!(
        !messages.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 was sent although the unlock failed: {messages:?}"
    );
}

#[test]
fn passed_sockets_keywardd_cannot_serve_are_refused() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    // A datagram socket.
    let tmp = temp_dir();
    let mut daemon = Activated::start(
        &activate,
        tmp.path(),
        &["--datagram"],
        &[],
        &[("HOME", os(tmp.path()))],
        &[
            os("--ephemeral"),
            os("--socket"),
            os(tmp.path().join("own.sock")),
        ],
    );
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"wake up", &daemon.socket)
        .unwrap();
    let status = daemon.wait(READY_TIMEOUT);
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("datagram") && log.contains("listening Unix stream socket"),
        "{log}"
    );

    // Two sockets: keywardd serves exactly one.
    let tmp = temp_dir();
    let mut daemon = Activated::start(
        &activate,
        tmp.path(),
        &[],
        &[tmp.path().join("second.sock")],
        &[("HOME", os(tmp.path()))],
        &[
            os("--ephemeral"),
            os("--socket"),
            os(tmp.path().join("own.sock")),
        ],
    );
    daemon.trigger();
    let status = daemon.wait(READY_TIMEOUT);
    let log = daemon.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("LISTEN_FDS=2"), "{log}");
}

#[test]
fn watchdog_pings_at_half_of_watchdog_usec() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            // 0.4 s: a ping every 0.2 s.
            ("WATCHDOG_USEC", os("400000")),
            ("HOME", os(dir)),
        ],
        &[os("--ephemeral")],
    );
    daemon.trigger();
    daemon.ready(&mut notify);
    sleep(Duration::from_millis(1100));
    let pings = notify
        .all(Duration::from_millis(50))
        .iter()
        .filter(|m| m.as_str() == "WATCHDOG=1")
        .count();
    assert!(
        (3..=9).contains(&pings),
        "expected about 5 WATCHDOG=1 in 1.1 s at 0.2 s intervals, got {pings}: {:?}",
        notify.seen
    );
    assert!(daemon.stop().success());
}

/// The watchdog ping proves that a request can be served (issue 19 §5): it follows a Hello
/// through the daemon's own socket. With the socket gone no bot can connect, and the pings
/// stop although the runtime is alive, so systemd restarts the daemon.
#[test]
fn watchdog_pings_stop_when_the_socket_cannot_serve() {
    let Some(activate) = tool("systemd-socket-activate") else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let mut notify = Notifications::bind(dir.join("notify.sock"));
    let mut daemon = Activated::start(
        &activate,
        dir,
        &[],
        &[],
        &[
            ("NOTIFY_SOCKET", os(&notify.path)),
            ("WATCHDOG_USEC", os("400000")),
            ("HOME", os(dir)),
        ],
        &[os("--ephemeral")],
    );
    daemon.trigger();
    daemon.ready(&mut notify);
    sleep(Duration::from_millis(700));
    let pings = |notify: &mut Notifications, settle| {
        notify
            .all(settle)
            .iter()
            .filter(|m| m.as_str() == "WATCHDOG=1")
            .count()
    };
    let before = pings(&mut notify, Duration::from_millis(50));
    assert!(before >= 2, "no pings while serving: {:?}", notify.seen);

    fs::remove_file(&daemon.socket).unwrap();
    // A probe in flight when the file went may still land.
    let settled = pings(&mut notify, Duration::from_millis(300));
    let after = pings(&mut notify, Duration::from_millis(1000)) - settled;
    assert_eq!(
        after, 0,
        "WATCHDOG=1 went on with nothing able to connect: {:?}",
        notify.seen
    );
    let log = daemon.log();
    assert!(log.contains("watchdog: cannot get an answer"), "{log}");
    assert_eq!(
        log.matches("watchdog: cannot get an answer").count(),
        1,
        "{log}"
    );
    assert!(daemon.stop().success());
}
