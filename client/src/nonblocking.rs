//! The async client, on tokio (feature `tokio`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_protocol::frame::HEADER_LEN;
use keyward_protocol::{
    DEFAULT_MAX_FRAME, KeyInfo, KeyKind, PayloadFormat, Request, Response, Scheme, SecretBytes,
    Stats, Status, StatusReport, Welcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{DEFAULT_TIMEOUT, Error, Signature, idle, ops, socket_path_from_env, trust};

/// An async connection to `keywardd` on tokio's `UnixStream`; the same calls as
/// [`Client`](crate::Client).
///
/// One request is answered at a time (the methods take `&mut self`). A call that fails after
/// its request may have been sent (an I/O error, its timeout, a response that does not
/// decode, the daemon closing), and a call whose future is dropped before it completes (for
/// example by `tokio::time::timeout`), drops the connection: the stream may hold part of a
/// frame or the abandoned call's late answer. The failed request is not sent again. As for
/// [`Client`](crate::Client#failures-half-way), the next call of a client made with
/// [`AsyncClient::connect`] or [`AsyncClient::from_env`] opens a new connection to the same
/// path; one made with [`AsyncClient::from_stream`] returns [`Error::Disconnected`]. Daemon
/// errors and requests refused locally ([`Error::TooLarge`]) keep the connection.
///
/// A connection the daemon closed while it sat idle (`idle_timeout_secs`, or a restart) is
/// reopened before the next request, as by [`Client`](crate::Client#idle-connections): a
/// client made with [`AsyncClient::connect`] or [`AsyncClient::from_env`] reconnects to the
/// same path (the same trust check, a new handshake, all within the call's timeout) and
/// sends the request there, once; one made with [`AsyncClient::from_stream`] returns
/// [`Error::Disconnected`]. A request that may have reached the daemon is never resent.
#[derive(Debug)]
pub struct AsyncClient {
    /// The connection; `None` once a failure half-way through an exchange (or a dropped
    /// call) dropped it, and while an exchange holds it.
    stream: Option<UnixStream>,
    /// Where [`AsyncClient::connect`] connected, to reconnect after the daemon closed the
    /// connection or a failure dropped it; `None` for [`AsyncClient::from_stream`].
    path: Option<PathBuf>,
    /// The daemon's request size limit, from its Hello.
    max_frame: u32,
    /// The protocol version agreed by the handshake.
    version: u32,
    /// The daemon's answer to a version 3 Hello (its version); `None` from version 2.
    welcome: Option<Welcome>,
    /// Bounds each whole call.
    timeout: Option<Duration>,
}

impl AsyncClient {
    /// Connects to the daemon's socket at `path`, checks that its server may be trusted
    /// before sending a byte (the rule of [`Client::connect`](crate::Client::connect)), and
    /// performs the protocol handshake. The client remembers `path`, to reconnect when the
    /// daemon has closed an idle connection or a failure dropped it (see [`AsyncClient`]).
    pub async fn connect(path: impl AsRef<Path>) -> Result<AsyncClient, Error> {
        AsyncClient::open(path.as_ref(), Some(DEFAULT_TIMEOUT)).await
    }

    /// Connects to `path`, checks its server and performs the handshake, bounded by
    /// `timeout` as every call of the new client is.
    async fn open(path: &Path, timeout: Option<Duration>) -> Result<AsyncClient, Error> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        trust::check_server(&stream, path)?;
        let mut client = AsyncClient::handshake(stream, timeout).await?;
        client.path = Some(path.to_path_buf());
        Ok(client)
    }

    /// Connects to the socket named by `$KEYWARD_SOCK`, or to
    /// [`default_socket_path`](crate::default_socket_path) when it is unset or empty.
    pub async fn from_env() -> Result<AsyncClient, Error> {
        AsyncClient::connect(socket_path_from_env()).await
    }

    /// Performs the handshake on an already connected stream. The server is not checked:
    /// the caller vouches for it. Versions are negotiated as by
    /// [`Client::from_stream`](crate::Client::from_stream). Each call, the handshake
    /// included, is bounded by [`DEFAULT_TIMEOUT`] (5 s, as the Python client);
    /// [`AsyncClient::set_timeout`] changes it. Such a client cannot reconnect: once the
    /// daemon has closed the connection, or a failure dropped it, calls return
    /// [`Error::Disconnected`].
    pub async fn from_stream(stream: UnixStream) -> Result<AsyncClient, Error> {
        AsyncClient::handshake(stream, Some(DEFAULT_TIMEOUT)).await
    }

    /// Performs the handshake on `stream`, bounded by `timeout`, which then bounds each call.
    async fn handshake(
        stream: UnixStream,
        timeout: Option<Duration>,
    ) -> Result<AsyncClient, Error> {
        let mut client = AsyncClient {
            stream: Some(stream),
            path: None,
            max_frame: DEFAULT_MAX_FRAME,
            version: keyward_protocol::MIN_PROTOCOL_VERSION,
            welcome: None,
            timeout,
        };
        for version in ops::versions() {
            let response = bounded(timeout, client.exchange(&ops::hello(version))).await?;
            if let Some(agreed) = ops::expect_hello(response, version)? {
                client.max_frame = agreed.max_frame;
                client.version = agreed.version;
                client.welcome = agreed.welcome;
                return Ok(client);
            }
        }
        Err(Error::UnsupportedVersion {
            daemon: "it speaks none of this client's versions".into(),
        })
    }

    /// The protocol version agreed with the daemon (3, or 2 with an older daemon).
    pub fn protocol_version(&self) -> u32 {
        self.version
    }

    /// The daemon's version and git commit, from its Hello; `None` from a daemon of
    /// protocol version 2.
    pub fn daemon(&self) -> Option<&Welcome> {
        self.welcome.as_ref()
    }

    /// Bounds each whole call (writing the request and reading the answer); `None` waits
    /// forever. The default is [`DEFAULT_TIMEOUT`]. A call that times out fails with
    /// [`Error::Io`] (`TimedOut`) and drops the connection; the next call reconnects.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The largest request frame body the daemon accepts, as it announced in its Hello.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// True when the client holds no connection: a failure half-way through a call or a
    /// cancelled call dropped it, or reopening a closed one failed. The next call
    /// reconnects, or returns [`Error::Disconnected`] for a client made with
    /// [`AsyncClient::from_stream`].
    pub fn is_broken(&self) -> bool {
        self.stream.is_none()
    }

    /// Signs `payload` with the key named `key`.
    pub async fn sign(&mut self, key: &str, payload: &[u8]) -> Result<Signature, Error> {
        let response = self.call(&ops::sign(key, payload)).await?;
        ops::expect_signature(response)
    }

    /// Signs each payload with the key named `key` in one round trip; the signatures come
    /// back in the order of the payloads.
    pub async fn sign_batch(
        &mut self,
        key: &str,
        payloads: &[&[u8]],
    ) -> Result<Vec<Signature>, Error> {
        let response = self.call(&ops::sign_batch(key, payloads)).await?;
        ops::expect_signatures(response, payloads.len())
    }

    /// Lists the keys this peer may see, sorted by name.
    pub async fn list(&mut self) -> Result<Vec<KeyInfo>, Error> {
        let response = self.call(&Request::List).await?;
        ops::expect_keys(response)
    }

    /// Describes the key named `name`, with its public key.
    pub async fn public_key(&mut self, name: &str) -> Result<KeyInfo, Error> {
        let response = self.call(&ops::public_key(name)).await?;
        ops::expect_key(response)
    }

    /// Adds a key from its private material (admin); see
    /// [`Client::import`](crate::Client::import).
    pub async fn import(
        &mut self,
        name: &str,
        scheme: Option<Scheme>,
        material: SecretBytes,
        pem_passphrase: Option<SecretBytes>,
        api_key: Option<String>,
        format: Option<PayloadFormat>,
    ) -> Result<KeyInfo, Error> {
        let request = ops::import(name, scheme, material, pem_passphrase, api_key, format);
        let response = self.call(&request).await?;
        ops::expect_key(response)
    }

    /// Generates a key inside the daemon (admin); only its public half comes back. `format`
    /// as for [`import`](crate::Client::import).
    pub async fn generate(
        &mut self,
        name: &str,
        kind: KeyKind,
        api_key: Option<String>,
        format: Option<PayloadFormat>,
    ) -> Result<KeyInfo, Error> {
        let response = self
            .call(&ops::generate(name, kind, api_key, format))
            .await?;
        ops::expect_key(response)
    }

    /// Deletes the key named `name` (admin).
    pub async fn remove(&mut self, name: &str) -> Result<(), Error> {
        let response = self.call(&ops::remove(name)).await?;
        ops::expect_ok(response)
    }

    /// Reports the keystore's state.
    pub async fn status(&mut self) -> Result<Status, Error> {
        let response = self.call(&Request::Status).await?;
        ops::expect_status(response)
    }

    /// Reports the keystore's state, and to an admin each key's order rules
    /// ([`StatusReport::order_rules`]; `None` for other peers and from a version 2 daemon).
    pub async fn status_report(&mut self) -> Result<StatusReport, Error> {
        let response = self.call(&Request::Status).await?;
        ops::expect_status_report(response)
    }

    /// The daemon's counters (an admin, or a peer with the status right; protocol
    /// version 3).
    pub async fn stats(&mut self) -> Result<Stats, Error> {
        let response = self.call(&Request::Stats).await?;
        ops::expect_stats(response)
    }

    /// Has the daemon re-read its config file and put the new policy in force (admin;
    /// protocol version 3). `Ok(true)`: the `[daemon]` section changed too, which applies
    /// only at the next start. An invalid file fails with [`ErrorCode::InvalidConfig`](crate::ErrorCode::InvalidConfig)
    /// and the one-line reason; the old policy stays.
    pub async fn reload(&mut self) -> Result<bool, Error> {
        let response = self.call(&Request::Reload).await?;
        ops::expect_reloaded(response)
    }

    /// Stores `passphrase` with the HMAC key `key`, sealed in its key file (`None` removes
    /// it): KuCoin's API passphrase, which [`Self::sign_passphrase`] then signs (admin;
    /// protocol version 3). The daemon never gives it back.
    pub async fn set_passphrase(
        &mut self,
        key: &str,
        passphrase: Option<SecretBytes>,
    ) -> Result<(), Error> {
        let request = Request::SetPassphrase {
            key: key.to_owned(),
            passphrase,
        };
        let response = self.call(&request).await?;
        ops::expect_ok(response)
    }

    /// The key's HMAC of the passphrase stored with it: for a KuCoin key of version 2 or 3,
    /// [`Signature::to_base64`](crate::Signature::to_base64) of it is the
    /// `KC-API-PASSPHRASE` header. Fails with [`ErrorCode::NoPassphrase`](crate::ErrorCode::NoPassphrase)
    /// when the key has none (whoever may sign with the key; protocol version 3).
    pub async fn sign_passphrase(&mut self, key: &str) -> Result<Signature, Error> {
        let request = Request::SignPassphrase {
            key: key.to_owned(),
        };
        let response = self.call(&request).await?;
        ops::expect_signature(response)
    }

    /// Creates the keystore, protected by `passphrase` (admin).
    pub async fn init(&mut self, passphrase: SecretBytes) -> Result<(), Error> {
        let response = self.call(&Request::Init { passphrase }).await?;
        ops::expect_ok(response)
    }

    /// Unlocks the keystore with `passphrase` (admin).
    pub async fn unlock(&mut self, passphrase: SecretBytes) -> Result<(), Error> {
        let response = self.call(&Request::Unlock { passphrase }).await?;
        ops::expect_ok(response)
    }

    /// Locks the keystore, dropping every decrypted key (admin).
    pub async fn lock(&mut self) -> Result<(), Error> {
        let response = self.call(&Request::Lock).await?;
        ops::expect_ok(response)
    }

    /// Changes the keystore passphrase from `old` to `new` (admin).
    pub async fn change_passphrase(
        &mut self,
        old: SecretBytes,
        new: SecretBytes,
    ) -> Result<(), Error> {
        let response = self.call(&Request::ChangePassphrase { old, new }).await?;
        ops::expect_ok(response)
    }

    /// Sends one request and reads its response, whatever they are; see
    /// [`Client::call`](crate::Client::call). A connection the daemon closed while it sat
    /// idle, or that an earlier failure dropped, is reopened first (see [`AsyncClient`]); the
    /// call's timeout bounds both.
    pub async fn call(&mut self, request: &Request) -> Result<Response, Error> {
        let timeout = self.timeout;
        bounded(timeout, self.call_unbounded(request)).await
    }

    async fn call_unbounded(&mut self, request: &Request) -> Result<Response, Error> {
        let usable = self
            .stream
            .as_ref()
            .is_some_and(|stream| !idle::closed_by_daemon(stream));
        if !usable {
            self.reconnect().await?;
        }
        self.exchange(request).await
    }

    /// Replaces a connection the daemon closed, or that a failure dropped, with a new one to
    /// the same path; nothing is in flight on the old one. On failure (or if the call is
    /// dropped meanwhile) the client has no connection and the next call tries again;
    /// without a path it never will.
    async fn reconnect(&mut self) -> Result<(), Error> {
        // Whatever the daemon said on closing (its idle notice) goes with the old stream.
        self.stream = None;
        let Some(path) = self.path.as_deref() else {
            return Err(Error::Disconnected);
        };
        let fresh = AsyncClient::open(path, self.timeout).await?;
        *self = fresh;
        Ok(())
    }

    // Writes one request on the current connection and reads its answer.
    async fn exchange(&mut self, request: &Request) -> Result<Response, Error> {
        ops::check_version(request, self.version)?;
        let frame = ops::encode(request, self.max_frame)?;
        // The stream is taken out of the client for the exchange and put back only once a
        // whole response has been read: an early return, or this future being dropped (a
        // timeout, a cancelled call), drops it with whatever part of a frame it holds.
        let mut stream = self.stream.take().ok_or(Error::Disconnected)?;
        if let Err(err) = stream.write_all(&frame).await {
            if ops::peer_closed(&err) {
                let read = read_response(&mut stream).await;
                return ops::after_failed_write(err, read);
            }
            return Err(Error::Io(err));
        }
        drop(frame);
        let response = read_response(&mut stream).await?;
        self.stream = Some(stream);
        Ok(response)
    }
}

// Reads exactly one frame, with no read-ahead buffer.
async fn read_response(stream: &mut UnixStream) -> Result<Response, Error> {
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(ops::read_error)?;
    let mut body = vec![0u8; ops::body_len(header)?];
    stream
        .read_exact(&mut body)
        .await
        .map_err(ops::read_error)?;
    ops::decode(&body)
}

/// Runs `call` within `timeout`, if any. On timeout the call's future is dropped, and with
/// it the connection if a request was in flight.
async fn bounded<T>(
    timeout: Option<Duration>,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match timeout {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            // The dropped call took its connection with it: the answer may still come.
            Err(_elapsed) => Err(Error::Io(std::io::ErrorKind::TimedOut.into())),
        },
    }
}
