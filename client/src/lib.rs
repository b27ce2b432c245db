//! Thin client for `keywardd`, the signing agent for exchange API keys.
//!
//! A bot links this crate instead of holding its exchange key: it asks the daemon to sign a
//! payload with a named key over a Unix socket and gets the raw signature back, which
//! [`Signature`] encodes as the exchange wants (hex, base64, base64url). The private key
//! never enters the bot's process.
//!
//! [`Client`] is blocking and has no dependency on an async runtime; with the `tokio`
//! feature, `AsyncClient` offers the same calls on tokio. Both speak the wire protocol of
//! [`keyward_protocol`] (re-exported as [`protocol`]).
//!
//! ```no_run
//! use keyward_client::Client;
//! use keyward_client::exchanges::binance;
//!
//! fn main() -> Result<(), keyward_client::Error> {
//!     // $KEYWARD_SOCK, else the default socket path (see `default_socket_path`).
//!     let mut client = Client::from_env()?;
//!
//!     // Raw signature of exact bytes, encoded as the exchange asks.
//!     let signature = client.sign("okx-main", b"2024-01-01T00:00:00.000ZGET/api/v5/account/balance")?;
//!     println!("OK-ACCESS-SIGN: {}", signature.to_base64());
//!
//!     // A Binance query string with its `signature=` parameter appended.
//!     let query = binance::signed_query(
//!         &mut client,
//!         "binance-main",
//!         "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp=1700000000000",
//!         "", // no body
//!     )?;
//!     println!("POST /api/v3/order?{query}");
//!     // ... with the header X-MBX-APIKEY: the key's stored API key id.
//!     println!("X-MBX-APIKEY: {}", keyward_client::exchanges::api_key(&mut client, "binance-main")?);
//!     Ok(())
//! }
//! ```
//!
//! Before the first byte, [`Client::connect`] checks who runs the server (`SO_PEERCRED`):
//! its own uid or root, or a user that owns a directory nobody else could have made (such
//! as a system daemon's `/run/keyward`). Anything else, such as a socket another user
//! planted in `/tmp`, is refused with [`Error::UntrustedServer`] and gets no passphrase,
//! key or payload.
//!
//! A bot can hold one client for its lifetime: when the daemon has closed the connection
//! while it sat idle (its `idle_timeout_secs`, or a restart), the next call notices before
//! sending and reconnects to the same path by itself (see [`Client`]). A call that fails
//! half-way (a timeout, the daemon stopping mid-request, a malformed answer) returns its
//! error and drops the connection, and the next call reconnects. A request that may have
//! reached the daemon is never sent twice.
//!
//! Every failure is an [`Error`]; [`Error::code`] gives the daemon's stable [`ErrorCode`]
//! (locked keystore, unknown key, policy violation, ...) for a program to branch on.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[deprecated(since = "0.1.0", note = "moved to keyward_client::exchanges::binance")]
pub mod binance;
mod blocking;
mod error;
pub mod exchanges;
mod idle;
#[cfg(feature = "tokio")]
mod nonblocking;
mod ops;
mod signature;
mod socket;
mod trust;

pub use blocking::Client;
pub use error::Error;
#[cfg(feature = "tokio")]
pub use nonblocking::AsyncClient;
pub use signature::Signature;
pub use socket::{SOCKET_ENV, default_socket_path, socket_path_from_env};

pub use keyward_protocol as protocol;
pub use keyward_protocol::{
    DEFAULT_MAX_FRAME, ErrorCode, KeyInfo, KeyKind, KeyOrderRules, KeystoreState, PROTOCOL_VERSION,
    PayloadFormat, Request, Response, Scheme, SecretBytes, Stats, Status, StatusReport,
    UnreadableKey, Welcome,
};

/// How long [`Client::connect`] lets each read and write on the socket take, and
/// `AsyncClient` each whole call, before failing with a timeout ([`Error::Io`]): 5 seconds,
/// the Python client's default too. A signature takes well under a millisecond, so only a
/// stuck or backlogged daemon hits it; [`Client::set_timeout`] changes it.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest response frame body the clients accept (the protocol's limit, re-exported).
pub use keyward_protocol::MAX_RESPONSE_FRAME;
