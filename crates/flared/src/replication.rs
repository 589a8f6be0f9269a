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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use flare_cluster::murmur;
use flare_daemon::fault;
use flare_proto::client::ReplyKind;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use flare_net::{PeerConfig, Pipe};

use crate::commands::FENCED;

/// Writes queued per worker before writers have to wait.
pub const QUEUE_PER_WORKER: usize = 8192;
/// Prefix of the error of a write every attempt of which was fenced.
const FENCED_BY: &str = "fenced by the destination:";

/// Bytes of writes queued for one destination before writers have to wait.
pub const BYTES_PER_DESTINATION: usize = 64 << 20;
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
    /// When it was queued (unix ms): the age of the oldest write in
    /// delivery is the slave's lag.
    queued_ms: u64,
    ack: Option<Ack>,
    /// The destination's target generation when the write was queued: a
    /// write queued for an earlier stint of the node as a target (before it
    /// was taken out, emptied and copied again) is never delivered to the
    /// new one, which got the partition by its copy. Delivered late, it
    /// could bring back a key deleted before the copy.
    gen: u64,
    /// This write's share of the destination's byte budget.
    _bytes: OwnedSemaphorePermit,
}

/// Replication to one destination, as the metrics show it.
pub struct DestStats {
    /// Writes queued or in delivery.
    pub queued: AtomicU64,
    /// Writes the destination acknowledged.
    pub acks: AtomicU64,
    /// Delivery attempts that failed (each is retried while the destination
    /// stays a target).
    pub failures: AtomicU64,
    /// Writes the destination never got while a target (it must be rebuilt).
    pub dropped: AtomicU64,
    /// Per lane: when the oldest write in delivery was queued (unix ms; 0:
    /// the lane is idle).
    oldest_ms: Vec<AtomicU64>,
}

impl DestStats {
    fn new(lanes: usize) -> DestStats {
        DestStats {
            queued: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            oldest_ms: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// How long the oldest write not yet delivered has waited (0 when
    /// every lane is idle).
    pub fn lag(&self, now_ms: u64) -> Duration {
        self.oldest_ms
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .filter(|t| *t > 0)
            .min()
            .map_or(Duration::ZERO, |t| {
                Duration::from_millis(now_ms.saturating_sub(t))
            })
    }
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One destination's figures: its stats and the bytes of its queue.
pub struct DestSnapshot {
    pub dest: String,
    pub stats: Arc<DestStats>,
    pub queued_bytes: u64,
}

/// Called with a slave's key when it missed a write while still a target:
/// it has diverged and must be taken out (reported to the index).
pub type OnDivergence = Arc<dyn Fn(&str) + Send + Sync>;

/// What every worker shares.
struct Shared {
    /// Current replication targets and their generation (a node that
    /// stops being a target and becomes one again gets a new one); updated
    /// on every node map change.
    targets: RwLock<HashMap<String, u64>>,
    next_gen: AtomicU64,
    /// Writes queued or in delivery (for the drain at shutdown).
    pending: AtomicUsize,
    /// Writes a slave that is still a target never got (queue full, or every
    /// delivery attempt failed): that slave must be rebuilt.
    dropped: AtomicU64,
    /// Slaves already reported as diverged (until they stop being targets).
    reported: Mutex<HashSet<String>>,
    on_divergence: Option<OnDivergence>,
    /// Per destination (as long as it has a worker).
    stats: RwLock<HashMap<String, Arc<DestStats>>>,
}

impl Shared {
    /// The generation of `dest` as a target (0: not a target).
    fn generation(&self, dest: &str) -> u64 {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dest)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `dest` is a target, in generation `gen`.
    fn is_target(&self, dest: &str, gen: u64) -> bool {
        gen != 0 && self.generation(dest) == gen
    }

    fn count_dropped(&self, dest: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.dest_stats(dest) {
            s.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dest_stats(&self, dest: &str) -> Option<Arc<DestStats>> {
        self.stats
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dest)
            .cloned()
    }

    /// `dest` missed a write of generation `gen`. If it is still that
    /// target it has diverged: count it and report it (once) so that it is
    /// taken out of reads.
    fn missed(&self, dest: &str, gen: u64, why: &str) {
        if !self.is_target(dest, gen) {
            tracing::warn!("replication to {dest} failed: {why}");
            return;
        }
        if why.starts_with(FENCED_BY) {
            // Not the slave's fault: its node map says this node is not the
            // key's master. Either this node was replaced (the index promoted
            // another node while this one did not hear of it) or the slave is
            // behind; reporting it could take a good slave out.
            self.count_dropped(dest);
            tracing::error!(
                "replication to {dest} refused: {why}; is this node still the master? (check `stats nodes` on the index)"
            );
            return;
        }
        self.count_dropped(dest);
        tracing::error!(
            "replication to {dest} failed: {why}; that slave missed a write and must be rebuilt"
        );
        let first = self
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dest.to_string());
        if first {
            if let Some(report) = &self.on_divergence {
                report(dest);
            }
        }
    }
}

/// Room for one write in one destination's queue, taken before the write is
/// applied (so nothing waits while the key's order lock is held).
pub struct Reserved {
    dest: String,
    /// Waited for by a `sync` write (a slave, not a preparing master).
    slave: bool,
    permit: mpsc::OwnedPermit<Job>,
    bytes: OwnedSemaphorePermit,
    /// The figures of the worker `permit` queues to.
    stats: Arc<DestStats>,
}

/// Replication senders for every destination.
pub struct Replicator {
    workers: Mutex<HashMap<String, Worker>>,
    shared: Arc<Shared>,
    concurrency: usize,
    cfg: PeerConfig,
}

/// The lanes of one destination and its byte budget.
struct Worker {
    lanes: Vec<mpsc::Sender<Job>>,
    budget: Arc<Semaphore>,
    stats: Arc<DestStats>,
}

impl Replicator {
    pub fn new(
        concurrency: usize,
        cfg: PeerConfig,
        on_divergence: Option<OnDivergence>,
    ) -> Replicator {
        Replicator {
            workers: Mutex::default(),
            shared: Arc::new(Shared {
                targets: RwLock::default(),
                next_gen: AtomicU64::new(1),
                pending: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                reported: Mutex::default(),
                on_divergence,
                stats: RwLock::default(),
            }),
            concurrency: concurrency.max(1),
            cfg,
        }
    }

    /// Writes dropped for slaves that were still targets (`stats`).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Each destination with a worker: its figures (metrics).
    pub fn stats(&self) -> Vec<DestSnapshot> {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<DestSnapshot> = workers
            .iter()
            .map(|(dest, w)| {
                let free = w.budget.available_permits().min(BYTES_PER_DESTINATION);
                DestSnapshot {
                    dest: dest.clone(),
                    stats: Arc::clone(&w.stats),
                    queued_bytes: (BYTES_PER_DESTINATION - free) as u64,
                }
            })
            .collect();
        all.sort_by(|a, b| a.dest.cmp(&b.dest));
        all
    }

    /// Replace the set of nodes replication may go to.
    pub fn set_targets(&self, targets: HashSet<String>) {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| targets.contains(k));
        self.shared
            .stats
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| targets.contains(k));
        self.shared
            .reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| targets.contains(k));
        let mut current = self
            .shared
            .targets
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let next: HashMap<String, u64> = targets
            .into_iter()
            .map(|t| {
                let gen = current
                    .get(&t)
                    .copied()
                    .unwrap_or_else(|| self.shared.next_gen.fetch_add(1, Ordering::Relaxed));
                (t, gen)
            })
            .collect();
        *current = next;
    }

    fn lane(&self, dest: &str, key: &[u8]) -> (mpsc::Sender<Job>, Arc<Semaphore>, Arc<DestStats>) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = workers.get(dest) {
            let lane = w.lanes[murmur(key) as usize % w.lanes.len()].clone();
            return (lane, Arc::clone(&w.budget), Arc::clone(&w.stats));
        }
        let w = workers.entry(dest.to_string()).or_insert_with(|| {
            let stats = Arc::new(DestStats::new(self.concurrency));
            self.shared
                .stats
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(dest.to_string(), Arc::clone(&stats));
            Worker {
                lanes: (0..self.concurrency)
                    .map(|lane| {
                        let (tx, rx) = mpsc::channel(QUEUE_PER_WORKER);
                        tokio::spawn(worker(
                            dest.to_string(),
                            rx,
                            Arc::clone(&self.shared),
                            self.cfg.clone(),
                            (Arc::clone(&stats), lane),
                        ));
                        tx
                    })
                    .collect(),
                budget: Arc::new(Semaphore::new(BYTES_PER_DESTINATION)),
                stats,
            }
        });
        let lane = w.lanes[murmur(key) as usize % w.lanes.len()].clone();
        (lane, Arc::clone(&w.budget), Arc::clone(&w.stats))
    }

    /// Take room for one write of about `size` bytes on `key` in the queue
    /// of each destination (`slaves` are waited for by `sync` writes,
    /// `others` never), waiting at most `proxy-timeout`. A destination
    /// without room in time has missed the write: it is reported as
    /// diverged, and a `sync` write fails.
    pub async fn reserve(
        &self,
        slaves: &[String],
        others: &[String],
        key: &[u8],
        size: usize,
    ) -> (Vec<Reserved>, Vec<(String, String)>) {
        let mut room = Vec::new();
        let mut failed = Vec::new();
        let want = u32::try_from(size.clamp(1, BYTES_PER_DESTINATION)).unwrap_or(u32::MAX);
        let all = slaves
            .iter()
            .map(|d| (d, true))
            .chain(others.iter().map(|d| (d, false)));
        for (dest, slave) in all {
            let (lane, budget, stats) = self.lane(dest, key);
            let take = async {
                let bytes = budget.acquire_many_owned(want).await.ok()?;
                let permit = lane.reserve_owned().await.ok()?;
                Some((permit, bytes))
            };
            match tokio::time::timeout(self.cfg.io_timeout, take).await {
                Ok(Some((permit, bytes))) => room.push(Reserved {
                    dest: dest.clone(),
                    slave,
                    permit,
                    bytes,
                    stats,
                }),
                _ => {
                    let why = format!("replication queue to {dest} is full");
                    self.shared.missed(dest, self.shared.generation(dest), &why);
                    if slave {
                        failed.push((dest.clone(), why));
                    }
                }
            }
        }
        (room, failed)
    }

    /// Queue `msg` in the reserved room; never waits. With `wait`, returns
    /// the receivers of the slaves' acknowledgements.
    pub fn commit(
        &self,
        room: Vec<Reserved>,
        msg: &Message,
        wait: bool,
    ) -> Vec<(String, oneshot::Receiver<Result<(), String>>)> {
        let mut acks = Vec::new();
        let now = unix_ms();
        for r in room {
            let gen = self.shared.generation(&r.dest);
            r.stats.queued.fetch_add(1, Ordering::Relaxed);
            let ack = if wait && r.slave {
                let (tx, rx) = oneshot::channel();
                acks.push((r.dest, rx));
                Some(tx)
            } else {
                None
            };
            self.shared.pending.fetch_add(1, Ordering::SeqCst);
            r.permit.send(Job {
                queued_ms: now,
                msg: Message {
                    wire: msg.wire.clone(),
                    fallback: msg.fallback.clone(),
                },
                ack,
                gen,
                _bytes: r.bytes,
            });
        }
        acks
    }

    /// Wait (at most `limit`) until every queued write was delivered or
    /// failed. Returns the writes still pending.
    pub async fn drain(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let n = self.shared.pending.load(Ordering::SeqCst);
            if n == 0 || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
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
    shared: Arc<Shared>,
    cfg: PeerConfig,
    (stats, lane): (Arc<DestStats>, usize),
) {
    let mut pipe: Option<Pipe> = None;
    let oldest = &stats.oldest_ms[lane];
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        // Whatever queued up meanwhile goes out pipelined; the answers come
        // back in the same order. One batch, one target generation.
        let gen = first.gen;
        oldest.store(first.queued_ms.max(1), Ordering::Relaxed);
        let mut batch = vec![first];
        // A write with a fallback (a `touch`) ends its batch: when the slave
        // answers it `NOT_FOUND`, the fallback must reach the slave before
        // any later write of the key (else it could bring back a key a later
        // `delete` removed).
        while batch.len() < BATCH && batch.last().is_some_and(|j| j.msg.fallback.is_none()) {
            match rx.try_recv() {
                Ok(job) if job.gen == gen => batch.push(job),
                Ok(job) => {
                    carry = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        let wires: Vec<Bytes> = batch.iter().map(|j| j.msg.wire.clone()).collect();
        let results = deliver_all(&dest, gen, &mut pipe, &wires, &shared, &cfg, &stats).await;
        for (job, mut result) in batch.into_iter().zip(results) {
            if let (Ok(Delivered::NotFound), Some(fallback)) = (&result, &job.msg.fallback) {
                let again = deliver_all(
                    &dest,
                    gen,
                    &mut pipe,
                    std::slice::from_ref(fallback),
                    &shared,
                    &cfg,
                    &stats,
                )
                .await;
                result = again
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| Err("no result".to_string()));
            }
            let result = result.map(|_| ());
            match &result {
                Ok(()) => stats.acks.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    shared.missed(&dest, gen, e);
                    0
                }
            };
            if let Some(ack) = job.ack {
                let _ = ack.send(result);
            }
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            shared.pending.fetch_sub(1, Ordering::SeqCst);
        }
        // the next batch's first write sets it again
        oldest.store(0, Ordering::Relaxed);
    }
}

/// Deliver `wires` in order, pipelined on the worker's connection; on a
/// connection failure the writes not yet answered are sent again on a new
/// connection (replicated writes carry versions, so a duplicate is answered
/// `NOT_STORED`/`NOT_FOUND` and changes nothing).
async fn deliver_all(
    dest: &str,
    gen: u64,
    pipe: &mut Option<Pipe>,
    wires: &[Bytes],
    shared: &Shared,
    cfg: &PeerConfig,
    stats: &DestStats,
) -> Vec<Result<Delivered, String>> {
    let mut results: Vec<Result<Delivered, String>> = Vec::with_capacity(wires.len());
    let mut backoff = Duration::from_millis(50);
    let mut last = String::new();
    let mut attempts = 0;
    let mut fenced = false;
    while results.len() < wires.len() {
        if attempts >= MAX_ATTEMPTS {
            let e = if fenced {
                format!("{FENCED_BY} {last}")
            } else {
                format!("{dest}: {last}")
            };
            results.extend((results.len()..wires.len()).map(|_| Err(e.clone())));
            break;
        }
        attempts += 1;
        if !shared.is_target(dest, gen) {
            let e = format!("{dest} is no longer a replication target");
            results.extend((results.len()..wires.len()).map(|_| Err(e.clone())));
            break;
        }
        let p = match pipe {
            Some(p) if p.is_open() => p.clone(),
            _ => {
                let p = Pipe::open(dest, cfg.clone());
                *pipe = Some(p.clone());
                p
            }
        };
        // Queue every unanswered write, then take the answers in order.
        let mut answers = Vec::new();
        if fault::hit("replication::send").await.is_err() {
            // as if the connection broke before anything was written
            last = "connection lost (failpoint replication::send)".to_string();
            stats.failures.fetch_add(1, Ordering::Relaxed);
            *pipe = None;
            if attempts < MAX_ATTEMPTS {
                tokio::time::sleep(backoff).await;
            }
            continue;
        }
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
        fenced = false;
        for rx in answers {
            match tokio::time::timeout(cfg.io_timeout, rx).await {
                Ok(Ok(Ok(reply))) if reply.starts_with(FENCED.as_bytes()) => {
                    // the destination's map disagrees about who is master:
                    // if it is behind, it catches up within moments; if this
                    // node was replaced, every attempt is refused
                    last = format!(
                        "{dest} refused: {}",
                        String::from_utf8_lossy(&reply).trim_end()
                    );
                    fenced = true;
                    failed = true;
                    break;
                }
                Ok(Ok(Ok(_))) if fault::hit("replication::ack").await.is_err() => {
                    // the destination applied it, the answer was lost
                    last = "connection lost (failpoint replication::ack)".to_string();
                    failed = true;
                    break;
                }
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
            stats.failures.fetch_add(1, Ordering::Relaxed);
            if !fenced {
                *pipe = None;
            }
            // no wait after the last attempt: the writer learns at once
            if attempts < MAX_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    /// A slave that does not have `k`: `touch` → `NOT_FOUND`, the fallback
    /// `set` → `STORED`, `delete` → `DELETED`. Records what it received.
    async fn fake_slave() -> (String, Arc<Mutex<Vec<String>>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            let mut s = tokio::io::BufReader::new(s);
            let mut line = String::new();
            while s.read_line(&mut line).await.unwrap_or(0) > 0 {
                let cmd = line
                    .split_once('>')
                    .map_or(line.as_str(), |(_, c)| c)
                    .trim_end()
                    .to_string();
                let reply: &[u8] = if cmd.starts_with("touch") {
                    b"NOT_FOUND\r\n"
                } else if cmd.starts_with("set") {
                    let mut data = [0u8; 3];
                    s.read_exact(&mut data).await.expect("data");
                    b"STORED\r\n"
                } else {
                    b"DELETED\r\n"
                };
                log.lock().unwrap_or_else(|e| e.into_inner()).push(cmd);
                s.get_mut().write_all(reply).await.expect("reply");
                line.clear();
            }
        });
        (addr, seen)
    }

    /// A write queued while a slave was a target, still undelivered when
    /// the slave was taken out and then added again (emptied and copied),
    /// is not delivered to it: it could bring back a key the copy no
    /// longer has (deleted meanwhile).
    #[tokio::test]
    async fn writes_of_an_earlier_stint_are_not_delivered() {
        // nothing listens at first: the write waits in its retries
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let slave = l.local_addr().expect("addr").to_string();
        drop(l);
        let r = Replicator::new(1, PeerConfig::new(Duration::from_millis(200)), None);
        r.set_targets(HashSet::from([slave.clone()]));
        let old = Message {
            wire: Bytes::from_static(b"<m:1>set k 0 0 1 5\r\nx\r\n"),
            fallback: None,
        };
        let (room, _) = r.reserve(std::slice::from_ref(&slave), &[], b"k", 64).await;
        let mut acks = r.commit(room, &old, true);
        // taken out, then a target again, and now it listens
        r.set_targets(HashSet::new());
        r.set_targets(HashSet::from([slave.clone()]));
        let l = tokio::net::TcpListener::bind(&slave).await.expect("rebind");
        let (_, rx) = acks.pop().expect("ack");
        let e = rx.await.expect("answered").expect_err("not delivered");
        assert!(e.contains("no longer a replication target"), "{e}");
        // nothing reached the slave
        assert!(
            tokio::time::timeout(Duration::from_millis(300), l.accept())
                .await
                .is_err(),
            "the old write was sent to the new stint"
        );
    }

    #[tokio::test]
    async fn a_touch_fallback_reaches_the_slave_before_later_writes() {
        let (slave, seen) = fake_slave().await;
        let r = Replicator::new(1, PeerConfig::new(Duration::from_secs(2)), None);
        r.set_targets(HashSet::from([slave.clone()]));
        let touch = Message {
            wire: Bytes::from_static(b"<m:1>touch k 100\r\n"),
            fallback: Some(Bytes::from_static(b"<m:1>set k 0 100 1 5\r\nx\r\n")),
        };
        let delete = Message {
            wire: Bytes::from_static(b"<m:1>delete k 0 6\r\n"),
            fallback: None,
        };
        // both queued before the worker runs: one batch unless the touch ends it
        let (room1, _) = r.reserve(std::slice::from_ref(&slave), &[], b"k", 64).await;
        let (room2, _) = r.reserve(std::slice::from_ref(&slave), &[], b"k", 64).await;
        let mut acks = r.commit(room1, &touch, true);
        acks.extend(r.commit(room2, &delete, true));
        for (_, rx) in acks {
            assert!(matches!(rx.await, Ok(Ok(()))));
        }
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            seen,
            vec!["touch k 100", "set k 0 100 1 5", "delete k 0 6"],
            "the fallback must not follow the delete"
        );
    }
}
