//! Forwarding requests to other nodes over pooled connections.
//!
//! Each destination has `proxy-concurrency` connections, opened lazily. A
//! request for key K always uses connection `murmur(K) mod n`, so forwarded
//! operations on one key to one destination stay in order. Every step has a
//! timeout: a dead peer costs at most `proxy-timeout`, never a hang.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flare_cluster::murmur;
use flare_proto::client::{reply_len, ReplyKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Errors forwarding a request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("connect to {0} failed: {1}")]
    Connect(String, String),
    #[error("exchange with {0} failed: {1}")]
    Exchange(String, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

pub(crate) struct PeerConn {
    pub(crate) stream: TcpStream,
    pub(crate) rbuf: BytesMut,
}

struct Pool {
    addr: String,
    /// One pipelined connection per slot, each served by its own task.
    pipes: Vec<Mutex<Option<mpsc::Sender<Job>>>>,
}

/// One forwarded request waiting for its turn on a pipe.
struct Job {
    wire: Bytes,
    kind: ReplyKind,
    reply: oneshot::Sender<Result<Bytes, PipeError>>,
}

struct PipeError {
    connect: bool,
    /// No byte of this request's answer arrived (it may be sent again).
    fresh: bool,
    reason: String,
}

/// Requests queued per pipe before callers wait.
const PIPE_QUEUE: usize = 1024;

/// All destinations.
pub struct Peers {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    concurrency: usize,
    timeout: Duration,
}

impl Peers {
    pub fn new(concurrency: usize, timeout: Duration) -> Peers {
        Peers {
            pools: Mutex::default(),
            concurrency: concurrency.max(1),
            timeout,
        }
    }

    fn pool(&self, dest: &str) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(pools.entry(dest.to_string()).or_insert_with(|| {
            Arc::new(Pool {
                addr: dest.to_string(),
                pipes: (0..self.concurrency).map(|_| Mutex::new(None)).collect(),
            })
        }))
    }

    /// Forget connections to nodes that left the map.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }

    /// The pipe of a slot, (re)started when it is gone.
    fn pipe(&self, pool: &Pool, slot: usize) -> mpsc::Sender<Job> {
        let mut g = pool.pipes[slot].lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(PIPE_QUEUE);
                tokio::spawn(pipe(pool.addr.clone(), rx, self.timeout));
                *g = Some(tx.clone());
                tx
            }
        }
    }

    /// Send `request` to `dest` and return its complete reply. Requests to
    /// one destination share `proxy-concurrency` connections and are
    /// pipelined on them (many in flight, answers matched in order); a key
    /// always uses the same connection, so its requests stay in order.
    pub async fn call(
        &self,
        dest: &str,
        key: &[u8],
        request: &[u8],
        kind: ReplyKind,
    ) -> Result<Bytes, ProxyError> {
        let pool = self.pool(dest);
        let slot = murmur(key) as usize % pool.pipes.len();
        let addr = || pool.addr.clone();
        // A pooled connection may have been closed by the peer while idle:
        // a request that got no byte of answer is sent once more on a new one.
        for attempt in 0..2 {
            let tx = self.pipe(&pool, slot);
            let (rtx, rrx) = oneshot::channel();
            let job = Job {
                wire: Bytes::copy_from_slice(request),
                kind,
                reply: rtx,
            };
            if tx.send(job).await.is_err() {
                continue;
            }
            match tokio::time::timeout(self.timeout, rrx).await {
                Ok(Ok(Ok(reply))) => return Ok(reply),
                Ok(Ok(Err(e))) if e.connect => return Err(ProxyError::Connect(addr(), e.reason)),
                Ok(Ok(Err(e))) => {
                    if !(e.fresh && attempt == 0) {
                        return Err(ProxyError::Exchange(addr(), e.reason));
                    }
                }
                Ok(Err(_)) => return Err(ProxyError::Exchange(addr(), "connection lost".into())),
                Err(_) => return Err(ProxyError::Timeout(addr(), self.timeout)),
            }
        }
        Err(ProxyError::Exchange(addr(), "connection lost".into()))
    }
}

/// A pipe: one connection, requests written as they come, answers read in
/// order. Any failure fails every request in flight and ends the pipe (the
/// next call starts a new one).
async fn pipe(addr: String, mut rx: mpsc::Receiver<Job>, timeout: Duration) {
    let conn = match connect(&addr, timeout).await {
        Ok(c) => c,
        Err(e) => {
            rx.close();
            while let Some(job) = rx.recv().await {
                let _ = job.reply.send(Err(PipeError {
                    connect: true,
                    fresh: true,
                    reason: e.to_string(),
                }));
            }
            return;
        }
    };
    let PeerConn { stream, mut rbuf } = conn;
    let (mut rd, mut wr) = stream.into_split();
    let mut inflight: VecDeque<(ReplyKind, oneshot::Sender<Result<Bytes, PipeError>>)> =
        VecDeque::new();
    let fail_all =
        |inflight: &mut VecDeque<(ReplyKind, oneshot::Sender<Result<Bytes, PipeError>>)>,
         first_fresh: bool,
         reason: &str| {
            let mut fresh = first_fresh;
            while let Some((_, reply)) = inflight.pop_front() {
                let _ = reply.send(Err(PipeError {
                    connect: false,
                    fresh,
                    reason: reason.to_string(),
                }));
                fresh = true;
            }
        };
    loop {
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { break };
                if let Err(e) = wr.write_all(&job.wire).await {
                    inflight.push_back((job.kind, job.reply));
                    fail_all(&mut inflight, true, &e.to_string());
                    break;
                }
                inflight.push_back((job.kind, job.reply));
            }
            r = rd.read_buf(&mut rbuf) => {
                match r {
                    Ok(0) | Err(_) => {
                        let reason = match r {
                            Err(e) => e.to_string(),
                            _ => "connection closed by peer".to_string(),
                        };
                        fail_all(&mut inflight, rbuf.is_empty(), &reason);
                        break;
                    }
                    Ok(_) => {
                        while let Some((kind, _)) = inflight.front() {
                            let Some(n) = reply_len(&rbuf, *kind) else { break };
                            let answer = rbuf.split_to(n).freeze();
                            if let Some((_, reply)) = inflight.pop_front() {
                                let _ = reply.send(Ok(answer));
                            }
                        }
                    }
                }
            }
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 << 10);
        }
    }
}

/// Open a connection to another node (bounded by `timeout`).
pub(crate) async fn connect(addr: &str, timeout: Duration) -> Result<PeerConn, ProxyError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ProxyError::Connect(addr.to_string(), e.to_string())),
        Err(_) => return Err(ProxyError::Timeout(addr.to_string(), timeout)),
    };
    let _ = stream.set_nodelay(true);
    Ok(PeerConn {
        stream,
        rbuf: BytesMut::with_capacity(4096),
    })
}

pub(crate) struct ExchangeError {
    pub reason: String,
}

pub(crate) async fn exchange(
    conn: &mut PeerConn,
    request: &[u8],
    kind: ReplyKind,
) -> Result<Bytes, ExchangeError> {
    conn.rbuf.clear();
    conn.stream
        .write_all(request)
        .await
        .map_err(|e| ExchangeError {
            reason: e.to_string(),
        })?;
    loop {
        if let Some(n) = reply_len(&conn.rbuf, kind) {
            return Ok(conn.rbuf.split_to(n).freeze());
        }
        match conn.stream.read_buf(&mut conn.rbuf).await {
            Ok(0) => {
                return Err(ExchangeError {
                    reason: "connection closed by peer".into(),
                })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ExchangeError {
                    reason: e.to_string(),
                })
            }
        }
    }
}
