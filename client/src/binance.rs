//! Binance: signed query strings. Deprecated: moved to
//! [`crate::exchanges::binance`], whose `signed_query` also takes the
//! request body.

use crate::{Client, Error, Signature, exchanges};

/// Signs `query` with the key named `key` and returns it with `&signature=...` appended.
#[deprecated(
    since = "0.1.0",
    note = "use keyward_client::exchanges::binance::signed_query(client, key, query, \"\")"
)]
pub fn signed_query(client: &mut Client, key: &str, query: &str) -> Result<String, Error> {
    exchanges::binance::signed_query(client, key, query, "")
}

/// [`signed_query`] for the [`AsyncClient`](crate::AsyncClient).
#[cfg(feature = "tokio")]
#[deprecated(
    since = "0.1.0",
    note = "use keyward_client::exchanges::binance::signed_query_async(client, key, query, \"\")"
)]
pub async fn signed_query_async(
    client: &mut crate::AsyncClient,
    key: &str,
    query: &str,
) -> Result<String, Error> {
    exchanges::binance::signed_query_async(client, key, query, "").await
}

/// Appends `signature=...` for `signature` to `query`.
#[deprecated(
    since = "0.1.0",
    note = "use keyward_client::exchanges::binance::append_signature"
)]
pub fn append_signature(query: &str, signature: &Signature) -> String {
    exchanges::binance::append_signature(query, signature)
}
