//! One benchmark run: start the processes, measure, judge the targets.

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keyward_client::{Client, KeyKind, Scheme, SecretBytes};

use crate::agent::{self, AgentConnection, AgentKeyKind, SshAgent};
use crate::bare::BareSigner;
use crate::daemon::{Keywardd, locate_keywardd};
use crate::echo::EchoServer;
use crate::keys::{BenchScheme, LocalKey};
use crate::measure::{Probe, Summary, interleave, interleave_with, median};
use crate::noise::{Noise, Snapshot};
use crate::python::PythonBench;
use crate::report::{
    AdminLoad, AgentLatency, Batch, Contention, IdleConnections, Machine, PythonColumn, PythonRow,
    Report, Rss, SchemeLatency, Target, ThreadRate, Throughput,
};

/// What is signed: a Binance order query string, the typical payload.
const PAYLOAD: &[u8] = b"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=20000&recvWindow=5000&timestamp=1700000000000";

/// Payloads per `sign_batch` in the batch comparison.
const BATCH: usize = 100;

/// How many iterations of what, and for how long.
#[derive(Debug)]
pub(crate) struct Plan {
    quick: bool,
    keywardd: Option<PathBuf>,
    /// Rounds the interleaved measurements are split into.
    rounds: usize,
    floor_iterations: usize,
    /// Ed25519, HMAC, ECDSA.
    fast_iterations: usize,
    rsa2048_iterations: usize,
    /// `None`: RSA-4096 is skipped.
    rsa4096_iterations: Option<usize>,
    agent_ed25519_iterations: usize,
    agent_rsa_iterations: usize,
    batch_iterations: usize,
    /// Ed25519 signatures timed while RSA signs on other connections.
    contention_iterations: usize,
    /// Ed25519 and RSA-2048 signatures timed alone and (as many again) during admin work.
    admin_ed25519_iterations: usize,
    admin_rsa_iterations: usize,
    /// Rounds of (alone, during admin work): each waits for the admin work to finish.
    admin_rounds: usize,
    /// The key generated, again and again, as admin work.
    admin_generate: KeyKind,
    /// Idle connections held open at once.
    idle_connections: usize,
    throughput_window: Duration,
    throughput_rounds: usize,
}

impl Plan {
    pub(crate) fn full(keywardd: Option<PathBuf>) -> Plan {
        Plan {
            quick: false,
            keywardd,
            rounds: 10,
            floor_iterations: 5000,
            fast_iterations: 2000,
            rsa2048_iterations: 1000,
            rsa4096_iterations: Some(300),
            agent_ed25519_iterations: 2000,
            agent_rsa_iterations: 300,
            batch_iterations: 300,
            contention_iterations: 2000,
            admin_ed25519_iterations: 2000,
            admin_rsa_iterations: 500,
            admin_rounds: 6,
            admin_generate: KeyKind::Rsa4096,
            idle_connections: 1000,
            throughput_window: Duration::from_millis(500),
            throughput_rounds: 4,
        }
    }

    pub(crate) fn quick(keywardd: Option<PathBuf>) -> Plan {
        Plan {
            quick: true,
            keywardd,
            rounds: 2,
            floor_iterations: 100,
            fast_iterations: 30,
            rsa2048_iterations: 6,
            rsa4096_iterations: None,
            agent_ed25519_iterations: 10,
            agent_rsa_iterations: 4,
            batch_iterations: 4,
            contention_iterations: 30,
            admin_ed25519_iterations: 30,
            admin_rsa_iterations: 6,
            admin_rounds: 2,
            admin_generate: KeyKind::Rsa2048,
            idle_connections: 100,
            throughput_window: Duration::from_millis(60),
            throughput_rounds: 1,
        }
    }

    fn iterations(&self, scheme: BenchScheme) -> Option<usize> {
        match scheme {
            BenchScheme::Ed25519 | BenchScheme::HmacSha256 | BenchScheme::EcdsaP256 => {
                Some(self.fast_iterations)
            }
            BenchScheme::Rsa2048 => Some(self.rsa2048_iterations),
            BenchScheme::Rsa4096 => self.rsa4096_iterations,
        }
    }
}

/// The keys both sides sign with.
struct SchemeSetup {
    local: LocalKey,
    name: String,
    iterations: usize,
}

/// ssh-agent with one key of each kind compared.
struct AgentSetup {
    agent: SshAgent,
    requests: Vec<(AgentKeyKind, agent::SignRequest)>,
}

pub(crate) fn run(plan: &Plan) -> anyhow::Result<Report> {
    let program = locate_keywardd(plan.keywardd.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("keyward-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut notes = Vec::new();
    let load_before = load_average();
    let start = Snapshot::now();

    let mut daemon = Keywardd::start(&program, dir.path(), "main")?;
    let mut echo = EchoServer::start(dir.path())?;
    let agent = match agent::missing_tool() {
        None => Some(start_agent(dir.path())?),
        Some(tool) if plan.quick => {
            notes.push(format!(
                "{tool} is not installed: ssh-agent comparison skipped"
            ));
            None
        }
        Some(tool) => anyhow::bail!(
            "{tool} is not installed; the full benchmark compares with OpenSSH's ssh-agent \
             (install openssh-client, or run --quick)"
        ),
    };

    let schemes = setup_keys(plan, &daemon)?;
    let mut bare_signer = BareSigner::start(dir.path(), schemes.iter().map(|s| &s.local))?;
    let mut python = match PythonBench::start(
        daemon.socket(),
        &BenchScheme::Ed25519.key_name(),
        &BenchScheme::HmacSha256.key_name(),
        (plan.fast_iterations / 10).max(3),
    ) {
        Ok(python) => {
            notes.extend(python.notes.iter().cloned());
            Some(python)
        }
        Err(err) if plan.quick => {
            notes.push(format!("the Python client column is skipped: {err:#}"));
            None
        }
        Err(err) => {
            return Err(err.context(
                "the full benchmark measures the Python client (python3 and \
                 python/benchmarks/roundtrip.py; pip install cryptography for its in-process rows)",
            ));
        }
    };
    let mut python_samples: std::collections::BTreeMap<String, Vec<Duration>> =
        std::collections::BTreeMap::new();

    // ---- latency: every per-operation figure, interleaved round by round ----
    let mut ping = echo.connect()?;
    let mut agent_connections = Vec::new();
    if let Some(setup) = &agent {
        for _ in &setup.requests {
            agent_connections.push(setup.agent.connect()?);
        }
    }
    let mut clients: Vec<Client> = Vec::new();
    let mut bare_connections = Vec::new();
    // RSA's long signatures are where a sleeping client's wake-up shows (bare.rs).
    let mut polling_connections = Vec::new();
    for scheme in &schemes {
        clients.push(daemon.connect()?);
        let mut bare = bare_signer.connect(scheme.local.scheme)?;
        bare.sign(PAYLOAD)?;
        scheme.local.check(PAYLOAD, bare.signature())?;
        bare_connections.push(bare);
        let is_rsa = matches!(
            scheme.local.scheme,
            BenchScheme::Rsa2048 | BenchScheme::Rsa4096
        );
        polling_connections.push(if is_rsa {
            let mut polling = bare_signer.connect(scheme.local.scheme)?;
            polling.sign_polling(PAYLOAD)?;
            scheme.local.check(PAYLOAD, polling.signature())?;
            Some(polling)
        } else {
            None
        });
    }
    let (floor, latency, agent_summaries) = {
        let mut probes = vec![Probe::new(plan.floor_iterations, || ping.round_trip())];
        // Where each scheme's probes are: keywardd, in-process, bare signer, polling.
        let mut slots = Vec::new();
        for (((scheme, client), bare), polling) in schemes
            .iter()
            .zip(clients.iter_mut())
            .zip(bare_connections.iter_mut())
            .zip(polling_connections.iter_mut())
        {
            let first = probes.len();
            let name = scheme.name.as_str();
            probes.push(Probe::new(scheme.iterations, move || {
                client.sign(name, PAYLOAD)?;
                Ok(())
            }));
            let local = &scheme.local;
            probes.push(Probe::new(scheme.iterations, move || {
                local.sign(PAYLOAD)?;
                Ok(())
            }));
            probes.push(Probe::new(scheme.iterations, move || bare.sign(PAYLOAD)));
            let polling = polling.as_mut().map(|polling| {
                probes.push(Probe::new(scheme.iterations, move || {
                    polling.sign_polling(PAYLOAD)
                }));
                probes.len() - 1
            });
            slots.push((first, polling));
        }
        let agents_from = probes.len();
        if let Some(setup) = &agent {
            for ((kind, request), connection) in
                setup.requests.iter().zip(agent_connections.iter_mut())
            {
                let iterations = match kind {
                    AgentKeyKind::Ed25519 => plan.agent_ed25519_iterations,
                    AgentKeyKind::Rsa2048 => plan.agent_rsa_iterations,
                };
                probes.push(Probe::new(iterations, move || connection.sign(request)));
            }
        }
        let fast = plan.fast_iterations;
        interleave_with(&mut probes, plan.rounds, |round, rounds| {
            if let Some(python) = python.as_mut() {
                let block = fast / rounds + usize::from(round < fast % rounds);
                for (name, samples) in python.run(block)? {
                    python_samples.entry(name).or_default().extend(samples);
                }
            }
            Ok(())
        })?;
        let summaries: Vec<Summary> = probes.iter().map(Probe::summary).collect();
        let floor = summaries[0];
        let latency: Vec<SchemeLatency> = schemes
            .iter()
            .zip(&slots)
            .map(|(scheme, &(first, polling))| SchemeLatency {
                scheme: scheme.local.scheme.label(),
                keywardd: summaries[first],
                in_process: summaries[first + 1],
                bare_signer: summaries[first + 2],
                bare_signer_polling: polling.map(|i| summaries[i]),
                // Measured next, pair by pair.
                beyond_bare_paired_us: f64::NAN,
            })
            .collect();
        let agent_summaries: Vec<Summary> = summaries[agents_from..].to_vec();
        (floor, latency, agent_summaries)
    };
    daemon.check_alive()?;
    let ssh_agent = agent.as_ref().map(|setup| {
        setup
            .requests
            .iter()
            .zip(&agent_summaries)
            .map(|((kind, _), summary)| {
                let scheme = match kind {
                    AgentKeyKind::Ed25519 => BenchScheme::Ed25519,
                    AgentKeyKind::Rsa2048 => BenchScheme::Rsa2048,
                }
                .label();
                let keywardd_p50_us = latency
                    .iter()
                    .find(|l| l.scheme == scheme)
                    .map_or(0.0, |l| l.keywardd.p50_us);
                AgentLatency {
                    scheme,
                    ssh_agent: *summary,
                    keywardd_p50_us,
                    speedup: summary.p50_us / keywardd_p50_us,
                }
            })
            .collect::<Vec<_>>()
    });
    drop(agent);
    let mut latency = latency;
    for ((scheme, client), (bare, entry)) in schemes
        .iter()
        .zip(clients.iter_mut())
        .zip(bare_connections.iter_mut().zip(latency.iter_mut()))
    {
        entry.beyond_bare_paired_us = paired_difference(scheme, client, bare)?;
    }
    let python = python
        .take()
        .map(|python| python_column(&python, &python_samples, &latency));

    let batch = measure_batch(plan, &daemon)?;
    let throughput = measure_throughput(plan, &daemon, &schemes)?;
    let contention = measure_contention(plan, &daemon, &schemes)?;
    daemon.check_alive()?;
    let benchmark_daemon_peak_kib = daemon.peak_rss_kib()?;
    drop(daemon);

    drop(ping);
    drop(echo);
    drop(bare_connections);
    drop(polling_connections);
    drop(bare_signer);

    let admin = measure_admin(plan, &program, dir.path(), &schemes)?;
    let rss = measure_rss(&program, dir.path(), benchmark_daemon_peak_kib)?;
    let idle = measure_idle(plan, &program, dir.path())?;
    if !idle.locked {
        notes.push(
            "keywardd could not lock its memory here (not root, RLIMIT_MEMLOCK too small): \
             the idle connections' memlock figure is the mapped size (VmSize), which \
             mlockall would lock"
                .to_owned(),
        );
    }
    // Every child has been waited for by now, so their CPU time counts as ours.
    let noise = Snapshot::now().noise_since(&start, cores());
    if noise.other_cpu_percent > 10.0 || noise.steal_percent > 10.0 {
        notes.push(format!(
            "other work took {:.0}% of the CPU during this run (and the hypervisor stole {:.0}%): \
             ratios that depend on both cores (throughput scaling) are unreliable; run again \
             on a quieter machine",
            noise.other_cpu_percent, noise.steal_percent
        ));
    }

    let mut report = Report {
        mode: if plan.quick { "quick" } else { "full" },
        machine: machine(load_before, noise),
        keywardd: program.display().to_string(),
        floor,
        latency,
        ssh_agent,
        python,
        throughput,
        contention,
        admin,
        batch,
        rss,
        idle,
        targets: Vec::new(),
        notes,
    };
    report.targets = targets(&report);
    Ok(report)
}

/// The Python rows, each compared with the Rust client's round trip for its scheme when it
/// is a round trip itself.
fn python_column(
    python: &PythonBench,
    samples: &std::collections::BTreeMap<String, Vec<Duration>>,
    latency: &[SchemeLatency],
) -> PythonColumn {
    let rows = python
        .rows
        .iter()
        .map(|row| {
            let summary = Summary::of(samples.get(&row.name).map_or(&[][..], Vec::as_slice));
            let rust = latency.iter().find(|l| l.scheme == row.scheme);
            let via_keywardd = row.via == "keywardd";
            PythonRow {
                name: row.name.clone(),
                scheme: row.scheme.clone(),
                via: row.via.clone(),
                summary,
                rust_client_p50_us: rust.filter(|_| via_keywardd).map(|l| l.keywardd.p50_us),
                over_rust_client_p50: rust
                    .filter(|_| via_keywardd)
                    .map(|l| summary.p50_us / l.keywardd.p50_us),
            }
        })
        .collect();
    PythonColumn {
        python: python.python.clone(),
        rows,
    }
}

fn start_agent(dir: &Path) -> anyhow::Result<AgentSetup> {
    let agent = SshAgent::start(dir)?;
    let mut connection = agent.connect()?;
    let mut requests = Vec::new();
    for kind in [AgentKeyKind::Ed25519, AgentKeyKind::Rsa2048] {
        agent.add_key(dir, kind)?;
        let blob = connection.key_blob(kind)?;
        let request = AgentConnection::sign_request(&blob, PAYLOAD, kind);
        // One signature now, so that a refusal fails here rather than mid-measurement.
        connection.sign(&request)?;
        requests.push((kind, request));
    }
    Ok(AgentSetup { agent, requests })
}

/// Makes each scheme's key in-process, imports it into the daemon, and checks that the
/// daemon's signature is one of that same key.
fn setup_keys(plan: &Plan, daemon: &Keywardd) -> anyhow::Result<Vec<SchemeSetup>> {
    let mut admin = daemon.connect()?;
    let mut schemes = Vec::new();
    for scheme in BenchScheme::ALL {
        let Some(iterations) = plan.iterations(scheme) else {
            continue;
        };
        let local = scheme.generate()?;
        let name = scheme.key_name();
        local.import(&mut admin, &name)?;
        let signature = admin.sign(&name, PAYLOAD)?;
        local.check(PAYLOAD, signature.as_bytes())?;
        schemes.push(SchemeSetup {
            local,
            name,
            iterations,
        });
    }
    Ok(schemes)
}

/// Requests per block of [`paired_difference`], after one untimed request that lets the
/// server's thread settle into back-to-back serving.
const PAIRED_BLOCK: usize = 10;

/// What keywardd adds beyond the bare signer, from blocks taken side by side: a block of
/// keywardd round trips, then one of the bare signer (the other way round every second
/// round), each block's median, and the median over the rounds of (keywardd − bare). A drift
/// of the machine's speed, which moves two p50s taken over the whole run by 100 µs and more
/// on a 2 ms RSA-4096 signature, cancels within each pair of adjacent blocks. Blocks rather
/// than single alternating requests: alternating puts each server's thread to sleep during
/// the other's request, and on a virtual machine waking it then costs tens of µs (bare.rs),
/// a cost neither pays when serving a bot back to back.
fn paired_difference(
    scheme: &SchemeSetup,
    client: &mut Client,
    bare: &mut crate::bare::BareConnection,
) -> anyhow::Result<f64> {
    let mut block = |keywardd: bool| -> anyhow::Result<f64> {
        let mut samples = Vec::with_capacity(PAIRED_BLOCK);
        for i in 0..=PAIRED_BLOCK {
            let start = Instant::now();
            if keywardd {
                client.sign(&scheme.name, PAYLOAD)?;
            } else {
                bare.sign(PAYLOAD)?;
            }
            if i > 0 {
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok(median(&samples))
    };
    let rounds = (scheme.iterations / PAIRED_BLOCK).max(3);
    let mut differences = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (daemon, bare) = if round % 2 == 0 {
            let daemon = block(true)?;
            (daemon, block(false)?)
        } else {
            let bare = block(false)?;
            (block(true)?, bare)
        };
        differences.push(daemon - bare);
    }
    Ok(median(&differences))
}

/// One `sign_batch` of 100 HMAC payloads against 100 single `sign` round trips, interleaved.
fn measure_batch(plan: &Plan, daemon: &Keywardd) -> anyhow::Result<Batch> {
    let name = BenchScheme::HmacSha256.key_name();
    let payloads: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            format!(
                "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=20000&recvWindow=5000&timestamp={}",
                1_700_000_000_000u64 + i as u64
            )
            .into_bytes()
        })
        .collect();
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut batch_client = daemon.connect()?;
    let mut single_client = daemon.connect()?;
    let signatures = batch_client.sign_batch(&name, &slices)?;
    for (payload, signature) in slices.iter().zip(&signatures) {
        anyhow::ensure!(
            single_client.sign(&name, payload)? == *signature,
            "sign_batch and sign disagree"
        );
    }
    let mut probes = [
        Probe::new(plan.batch_iterations, || {
            batch_client.sign_batch(&name, &slices)?;
            Ok(())
        }),
        Probe::new(plan.batch_iterations, || {
            for payload in &slices {
                single_client.sign(&name, payload)?;
            }
            Ok(())
        }),
    ];
    interleave(&mut probes, plan.rounds)?;
    let batch = probes[0].summary();
    let singles = probes[1].summary();
    let per_second = |summary: &Summary| BATCH as f64 / (summary.p50_us / 1e6);
    Ok(Batch {
        scheme: BenchScheme::HmacSha256.label(),
        payloads: BATCH,
        batch,
        singles,
        batch_sigs_per_s: per_second(&batch),
        singles_sigs_per_s: per_second(&singles),
        ratio: singles.p50_us / batch.p50_us,
    })
}

/// Closed-loop throughput of RSA-2048 and Ed25519 with 1, 2 and 2 × cores client threads,
/// one connection each, next to the same threads signing in-process with the same key (the
/// ceiling this machine allows); the configurations take turns, round after round.
fn measure_throughput(
    plan: &Plan,
    daemon: &Keywardd,
    schemes: &[SchemeSetup],
) -> anyhow::Result<Vec<Throughput>> {
    let cores = cores();
    let mut thread_counts = vec![1, 2, 2 * cores];
    thread_counts.sort_unstable();
    thread_counts.dedup();
    let measured: Vec<&SchemeSetup> = [BenchScheme::Rsa2048, BenchScheme::Ed25519]
        .iter()
        .filter_map(|wanted| schemes.iter().find(|s| s.local.scheme == *wanted))
        .collect();
    // rates[scheme][threads] = (keywardd rates, in-process rates), one per round.
    let mut rates = vec![vec![(Vec::new(), Vec::new()); thread_counts.len()]; measured.len()];
    for _ in 0..plan.throughput_rounds {
        for (s, scheme) in measured.iter().enumerate() {
            for (t, threads) in thread_counts.iter().enumerate() {
                let rate = throughput(
                    daemon.socket(),
                    &scheme.name,
                    *threads,
                    plan.throughput_window,
                )?;
                rates[s][t].0.push(rate);
                let rate = in_process_throughput(&scheme.local, *threads, plan.throughput_window)?;
                rates[s][t].1.push(rate);
            }
        }
    }
    Ok(measured
        .iter()
        .zip(rates)
        .map(|(scheme, by_threads)| Throughput {
            scheme: scheme.local.scheme.label(),
            threads: thread_counts
                .iter()
                .zip(by_threads)
                .map(|(threads, (keywardd, in_process))| ThreadRate {
                    threads: *threads,
                    sigs_per_s: median(&keywardd),
                    in_process_sigs_per_s: median(&in_process),
                })
                .collect(),
        })
        .collect())
}

/// Ed25519 round trips on one connection while 2 other connections sign with the slowest
/// RSA key back to back (RSA-4096; RSA-2048 in quick mode). Not a target of the issue: it
/// guards against making RSA fast by letting it hold up every other key (a bot's Ed25519
/// order waiting behind another bot's RSA signatures).
fn measure_contention(
    plan: &Plan,
    daemon: &Keywardd,
    schemes: &[SchemeSetup],
) -> anyhow::Result<Contention> {
    let find = |wanted: BenchScheme| schemes.iter().find(|s| s.local.scheme == wanted);
    let rsa = find(BenchScheme::Rsa4096)
        .or_else(|| find(BenchScheme::Rsa2048))
        .context("no RSA key to load the daemon with")?;
    let ed25519 = find(BenchScheme::Ed25519).context("no Ed25519 key")?;
    let mut loaders = Vec::new();
    for _ in 0..2 {
        let mut client = daemon.connect()?;
        client.sign(&rsa.name, PAYLOAD)?;
        loaders.push(client);
    }
    let mut client = daemon.connect()?;
    let stop = AtomicBool::new(false);
    // RSA signatures finished by the load threads so far. The probes start only once the
    // load is running, and the window closes only after at least one more RSA signature:
    // on a busy machine (or in --quick mode, with few probes) the probes could otherwise
    // finish before a load thread is even scheduled, and measure no contention at all.
    let loaded = AtomicU64::new(0);
    let (summary, rsa_signatures, elapsed) = std::thread::scope(|scope| {
        let (stop, loaded) = (&stop, &loaded);
        let workers: Vec<_> = loaders
            .into_iter()
            .map(|mut loader| {
                let name = rsa.name.as_str();
                scope.spawn(move || -> anyhow::Result<()> {
                    while !stop.load(Ordering::Relaxed) {
                        loader.sign(name, PAYLOAD)?;
                        loaded.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        let wait_for_load = |at_least: u64| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while loaded.load(Ordering::Relaxed) < at_least && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait_for_load(2);
        let start = Instant::now();
        let before = loaded.load(Ordering::Relaxed);
        let mut probes = [Probe::new(plan.contention_iterations, || {
            client.sign(&ed25519.name, PAYLOAD)?;
            Ok(())
        })];
        let measured = interleave(&mut probes, 1);
        wait_for_load(before + 1);
        let rsa_signatures = loaded.load(Ordering::Relaxed) - before;
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("an RSA load thread panicked"))??;
        }
        measured?;
        anyhow::Ok((probes[0].summary(), rsa_signatures, elapsed))
    })?;
    Ok(Contention {
        load: format!(
            "2 connections signing {} back to back",
            rsa.local.scheme.label()
        ),
        rsa_scheme: rsa.local.scheme.label(),
        ed25519: summary,
        load_sigs_per_s: rsa_signatures as f64 / elapsed.as_secs_f64(),
    })
}

/// Signatures per second of `threads` threads signing with `key` in-process for `window`.
fn in_process_throughput(key: &LocalKey, threads: usize, window: Duration) -> anyhow::Result<f64> {
    let signers = vec![key; threads];
    signing_rate(signers, window, |key| key.sign(PAYLOAD).map(drop))
}

/// Signatures per second of `threads` threads signing back to back for `window`.
fn throughput(socket: &Path, key: &str, threads: usize, window: Duration) -> anyhow::Result<f64> {
    // Connect and warm up before any thread starts, so that a failure cannot leave the
    // others waiting at the barrier.
    let mut clients = Vec::new();
    for _ in 0..threads {
        let mut client = Client::connect(socket)?;
        client.sign(key, PAYLOAD)?;
        clients.push(client);
    }
    signing_rate(clients, window, |client| {
        client.sign(key, PAYLOAD).map(drop).map_err(Into::into)
    })
}

/// Runs one thread per signer, all released together by a barrier, each calling `sign`
/// back to back for `window`; returns the total signatures per second.
fn signing_rate<S: Send>(
    signers: Vec<S>,
    window: Duration,
    sign: impl Fn(&mut S) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<f64> {
    let barrier = Barrier::new(signers.len());
    std::thread::scope(|scope| {
        let workers: Vec<_> = signers
            .into_iter()
            .map(|mut signer| {
                let (barrier, sign) = (&barrier, &sign);
                scope.spawn(move || -> anyhow::Result<f64> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut count = 0u64;
                    while start.elapsed() < window {
                        sign(&mut signer)?;
                        count += 1;
                    }
                    Ok(count as f64 / start.elapsed().as_secs_f64())
                })
            })
            .collect();
        let mut total = 0.0;
        for worker in workers {
            total += worker
                .join()
                .map_err(|_| anyhow::anyhow!("a throughput thread panicked"))??;
        }
        Ok(total)
    })
}

/// The keystore passphrase of the admin-work daemon (a throwaway keystore in the run's
/// temporary directory).
const ADMIN_PASSPHRASE: &[u8] = b"keyward-bench admin passphrase";

/// Ed25519 and RSA-2048 round trips alone, and while two admin connections keep the daemon
/// busy: one generating a key (RSA-4096; RSA-2048 in quick mode) and removing it, the other
/// unlocking (Argon2id). Rounds alternate the two conditions; each "alone" block starts
/// once the admin requests in flight have been answered.
fn measure_admin(
    plan: &Plan,
    program: &Path,
    dir: &Path,
    schemes: &[SchemeSetup],
) -> anyhow::Result<AdminLoad> {
    let find = |wanted: BenchScheme| {
        schemes
            .iter()
            .find(|s| s.local.scheme == wanted)
            .with_context(|| format!("no {} key", wanted.label()))
    };
    let (ed25519, rsa) = (find(BenchScheme::Ed25519)?, find(BenchScheme::Rsa2048)?);
    let keystore = dir.join("admin-keystore");
    let daemon = Keywardd::start_with(program, dir, "admin", Some(&keystore), &[])?;
    let mut setup = daemon.connect()?;
    setup.init(SecretBytes::new(ADMIN_PASSPHRASE.to_vec()))?;
    ed25519.local.import(&mut setup, &ed25519.name)?;
    rsa.local.import(&mut setup, &rsa.name)?;
    drop(setup);

    // One connection per probe: alone and during admin work on connections of their own.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(daemon.connect()?);
    }
    let mut generator = daemon.connect()?;
    let mut unlocker = daemon.connect()?;
    let kind = plan.admin_generate;
    let working = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let in_flight = AtomicUsize::new(0);
    let (generated, unlocked) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (summaries, elapsed) = std::thread::scope(|scope| {
        let (working, stop, in_flight) = (&working, &stop, &in_flight);
        // Each admin connection repeats its work while `working` is set.
        let admin_loop = |op: &mut dyn FnMut(usize) -> anyhow::Result<()>| -> anyhow::Result<()> {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                if !working.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                in_flight.fetch_add(1, Ordering::SeqCst);
                let result = op(n);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                result?;
                n += 1;
            }
            Ok(())
        };
        let generated = &generated;
        let generating = scope.spawn(move || {
            admin_loop(&mut |n| {
                let name = format!("bench-admin-{n}");
                generator.generate(&name, kind, None, None)?;
                generator.remove(&name)?;
                generated.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        });
        let unlocked = &unlocked;
        let unlocking = scope.spawn(move || {
            admin_loop(&mut |_| {
                unlocker.unlock(SecretBytes::new(ADMIN_PASSPHRASE.to_vec()))?;
                unlocked.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        });
        let measured = (|| -> anyhow::Result<(Vec<Summary>, Duration)> {
            let mut probes: Vec<Probe<'_>> = clients
                .iter_mut()
                .enumerate()
                .map(|(i, client)| {
                    // Probes 0 and 1 alone, 2 and 3 during admin work.
                    let (name, iterations) = if i % 2 == 0 {
                        (ed25519.name.as_str(), plan.admin_ed25519_iterations)
                    } else {
                        (rsa.name.as_str(), plan.admin_rsa_iterations)
                    };
                    Probe::new(iterations, move || {
                        client.sign(name, PAYLOAD)?;
                        Ok(())
                    })
                })
                .collect();
            for probe in &mut probes {
                probe.warm_up(5)?;
            }
            let rounds = plan.admin_rounds.max(1);
            let mut during = Duration::ZERO;
            for round in 0..rounds {
                working.store(false, Ordering::SeqCst);
                while in_flight.load(Ordering::SeqCst) > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                for probe in &mut probes[..2] {
                    probe.record(probe.block(round, rounds))?;
                }
                working.store(true, Ordering::SeqCst);
                // Both admin requests sent: one runs, the other waits for the admin lock.
                let asked = Instant::now();
                while in_flight.load(Ordering::SeqCst) < 2 {
                    anyhow::ensure!(
                        asked.elapsed() < Duration::from_secs(60),
                        "the admin load did not start (a failed admin request?)"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_millis(5));
                let start = Instant::now();
                for probe in &mut probes[2..] {
                    probe.record(probe.block(round, rounds))?;
                }
                during += start.elapsed();
            }
            Ok((probes.iter().map(Probe::summary).collect(), during))
        })();
        working.store(false, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        for worker in [generating, unlocking] {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("an admin load thread panicked"))??;
        }
        measured
    })?;
    Ok(AdminLoad {
        work: format!(
            "1 connection generating {} keys (and removing them), 1 unlocking (Argon2id)",
            kind.name()
        ),
        generated: generated.load(Ordering::SeqCst),
        unlocked: unlocked.load(Ordering::SeqCst),
        measured_during_ms: elapsed.as_secs_f64() * 1e3,
        ed25519_alone: summaries[0],
        rsa2048_alone: summaries[1],
        ed25519_during: summaries[2],
        rsa2048_during: summaries[3],
    })
}

/// The shipped system unit: the memlock limit and the environment keywardd runs with.
const UNIT: &str = include_str!("../../systemd/keywardd.service");

/// A `Key=value` line of the unit.
fn unit_setting(key: &str) -> impl Iterator<Item = &'static str> + use<> {
    let prefix = format!("{key}=");
    UNIT.lines()
        .filter_map(move |line| line.strip_prefix(prefix.as_str()))
}

/// The unit's `LimitMEMLOCK=` in bytes (`768M` and the like).
fn unit_memlock_limit() -> anyhow::Result<u64> {
    let value = unit_setting("LimitMEMLOCK")
        .next()
        .context("the unit sets no LimitMEMLOCK=")?
        .trim();
    let (digits, unit) = value.split_at(value.trim_end_matches(char::is_alphabetic).len());
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        other => anyhow::bail!("LimitMEMLOCK={value}: unknown unit {other:?}"),
    };
    Ok(digits.parse::<u64>()? << shift)
}

/// RSS and locked memory of a daemon started with the unit's environment, before and after
/// `plan.idle_connections` clients connect, greet it and go idle.
fn measure_idle(plan: &Plan, program: &Path, dir: &Path) -> anyhow::Result<IdleConnections> {
    let env: Vec<(&str, &str)> = unit_setting("Environment")
        .filter_map(|assignment| assignment.split_once('='))
        .collect();
    let mut daemon = Keywardd::start_with(program, dir, "idle", None, &env)?;
    let mut first = daemon.connect()?;
    first.generate("idle-ed25519", KeyKind::Ed25519, None, None)?;
    first.sign("idle-ed25519", PAYLOAD)?;
    let rss_before_kib = daemon.rss_kib()?;
    let mut idle = Vec::with_capacity(plan.idle_connections);
    for _ in 0..plan.idle_connections {
        idle.push(daemon.connect()?);
    }
    // Every connection is served: a last one still signs.
    first.sign("idle-ed25519", PAYLOAD)?;
    std::thread::sleep(Duration::from_millis(100));
    let rss_after_kib = daemon.rss_kib()?;
    let locked_kib = daemon.locked_kib()?;
    let memlock_kib = if locked_kib > 0 {
        locked_kib
    } else {
        daemon.mapped_kib()?
    };
    drop(idle);
    Ok(IdleConnections {
        connections: plan.idle_connections,
        environment: env
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" "),
        rss_before_kib,
        rss_after_kib,
        locked: locked_kib > 0,
        memlock_kib,
        limit_memlock_bytes: unit_memlock_limit()?,
    })
}

/// RSS of a fresh daemon with 1 key, then with 100 (mostly Ed25519 and HMAC, some RSA-2048
/// and ECDSA), each key having signed at least once.
fn measure_rss(program: &Path, dir: &Path, benchmark_daemon_peak_kib: u64) -> anyhow::Result<Rss> {
    let mut daemon = Keywardd::start(program, dir, "rss")?;
    let mut client = daemon.connect()?;
    client.generate("rss-ed25519-0", KeyKind::Ed25519, None, None)?;
    for _ in 0..100 {
        client.sign("rss-ed25519-0", PAYLOAD)?;
    }
    let one_key_kib = daemon.rss_kib()?;

    let (ed25519, hmac, ecdsa, rsa) = (45, 45, 5, 5);
    let mut names = vec!["rss-ed25519-0".to_owned()];
    for i in 1..ed25519 {
        let name = format!("rss-ed25519-{i}");
        client.generate(&name, KeyKind::Ed25519, None, None)?;
        names.push(name);
    }
    for i in 0..hmac {
        let name = format!("rss-hmac-{i}");
        let mut secret = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| anyhow::anyhow!("no randomness"))?;
        client.import(
            &name,
            Some(Scheme::HmacSha256),
            SecretBytes::new(secret),
            None,
            None,
            None,
        )?;
        names.push(name);
    }
    for i in 0..ecdsa {
        let name = format!("rss-ecdsa-{i}");
        client.generate(&name, KeyKind::EcdsaP256, None, None)?;
        names.push(name);
    }
    for i in 0..rsa {
        let name = format!("rss-rsa-{i}");
        client.generate(&name, KeyKind::Rsa2048, None, None)?;
        names.push(name);
    }
    anyhow::ensure!(names.len() == 100, "the RSS mix is not 100 keys");
    let listed = client.list()?.len();
    anyhow::ensure!(listed == 100, "the daemon lists {listed} keys, not 100");
    for name in &names {
        client.sign(name, PAYLOAD)?;
    }
    let hundred_keys_kib = daemon.rss_kib()?;
    Ok(Rss {
        one_key_kib,
        hundred_keys_kib,
        hundred_keys_mix: format!(
            "{ed25519} ed25519 + {hmac} hmac-sha256 + {ecdsa} ecdsa-p256 + {rsa} rsa-2048"
        ),
        benchmark_daemon_peak_kib,
    })
}

/// The targets of issue 5, judged on this run's figures.
fn targets(report: &Report) -> Vec<Target> {
    let mut targets = Vec::new();
    let floor = report.floor.p50_us;
    let ed25519 = report.latency.iter().find(|l| l.scheme == "ed25519");
    for latency in &report.latency {
        let scheme = latency.scheme;
        if scheme.starts_with("rsa-") {
            // Issue 15: what the daemon adds to an RSA signature is at most what it adds to
            // an Ed25519 one plus a socket floor (no hand-off to another thread).
            if let Some(ed25519) = ed25519 {
                targets.push(Target::at_most(
                    format!("{scheme} overhead p50 ≤ ed25519 overhead p50 + floor"),
                    latency.overhead_p50_us(),
                    ed25519.overhead_p50_us() + floor,
                    "µs",
                ));
                // The same, measured from the bare signer instead of in-process: the idle
                // client's wake-up, which grows with the time it waits and which every
                // out-of-process signer pays (bare.rs), is left out on both sides.
                targets.push(Target::at_most(
                    format!("{scheme} keywardd − bare signer (paired) ≤ ed25519's + floor"),
                    latency.beyond_bare_paired_us,
                    ed25519.beyond_bare_paired_us + floor,
                    "µs",
                ));
            }
            if scheme == "rsa-4096" {
                targets.push(Target::at_most(
                    format!("{scheme} p50 round trip / in-process p50"),
                    latency.keywardd.p50_us / latency.in_process.p50_us,
                    1.10,
                    "×",
                ));
            }
        } else {
            targets.push(Target::at_most(
                format!("{scheme} p50 round trip ≤ in-process p50 + 3 × floor"),
                latency.keywardd.p50_us,
                latency.in_process.p50_us + 3.0 * floor,
                "µs",
            ));
        }
    }
    if let Some(rsa) = report.throughput.iter().find(|t| t.scheme == "rsa-2048") {
        targets.push(Target::at_least(
            "rsa-2048 throughput, 2 threads / 1 thread".into(),
            rsa.scaling(),
            1.7,
            "×",
        ));
    }
    targets.push(Target::at_least(
        format!(
            "sign_batch({}) / {} single round trips, {}",
            report.batch.payloads, report.batch.payloads, report.batch.scheme
        ),
        report.batch.ratio,
        5.0,
        "×",
    ));
    for agent in report.ssh_agent.iter().flatten() {
        let limit = if agent.scheme == "ed25519" { 10.0 } else { 1.5 };
        targets.push(Target::at_least(
            format!("{} speed-up over ssh-agent (p50)", agent.scheme),
            agent.speedup,
            limit,
            "×",
        ));
    }
    for row in report.python.iter().flat_map(|python| &python.rows) {
        if let Some(ratio) = row.over_rust_client_p50 {
            targets.push(Target::at_most(
                format!(
                    "{} Python client p50 / Rust client p50 (issue 11)",
                    row.scheme
                ),
                ratio,
                1.5,
                "×",
            ));
        }
    }
    targets.push(Target::at_most(
        "RSS with 100 keys".into(),
        report.rss.hundred_keys_kib as f64 / 1024.0,
        32.0,
        "MiB",
    ));
    // Issue 15: nobody waits behind another key's RSA signature, or behind admin work.
    let contention = &report.contention;
    if let Some(rsa) = report
        .latency
        .iter()
        .find(|l| l.scheme == contention.rsa_scheme)
    {
        targets.push(Target::at_most(
            format!(
                "ed25519 p99 under {} load / in-process {} p50",
                rsa.scheme, rsa.scheme
            ),
            contention.ed25519.p99_us / rsa.in_process.p50_us,
            2.0,
            "×",
        ));
    }
    let admin = &report.admin;
    for (scheme, alone, during) in [
        ("ed25519", admin.ed25519_alone, admin.ed25519_during),
        ("rsa-2048", admin.rsa2048_alone, admin.rsa2048_during),
    ] {
        targets.push(Target::at_most(
            format!("{scheme} p99 during admin work / p99 alone"),
            during.p99_us / alone.p99_us,
            2.0,
            "×",
        ));
    }
    let idle = &report.idle;
    targets.push(Target::at_most(
        format!("RSS growth with {} idle connections", idle.connections),
        idle.rss_growth_kib() as f64 / 1024.0,
        16.0 * idle.connections as f64 / 1000.0,
        "MiB",
    ));
    targets.push(Target::at_most(
        format!(
            "locked memory with {} idle connections / unit's LimitMEMLOCK",
            idle.connections
        ),
        idle.memlock_kib as f64 / 1024.0,
        idle.limit_memlock_bytes as f64 / (1024.0 * 1024.0),
        "MiB",
    ));
    targets
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The 1-minute load average, which tells how busy the shared machine was.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn machine(load_before: f64, noise: Noise) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or_else(
            || "unknown CPU".to_owned(),
            |(_, name)| name.trim().to_owned(),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| "unknown".to_owned(),
        |release| release.trim().to_owned(),
    );
    Machine {
        cores: cores(),
        cpu,
        kernel,
        load_average_at_start: load_before,
        noise,
    }
}

/// The hidden `--load` mode (see the crate documentation).
#[derive(Debug)]
pub(crate) struct Load {
    socket: PathBuf,
    scheme: BenchScheme,
    threads: usize,
    window: Duration,
}

impl Load {
    pub(crate) fn new(
        socket: PathBuf,
        scheme: &str,
        threads: usize,
        seconds: f64,
    ) -> anyhow::Result<Load> {
        let scheme = BenchScheme::ALL
            .into_iter()
            .find(|known| known.label() == scheme)
            .with_context(|| format!("unknown scheme {scheme:?}"))?;
        anyhow::ensure!(
            threads > 0 && seconds > 0.0,
            "threads and seconds must be positive"
        );
        Ok(Load {
            socket,
            scheme,
            threads,
            window: Duration::from_secs_f64(seconds),
        })
    }

    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let mut client = Client::connect(&self.socket)?;
        let name = format!("load-{}-{}", self.scheme.label(), std::process::id());
        self.scheme.generate()?.import(&mut client, &name)?;
        let mut probes = [Probe::new(200, || {
            client.sign(&name, PAYLOAD)?;
            Ok(())
        })];
        interleave(&mut probes, 1)?;
        let latency = probes[0].summary();
        crate::emit(&format!(
            "{}: p50 {:.1} µs, p99 {:.1} µs (one connection)\n",
            self.scheme.label(),
            latency.p50_us,
            latency.p99_us
        ))?;
        let rate = throughput(&self.socket, &name, self.threads, self.window)?;
        crate::emit(&format!(
            "{}: {rate:.0} signatures/s with {} thread(s)\n",
            self.scheme.label(),
            self.threads
        ))?;
        Ok(())
    }
}
