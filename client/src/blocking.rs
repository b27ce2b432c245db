//! The blocking client.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_protocol::frame::HEADER_LEN;
use keyward_protocol::{
    DEFAULT_MAX_FRAME, KeyInfo, KeyKind, PayloadFormat, Request, Response, Scheme, SecretBytes,
    Stats, Status, StatusReport, Welcome,
};

use crate::{DEFAULT_TIMEOUT, Error, Signature, idle, ops, socket_path_from_env, trust};

/// A blocking connection to `keywardd`.
///
/// One request is answered at a time, in order; share a client between threads behind a
/// `Mutex`, or open one per thread (connections are cheap).
///
/// # Failures half-way
///
/// A call that fails after its request may have been sent (an I/O error, a timeout, a short
/// read, a response that does not decode, the daemon closing) returns the failure and drops
/// the connection: the stream may hold part of a frame or a late answer, which must never be
/// taken for the next call's. The failed request is not sent again (the daemon may have
/// signed it). The next call of a client made with [`Client::connect`] or
/// [`Client::from_env`] opens a new connection to the same path (the same trust check, the
/// same timeout, a new handshake), as after an idle close below; one made with
/// [`Client::from_stream`] has no path to reconnect to and returns [`Error::Disconnected`].
/// Failures reported by the daemon ([`Error::Daemon`], [`Error::RateLimited`]) and requests
/// refused locally ([`Error::TooLarge`], [`Error::UnsupportedVersion`]) keep the connection.
///
/// # Idle connections
///
/// The daemon closes a connection that goes `idle_timeout_secs` (default 600) without a
/// request, and a restarted daemon has closed every connection of the old one. Before each
/// request the client looks, without waiting, whether the daemon has closed the connection
/// or sent anything unasked (which it does only when closing). If so, a client made with
/// [`Client::connect`] or [`Client::from_env`] opens a new connection to the same path and
/// sends the request there, once; nothing of the request had been sent on the old one. If
/// that fails, the call returns the failure (e.g. [`Error::Connect`] while the daemon
/// restarts) and the next call tries again. A client made with [`Client::from_stream`]
/// returns [`Error::Disconnected`] instead.
///
/// A request that may have reached the daemon is never sent again.
#[derive(Debug)]
pub struct Client {
    /// The connection; `None` once a failure half-way through an exchange dropped it (and
    /// while an exchange holds it).
    stream: Option<UnixStream>,
    /// Where [`Client::connect`] connected, to reconnect after the daemon closed the
    /// connection or a failure dropped it; `None` for [`Client::from_stream`].
    path: Option<PathBuf>,
    /// The read and write timeout to set on a new connection.
    timeout: Option<Duration>,
    /// The daemon's request size limit, from its Hello.
    max_frame: u32,
    /// The protocol version agreed by the handshake.
    version: u32,
    /// The daemon's answer to a version 3 Hello (its version); `None` from version 2.
    welcome: Option<Welcome>,
}

impl Client {
    /// Connects to the daemon's socket at `path`, checks that its server may be trusted
    /// (its uid is ours or root, or it owns a directory only it could have made; see
    /// [`Error::UntrustedServer`]) before sending a byte, and performs the protocol
    /// handshake.
    ///
    /// Each read and write on the connection is bounded by [`DEFAULT_TIMEOUT`] (5 s, as the
    /// Python client), so a bot never waits forever on a daemon that is stuck or backlogged;
    /// [`Client::set_timeout`] changes it (`None`: wait forever).
    ///
    /// The client remembers `path`: when the daemon has closed the connection while it sat
    /// idle, or a failure half-way through a call dropped it, the next call reconnects (see
    /// [`Client`]).
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, Error> {
        Client::open(path.as_ref(), Some(DEFAULT_TIMEOUT))
    }

    /// Connects to `path`, checks its server, sets `timeout` and performs the handshake.
    fn open(path: &Path, timeout: Option<Duration>) -> Result<Client, Error> {
        let stream = UnixStream::connect(path).map_err(|source| Error::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        trust::check_server(&stream, path)?;
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(Error::Io)?;
        let mut client = Client::from_stream(stream)?;
        client.path = Some(path.to_path_buf());
        client.timeout = timeout;
        Ok(client)
    }

    /// Connects to the socket named by `$KEYWARD_SOCK`, or to
    /// [`default_socket_path`](crate::default_socket_path) when it is unset or empty.
    pub fn from_env() -> Result<Client, Error> {
        Client::connect(socket_path_from_env())
    }

    /// Performs the handshake on an already connected stream (for example one with
    /// timeouts set, or one half of a socket pair). The server is not checked: the caller
    /// vouches for it (use [`Client::connect`] for a path). The stream's timeouts are left
    /// as they are. Such a client cannot reconnect: once the daemon has closed the
    /// connection, or a failure half-way through a call dropped it, calls return
    /// [`Error::Disconnected`].
    ///
    /// The client offers protocol version 3 and, if the daemon does not speak it, version 2
    /// on the same connection; [`Client::protocol_version`] says which was agreed.
    pub fn from_stream(stream: UnixStream) -> Result<Client, Error> {
        let timeout = stream.read_timeout().map_err(Error::Io)?;
        let mut client = Client {
            stream: Some(stream),
            path: None,
            timeout,
            max_frame: DEFAULT_MAX_FRAME,
            version: keyward_protocol::MIN_PROTOCOL_VERSION,
            welcome: None,
        };
        for version in ops::versions() {
            let response = client.exchange(&ops::hello(version))?;
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
    /// protocol version 2, which does not say.
    pub fn daemon(&self) -> Option<&Welcome> {
        self.welcome.as_ref()
    }

    /// The largest request frame body the daemon accepts, as it announced in its Hello.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// True when the client holds no connection: a failure half-way through a call dropped
    /// it, or reopening a closed one failed. The next call reconnects, or returns
    /// [`Error::Disconnected`] for a client made with [`Client::from_stream`] (see
    /// [`Client`]).
    pub fn is_broken(&self) -> bool {
        self.stream.is_none()
    }

    /// Sets a timeout on each read and write of the socket; `None` waits forever.
    /// [`Client::connect`] sets [`DEFAULT_TIMEOUT`]. A call that times out fails with
    /// [`Error::Io`] and drops the connection, since the late answer would otherwise be
    /// taken for the next call's; the next call reconnects. Admin calls that do slow work in
    /// the daemon (unlock's key derivation, generating an RSA key) may need a longer one.
    /// A reopened connection gets the same timeout.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        if let Some(stream) = &self.stream {
            stream.set_read_timeout(timeout).map_err(Error::Io)?;
            stream.set_write_timeout(timeout).map_err(Error::Io)?;
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Signs `payload` with the key named `key`.
    pub fn sign(&mut self, key: &str, payload: &[u8]) -> Result<Signature, Error> {
        let response = self.call(&ops::sign(key, payload))?;
        ops::expect_signature(response)
    }

    /// Signs each payload with the key named `key` in one round trip; the signatures come
    /// back in the order of the payloads.
    pub fn sign_batch(&mut self, key: &str, payloads: &[&[u8]]) -> Result<Vec<Signature>, Error> {
        let response = self.call(&ops::sign_batch(key, payloads))?;
        ops::expect_signatures(response, payloads.len())
    }

    /// Lists the keys this peer may see, sorted by name.
    pub fn list(&mut self) -> Result<Vec<KeyInfo>, Error> {
        let response = self.call(&Request::List)?;
        ops::expect_keys(response)
    }

    /// Describes the key named `name`, with its public key.
    pub fn public_key(&mut self, name: &str) -> Result<KeyInfo, Error> {
        let response = self.call(&ops::public_key(name))?;
        ops::expect_key(response)
    }

    /// Adds a key from its private material (admin): a PEM private key, or the raw secret of
    /// an HMAC key, for which `scheme` is required. `pem_passphrase` decrypts an encrypted
    /// PKCS#8 PEM. `format` is the key's payload format, stored with it (the daemon's config
    /// may set another for this key, which wins; the answer shows the one in force). The
    /// secrets are zeroized once sent.
    pub fn import(
        &mut self,
        name: &str,
        scheme: Option<Scheme>,
        material: SecretBytes,
        pem_passphrase: Option<SecretBytes>,
        api_key: Option<String>,
        format: Option<PayloadFormat>,
    ) -> Result<KeyInfo, Error> {
        let request = ops::import(name, scheme, material, pem_passphrase, api_key, format);
        let response = self.call(&request)?;
        ops::expect_key(response)
    }

    /// Generates a key inside the daemon (admin); only its public half comes back. `format`
    /// as for [`import`](crate::Client::import).
    pub fn generate(
        &mut self,
        name: &str,
        kind: KeyKind,
        api_key: Option<String>,
        format: Option<PayloadFormat>,
    ) -> Result<KeyInfo, Error> {
        let response = self.call(&ops::generate(name, kind, api_key, format))?;
        ops::expect_key(response)
    }

    /// Deletes the key named `name` (admin).
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        let response = self.call(&ops::remove(name))?;
        ops::expect_ok(response)
    }

    /// Reports the keystore's state.
    pub fn status(&mut self) -> Result<Status, Error> {
        let response = self.call(&Request::Status)?;
        ops::expect_status(response)
    }

    /// Reports the keystore's state, and to an admin each key's order rules
    /// ([`StatusReport::order_rules`]; `None` for other peers and from a version 2 daemon).
    pub fn status_report(&mut self) -> Result<StatusReport, Error> {
        let response = self.call(&Request::Status)?;
        ops::expect_status_report(response)
    }

    /// The daemon's counters (an admin, or a peer with the status right; protocol
    /// version 3).
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let response = self.call(&Request::Stats)?;
        ops::expect_stats(response)
    }

    /// Has the daemon re-read its config file and put the new policy in force (admin;
    /// protocol version 3). `Ok(true)`: the `[daemon]` section changed too, which applies
    /// only at the next start. An invalid file fails with [`ErrorCode::InvalidConfig`](crate::ErrorCode::InvalidConfig)
    /// and the one-line reason; the old policy stays.
    pub fn reload(&mut self) -> Result<bool, Error> {
        let response = self.call(&Request::Reload)?;
        ops::expect_reloaded(response)
    }

    /// Stores `passphrase` with the HMAC key `key`, sealed in its key file (`None` removes
    /// it): KuCoin's API passphrase, which [`Self::sign_passphrase`] then signs (admin;
    /// protocol version 3). The daemon never gives it back.
    pub fn set_passphrase(
        &mut self,
        key: &str,
        passphrase: Option<SecretBytes>,
    ) -> Result<(), Error> {
        let request = Request::SetPassphrase {
            key: key.to_owned(),
            passphrase,
        };
        let response = self.call(&request)?;
        ops::expect_ok(response)
    }

    /// The key's HMAC of the passphrase stored with it: for a KuCoin key of version 2 or 3,
    /// [`Signature::to_base64`](crate::Signature::to_base64) of it is the
    /// `KC-API-PASSPHRASE` header. Fails with [`ErrorCode::NoPassphrase`](crate::ErrorCode::NoPassphrase)
    /// when the key has none (whoever may sign with the key; protocol version 3).
    pub fn sign_passphrase(&mut self, key: &str) -> Result<Signature, Error> {
        let request = Request::SignPassphrase {
            key: key.to_owned(),
        };
        let response = self.call(&request)?;
        ops::expect_signature(response)
    }

    /// Creates the keystore, protected by `passphrase` (admin).
    pub fn init(&mut self, passphrase: SecretBytes) -> Result<(), Error> {
        let response = self.call(&Request::Init { passphrase })?;
        ops::expect_ok(response)
    }

    /// Unlocks the keystore with `passphrase` (admin).
    pub fn unlock(&mut self, passphrase: SecretBytes) -> Result<(), Error> {
        let response = self.call(&Request::Unlock { passphrase })?;
        ops::expect_ok(response)
    }

    /// Locks the keystore, dropping every decrypted key (admin).
    pub fn lock(&mut self) -> Result<(), Error> {
        let response = self.call(&Request::Lock)?;
        ops::expect_ok(response)
    }

    /// Changes the keystore passphrase from `old` to `new` (admin).
    pub fn change_passphrase(&mut self, old: SecretBytes, new: SecretBytes) -> Result<(), Error> {
        let response = self.call(&Request::ChangePassphrase { old, new })?;
        ops::expect_ok(response)
    }

    /// Sends one request and reads its response, whatever they are.
    ///
    /// A [`Response::Error`] is returned as `Ok`; the typed methods turn it into
    /// [`Error::Daemon`]. A request above the daemon's `max_frame` fails with
    /// [`Error::TooLarge`] before anything is written. A connection the daemon closed while
    /// it sat idle, or that an earlier failure dropped, is reopened first (see [`Client`]).
    pub fn call(&mut self, request: &Request) -> Result<Response, Error> {
        let usable = self
            .stream
            .as_ref()
            .is_some_and(|stream| !idle::closed_by_daemon(stream));
        if !usable {
            self.reconnect()?;
        }
        self.exchange(request)
    }

    /// Replaces a connection the daemon closed, or that a failure dropped, with a new one to
    /// the same path; nothing is in flight on the old one. On failure the client has no
    /// connection and the next call tries again; without a path it never will.
    fn reconnect(&mut self) -> Result<(), Error> {
        // Whatever the daemon said on closing (its idle notice) goes with the old stream.
        self.stream = None;
        let Some(path) = self.path.as_deref() else {
            return Err(Error::Disconnected);
        };
        let fresh = Client::open(path, self.timeout)?;
        *self = fresh;
        Ok(())
    }

    // Writes one request on the current connection and reads its answer.
    fn exchange(&mut self, request: &Request) -> Result<Response, Error> {
        ops::check_version(request, self.version)?;
        let frame = ops::encode(request, self.max_frame)?;
        // The stream is taken out of the client for the exchange and put back only once a
        // whole response has been read: any early return drops it, since it may now hold
        // part of a frame or a late answer.
        let mut stream = self.stream.take().ok_or(Error::Disconnected)?;
        if let Err(err) = stream.write_all(&frame) {
            if ops::peer_closed(&err) {
                return ops::after_failed_write(err, read_response(&mut stream));
            }
            return Err(Error::Io(err));
        }
        drop(frame);
        let response = read_response(&mut stream)?;
        self.stream = Some(stream);
        Ok(response)
    }
}

// Reads exactly one frame, with no read-ahead buffer: nothing beyond this response is ever
// taken off the socket.
fn read_response(stream: &mut UnixStream) -> Result<Response, Error> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).map_err(ops::read_error)?;
    let mut body = vec![0u8; ops::body_len(header)?];
    stream.read_exact(&mut body).map_err(ops::read_error)?;
    ops::decode(&body)
}
