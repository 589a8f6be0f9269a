//! Forwarding requests to other nodes over pooled connections.
//!
//! Each destination has `proxy-concurrency` connections, opened lazily. A
//! request for key K always uses connection `murmur(K) mod n`, so forwarded
//! operations on one key to one destination stay in order. Every step has a
//! timeout: a dead peer costs at most `proxy-timeout`, never a hang.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flare_cluster::murmur;
use flare_proto::client::{reply_len, ReplyKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    conns: Vec<tokio::sync::Mutex<Option<PeerConn>>>,
}

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
                conns: (0..self.concurrency)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
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

    /// Send `request` to `dest` and return its complete reply.
    pub async fn call(
        &self,
        dest: &str,
        key: &[u8],
        request: &[u8],
        kind: ReplyKind,
    ) -> Result<Bytes, ProxyError> {
        let pool = self.pool(dest);
        let slot = &pool.conns[murmur(key) as usize % pool.conns.len()];
        let mut guard = slot.lock().await;
        // A pooled connection may have been closed by the peer while idle:
        // when it fails before any reply byte arrived, retry once on a fresh one.
        for attempt in 0..2 {
            let reused = guard.is_some();
            if guard.is_none() {
                *guard = Some(self.connect(&pool.addr).await?);
            }
            let Some(conn) = guard.as_mut() else { continue };
            match tokio::time::timeout(self.timeout, exchange(conn, request, kind)).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => {
                    *guard = None;
                    if !(reused && attempt == 0 && e.fresh) {
                        return Err(ProxyError::Exchange(pool.addr.clone(), e.reason));
                    }
                }
                Err(_) => {
                    *guard = None;
                    return Err(ProxyError::Timeout(pool.addr.clone(), self.timeout));
                }
            }
        }
        Err(ProxyError::Exchange(
            pool.addr.clone(),
            "connection lost".into(),
        ))
    }

    async fn connect(&self, addr: &str) -> Result<PeerConn, ProxyError> {
        connect(addr, self.timeout).await
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
    /// Nothing of a reply was received (the request may be resent).
    pub fresh: bool,
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
            fresh: true,
            reason: e.to_string(),
        })?;
    loop {
        if let Some(n) = reply_len(&conn.rbuf, kind) {
            return Ok(conn.rbuf.split_to(n).freeze());
        }
        let got_any = !conn.rbuf.is_empty();
        match conn.stream.read_buf(&mut conn.rbuf).await {
            Ok(0) => {
                return Err(ExchangeError {
                    fresh: !got_any,
                    reason: "connection closed by peer".into(),
                })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(ExchangeError {
                    fresh: !got_any,
                    reason: e.to_string(),
                })
            }
        }
    }
}
