//! `dump` and `dump_key`: stream the local records (optionally one partition's)
//! over a consistent RocksDB snapshot. The scan runs on a blocking thread and
//! hands chunks to the connection through a small bounded channel, so a slow
//! reader holds back the scan instead of growing memory, and a reader that
//! stops reading is cut off by the write timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use flare_net::Out;
use flare_proto::reply;
use flare_proto::request::PartitionFilter;
use tokio::sync::mpsc;

use super::Next;
use crate::node::{now, Node};

/// Chunks are sent when they reach this size (or per record when paced).
const CHUNK: usize = 64 << 10;

/// A dump to stream.
#[derive(Clone, Copy, Debug)]
pub struct DumpJob {
    /// true: `dump` (records); false: `dump_key` (keys only).
    records: bool,
    wait_us: u32,
    filter: Option<PartitionFilter>,
    bwlimit_kib: u64,
}

impl DumpJob {
    pub fn dump(wait_us: u32, filter: Option<PartitionFilter>, bwlimit_kib: u64) -> Self {
        DumpJob {
            records: true,
            wait_us,
            filter,
            bwlimit_kib,
        }
    }
    pub fn keys(filter: Option<PartitionFilter>, bwlimit_kib: u64) -> Self {
        DumpJob {
            records: false,
            wait_us: 0,
            filter,
            bwlimit_kib,
        }
    }
}

/// Paces records: `wait` per record, and no faster than `bwlimit` KiB/s.
struct Pacer {
    wait: Duration,
    bytes_per_sec: u64,
    started: Instant,
    sent: u64,
}

impl Pacer {
    fn active(&self) -> bool {
        !self.wait.is_zero() || self.bytes_per_sec > 0
    }
    fn pause(&mut self, bytes: usize) {
        self.sent += bytes as u64;
        let mut pause = self.wait;
        if self.bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(self.sent as f64 / self.bytes_per_sec as f64);
            pause = pause.max(due.saturating_sub(self.started.elapsed()));
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

fn scan(node: &Node, job: DumpJob, tx: &mpsc::Sender<Bytes>) {
    let mut buf = BytesMut::with_capacity(CHUNK + 1024);
    let mut pacer = Pacer {
        wait: Duration::from_micros(u64::from(job.wait_us)),
        bytes_per_sec: job.bwlimit_kib.saturating_mul(1024),
        started: Instant::now(),
        sent: 0,
    };
    let topology = node.topology();
    let wanted = |key: &[u8]| match job.filter {
        None => true,
        Some(f) => {
            topology
                .table
                .partition_of_key(topology.hash, key, f.partition_size)
                == Some(f.partition)
        }
    };
    let mut emit = |buf: &mut BytesMut| -> bool {
        let len = buf.len();
        let ok = tx.blocking_send(buf.split().freeze()).is_ok();
        if ok && pacer.active() {
            pacer.pause(len);
        }
        ok
    };
    let result = if job.records {
        node.store.scan_live(now(), &mut |k, r| {
            if !wanted(k) {
                return true;
            }
            reply::dump_value(&mut buf, k, r.flags, &r.value, r.version, r.expire);
            buf.len() < CHUNK && !pacer_active(job) || emit(&mut buf)
        })
    } else {
        node.store.scan_keys(&mut |k| {
            if !wanted(k) {
                return true;
            }
            reply::key_line(&mut buf, k);
            buf.len() < CHUNK && !pacer_active(job) || emit(&mut buf)
        })
    };
    match result {
        Ok(()) => buf.extend_from_slice(reply::END),
        Err(e) => {
            tracing::error!("dump: storage iteration failed: {e}");
            buf.extend_from_slice(if job.records {
                reply::ITERATION_CANCELED
            } else {
                b"SERVER_ERROR\r\n"
            });
        }
    }
    let _ = tx.blocking_send(buf.freeze());
}

fn pacer_active(job: DumpJob) -> bool {
    job.wait_us > 0 || job.bwlimit_kib > 0
}

/// Stream a dump to the client: the scan runs on a blocking thread and
/// hands chunks through a small bounded channel; each chunk waits for the
/// socket (bounded by the write timeout). When the client stops reading or
/// goes away, the channel closes, the scan stops and its snapshot is
/// released.
pub async fn run(node: &Arc<Node>, job: DumpJob, out: &mut Out<'_>) -> Next {
    if let Some(f) = job.filter {
        // The original reads past its table here (protocol.md §14.1): refuse.
        if f.partition_size >= node.topology().table.partition_size() {
            out.extend_from_slice(reply::ERROR);
            return Next::Continue;
        }
    }
    if !out.flush().await {
        return Next::Close;
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let scanner = Arc::clone(node);
    let task = tokio::task::spawn_blocking(move || scan(&scanner, job, &tx));
    let mut ok = true;
    while let Some(chunk) = rx.recv().await {
        if !out.write_through(&chunk).await {
            ok = false;
            break;
        }
    }
    drop(rx);
    let _ = task.await;
    if ok {
        Next::Continue
    } else {
        Next::Close
    }
}
