//! Reconstruction (cluster.md §7): when the node map makes this node a
//! preparing slave or the master of a new partition, copy the partition's data
//! with `dump` from its source(s), then report to the index. And after a new
//! partition is activated, delete in the background the keys that moved away
//! from this node's partition (the original leaves them as orphans).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flare_daemon::fault;
use flare_net::{PeerConfig, PeerConn};
use flare_proto::client::{DumpItem, ReplyKind};
use flare_proto::node::{Role, State};
use flare_storage::Record;

use crate::index_client;
use crate::node::{now, Node};
use crate::topology::Topology;

/// Keys the cleanup after a split reads (and deletes from) at a time.
const CLEANUP_PAGE: usize = 1000;

/// Without data for this long, a dump source is considered dead.
const DUMP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Progress of the current (or last) reconstruction, for `stats`.
#[derive(Default)]
pub struct Progress {
    pub state: Mutex<&'static str>,
    pub source: Mutex<String>,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub cleaned: AtomicU64,
}

impl Progress {
    fn set_state(&self, s: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
    pub fn state(&self) -> &'static str {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn source(&self) -> String {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a node map change asks this node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Become a slave of `partition`: dump it from `source`.
    Slave {
        partition: u32,
        source: Option<(String, u32)>,
    },
    /// Become the master of the new `partition`: dump the moving keys from
    /// every active master.
    Master {
        partition: u32,
        sources: Vec<(String, u32)>,
    },
}

/// Compare this node's record before and after a map change (cluster.md §7.1).
pub fn plan(before: &Topology, after: &Topology, me: &str) -> Option<Plan> {
    let was_proxy = before.node(me).is_none_or(|n| n.role == Role::Proxy);
    let now = after.node(me)?;
    if !was_proxy || now.state != State::Prepare || now.partition < 0 {
        return None;
    }
    let p = now.partition as u32;
    let active = after.maps.active.len() as u32;
    match now.role {
        Role::Slave => {
            let source = if p < active {
                after.maps.active[p as usize]
                    .master_key()
                    .map(|m| (m.to_string(), active))
            } else if p == active {
                after
                    .maps
                    .prepare
                    .as_ref()
                    .and_then(|pp| pp.master_key())
                    .map(|m| (m.to_string(), active + 1))
            } else {
                None
            };
            Some(Plan::Slave {
                partition: p,
                source,
            })
        }
        Role::Master => Some(Plan::Master {
            partition: p,
            sources: after
                .maps
                .active
                .iter()
                .filter_map(|a| a.master_key())
                .filter(|m| *m != me)
                .map(|m| (m.to_string(), active + 1))
                .collect(),
        }),
        Role::Proxy => None,
    }
}

/// Run a plan in the background and report the outcome to the index.
pub fn start(node: Arc<Node>, plan: Plan) {
    tokio::spawn(async move {
        let me = node.config();
        let progress = &node.progress;
        progress.records.store(0, Ordering::Relaxed);
        progress.bytes.store(0, Ordering::Relaxed);
        progress.set_state("running");
        let interval = me
            .settings
            .int("reconstruction-interval")
            .ok()
            .flatten()
            .unwrap_or(0)
            .max(0);
        let bwlimit = me
            .settings
            .int("reconstruction-bwlimit")
            .ok()
            .flatten()
            .unwrap_or(0)
            .max(0);
        let (partition, sources, done_state) = match &plan {
            Plan::Slave { partition, source } => (
                *partition,
                source.iter().cloned().collect::<Vec<_>>(),
                "active",
            ),
            Plan::Master { partition, sources } => (*partition, sources.clone(), "ready"),
        };
        let mut result = if matches!(plan, Plan::Slave { source: None, .. }) {
            Err(format!("no master to copy partition {partition} from"))
        } else {
            Ok(())
        };
        let per_source_bw = if bwlimit > 0 && sources.len() > 1 {
            (bwlimit / sources.len() as i64).max(1)
        } else {
            bwlimit
        };
        for (source, count) in &sources {
            if result.is_err() {
                break;
            }
            *progress.source.lock().unwrap_or_else(|e| e.into_inner()) = source.clone();
            tracing::info!("reconstruction: dump of partition {partition}/{count} from {source}");
            result = dump_from(&node, source, partition, *count, interval, per_source_bw).await;
        }
        node.store.end_rebuild();
        let report = match &result {
            Ok(()) => {
                progress.set_state("done");
                tracing::info!(
                    "reconstruction of partition {partition} done: {} records, {} bytes -> node state {done_state}",
                    progress.records.load(Ordering::Relaxed),
                    progress.bytes.load(Ordering::Relaxed)
                );
                format!(
                    "node state {} {} {done_state}\r\n",
                    me.server_name, me.server_port
                )
            }
            Err(e) => {
                progress.set_state("failed");
                tracing::error!(
                    "reconstruction of partition {partition} failed: {e} -> back to proxy"
                );
                format!(
                    "node role {} {} proxy 0 -1\r\n",
                    me.server_name, me.server_port
                )
            }
        };
        // Unlike the original, the report is retried: a node must not stay
        // `prepare` forever because the index was briefly unreachable.
        for attempt in 0..10u32 {
            let sent = match fault::hit("reconstruction::report").await {
                Ok(()) => {
                    index_client::command(&me.index_servers, me.cluster_auth.clone(), &report).await
                }
                Err(e) => Err(index_client::IndexError::failpoint(e)),
            };
            match sent {
                Ok(reply) if reply == "OK" => return,
                Ok(reply) => {
                    tracing::warn!("index answered [{reply}] to [{}]", report.trim_end());
                    return;
                }
                Err(e) => tracing::warn!(
                    "reporting to the index failed (attempt {}): {e}",
                    attempt + 1
                ),
            }
            tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
        }
    });
}

/// Fetch `dump <interval> <partition> <count> [<bwlimit>]` from `source` and
/// import every record with the dump rule.
async fn dump_from(
    node: &Node,
    source: &str,
    partition: u32,
    count: u32,
    interval: i64,
    bwlimit: i64,
) -> Result<(), String> {
    // The source replicates writes to us only once it has the node map that
    // lists us. A snapshot taken before that would miss the writes made in
    // between (the index delivers the map to every node in parallel): wait
    // until the source's map is at least as new as ours.
    let version = node.topology().version;
    wait_for_map_version(source, version).await?;
    fault::hit("reconstruction::dump")
        .await
        .map_err(|e| format!("connect to {source} failed ({e})"))?;
    let mut cfg = crate::node::peer_config(&node.config());
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.io_timeout = DUMP_IDLE_TIMEOUT;
    let mut conn = PeerConn::connect(source, cfg)
        .await
        .map_err(|e| e.to_string())?;
    let request = if bwlimit > 0 {
        format!("dump {interval} {partition} {count} {bwlimit}\r\n")
    } else {
        format!("dump {interval} {partition} {count}\r\n")
    };
    conn.send(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let item = conn.dump_item().await.map_err(|e| e.to_string())?;
        let (key, record, len) = match item {
            DumpItem::End => return Ok(()),
            DumpItem::Refused(line) => {
                return Err(format!(
                    "{source} answered [{}]",
                    String::from_utf8_lossy(&line)
                ))
            }
            DumpItem::Record {
                key,
                flags,
                version,
                expire,
                value,
                len,
            } => (
                key,
                Record {
                    flags,
                    expire,
                    version,
                    value: value.to_vec(),
                },
                len,
            ),
        };
        if record.is_expired(now()) {
            continue;
        }
        if let Err(e) = node.store.import(&key, &record) {
            tracing::error!(
                "reconstruction: storing [{}] failed: {e}",
                String::from_utf8_lossy(&key)
            );
            continue;
        }
        node.progress.records.fetch_add(1, Ordering::Relaxed);
        node.progress.bytes.fetch_add(len as u64, Ordering::Relaxed);
        fault::hit("reconstruction::item")
            .await
            .map_err(|e| format!("connection to {source} lost ({e})"))?;
    }
}

/// Poll `stats` on `source` until its `node_map_version` reaches `version`.
async fn wait_for_map_version(source: &str, version: u64) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match source_map_version(source).await {
            Ok(v) if v >= version => return Ok(()),
            Ok(v) => {
                tracing::debug!("reconstruction: {source} has node map {v}, waiting for {version}")
            }
            // an unreachable source fails the reconstruction at once
            Err(e) => return Err(format!("asking {source} for its node map version: {e}")),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{source} did not reach node map version {version} within 30 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn source_map_version(source: &str) -> Result<u64, String> {
    let mut conn = PeerConn::connect(source, PeerConfig::new(Duration::from_secs(5)))
        .await
        .map_err(|e| e.to_string())?;
    let reply = conn
        .call(b"stats\r\n", ReplyKind::Block)
        .await
        .map_err(|e| e.to_string())?;
    reply
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"STAT node_map_version "))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no node_map_version in its stats".to_string())
}

/// After a new partition became active, delete the keys that moved away from
/// the partition this node serves (in the background, in paced batches).
pub fn cleanup_after_split(node: Arc<Node>, before: &Topology, after: &Topology) {
    let old = before.maps.active.len();
    let new = after.maps.active.len();
    if old == 0 || new <= old {
        return;
    }
    let Some(mine) = after
        .maps
        .active
        .iter()
        .position(|p| p.members.contains(&node.me))
        .filter(|&q| q < old)
    else {
        return;
    };
    let table = Arc::clone(&after.table);
    let hash = after.hash;
    tokio::task::spawn_blocking(move || {
        tracing::info!(
            "cleanup after partition split: deleting the keys that moved away from partition {mine}"
        );
        // Paced: pages of 1000 keys with a pause, and no faster than
        // `reconstruction-bwlimit` KiB/s of deleted keys when that is set.
        // Memory: one page of keys at a time, however large the store.
        let bwlimit = node
            .config()
            .settings
            .int("reconstruction-bwlimit")
            .ok()
            .flatten()
            .unwrap_or(0)
            .max(0) as u64;
        let started = std::time::Instant::now();
        let mut bytes: u64 = 0;
        let mut deleted: u64 = 0;
        let mut last: Option<Vec<u8>> = None;
        loop {
            let page = match node.store.keys_page(b"", last.as_deref(), CLEANUP_PAGE) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("cleanup after partition split: scan failed: {e}");
                    return;
                }
            };
            let full = page.len() == CLEANUP_PAGE;
            for k in &page {
                let moved = table
                    .partition_of_key(hash, k, new as u32)
                    .is_some_and(|p| p as usize >= old && p as usize != mine);
                if moved && node.store.delete(k, 0, 0, now()).is_ok() {
                    node.progress.cleaned.fetch_add(1, Ordering::Relaxed);
                    deleted += 1;
                    bytes += k.len() as u64 + crate::RECORD_OVERHEAD;
                }
            }
            last = page.into_iter().last();
            if !full || last.is_none() {
                break;
            }
            let mut pause = Duration::from_millis(5);
            if bwlimit > 0 {
                let due = Duration::from_secs_f64(bytes as f64 / (bwlimit * 1024) as f64);
                pause = pause.max(due.saturating_sub(started.elapsed()));
            }
            std::thread::sleep(pause);
        }
        tracing::info!("cleanup after partition split: {deleted} keys deleted");
    });
}
