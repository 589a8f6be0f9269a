//! The closed-loop load: N connections, each keeping up to `pipeline`
//! requests in flight, every reply checked.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dist::KeyDist;
use crate::reply::{parse_get, parse_store};
use crate::rng::Rng;
use crate::value::{key_name, ValueGen};

/// Latencies are recorded in nanoseconds, 3 significant digits, up to this.
pub const HIST_MAX_NS: u64 = 60_000_000_000;
/// Error descriptions kept per connection.
const MAX_SAMPLES: usize = 5;

/// What the connections send.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `set` every key `0..n` once.
    Preload,
    /// Random gets (of `multiget` distinct keys) and sets.
    Mix {
        dist: KeyDist,
        get_ratio: f64,
        multiget: usize,
    },
}

/// Everything one run needs; shared by the connections.
#[derive(Debug)]
pub struct Workload {
    pub mode: Mode,
    pub keys: u64,
    pub prefix: String,
    pub value: ValueGen,
    pub pipeline: usize,
    /// A `get` that misses a key is an error unless this is set.
    pub allow_miss: bool,
    pub duration: Duration,
    pub max_ops: Option<u64>,
    /// A connection that gets no reply for this long gives up.
    pub io_timeout: Duration,
    pub seed: u64,
}

/// Counters of one kind of request.
#[derive(Clone, Debug)]
pub struct OpStats {
    /// Requests whose reply was complete and correct.
    pub ok: u64,
    /// Requests with any error (or a miss when misses are not allowed).
    pub failed: u64,
    /// Keys asked for by the `ok` requests.
    pub keys: u64,
    pub hits: u64,
    pub misses: u64,
    /// Keys whose value did not verify, and other wrong items.
    pub wrong: u64,
    /// Latency of the `ok` requests (ns).
    pub hist: Histogram<u64>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            ok: 0,
            failed: 0,
            keys: 0,
            hits: 0,
            misses: 0,
            wrong: 0,
            hist: Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid bounds"),
        }
    }

    pub fn merge(&mut self, o: &OpStats) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.keys += o.keys;
        self.hits += o.hits;
        self.misses += o.misses;
        self.wrong += o.wrong;
        self.hist.add(&o.hist).expect("same bounds");
    }

    fn record(&mut self, start: Instant, now: Instant) {
        let ns = now
            .duration_since(start)
            .as_nanos()
            .clamp(1, HIST_MAX_NS as u128) as u64;
        self.hist.record(ns).expect("clamped");
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Totals {
    pub get: OpStats,
    pub set: OpStats,
    /// A few error descriptions.
    pub samples: Vec<String>,
    pub elapsed: Duration,
    /// Requests issued (for preload: keys claimed).
    pub issued: u64,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            get: OpStats::new(),
            set: OpStats::new(),
            samples: Vec::new(),
            elapsed: Duration::ZERO,
            issued: 0,
        }
    }

    fn sample(&mut self, msg: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(msg);
        }
    }

    fn merge(&mut self, o: &Totals) {
        self.get.merge(&o.get);
        self.set.merge(&o.set);
        for s in &o.samples {
            if self.samples.len() < 2 * MAX_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }
}

struct Shared {
    deadline: Instant,
    /// Requests claimed (Mix with an op limit) or next key (Preload).
    issued: AtomicU64,
}

enum Kind {
    Get(usize),
    Set,
}

enum Step {
    Wrote(usize),
    Read,
    Closed,
}

impl Step {
    fn read(n: usize) -> Step {
        if n == 0 {
            Step::Closed
        } else {
            Step::Read
        }
    }
}

struct Pending {
    kind: Kind,
    start: Instant,
}

/// Names of the keys of one `get`, in one buffer.
#[derive(Default)]
struct KeyList {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyList {
    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }
    fn push(&mut self, prefix: &str, index: u64) {
        key_name(prefix, index, &mut self.buf);
        self.ends.push(self.buf.len());
    }
    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

/// Connect `connections` sockets, then run the workload on all of them until
/// the duration, the op limit or (preload) the key count is reached.
pub async fn run(
    addr: SocketAddr,
    connections: usize,
    wl: Arc<Workload>,
) -> Result<Totals, String> {
    let mut streams = Vec::with_capacity(connections);
    for i in 0..connections {
        let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connection {i} to {addr}: timed out"))?
            .map_err(|e| format!("connection {i} to {addr}: {e}"))?;
        s.set_nodelay(true)
            .map_err(|e| format!("connection {i}: {e}"))?;
        streams.push(s);
    }
    let start = Instant::now();
    let shared = Arc::new(Shared {
        deadline: start + wl.duration,
        issued: AtomicU64::new(0),
    });
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(connection(i, s, Arc::clone(&wl), Arc::clone(&shared))))
        .collect();
    let mut totals = Totals::new();
    for t in tasks {
        let c = t
            .await
            .map_err(|e| format!("connection task failed: {e}"))?;
        totals.merge(&c);
    }
    totals.elapsed = start.elapsed();
    totals.issued = shared.issued.load(Ordering::Relaxed);
    if let Mode::Preload = wl.mode {
        totals.issued = totals.issued.min(wl.keys);
    }
    Ok(totals)
}

/// Claim the next request: `None` when the run is over.
/// Preload: the next key index. Mix: `Some(0)`.
fn claim(wl: &Workload, shared: &Shared) -> Option<u64> {
    if Instant::now() >= shared.deadline {
        return None;
    }
    match wl.mode {
        Mode::Preload => {
            let k = shared.issued.fetch_add(1, Ordering::Relaxed);
            (k < wl.keys).then_some(k)
        }
        Mode::Mix { .. } => match wl.max_ops {
            Some(max) => (shared.issued.fetch_add(1, Ordering::Relaxed) < max).then_some(0),
            None => Some(0),
        },
    }
}

fn write_set(wl: &Workload, index: u64, key: &mut Vec<u8>, out: &mut Vec<u8>) {
    key.clear();
    key_name(&wl.prefix, index, key);
    let flags = wl.value.flags(key);
    out.extend_from_slice(b"set ");
    out.extend_from_slice(key);
    out.extend_from_slice(format!(" {flags} 0 {}\r\n", wl.value.size()).as_bytes());
    wl.value.write_value(key, out);
    out.extend_from_slice(b"\r\n");
}

async fn connection(
    id: usize,
    mut stream: TcpStream,
    wl: Arc<Workload>,
    shared: Arc<Shared>,
) -> Totals {
    let mut stats = Totals::new();
    let (mut rd, mut wr) = stream.split();
    let mut rng = Rng::new(wl.seed ^ (id as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut wbuf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut wpos = 0;
    let mut rbuf = BytesMut::with_capacity(64 << 10);
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(wl.pipeline);
    let mut keyq: VecDeque<u64> = VecDeque::new();
    let mut picked: Vec<u64> = Vec::new();
    let mut key = Vec::with_capacity(64);
    let mut keys = KeyList::default();
    let mut issuing = true;

    loop {
        // Keep the window full.
        while issuing && pending.len() < wl.pipeline {
            let Some(index) = claim(&wl, &shared) else {
                issuing = false;
                break;
            };
            let kind = match &wl.mode {
                Mode::Preload => {
                    write_set(&wl, index, &mut key, &mut wbuf);
                    Kind::Set
                }
                Mode::Mix {
                    dist,
                    get_ratio,
                    multiget,
                } => {
                    if *get_ratio > 0.0 && rng.next_f64() < *get_ratio {
                        picked.clear();
                        while picked.len() < *multiget {
                            let mut k = dist.sample(&mut rng);
                            // distinct keys (multiget <= keys is checked)
                            let mut tries = 0;
                            while picked.contains(&k) && tries < 1000 {
                                k = if tries < 100 {
                                    dist.sample(&mut rng)
                                } else {
                                    rng.below(dist.n())
                                };
                                tries += 1;
                            }
                            picked.push(k);
                        }
                        wbuf.extend_from_slice(b"get");
                        for &k in &picked {
                            wbuf.push(b' ');
                            key_name(&wl.prefix, k, &mut wbuf);
                            keyq.push_back(k);
                        }
                        wbuf.extend_from_slice(b"\r\n");
                        Kind::Get(picked.len())
                    } else {
                        let k = dist.sample(&mut rng);
                        write_set(&wl, k, &mut key, &mut wbuf);
                        Kind::Set
                    }
                }
            };
            pending.push_back(Pending {
                kind,
                start: Instant::now(),
            });
        }
        if pending.is_empty() {
            break;
        }
        if rbuf.capacity() - rbuf.len() < 16 << 10 {
            rbuf.reserve(64 << 10);
        }
        // Write what is queued while reading replies (so a large request
        // batch and a large reply batch cannot block each other).
        let step = async {
            if wpos < wbuf.len() {
                tokio::select! {
                    w = wr.write(&wbuf[wpos..]) => w.map(Step::Wrote),
                    r = rd.read_buf(&mut rbuf) => r.map(Step::read),
                }
            } else {
                rd.read_buf(&mut rbuf).await.map(Step::read)
            }
        };
        let fatal = match tokio::time::timeout(wl.io_timeout, step).await {
            Ok(Ok(Step::Wrote(n))) => {
                wpos += n;
                if wpos == wbuf.len() {
                    wbuf.clear();
                    wpos = 0;
                }
                continue;
            }
            Ok(Ok(Step::Read)) => None,
            Ok(Ok(Step::Closed)) => Some("closed by the server".to_string()),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no reply for {:?}", wl.io_timeout)),
        };
        if let Some(why) = fatal {
            fail_all(&mut stats, &pending, format!("connection {id}: {why}"));
            return stats;
        }
        // Take every complete reply.
        let now = Instant::now();
        while let Some(p) = pending.front() {
            match p.kind {
                Kind::Set => {
                    let Some((len, r)) = parse_store(&rbuf) else {
                        break;
                    };
                    rbuf.advance(len);
                    match r {
                        Ok(()) => {
                            stats.set.ok += 1;
                            stats.set.keys += 1;
                            stats.set.record(p.start, now);
                        }
                        Err(e) => {
                            stats.set.failed += 1;
                            stats.set.wrong += 1;
                            stats.sample(e);
                        }
                    }
                }
                Kind::Get(n) => {
                    keys.clear();
                    for &k in keyq.iter().take(n) {
                        keys.push(&wl.prefix, k);
                    }
                    let kl = &keys;
                    let value = &wl.value;
                    let Some((len, o)) = parse_get(
                        &rbuf,
                        n,
                        |i| kl.key(i),
                        |i, flags, data| {
                            value
                                .verify(kl.key(i), flags, data)
                                .map_err(|e| e.to_string())
                        },
                    ) else {
                        break;
                    };
                    rbuf.advance(len);
                    keyq.drain(..n);
                    let g = &mut stats.get;
                    g.hits += u64::from(o.hits);
                    g.misses += u64::from(o.misses);
                    g.wrong += u64::from(o.errors);
                    let missed = o.misses > 0 && !wl.allow_miss;
                    if o.errors == 0 && !missed {
                        g.ok += 1;
                        g.keys += n as u64;
                        g.record(p.start, now);
                    } else {
                        g.failed += 1;
                        let msg = match o.first_error {
                            Some(e) => e,
                            None => format!(
                                "get: {} of {n} keys missing (first: {:?})",
                                o.misses,
                                String::from_utf8_lossy(keys.key(0))
                            ),
                        };
                        stats.sample(msg);
                    }
                }
            }
            pending.pop_front();
        }
        if pending.is_empty() && !rbuf.is_empty() {
            let n = rbuf.len();
            stats.sample(format!(
                "connection {id}: {n} unexpected bytes after the last reply: {:?}",
                String::from_utf8_lossy(&rbuf[..n.min(80)])
            ));
            stats.set.wrong += 1;
            rbuf.clear();
        }
    }
    stats
}

fn fail_all(stats: &mut Totals, pending: &VecDeque<Pending>, msg: String) {
    for p in pending {
        match p.kind {
            Kind::Get(_) => stats.get.failed += 1,
            Kind::Set => stats.set.failed += 1,
        }
    }
    stats.sample(msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_list() {
        let mut k = KeyList::default();
        k.push("p:", 1);
        k.push("p:", 22);
        k.push("p:", 333);
        assert_eq!(k.key(0), b"p:1");
        assert_eq!(k.key(1), b"p:22");
        assert_eq!(k.key(2), b"p:333");
        k.clear();
        k.push("q", 0);
        assert_eq!(k.key(0), b"q0");
    }

    #[test]
    fn set_requests() {
        let wl = Workload {
            mode: Mode::Preload,
            keys: 1,
            prefix: "t:".into(),
            value: ValueGen::new(20),
            pipeline: 1,
            allow_miss: false,
            duration: Duration::from_secs(1),
            max_ops: None,
            io_timeout: Duration::from_secs(1),
            seed: 0,
        };
        let (mut key, mut out) = (Vec::new(), Vec::new());
        write_set(&wl, 5, &mut key, &mut out);
        let flags = wl.value.flags(b"t:5");
        let head = format!("set t:5 {flags} 0 20\r\n");
        assert!(out.starts_with(head.as_bytes()));
        assert_eq!(out.len(), head.len() + 22);
        assert!(out.ends_with(b"\r\n"));
        let body = &out[head.len()..head.len() + 20];
        assert_eq!(wl.value.verify(b"t:5", flags, body), Ok(()));
    }
}
