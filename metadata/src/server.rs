//! The TCP side: a listener with an accept thread, one short-lived thread per connection,
//! bounded in number, size and time.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::error::{MetadataError, Result};
use crate::hmac_key::HmacKeyStore;
use crate::http::{head_end, parse_head, Head, Response, MAX_HEAD};
use crate::pod::{Pod, PodMetadata};
use crate::service::Service;

/// Bounds on what clients may cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; up to as many more are answered 503 and closed, and
    /// beyond that connections are closed without an answer.
    pub max_connections: usize,
    /// Time a client has to send its whole request (slow clients get 408 and are dropped).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A running metadata service for one pod. Stops (and closes its port) when dropped or
/// [`shut down`](MetadataServer::shutdown).
#[derive(Debug)]
pub struct MetadataServer {
    addr: SocketAddr,
    token: String,
    stopping: Arc<AtomicBool>,
    listener: TcpListener,
    accept_thread: Option<JoinHandle<()>>,
}

impl MetadataServer {
    /// Starts serving `meta` on `bind` (e.g. `127.0.0.1:0` for an ephemeral loopback port with
    /// host networking, or the pod network's gateway address) with default [`Limits`].
    pub fn start(
        meta: PodMetadata,
        bind: SocketAddr,
        keys: &HmacKeyStore,
    ) -> Result<MetadataServer> {
        Self::start_with_limits(meta, bind, keys, Limits::default())
    }

    /// [`start`](MetadataServer::start) with explicit limits.
    pub fn start_with_limits(
        meta: PodMetadata,
        bind: SocketAddr,
        keys: &HmacKeyStore,
        limits: Limits,
    ) -> Result<MetadataServer> {
        Self::bind(meta, bind, keys)?.serve(limits)
    }

    /// Binds the port without starting any thread yet: the URL is known, and a supervisor
    /// that must `fork` (a PID namespace's init) can do so while still single-threaded, then
    /// call [`BoundMetadataServer::serve`]. Connections made meanwhile wait in the backlog.
    pub fn bind(
        meta: PodMetadata,
        bind: SocketAddr,
        keys: &HmacKeyStore,
    ) -> Result<BoundMetadataServer> {
        let listener = TcpListener::bind(bind)
            .map_err(|source| MetadataError::Listen { addr: bind, source })?;
        Self::bind_listener(meta, listener, keys)
    }

    /// [`bind`](MetadataServer::bind) on a socket the caller bound, e.g. on 127.0.0.1 inside
    /// a private pod network's namespace (where only the pod can reach it). The URL names the
    /// socket's address.
    pub fn bind_listener(
        meta: PodMetadata,
        listener: TcpListener,
        keys: &HmacKeyStore,
    ) -> Result<BoundMetadataServer> {
        let pod = Pod::new(meta)?;
        let token = new_token()?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetadataError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
        Ok(BoundMetadataServer {
            service: Service {
                pod,
                keys: keys.clone(),
                token,
            },
            listener,
            addr,
        })
    }

    /// The value of `AC_METADATA_URL` for the pod's apps: `http://ADDR:PORT/TOKEN`.
    pub fn url(&self) -> String {
        url(self.addr, self.addr.ip(), &self.token)
    }

    /// `AC_METADATA_URL` with another host address: for a server bound to `0.0.0.0`, the
    /// address the apps reach it at.
    pub fn url_for_host(&self, host: IpAddr) -> String {
        url(self.addr, host, &self.token)
    }

    /// The address and port the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for the accept thread. Connections in progress
    /// finish on their own, within the request timeout.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.accept_thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // SAFETY: the descriptor belongs to `self.listener`, open for as long as `self` lives;
        // shutting a listening socket down makes a blocked accept(2) on it return (Linux).
        unsafe {
            libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        if thread.join().is_err() {
            tracing::error!("metadata service accept thread panicked");
        }
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A metadata service whose port is bound but that does not answer yet. Connections made
/// meanwhile wait in the listen backlog.
#[derive(Debug)]
pub struct BoundMetadataServer {
    service: Service,
    listener: TcpListener,
    addr: SocketAddr,
}

impl BoundMetadataServer {
    /// The value of `AC_METADATA_URL`, as [`MetadataServer::url`].
    pub fn url(&self) -> String {
        url(self.addr, self.addr.ip(), &self.service.token)
    }

    /// As [`MetadataServer::url_for_host`].
    pub fn url_for_host(&self, host: IpAddr) -> String {
        url(self.addr, host, &self.service.token)
    }

    /// The address and port bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts answering, on an accept thread and one thread per connection.
    pub fn serve(self, limits: Limits) -> Result<MetadataServer> {
        let addr = self.addr;
        let listen_err = |source| MetadataError::Listen { addr, source };
        let accepting = self.listener.try_clone().map_err(listen_err)?;
        let token = self.service.token.clone();
        let service = Arc::new(self.service);
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let accept_thread = std::thread::Builder::new()
            .name("rkt-metadata".into())
            .spawn(move || accept_loop(accepting, service, stop, limits))
            .map_err(listen_err)?;
        tracing::debug!(%addr, "metadata service listening");
        Ok(MetadataServer {
            addr,
            token,
            stopping,
            listener: self.listener,
            accept_thread: Some(accept_thread),
        })
    }
}

/// The listening socket: readable once a connection waits, for a caller that starts serving
/// only then (see [`BoundMetadataServer::serve`]).
impl AsFd for BoundMetadataServer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

fn url(bound: SocketAddr, host: IpAddr, token: &str) -> String {
    format!("http://{}/{token}", SocketAddr::new(host, bound.port()))
}

fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| MetadataError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Decrements the count of active connections when a connection thread ends.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    stopping: Arc<AtomicBool>,
    limits: Limits,
) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or memory, or a connection reset before accept: wait a
                // little rather than spin.
                tracing::warn!("metadata service: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let before = active.fetch_add(1, Ordering::SeqCst);
        let guard = Active(active.clone());
        if before >= limits.max_connections.saturating_mul(2) {
            // A flood: close at once, spending nothing on it.
            continue;
        }
        let service = service.clone();
        let spawned = std::thread::Builder::new()
            .name("rkt-metadata-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _guard = guard;
                if before >= limits.max_connections {
                    refuse_busy(stream);
                } else {
                    serve_connection(stream, &service, limits.request_timeout);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("metadata service: cannot start a connection thread: {e}");
        }
    }
}

/// Answers 503 without reading the request (beyond draining it so the answer arrives).
fn refuse_busy(mut stream: TcpStream) {
    let busy = Response::error(503, "too many connections to the metadata service; retry");
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(&busy.to_bytes(false)).is_ok() {
        linger(stream);
    }
}

/// Why no request could be read.
enum ReadFailure {
    /// Answer this, then close.
    Respond(Response),
    /// The client went away or the connection broke: just close.
    Gone,
}

fn serve_connection(mut stream: TcpStream, service: &Service, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let response = match read_request(&mut stream, deadline) {
        Ok((head, body)) => {
            let response = service.handle(&head, &body);
            tracing::debug!(method = %head.method, status = response.status, "metadata request");
            (response, head.method == "HEAD")
        }
        Err(ReadFailure::Respond(r)) => (r, false),
        Err(ReadFailure::Gone) => return,
    };
    let _ = stream.set_write_timeout(Some(timeout));
    if stream.write_all(&response.0.to_bytes(response.1)).is_err() {
        return;
    }
    linger(stream);
}

/// Closes the connection gracefully: half-close, then discard what the client still sends
/// (a bounded amount, briefly), so that unread request bytes do not make the kernel reset the
/// connection before the client read the answer.
fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut left = 256 * 1024usize;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<(Head, Vec<u8>), ReadFailure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut scanned = 0usize;
    let head_len = loop {
        // Only the new bytes (and the 3 before them) can complete the blank line: a client
        // sending a byte at a time costs linear, not quadratic, time.
        let from = scanned.saturating_sub(3);
        if let Some(end) = head_end(&buf[from..]) {
            break from + end;
        }
        scanned = buf.len();
        if buf.len() >= MAX_HEAD {
            break MAX_HEAD + 1;
        }
        let n = read_some(stream, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_len > MAX_HEAD {
        return Err(ReadFailure::Respond(Response::error(
            431,
            format!("request head larger than {MAX_HEAD} bytes"),
        )));
    }
    let head = parse_head(&buf[..head_len]).map_err(ReadFailure::Respond)?;
    let mut body = buf.split_off(head_len);
    body.truncate(head.content_length);
    if head.expect_continue && body.len() < head.content_length {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| ReadFailure::Gone)?;
    }
    while body.len() < head.content_length {
        let want = (head.content_length - body.len()).min(chunk.len());
        let n = read_some(stream, &mut chunk[..want], deadline)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

/// One read of at least a byte before the deadline.
fn read_some(
    stream: &mut TcpStream,
    chunk: &mut [u8],
    deadline: Instant,
) -> Result<usize, ReadFailure> {
    let timed_out = || ReadFailure::Respond(Response::error(408, "request not received in time"));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| ReadFailure::Gone)?;
        match stream.read(chunk) {
            Ok(0) => return Err(ReadFailure::Gone),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out())
            }
            Err(_) => return Err(ReadFailure::Gone),
        }
    }
}
