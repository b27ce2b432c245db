//! The async client against the same fake daemon.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{FakeDaemon, Reply, answer, hello};
use keyward_client::exchanges::binance;
use keyward_client::{AsyncClient, Error, ErrorCode, Request, Response, Scheme};
use serde_bytes::ByteBuf;

#[tokio::test]
async fn async_client_signs_batches_and_maps_errors() {
    let daemon = FakeDaemon::script(vec![
        hello(4096),
        answer(Response::Signature {
            scheme: Scheme::Ed25519,
            signature: vec![0xfb, 0xff],
        }),
        answer(Response::Signatures {
            scheme: Scheme::Ed25519,
            signatures: vec![ByteBuf::from(vec![1]), ByteBuf::from(vec![2])],
        }),
        answer(Response::error(
            ErrorCode::PolicyViolation,
            "`address` is denied",
        )),
        answer(Response::Signature {
            scheme: Scheme::HmacSha256,
            signature: vec![0xab],
        }),
    ]);
    let path = daemon.path.clone();
    let mut client = AsyncClient::connect(&path).await.unwrap();
    assert_eq!(client.max_frame(), 4096);

    let sig = client.sign("ed", b"payload").await.unwrap();
    assert_eq!(sig.to_base64(), "+/8=");

    let batch = client.sign_batch("ed", &[b"a", b"b"]).await.unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[1].as_bytes(), &[2]);

    let err = client.sign("ed", b"address=x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::PolicyViolation));
    assert_eq!(err.to_string(), "`address` is denied");

    // Locally refused: nothing is sent and the connection stays usable.
    let err = client.sign("ed", &[0u8; 5000]).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { max: 4096, .. }), "{err:?}");

    let query = binance::signed_query_async(&mut client, "hmac", "a=1", "")
        .await
        .unwrap();
    assert_eq!(query, "a=1&signature=ab");
    drop(client);

    let requests = tokio::task::spawn_blocking(move || daemon.requests())
        .await
        .unwrap();
    assert_eq!(requests.len(), 5, "{requests:?}");
    assert_eq!(
        requests[1],
        Request::Sign {
            key: "ed".into(),
            payload: b"payload".to_vec()
        }
    );
}

#[tokio::test]
async fn a_cancelled_async_call_drops_the_connection_and_the_next_call_reconnects() {
    let daemon = FakeDaemon::connections(vec![
        vec![Box::new(|_| {
            Reply::After(
                Duration::from_millis(300),
                Response::Signature {
                    scheme: Scheme::Ed25519,
                    signature: vec![1],
                },
            )
        })],
        vec![answer(Response::Ok)],
    ]);
    let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(50), client.sign("k", b"first")).await;
    assert!(cancelled.is_err(), "the call should have timed out");
    assert!(client.is_broken());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Not the late signature: Ok, from a new connection.
    client.lock().await.unwrap();
    assert!(!client.is_broken());
    drop(client);
    let requests = tokio::task::spawn_blocking(move || daemon.requests_by_connection())
        .await
        .unwrap();
    assert_eq!(requests[0].len(), 2, "{requests:?}");
    assert_eq!(requests[1][1], Request::Lock, "{requests:?}");
}

#[tokio::test]
async fn an_async_call_past_its_timeout_is_not_resent_and_the_next_call_reconnects() {
    let signature = |byte| Response::Signature {
        scheme: Scheme::Ed25519,
        signature: vec![byte],
    };
    let daemon = FakeDaemon::connections(vec![
        vec![Box::new(move |_| {
            Reply::After(Duration::from_millis(300), signature(1))
        })],
        vec![answer(signature(2))],
    ]);
    let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
    client.set_timeout(Some(Duration::from_millis(50)));
    let err = client.sign("k", b"first").await.unwrap_err();
    assert!(matches!(&err, Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut));
    assert!(client.is_broken());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(client.sign("k", b"second").await.unwrap().as_bytes(), &[2]);
    drop(client);
    let requests = tokio::task::spawn_blocking(move || daemon.requests_by_connection())
        .await
        .unwrap();
    assert_eq!(
        requests.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2],
        "{requests:?}"
    );
    assert_eq!(
        requests[1][1],
        Request::Sign {
            key: "k".into(),
            payload: b"second".to_vec()
        }
    );
}

#[tokio::test]
async fn async_eof_before_a_response_is_disconnected_and_the_next_call_reconnects() {
    let daemon = FakeDaemon::connections(vec![
        vec![Box::new(|_| Reply::Close)],
        vec![answer(Response::Keys { keys: vec![] })],
    ]);
    let mut client = AsyncClient::connect(&daemon.path).await.unwrap();
    assert!(matches!(
        client.status().await.unwrap_err(),
        Error::Disconnected
    ));
    assert!(client.is_broken());
    assert!(client.list().await.unwrap().is_empty());
    assert!(!client.is_broken());
}

#[tokio::test]
async fn an_async_client_made_from_a_stream_reports_disconnected_after_a_failure_half_way() {
    let daemon = FakeDaemon::start(vec![Box::new(|_| Reply::Close)]);
    let stream = tokio::net::UnixStream::connect(&daemon.path).await.unwrap();
    let mut client = AsyncClient::from_stream(stream).await.unwrap();
    assert!(matches!(
        client.status().await.unwrap_err(),
        Error::Disconnected
    ));
    assert!(matches!(
        client.list().await.unwrap_err(),
        Error::Disconnected
    ));
    assert!(client.is_broken());
}
