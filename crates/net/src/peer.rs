//! The one client for talking to another flare process (a node forwarding
//! or replicating to a node, a node reading a dump, a node talking to the
//! index, the index pinging and syncing nodes).
//!
//! * [`PeerConn`]: one connection, one request at a time (or a `dump`
//!   stream). Every step is bounded: connect, each write, each wait for
//!   reply bytes.
//! * [`Pipe`]: one connection shared by many callers, requests written as
//!   they come and replies matched in order. Its reader and writer run
//!   independently (full duplex), so a large request being written never
//!   stops replies from being read — two peers can never block each other.
//!   Request bytes written and not yet answered are bounded
//!   ([`PeerConfig::max_inflight_bytes`]), as is the queue in front of it:
//!   callers wait for room (back-pressure) instead of growing memory.
//! * [`Pool`]: `lanes` pipes per destination; a caller picks the lane by a
//!   hash of the key, so requests on one key to one destination stay in
//!   order.
//!
//! Replies are framed by `flare_proto::client::ReplyFramer`: bytes, not
//! text, so a key in any encoding never puts a connection out of step. A
//! reply that cannot be framed closes the connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flare_proto::client::{next_dump_item, DumpItem, ReplyFramer, ReplyKind, ReplyLimits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::PeerError;

/// Settings of a peer client.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub connect_timeout: Duration,
    /// Longest wait for a write to finish or for reply bytes to arrive.
    pub io_timeout: Duration,
    pub limits: ReplyLimits,
    /// Request bytes a pipe keeps written but unanswered.
    pub max_inflight_bytes: usize,
    /// Requests queued in front of a pipe before callers wait.
    pub queue: usize,
    /// The cluster secret: every connection authenticates first
    /// ([`crate::auth`]).
    pub secret: Option<Arc<crate::auth::ClusterAuth>>,
}

impl PeerConfig {
    pub fn new(timeout: Duration) -> Self {
        PeerConfig {
            connect_timeout: timeout,
            io_timeout: timeout,
            limits: ReplyLimits::default(),
            max_inflight_bytes: 32 << 20,
            queue: 256,
            secret: None,
        }
    }
}

/// Opens the connections of the peer clients on one thread instead of
/// `TcpStream::connect`: the in-process test harness (`crates/sim`) runs each
/// node on a thread of its own and routes its connections through links it
/// can cut, pause and delay. Never set in the daemons.
pub trait Dial: Send + Sync {
    fn dial(
        &self,
        addr: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TcpStream>> + Send>>;
}

thread_local! {
    static DIALER: std::cell::RefCell<Option<Arc<dyn Dial>>> = const { std::cell::RefCell::new(None) };
}

/// Route the peer connections opened on this thread through `dialer` (test
/// harness only; see [`Dial`]).
pub fn set_thread_dialer(dialer: Arc<dyn Dial>) {
    DIALER.with(|d| *d.borrow_mut() = Some(dialer));
}

async fn connect_stream(addr: &str, cfg: &PeerConfig) -> Result<TcpStream, PeerError> {
    let dialer = DIALER.with(|d| d.borrow().clone());
    let connect = async {
        match dialer {
            Some(d) => d.dial(addr).await,
            None => TcpStream::connect(addr).await,
        }
    };
    let stream = match tokio::time::timeout(cfg.connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(PeerError::Connect {
                addr: addr.to_string(),
                source: Arc::new(e),
            })
        }
        Err(_) => {
            return Err(PeerError::ConnectTimeout {
                addr: addr.to_string(),
                after: cfg.connect_timeout,
            })
        }
    };
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    if let Some(auth) = &cfg.secret {
        authenticate(&mut stream, addr, auth, cfg).await?;
    }
    Ok(stream)
}

/// The client's side of the cluster's challenge–response ([`crate::auth`]):
/// check the peer's proof, then give ours.
async fn authenticate(
    stream: &mut TcpStream,
    addr: &str,
    auth: &crate::auth::ClusterAuth,
    cfg: &PeerConfig,
) -> Result<(), PeerError> {
    let secret = auth.secret();
    use crate::auth::{hex, nonce, proofs_equal, unhex, NONCE_LEN};
    let fail = |reason: String| PeerError::Auth {
        addr: addr.to_string(),
        reason,
    };
    let client = nonce();
    let mut buf = BytesMut::new();
    write_all(
        stream,
        format!("auth challenge {}\r\n", hex(&client)).as_bytes(),
        addr,
        cfg.io_timeout,
    )
    .await?;
    let line = read_reply(stream, &mut buf, ReplyKind::Line, addr, cfg).await?;
    let text = String::from_utf8_lossy(&line);
    let mut it = text.trim_end().split(' ');
    let (Some("AUTH"), Some(server_hex), Some(proof)) = (it.next(), it.next(), it.next()) else {
        if !auth.required() {
            // a peer without the secret (not upgraded yet): go on without
            tracing::debug!("{addr} has no cluster secret: talking to it unauthenticated");
            return Ok(());
        }
        return Err(fail(format!(
            "it answered {:?} (no cluster secret there, or not flare-rs)",
            text.trim_end()
        )));
    };
    let Some(server) = unhex(server_hex).filter(|n| n.len() == NONCE_LEN) else {
        return Err(fail("bad nonce in its challenge".to_string()));
    };
    if !proofs_equal(proof, &secret.server_proof(&client, &server)) {
        return Err(fail("it does not know the cluster secret".to_string()));
    }
    write_all(
        stream,
        format!(
            "auth response {}\r\n",
            secret.client_proof(&client, &server)
        )
        .as_bytes(),
        addr,
        cfg.io_timeout,
    )
    .await?;
    let line = read_reply(stream, &mut buf, ReplyKind::Line, addr, cfg).await?;
    if &line[..] != b"OK\r\n" {
        return Err(fail(format!(
            "it refused our proof: {:?}",
            String::from_utf8_lossy(&line).trim_end()
        )));
    }
    Ok(())
}

async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    addr: &str,
    timeout: Duration,
) -> Result<(), PeerError> {
    match tokio::time::timeout(timeout, w.write_all(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PeerError::io(addr, e)),
        Err(_) => Err(PeerError::WriteTimeout {
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

/// Read more bytes into `buf`, waiting at most `timeout`.
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    addr: &str,
    timeout: Duration,
) -> Result<(), PeerError> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 << 10);
    }
    match tokio::time::timeout(timeout, r.read_buf(buf)).await {
        Ok(Ok(0)) => Err(PeerError::Closed {
            addr: addr.to_string(),
        }),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(PeerError::io(addr, e)),
        Err(_) => Err(PeerError::Timeout {
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

/// Read one reply of `kind` from `r` (buffered in `buf`).
async fn read_reply<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    kind: ReplyKind,
    addr: &str,
    cfg: &PeerConfig,
) -> Result<Bytes, PeerError> {
    let mut framer = ReplyFramer::new(kind, cfg.limits);
    loop {
        match framer.frame(buf) {
            Ok(Some(n)) => return Ok(buf.split_to(n).freeze()),
            Ok(None) => fill(r, buf, addr, cfg.io_timeout).await?,
            Err(source) => {
                return Err(PeerError::Frame {
                    addr: addr.to_string(),
                    source,
                })
            }
        }
    }
}

/// One connection to a peer, used one request at a time.
pub struct PeerConn {
    addr: String,
    stream: TcpStream,
    rbuf: BytesMut,
    cfg: PeerConfig,
}

impl PeerConn {
    pub async fn connect(addr: &str, cfg: PeerConfig) -> Result<PeerConn, PeerError> {
        Ok(PeerConn {
            addr: addr.to_string(),
            stream: connect_stream(addr, &cfg).await?,
            rbuf: BytesMut::with_capacity(4096),
            cfg,
        })
    }

    /// Send `request` and return its complete reply of shape `kind`.
    pub async fn call(&mut self, request: &[u8], kind: ReplyKind) -> Result<Bytes, PeerError> {
        self.send(request).await?;
        self.reply(kind).await
    }

    /// [`PeerConn::call`] bounded as a whole by `timeout`.
    pub async fn call_within(
        &mut self,
        request: &[u8],
        kind: ReplyKind,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        match tokio::time::timeout(timeout, self.call(request, kind)).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout {
                addr: self.addr.clone(),
                after: timeout,
            }),
        }
    }

    /// The reply as one line of text, without its line end (for the
    /// one-line answers of `ping`, `node sync`, `shutdown`).
    pub fn line(reply: &[u8]) -> String {
        let l = reply.strip_suffix(b"\n").unwrap_or(reply);
        String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned()
    }

    /// Send bytes (a request whose reply is read with [`PeerConn::reply`]
    /// or [`PeerConn::dump_item`]).
    pub async fn send(&mut self, request: &[u8]) -> Result<(), PeerError> {
        write_all(&mut self.stream, request, &self.addr, self.cfg.io_timeout).await
    }

    /// The next reply of shape `kind`.
    pub async fn reply(&mut self, kind: ReplyKind) -> Result<Bytes, PeerError> {
        read_reply(
            &mut self.stream,
            &mut self.rbuf,
            kind,
            &self.addr,
            &self.cfg,
        )
        .await
    }

    /// The next item of a `dump` stream; each wait for bytes is bounded by
    /// the I/O timeout (a silent source fails, never hangs).
    pub async fn dump_item(&mut self) -> Result<DumpItem, PeerError> {
        loop {
            match next_dump_item(&mut self.rbuf, self.cfg.limits) {
                Ok(Some(item)) => return Ok(item),
                Ok(None) => {
                    fill(
                        &mut self.stream,
                        &mut self.rbuf,
                        &self.addr,
                        self.cfg.io_timeout,
                    )
                    .await?
                }
                Err(source) => {
                    return Err(PeerError::Frame {
                        addr: self.addr.clone(),
                        source,
                    })
                }
            }
        }
    }
}

type ReplyTx = oneshot::Sender<Result<Bytes, PeerError>>;

/// A pipe's writer gathers queued requests up to this many bytes into one
/// write (one syscall for a burst of small requests).
const COALESCE: usize = 64 << 10;

/// One queued request of a pipe.
struct Job {
    wire: Bytes,
    kind: ReplyKind,
    /// `None`: the caller does not wait (a forwarded `noreply` write); the
    /// reply is still read, to keep the connection in step.
    reply: Option<ReplyTx>,
}

/// A written request waiting for its reply.
struct InFlight {
    kind: ReplyKind,
    reply: Option<ReplyTx>,
    _permit: OwnedSemaphorePermit,
}

/// A pipelined, full-duplex connection to one peer. Cheap to clone; the
/// connection is served by one task and ends on the first failure (every
/// request then fails; callers open a new pipe).
#[derive(Clone)]
pub struct Pipe {
    addr: Arc<str>,
    tx: mpsc::Sender<Job>,
}

impl Pipe {
    /// Start a pipe to `addr` (the connection is opened by its task).
    pub fn open(addr: &str, cfg: PeerConfig) -> Pipe {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let addr: Arc<str> = Arc::from(addr);
        tokio::spawn(run_pipe(Arc::clone(&addr), cfg, rx));
        Pipe { addr, tx }
    }

    /// False once the pipe has ended.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Queue `wire` (waiting for room) and return the receiver of its reply.
    pub async fn submit(
        &self,
        wire: Bytes,
        kind: ReplyKind,
    ) -> Result<oneshot::Receiver<Result<Bytes, PeerError>>, PeerError> {
        let (rtx, rrx) = oneshot::channel();
        self.queue(Job {
            wire,
            kind,
            reply: Some(rtx),
        })
        .await?;
        Ok(rrx)
    }

    /// Queue `wire` without waiting for its reply (it is read and dropped).
    /// Waits for room: back-pressure, never an unbounded queue.
    pub async fn send(&self, wire: Bytes, kind: ReplyKind) -> Result<(), PeerError> {
        self.queue(Job {
            wire,
            kind,
            reply: None,
        })
        .await
    }

    async fn queue(&self, job: Job) -> Result<(), PeerError> {
        self.tx.send(job).await.map_err(|_| PeerError::NotSent {
            addr: self.addr.to_string(),
        })
    }

    /// Send `wire` and wait (at most `timeout`) for its reply.
    pub async fn call(
        &self,
        wire: Bytes,
        kind: ReplyKind,
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let timed_out = || PeerError::Timeout {
            addr: self.addr.to_string(),
            after: timeout,
        };
        let work = async {
            let rx = self.submit(wire, kind).await?;
            rx.await.unwrap_or_else(|_| {
                Err(PeerError::Closed {
                    addr: self.addr.to_string(),
                })
            })
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }
}

fn fail(reply: Option<ReplyTx>, e: &PeerError) {
    if let Some(r) = reply {
        let _ = r.send(Err(e.clone()));
    }
}

async fn run_pipe(addr: Arc<str>, cfg: PeerConfig, mut rx: mpsc::Receiver<Job>) {
    let stream = match connect_stream(&addr, &cfg).await {
        Ok(s) => s,
        Err(e) => {
            rx.close();
            while let Some(job) = rx.recv().await {
                fail(job.reply, &e);
            }
            return;
        }
    };
    let (mut rd, mut wr) = stream.into_split();
    let (ftx, mut frx) = mpsc::unbounded_channel::<InFlight>();
    let budget = Arc::new(Semaphore::new(cfg.max_inflight_bytes.max(1)));
    let max_permits = u32::try_from(cfg.max_inflight_bytes.max(1)).unwrap_or(u32::MAX);

    // Writer: takes jobs in order, registers each with the reader before
    // its first byte is written, and writes whatever queued up meanwhile
    // (up to COALESCE bytes) with one write. It never waits for request
    // budget with unwritten requests in hand: their replies are what frees
    // the budget.
    let writer = async {
        let mut out = BytesMut::new();
        let closed = || PeerError::Closed {
            addr: addr.to_string(),
        };
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(job) = next.take() {
                if job.reply.as_ref().is_some_and(|r| r.is_closed()) {
                    // its caller gave up (timed out) before it was written:
                    // a request nobody waits for is not sent, so that it
                    // cannot take effect after the caller moved on
                    next = rx.try_recv().ok();
                    continue;
                }
                let want = u32::try_from(job.wire.len().max(1))
                    .unwrap_or(u32::MAX)
                    .min(max_permits);
                let permit = match Arc::clone(&budget).try_acquire_many_owned(want) {
                    Ok(p) => p,
                    Err(_) => {
                        if !out.is_empty() {
                            if let Err(e) = write_all(&mut wr, &out, &addr, cfg.io_timeout).await {
                                return e;
                            }
                            out.clear();
                        }
                        match Arc::clone(&budget).acquire_many_owned(want).await {
                            Ok(p) => p,
                            Err(_) => return closed(),
                        }
                    }
                };
                if job.reply.as_ref().is_some_and(|r| r.is_closed()) {
                    // given up on while it waited for room
                    drop(permit);
                    next = rx.try_recv().ok();
                    continue;
                }
                let inflight = InFlight {
                    kind: job.kind,
                    reply: job.reply,
                    _permit: permit,
                };
                if let Err(e) = ftx.send(inflight) {
                    // the reader ended: it reports why
                    fail(
                        e.0.reply,
                        &PeerError::NotSent {
                            addr: addr.to_string(),
                        },
                    );
                    return closed();
                }
                if job.wire.len() >= COALESCE {
                    // large: written as it is, after what is gathered
                    for part in [&out[..], &job.wire[..]] {
                        if !part.is_empty() {
                            if let Err(e) = write_all(&mut wr, part, &addr, cfg.io_timeout).await {
                                return e;
                            }
                        }
                    }
                    out.clear();
                } else {
                    out.extend_from_slice(&job.wire);
                }
                if out.len() < COALESCE {
                    next = rx.try_recv().ok();
                }
            }
            if !out.is_empty() {
                if let Err(e) = write_all(&mut wr, &out, &addr, cfg.io_timeout).await {
                    return e;
                }
                out.clear();
            }
            if out.capacity() > 4 * COALESCE {
                out = BytesMut::new();
            }
        }
        // every caller is gone: close
        closed()
    };

    // Reader: replies in the order the requests were written. While nothing
    // is in flight it still watches the socket, so a peer closing an idle
    // connection ends the pipe before the next request is written to it.
    let mut pending: Option<InFlight> = None;
    let reader = async {
        let mut rbuf = BytesMut::with_capacity(16 << 10);
        loop {
            let next = tokio::select! {
                biased;
                f = frx.recv() => f,
                r = rd.read_buf(&mut rbuf) => {
                    return match r {
                        Ok(0) => PeerError::Closed { addr: addr.to_string() },
                        Ok(_) => PeerError::Frame {
                            addr: addr.to_string(),
                            source: flare_proto::client::FrameError::Unexpected,
                        },
                        Err(e) => PeerError::io(&addr, e),
                    };
                }
            };
            let Some(f) = next else {
                return PeerError::Closed {
                    addr: addr.to_string(),
                };
            };
            let kind = f.kind;
            pending = Some(f);
            match read_reply(&mut rd, &mut rbuf, kind, &addr, &cfg).await {
                Ok(answer) => {
                    if let Some(InFlight { reply: Some(r), .. }) = pending.take() {
                        let _ = r.send(Ok(answer));
                    }
                }
                Err(e) => return e,
            }
        }
    };

    let e = tokio::select! {
        e = writer => e,
        e = reader => e,
    };
    if !matches!(e, PeerError::Closed { .. }) {
        tracing::debug!("connection to {addr} ended: {e}");
    }
    // Everything written fails with the error; everything not yet written
    // can be sent again elsewhere.
    if let Some(p) = pending.take() {
        fail(p.reply, &e);
    }
    frx.close();
    while let Ok(f) = frx.try_recv() {
        fail(f.reply, &e);
    }
    rx.close();
    let not_sent = PeerError::NotSent {
        addr: addr.to_string(),
    };
    while let Ok(job) = rx.try_recv() {
        fail(job.reply, &not_sent);
    }
}

/// The pipes of one destination, one per lane (started lazily), and what
/// went through them.
struct Lanes {
    pipes: Vec<Mutex<Option<Pipe>>>,
    stats: Arc<PeerStats>,
}

/// Forwarding to one destination, as the metrics show it.
#[derive(Default, Debug)]
pub struct PeerStats {
    /// Requests sent and not yet answered (or failed).
    pub in_flight: std::sync::atomic::AtomicU64,
    /// Requests sent (each attempt).
    pub requests: std::sync::atomic::AtomicU64,
    /// Requests that failed (connection refused or lost, no answer); a
    /// timeout counts here and in `timeouts`.
    pub errors: std::sync::atomic::AtomicU64,
    /// Requests not answered within the I/O timeout.
    pub timeouts: std::sync::atomic::AtomicU64,
}

impl PeerStats {
    fn count<T>(&self, r: &Result<T, PeerError>) {
        use std::sync::atomic::Ordering::Relaxed;
        match r {
            Ok(_) => {}
            Err(PeerError::Timeout { .. }) => {
                self.errors.fetch_add(1, Relaxed);
                self.timeouts.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.errors.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Pipes to many destinations, `lanes` per destination.
pub struct Pool {
    pipes: Mutex<HashMap<String, Arc<Lanes>>>,
    lanes: usize,
    cfg: PeerConfig,
}

impl Pool {
    pub fn new(lanes: usize, cfg: PeerConfig) -> Pool {
        Pool {
            pipes: Mutex::default(),
            lanes: lanes.max(1),
            cfg,
        }
    }

    fn lanes(&self, dest: &str) -> Arc<Lanes> {
        let mut pipes = self.pipes.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(pipes.entry(dest.to_string()).or_insert_with(|| {
            Arc::new(Lanes {
                pipes: (0..self.lanes).map(|_| Mutex::new(None)).collect(),
                stats: Arc::default(),
            })
        }))
    }

    /// The pipe of lane `hash % lanes` to `dest`, (re)opened when it ended.
    pub fn pipe(&self, dest: &str, hash: u64) -> Pipe {
        Self::lane_pipe(&self.lanes(dest), dest, hash, &self.cfg)
    }

    fn lane_pipe(lanes: &Lanes, dest: &str, hash: u64, cfg: &PeerConfig) -> Pipe {
        let lane = (hash % lanes.pipes.len() as u64) as usize;
        let mut slot = lanes.pipes[lane].lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(p) if p.is_open() => p.clone(),
            _ => {
                let p = Pipe::open(dest, cfg.clone());
                *slot = Some(p.clone());
                p
            }
        }
    }

    /// What went to each destination so far (destinations still in the pool).
    pub fn stats(&self) -> Vec<(String, Arc<PeerStats>)> {
        let pipes = self.pipes.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = pipes
            .iter()
            .map(|(k, l)| (k.clone(), Arc::clone(&l.stats)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Send `wire` to `dest` on the lane of `hash` and return its reply
    /// within the I/O timeout. A request the pipe could not write (it had
    /// just ended) is sent once more on a new pipe; so is any request when
    /// `idempotent` (a read) and the connection was lost.
    pub async fn call(
        &self,
        dest: &str,
        hash: u64,
        wire: Bytes,
        kind: ReplyKind,
        idempotent: bool,
    ) -> Result<Bytes, PeerError> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut result = Err(PeerError::NotSent {
            addr: dest.to_string(),
        });
        let lanes = self.lanes(dest);
        let stats = &lanes.stats;
        for _ in 0..2 {
            let pipe = Self::lane_pipe(&lanes, dest, hash, &self.cfg);
            stats.requests.fetch_add(1, Relaxed);
            stats.in_flight.fetch_add(1, Relaxed);
            result = pipe.call(wire.clone(), kind, self.cfg.io_timeout).await;
            stats.in_flight.fetch_sub(1, Relaxed);
            stats.count(&result);
            let again = match &result {
                Err(PeerError::NotSent { .. }) => true,
                Err(PeerError::Closed { .. } | PeerError::Io { .. }) => idempotent,
                _ => false,
            };
            if !again {
                break;
            }
        }
        result
    }

    /// Queue `wire` to `dest` on the lane of `hash` without waiting for the
    /// reply; waits for room in the pipe (back-pressure).
    pub async fn send(
        &self,
        dest: &str,
        hash: u64,
        wire: Bytes,
        kind: ReplyKind,
    ) -> Result<(), PeerError> {
        let lanes = self.lanes(dest);
        lanes
            .stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pipe = Self::lane_pipe(&lanes, dest, hash, &self.cfg);
        let r = match pipe.send(wire.clone(), kind).await {
            Err(PeerError::NotSent { .. }) => {
                Self::lane_pipe(&lanes, dest, hash, &self.cfg)
                    .send(wire, kind)
                    .await
            }
            r => r,
        };
        lanes.stats.count(&r);
        r
    }

    /// Forget the pipes to destinations `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.pipes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    async fn listen() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        (l, addr)
    }

    fn cfg(ms: u64) -> PeerConfig {
        PeerConfig::new(Duration::from_millis(ms))
    }

    #[tokio::test]
    async fn conn_call_and_timeout() {
        let (l, addr) = listen().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf).await.expect("read");
            s.write_all(b"OK\r\n").await.expect("write");
            // never answer the second request
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let mut c = PeerConn::connect(&addr, cfg(1000)).await.expect("connect");
        let r = c.call(b"ping\r\n", ReplyKind::Line).await.expect("reply");
        assert_eq!(&r[..], b"OK\r\n");
        let e = c
            .call_within(b"ping\r\n", ReplyKind::Line, Duration::from_millis(100))
            .await
            .expect_err("timeout");
        assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
    }

    /// A request whose caller gave up while it waited for room on the pipe
    /// is never written: it cannot take effect after the caller moved on.
    #[tokio::test]
    async fn abandoned_requests_are_not_sent() {
        let (l, addr) = listen().await;
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            let (r, mut w) = s.into_split();
            let mut lines = tokio::io::BufReader::new(r);
            let mut line = Vec::new();
            // the first request, answered only when the test says so
            lines.read_until(b'\n', &mut line).await.expect("read");
            seen_tx.send(line.clone()).expect("seen");
            let _ = go_rx.await;
            w.write_all(b"STORED\r\n").await.expect("write");
            loop {
                line.clear();
                if lines.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                seen_tx.send(line.clone()).expect("seen");
                w.write_all(b"STORED\r\n").await.expect("write");
            }
        });
        let mut c = cfg(2000);
        // room for one request in flight
        c.max_inflight_bytes = 16;
        let pipe = Pipe::open(&addr, c);
        let first = pipe
            .submit(Bytes::from_static(b"set a 0 0 1\r\n"), ReplyKind::Line)
            .await
            .expect("queued");
        assert_eq!(seen_rx.recv().await.expect("first"), b"set a 0 0 1\r\n");
        // waits for room behind the first; its caller gives up
        let e = pipe
            .call(
                Bytes::from_static(b"set b 0 0 1\r\n"),
                ReplyKind::Line,
                Duration::from_millis(100),
            )
            .await
            .expect_err("timed out");
        assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
        go_tx.send(()).expect("go");
        assert_eq!(
            &first.await.expect("answer").expect("ok")[..],
            b"STORED\r\n"
        );
        // the next request is the one after the abandoned one
        let r = pipe
            .call(
                Bytes::from_static(b"set c 0 0 1\r\n"),
                ReplyKind::Line,
                Duration::from_secs(2),
            )
            .await
            .expect("third");
        assert_eq!(&r[..], b"STORED\r\n");
        assert_eq!(seen_rx.recv().await.expect("third"), b"set c 0 0 1\r\n");
    }

    #[tokio::test]
    async fn connect_refused_is_typed() {
        let (l, addr) = listen().await;
        drop(l);
        let e = PeerConn::connect(&addr, cfg(500))
            .await
            .err()
            .expect("refused");
        assert!(matches!(e, PeerError::Connect { .. }), "{e}");
    }

    /// Replies with keys that are not UTF-8 are framed by their bytes: the
    /// next reply on the pipe still goes to the next request.
    #[tokio::test]
    async fn pipe_frames_binary_keys_in_order() {
        let (l, addr) = listen().await;
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            let (r, mut w) = s.into_split();
            let mut lines = tokio::io::BufReader::new(r);
            let mut line = Vec::new();
            let mut n = 0;
            while lines.read_until(b'\n', &mut line).await.expect("read") > 0 {
                let answer: &[u8] = match n {
                    0 => b"VALUE caf\xe9 0 3\r\nabc\r\nVALUE \xff\xfe 0 1\r\n\n\r\nEND\r\n",
                    1 => b"END\r\n",
                    _ => b"STORED\r\n",
                };
                w.write_all(answer).await.expect("write");
                n += 1;
                line.clear();
            }
        });
        let pipe = Pipe::open(&addr, cfg(2000));
        let t = Duration::from_secs(2);
        let a = pipe.submit(
            Bytes::from_static(b"get caf\xe9 \xff\xfe\r\n"),
            ReplyKind::Values,
        );
        let a = a.await.expect("queued");
        let b = pipe
            .submit(Bytes::from_static(b"get k2\r\n"), ReplyKind::Values)
            .await
            .expect("queued");
        let c = pipe
            .call(Bytes::from_static(b"set\r\n"), ReplyKind::Line, t)
            .await;
        assert_eq!(
            &a.await.expect("answer").expect("ok")[..],
            b"VALUE caf\xe9 0 3\r\nabc\r\nVALUE \xff\xfe 0 1\r\n\n\r\nEND\r\n"
        );
        assert_eq!(&b.await.expect("answer").expect("ok")[..], b"END\r\n");
        assert_eq!(&c.expect("ok")[..], b"STORED\r\n");
    }

    /// A peer that writes large replies without reading while it writes
    /// (like any flare node) and a client sending large requests: a
    /// half-duplex client deadlocks both; the pipe's reader drains replies
    /// while its writer is blocked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipe_is_full_duplex() {
        const BIG: usize = 4 << 20;
        const N: usize = 12;
        let (l, addr) = listen().await;
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            let mut s = tokio::io::BufReader::new(s);
            let reply = {
                let mut r = format!("VALUE k 0 {BIG}\r\n").into_bytes();
                r.resize(r.len() + BIG, b'x');
                r.extend_from_slice(b"\r\nEND\r\n");
                r
            };
            let mut body = vec![0u8; BIG + 2];
            let mut line = String::new();
            loop {
                line.clear();
                if s.read_line(&mut line).await.expect("read") == 0 {
                    return;
                }
                s.read_exact(&mut body).await.expect("body");
                // no reading while this is written
                s.get_mut().write_all(&reply).await.expect("write");
            }
        });
        let mut wire = format!("set k 0 0 {BIG}\r\n").into_bytes();
        wire.resize(wire.len() + BIG, b'y');
        wire.extend_from_slice(b"\r\n");
        let wire = Bytes::from(wire);
        let mut config = cfg(10_000);
        config.max_inflight_bytes = 64 << 20;
        let pipe = Pipe::open(&addr, config);
        let mut answers = Vec::new();
        for _ in 0..N {
            answers.push(
                pipe.submit(wire.clone(), ReplyKind::Values)
                    .await
                    .expect("queued"),
            );
        }
        let all = async {
            for a in answers {
                let r = a.await.expect("answer").expect("ok");
                assert_eq!(r.len(), format!("VALUE k 0 {BIG}\r\n").len() + BIG + 2 + 5);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("no deadlock");
    }

    /// A pooled connection the peer closed while idle is replaced: the next
    /// call succeeds on a new connection.
    #[tokio::test]
    async fn pool_replaces_closed_pipes() {
        let (l, addr) = listen().await;
        tokio::spawn(async move {
            for _ in 0..2 {
                let (s, _) = l.accept().await.expect("accept");
                let (r, mut w) = s.into_split();
                let mut lines = tokio::io::BufReader::new(r);
                let mut line = Vec::new();
                lines.read_until(b'\n', &mut line).await.expect("read");
                w.write_all(b"OK\r\n").await.expect("write");
                // then close the connection
            }
        });
        let pool = Pool::new(1, cfg(2000));
        let pipe = pool.pipe(&addr, 7);
        let r = pool
            .call(
                &addr,
                7,
                Bytes::from_static(b"ping\r\n"),
                ReplyKind::Line,
                false,
            )
            .await
            .expect("first");
        assert_eq!(&r[..], b"OK\r\n");
        // wait until the pipe noticed the close
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pipe.is_open() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!pipe.is_open());
        let r = pool
            .call(
                &addr,
                7,
                Bytes::from_static(b"ping\r\n"),
                ReplyKind::Line,
                false,
            )
            .await
            .expect("second, on a new connection");
        assert_eq!(&r[..], b"OK\r\n");
    }

    /// A dump stream with binary keys, split anywhere, yields its records.
    #[tokio::test]
    async fn dump_items_from_a_stream() {
        let (l, addr) = listen().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut b = [0u8; 6];
            s.read_exact(&mut b).await.expect("read");
            let stream: &[u8] =
                b"VALUE caf\xe9 1 3 7 0\r\nabc\r\nVALUE \x83\x65 0 0 8 0\r\n\r\nEND\r\n";
            for byte in stream {
                s.write_all(std::slice::from_ref(byte))
                    .await
                    .expect("write");
            }
        });
        let mut c = PeerConn::connect(&addr, cfg(2000)).await.expect("connect");
        c.send(b"dump\r\n").await.expect("send");
        let first = c.dump_item().await.expect("first");
        assert!(
            matches!(first, DumpItem::Record { ref key, flags: 1, version: 7, ref value, .. } if &key[..] == b"caf\xe9" && &value[..] == b"abc")
        );
        let second = c.dump_item().await.expect("second");
        assert!(
            matches!(second, DumpItem::Record { ref key, version: 8, ref value, .. } if &key[..] == b"\x83\x65" && value.is_empty())
        );
        assert_eq!(c.dump_item().await.expect("end"), DumpItem::End);
    }
}
