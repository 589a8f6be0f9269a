//! Master → slave replication (cluster.md §6).
//!
//! Each destination has `proxy-concurrency` workers; a write for key K goes to
//! worker `murmur(K) mod n`, whose queue is strictly FIFO, so writes on one key
//! reach a slave in order. A worker owns one connection and retries a write
//! (reconnecting, with backoff) for as long as the destination is still a
//! replication target in the current node map; once the index has taken the
//! destination out (down, removed, demoted), its queued writes fail at once,
//! so a dead slave never blocks writes longer than the index needs to notice.
//!
//! Queues are bounded ([`QUEUE_PER_WORKER`]): when a slave is slower than the
//! write rate, writers wait for room for up to `proxy-timeout`; a write that
//! still finds no room is not replicated (logged as an error and counted in
//! `stats` as `replication_dropped`): that slave must then be rebuilt.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use flare_cluster::murmur;
use flare_proto::client::ReplyKind;
use tokio::sync::{mpsc, oneshot};

use flare_net::{PeerConfig, Pipe};

/// Writes queued per worker before writers have to wait.
pub const QUEUE_PER_WORKER: usize = 8192;
/// Delivery attempts of one write while its destination stays a target.
const MAX_ATTEMPTS: u32 = 8;

type Ack = oneshot::Sender<Result<(), String>>;

/// One replicated write.
pub struct Message {
    pub wire: Bytes,
    /// Sent instead when the destination answers `NOT_FOUND` to `wire`: a
    /// `touch` reaching a slave that does not have the key yet (it is still
    /// copying the partition) is replaced by the whole record with its
    /// version, so the new expiry is not lost.
    pub fallback: Option<Bytes>,
}

struct Job {
    msg: Message,
    ack: Option<Ack>,
}

/// Replication senders for every destination.
pub struct Replicator {
    workers: Mutex<HashMap<String, Vec<mpsc::Sender<Job>>>>,
    /// Current replication targets; updated on every node map change.
    targets: Arc<RwLock<HashSet<String>>>,
    concurrency: usize,
    timeout: Duration,
    cfg: PeerConfig,
    /// Writes a slave that is still a target never got (queue full, or every
    /// delivery attempt failed): that slave must be rebuilt.
    pub dropped: Arc<AtomicU64>,
}

impl Replicator {
    pub fn new(concurrency: usize, timeout: Duration, cfg: PeerConfig) -> Replicator {
        Replicator {
            workers: Mutex::default(),
            targets: Arc::default(),
            concurrency: concurrency.max(1),
            timeout,
            cfg,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Replace the set of nodes replication may go to.
    pub fn set_targets(&self, targets: HashSet<String>) {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| targets.contains(k));
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = targets;
    }

    fn sender(&self, dest: &str, key: &[u8]) -> mpsc::Sender<Job> {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let list = workers.entry(dest.to_string()).or_insert_with(|| {
            (0..self.concurrency)
                .map(|_| {
                    let (tx, rx) = mpsc::channel(QUEUE_PER_WORKER);
                    tokio::spawn(worker(
                        dest.to_string(),
                        rx,
                        Arc::clone(&self.targets),
                        self.cfg,
                        Arc::clone(&self.dropped),
                    ));
                    tx
                })
                .collect()
        });
        list[murmur(key) as usize % list.len()].clone()
    }

    /// Queue one replicated write. With `ack`, the returned receiver resolves
    /// once the destination confirmed it (or it failed).
    pub async fn send(
        &self,
        dest: &str,
        key: &[u8],
        msg: Message,
        ack: bool,
    ) -> Option<oneshot::Receiver<Result<(), String>>> {
        let (tx, rx) = if ack {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let sender = self.sender(dest, key);
        if let Err(e) = sender
            .send_timeout(Job { msg, ack: tx }, self.timeout)
            .await
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                "replication queue to {dest} is full or closed ({e}): write on key [{}] not replicated; rebuild that slave",
                String::from_utf8_lossy(key)
            );
            let (mpsc::error::SendTimeoutError::Timeout(job)
            | mpsc::error::SendTimeoutError::Closed(job)) = e;
            if let Some(a) = job.ack {
                let _ = a.send(Err(format!("replication queue to {dest} is full")));
            }
        }
        rx
    }
}

fn is_target(targets: &RwLock<HashSet<String>>, dest: &str) -> bool {
    targets
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(dest)
}

/// A reply that means the destination has applied (or already had) the write.
fn acknowledged(reply: &[u8]) -> Option<Delivered> {
    match reply {
        b"NOT_FOUND\r\n" => Some(Delivered::NotFound),
        b"STORED\r\n" | b"NOT_STORED\r\n" | b"DELETED\r\n" | b"TOUCHED\r\n" => {
            Some(Delivered::Applied)
        }
        _ => None,
    }
}

/// How the destination took a write.
enum Delivered {
    /// Applied, or already had it (or something newer).
    Applied,
    /// Answered `NOT_FOUND` (also an acknowledgement, unless a fallback exists).
    NotFound,
}

/// Writes a worker sends back to back before reading their answers.
const BATCH: usize = 64;

async fn worker(
    dest: String,
    mut rx: mpsc::Receiver<Job>,
    targets: Arc<RwLock<HashSet<String>>>,
    cfg: PeerConfig,
    dropped: Arc<AtomicU64>,
) {
    let mut pipe: Option<Pipe> = None;
    while let Some(first) = rx.recv().await {
        // Whatever queued up meanwhile goes out pipelined; the answers come
        // back in the same order.
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let wires: Vec<Bytes> = batch.iter().map(|j| j.msg.wire.clone()).collect();
        let results = deliver_all(&dest, &mut pipe, &wires, &targets, &cfg).await;
        for (job, mut result) in batch.into_iter().zip(results) {
            if let (Ok(Delivered::NotFound), Some(fallback)) = (&result, &job.msg.fallback) {
                let again = deliver_all(
                    &dest,
                    &mut pipe,
                    std::slice::from_ref(fallback),
                    &targets,
                    &cfg,
                )
                .await;
                result = again
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Err("no result".to_string()));
            }
            let result = result.map(|_| ());
            if let Err(e) = &result {
                if is_target(&targets, &dest) {
                    // still a slave in the map, but it missed this write
                    dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        "replication to {dest} failed: {e}; that slave missed a write and must be rebuilt"
                    );
                } else {
                    tracing::warn!("replication to {dest} failed: {e}");
                }
            }
            if let Some(ack) = job.ack {
                let _ = ack.send(result);
            }
        }
    }
}

/// Deliver `wires` in order, pipelined on the worker's connection; on a
/// connection failure the writes not yet answered are sent again on a new
/// connection (replicated writes carry versions, so a duplicate is answered
/// `NOT_STORED`/`NOT_FOUND` and changes nothing).
async fn deliver_all(
    dest: &str,
    pipe: &mut Option<Pipe>,
    wires: &[Bytes],
    targets: &RwLock<HashSet<String>>,
    cfg: &PeerConfig,
) -> Vec<Result<Delivered, String>> {
    let mut results: Vec<Result<Delivered, String>> = Vec::with_capacity(wires.len());
    let mut backoff = Duration::from_millis(50);
    let mut last = String::new();
    let mut attempts = 0;
    while results.len() < wires.len() {
        if attempts >= MAX_ATTEMPTS {
            let e = format!("{dest}: {last}");
            results.extend((results.len()..wires.len()).map(|_| Err(e.clone())));
            break;
        }
        attempts += 1;
        if !is_target(targets, dest) {
            let e = format!("{dest} is no longer a replication target");
            results.extend((results.len()..wires.len()).map(|_| Err(e.clone())));
            break;
        }
        let p = match pipe {
            Some(p) if p.is_open() => p.clone(),
            _ => {
                let p = Pipe::open(dest, *cfg);
                *pipe = Some(p.clone());
                p
            }
        };
        // Queue every unanswered write, then take the answers in order.
        let mut answers = Vec::new();
        for w in &wires[results.len()..] {
            match p.submit(w.clone(), ReplyKind::Line).await {
                Ok(rx) => answers.push(rx),
                Err(e) => {
                    last = e.to_string();
                    break;
                }
            }
        }
        let mut failed = answers.is_empty();
        for rx in answers {
            match tokio::time::timeout(cfg.io_timeout, rx).await {
                Ok(Ok(Ok(reply))) => results.push(match acknowledged(&reply) {
                    Some(d) => Ok(d),
                    None => Err(format!(
                        "answered {}",
                        String::from_utf8_lossy(&reply).trim_end()
                    )),
                }),
                Ok(Ok(Err(e))) => {
                    last = e.to_string();
                    failed = true;
                    break;
                }
                Ok(Err(_)) => {
                    last = "connection lost".to_string();
                    failed = true;
                    break;
                }
                Err(_) => {
                    last = format!("no answer within {:?}", cfg.io_timeout);
                    failed = true;
                    break;
                }
            }
        }
        if failed && results.len() < wires.len() {
            *pipe = None;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
    results
}
