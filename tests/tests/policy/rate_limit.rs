//! 3. Rate limit.

use super::*;

/// "…; retry in N ms" → N.
fn retry_ms(message: &str) -> u64 {
    let rest = message
        .split("retry in ")
        .nth(1)
        .unwrap_or_else(|| panic!("no retry hint in {message:?}"));
    rest.strip_suffix(" ms")
        .unwrap_or_else(|| panic!("no retry hint in {message:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_burst_beyond_the_bucket_is_rate_limited_until_it_refills() {
    let config = ConfigFile::new(
        "[keys.limited]\nrate_per_sec = 5\nburst = 3\n\n\
         [keys.twin]\nrate_per_sec = 5\nburst = 3\n\n\
         [keys.slow]\nrate_per_sec = 0.1\nburst = 1\n",
    );
    let daemon = start(&config);
    let public = daemon.generate("limited", "ed25519");
    for name in ["twin", "open", "slow"] {
        daemon.generate(name, "ed25519");
    }
    let payload = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000";
    let mut client = daemon.client();

    let burst_started = Instant::now();
    for _ in 0..3 {
        client.sign("limited", payload).unwrap();
    }
    let refused = client.sign("limited", payload).unwrap_err();
    let refused_at = Instant::now();
    // Protocol version 3 carries the wait as a field; the message says the same.
    let field = refused
        .retry_after()
        .expect("a rate limit says how long to wait");
    let message = refused_with(Err::<(), _>(refused), ErrorCode::RateLimited);
    assert_eq!(
        u128::from(retry_ms(&message)),
        field.as_millis(),
        "{message}"
    );
    assert!(
        burst_started.elapsed() < Duration::from_millis(150),
        "four signatures took {:?}: too slow to test a 5/s bucket",
        burst_started.elapsed()
    );
    assert!(
        message.starts_with("rate limit of key \"limited\" reached (5/s); retry in "),
        "{message}"
    );
    let wait = retry_ms(&message);
    assert!((1..=200).contains(&wait), "one token at 5/s: {message}");

    // Every key has its own bucket: a twin with the same limit and a key without one are
    // unaffected.
    for _ in 0..3 {
        client.sign("twin", payload).unwrap();
    }
    for _ in 0..20 {
        client.sign("open", payload).unwrap();
    }
    // A batch larger than the burst could never pass: its own code, and no "retry".
    let message = refused_with(
        client.sign_batch("limited", &[&payload[..]; 4]),
        ErrorCode::BatchExceedsBurst,
    );
    assert!(!message.contains("retry"), "{message}");
    assert!(
        message.contains("exceeds key \"limited\"'s burst of 3"),
        "{message}"
    );

    // After the advised wait, one token is back: one signature passes, and a burst of three
    // right after is refused again (the bucket refills at 5/s, it is not reset).
    sleep(
        (refused_at + Duration::from_millis(wait + 20)).saturating_duration_since(Instant::now()),
    );
    let signature = client.sign("limited", payload).unwrap();
    let message = refused_with(
        client.sign_batch("limited", &[&payload[..]; 3]),
        ErrorCode::RateLimited,
    );
    assert!((200..=600).contains(&retry_ms(&message)), "{message}");

    // The CLI: exit 6 and the retry hint in its one line.
    daemon.sign("slow", payload, &[]);
    let out = daemon.keyward_stdin(["sign", "slow"], payload);
    let line = out.error_line(6);
    assert!(line.contains("rate limit of key \"slow\""), "{line}");
    assert!(retry_ms(line) > 5000, "one token at 0.1/s: {line}");
    assert!(out.stdout.is_empty());

    assert_python_verifies_all(&[Check::new(
        "ed25519",
        &public,
        payload,
        signature.as_bytes(),
    )]);
}

/// The second, independent guard of the rate limit (the first is the test above): the bucket
/// belongs to the key, not to the connection, and a batch takes one token per payload. Two
/// connections share one key's burst of 4; the refill (one token per 10 s) is too slow to
/// matter during the test.
#[test]
fn connections_share_a_keys_bucket_and_a_batch_takes_a_token_per_payload() {
    let config = ConfigFile::new(
        "[keys.shared]\nrate_per_sec = 0.1\nburst = 4\n\n\
         [keys.other]\nrate_per_sec = 0.1\nburst = 4\n",
    );
    let daemon = start(&config);
    daemon.generate("shared", "ed25519");
    daemon.generate("other", "ed25519");
    let payload = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000";
    let mut first = daemon.client();
    let mut second = daemon.client();

    // Three tokens in one batch, the fourth from another connection: the bucket is empty.
    first.sign_batch("shared", &[&payload[..]; 3]).unwrap();
    second.sign("shared", payload).unwrap();
    for client in [&mut first, &mut second] {
        let message = refused_with(client.sign("shared", payload), ErrorCode::RateLimited);
        assert!(retry_ms(&message) > 5000, "one token at 0.1/s: {message}");
    }
    // A third connection is no way around it.
    refused_with(
        daemon.client().sign("shared", payload),
        ErrorCode::RateLimited,
    );
    // Another key with the same limit has its own full bucket: a batch of 4 passes once.
    second.sign_batch("other", &[&payload[..]; 4]).unwrap();
    refused_with(second.sign("other", payload), ErrorCode::RateLimited);
}
