//! A fake `keywardd`: a Unix listener in a temporary directory, served by a thread that
//! decodes each request with keyward-protocol and answers from a script.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use keyward_client::protocol::frame::{self, HEADER_LEN};
use keyward_client::protocol::{
    DEFAULT_MAX_FRAME, PROTOCOL_VERSION, Request, Response, Welcome, decode_request,
    encode_response,
};

/// What the fake daemon does with one request.
pub(crate) enum Reply {
    /// Answer with this response.
    Send(Response),
    /// Wait, then answer.
    After(Duration, Response),
    /// Close the connection without answering.
    Close,
    /// Send these bytes (for example a frame that does not decode), then go on serving.
    Raw(Vec<u8>),
    /// Send these bytes (for example part of a frame), then close the connection.
    RawThenClose(Vec<u8>),
}

/// A step of the script: sees the request, says what to do.
pub(crate) type Step = Box<dyn FnOnce(&Request) -> Reply + Send>;

/// Answers whatever comes with `response`.
pub(crate) fn answer(response: Response) -> Step {
    Box::new(move |_| Reply::Send(response))
}

/// The answer of a version 3 daemon to a Hello.
pub(crate) fn welcome(max_frame: u32) -> Response {
    Response::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        max_frame,
        daemon_version: "9.9.9".into(),
        daemon_commit: Some("fake".into()),
    })
}

/// Answers a Hello with the current version and `max_frame`.
pub(crate) fn hello(max_frame: u32) -> Step {
    Box::new(move |request| {
        assert_eq!(
            request,
            &Request::Hello {
                version: PROTOCOL_VERSION
            }
        );
        Reply::Send(welcome(max_frame))
    })
}

pub(crate) struct FakeDaemon {
    pub(crate) path: PathBuf,
    // Kept so the socket's directory lives as long as the daemon.
    _dir: tempfile::TempDir,
    thread: Option<JoinHandle<Vec<Vec<Request>>>>,
}

impl FakeDaemon {
    /// Serves one connection: the Hello (answered with DEFAULT_MAX_FRAME), then `steps`.
    pub(crate) fn start(steps: Vec<Step>) -> FakeDaemon {
        FakeDaemon::connections(vec![steps])
    }

    /// Serves one connection per element of `scripts`, in the order the client connects,
    /// each on its own thread: the Hello (answered with DEFAULT_MAX_FRAME), then its steps.
    /// Then the socket stops listening.
    pub(crate) fn connections(scripts: Vec<Vec<Step>>) -> FakeDaemon {
        let scripts = scripts
            .into_iter()
            .map(|steps| {
                let mut all = vec![hello(DEFAULT_MAX_FRAME)];
                all.extend(steps);
                all
            })
            .collect();
        FakeDaemon::scripts(scripts)
    }

    /// Serves one connection with exactly `steps`, the Hello included. After the last step
    /// it reads until the client closes, recording what else arrives.
    pub(crate) fn script(steps: Vec<Step>) -> FakeDaemon {
        FakeDaemon::scripts(vec![steps])
    }

    /// Serves one connection per element of `scripts` as [`FakeDaemon::script`] does.
    fn scripts(scripts: Vec<Vec<Step>>) -> FakeDaemon {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = thread::spawn(move || {
            let served: Vec<JoinHandle<Vec<Request>>> = scripts
                .into_iter()
                .map(|steps| {
                    let (mut stream, _) = listener.accept().unwrap();
                    thread::spawn(move || serve(&mut stream, steps))
                })
                .collect();
            drop(listener);
            served
                .into_iter()
                .map(|connection| connection.join().unwrap())
                .collect()
        });
        FakeDaemon {
            path,
            _dir: dir,
            thread: Some(thread),
        }
    }

    /// Waits for every connection to end and returns every request the daemon received.
    pub(crate) fn requests(self) -> Vec<Request> {
        self.requests_by_connection().concat()
    }

    /// Waits for every connection to end and returns the requests received on each.
    pub(crate) fn requests_by_connection(mut self) -> Vec<Vec<Request>> {
        self.thread.take().unwrap().join().unwrap()
    }
}

fn serve(stream: &mut UnixStream, steps: Vec<Step>) -> Vec<Request> {
    let mut seen = Vec::new();
    let mut steps = steps.into_iter();
    while let Some(request) = read_request(stream) {
        let Some(step) = steps.next() else {
            seen.push(request);
            continue;
        };
        let reply = step(&request);
        seen.push(request);
        let response = match reply {
            Reply::Send(response) => response,
            Reply::After(delay, response) => {
                thread::sleep(delay);
                response
            }
            Reply::Close => return seen,
            Reply::Raw(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return seen;
                }
                continue;
            }
            Reply::RawThenClose(bytes) => {
                let _ = stream.write_all(&bytes);
                return seen;
            }
        };
        let frame = encode_response(&response, u32::MAX).unwrap();
        if stream.write_all(&frame).is_err() {
            return seen;
        }
    }
    seen
}

/// Reads one request; `None` at end of stream.
pub(crate) fn read_request(stream: &mut UnixStream) -> Option<Request> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).ok()?;
    let len = frame::body_len(header, u32::MAX).unwrap();
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(decode_request(&body).unwrap())
}
