//! One agent task per node: health checks (cluster.md §8.1, §8.2) and
//! delivery of `node sync` messages (§3, with retries; see [`crate::sync`]).
//!
//! Health check: every `monitor-interval` seconds connect (connect timeout)
//! if needed, send `ping`, read one line within `monitor-read-timeout`;
//! success iff the line is exactly `OK`. Before each check the node's record
//! is consulted: a node recorded `down` starts at `threshold` failures, a node
//! recorded up with a counter at or above `threshold` starts again from 0.
//! After the failure that makes the counter exactly `threshold`, the node is
//! taken down; a success while the node is recorded down brings it back up.
//!
//! Pings and deliveries share one persistent connection and are serialised;
//! a failed exchange drops the connection, and a ping that fails on a reused
//! connection (e.g. the node restarted) is retried once on a fresh one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use flare_proto::node::State;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::MonitorConfig;
use crate::index::{now, Index};
use crate::map::{DownMode, Op, Outcome};
use crate::sync::{self, Delivery, SyncMsg, RETRY_MIN};
use flare_net::{PeerConfig, PeerConn, PeerError, Slot, SlotState};
use flare_proto::client::ReplyKind;

struct Agent {
    index: Arc<Index>,
    key: String,
    slot: Arc<Slot>,
    stats: Arc<crate::index::NodeStats>,
    cfg: MonitorConfig,
    conn: Option<PeerConn>,
    failures: u32,
    /// The message still to deliver.
    pending: Option<Arc<SyncMsg>>,
    /// When `pending` was first queued (for `stats threads` `behind`).
    pending_since: Option<i64>,
    /// A message in which this node is a prior node and whose first attempt
    /// has not happened yet.
    owed_gate: Option<Arc<SyncMsg>>,
    /// The pending message may be sent without waiting for prior nodes.
    gate_passed: bool,
    /// Consecutive failed deliveries of `pending`.
    attempts: u32,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// Run the agent of node `key` until `stop` turns true (or is dropped).
pub async fn run(
    index: Arc<Index>,
    key: String,
    slot: Arc<Slot>,
    stats: Arc<crate::index::NodeStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut latest = index.subscribe_sync();
    let mut monitor = index.subscribe_monitor();
    let cfg = *monitor.borrow_and_update();
    let mut agent = Agent {
        index,
        key,
        slot: Arc::clone(&slot),
        stats,
        cfg,
        conn: None,
        failures: 0,
        pending: None,
        pending_since: None,
        owed_gate: None,
        gate_passed: false,
        attempts: 0,
        backoff: RETRY_MIN,
        retry_at: None,
    };
    tracing::debug!("monitor for node {} started", agent.key);
    let first = latest.borrow_and_update().clone();
    agent.consider(first);
    let mut next_ping = cfg.interval.map(|i| Instant::now() + i);

    loop {
        if *stop.borrow() {
            break;
        }
        let due = agent.pending.is_some() && agent.retry_at.is_none_or(|t| t <= Instant::now());
        if due {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                _ = agent.deliver() => {}
            }
            continue;
        }
        let wake = match (next_ping, agent.pending.as_ref().and(agent.retry_at)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = slot.killed() => {
                slot.clear_kill();
                agent.conn = None;
                tracing::info!("connection to node {} reset by kill", agent.key);
            }
            changed = latest.changed() => {
                if changed.is_err() {
                    break;
                }
                let msg = latest.borrow_and_update().clone();
                agent.consider(msg);
            }
            changed = monitor.changed() => {
                if changed.is_ok() {
                    agent.cfg = *monitor.borrow_and_update();
                    next_ping = agent.cfg.interval.map(|i| Instant::now() + i);
                }
            }
            _ = sleep_until(wake) => {
                if next_ping.is_some_and(|t| t <= Instant::now()) {
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        _ = agent.check() => {}
                    }
                    next_ping = agent.cfg.interval.map(|i| Instant::now() + i);
                }
            }
        }
    }
    if let Some(msg) = agent.owed_gate.take() {
        msg.release_prior();
    }
    agent.index.registry.unregister(agent.slot.id);
    tracing::debug!("monitor for node {} stopped", agent.key);
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Agent {
    /// A new message was published: it replaces whatever was pending.
    fn consider(&mut self, msg: Arc<SyncMsg>) {
        if let Some(old) = self.owed_gate.take() {
            old.release_prior();
        }
        if msg.is_target(&self.key) {
            let prior = msg.is_prior(&self.key);
            if prior {
                self.owed_gate = Some(Arc::clone(&msg));
            }
            self.gate_passed = prior;
            self.pending = Some(msg);
            self.pending_since.get_or_insert_with(now);
            self.attempts = 0;
            self.backoff = RETRY_MIN;
            self.retry_at = None;
        } else {
            self.pending = None;
            self.pending_since = None;
        }
        self.slot.set_queued(self.pending_since);
    }

    /// The connection, connecting first if needed.
    async fn conn(&mut self) -> Result<&mut PeerConn, PeerError> {
        match self.conn {
            Some(ref mut c) => Ok(c),
            None => {
                self.slot.set_state(SlotState::Connect);
                let mut cfg = PeerConfig::new(self.cfg.read_timeout);
                cfg.connect_timeout = self.cfg.connect_timeout;
                cfg.secret = self.index.config.cluster_auth.clone();
                let c = PeerConn::connect(&self.key, cfg).await?;
                self.slot.set_state(SlotState::Execute);
                Ok(self.conn.insert(c))
            }
        }
    }

    async fn exchange(&mut self, request: &[u8], timeout: Duration) -> Result<String, PeerError> {
        let r = match self.conn().await {
            Ok(c) => c
                .call_within(request, ReplyKind::Line, timeout)
                .await
                .map(|r| PeerConn::line(&r)),
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// One ping; `Err` describes the failure.
    async fn ping(&mut self) -> Result<(), String> {
        let timeout = self.cfg.read_timeout;
        let reused = self.conn.is_some();
        let mut reply = self.exchange(b"ping\r\n", timeout).await;
        if let Err(e) = &reply {
            if reused && !matches!(e, PeerError::Timeout { .. }) {
                // the kept connection was stale (node restarted): try a fresh one
                reply = self.exchange(b"ping\r\n", timeout).await;
            }
        }
        match reply {
            Ok(line) if line == "OK" => Ok(()),
            Ok(line) => Err(format!("ping answered [{line}]")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A health check, and the resulting down/up operation.
    async fn check(&mut self) {
        let Some(state) = self.index.node_state(&self.key) else {
            return;
        };
        let threshold = self.cfg.threshold;
        let recorded_down = state == State::Down;
        if recorded_down {
            self.failures = threshold;
        } else if self.failures >= threshold {
            self.failures = 0;
        }
        self.slot.set("ping", SlotState::Execute);
        let started = Instant::now();
        let result = self.ping().await;
        self.slot.set("", SlotState::Wait);
        let s = &self.stats;
        s.pings.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(()) => s.last_ping_ns.store(
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            ),
            Err(_) => {
                s.ping_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        match result {
            Ok(()) => {
                if recorded_down {
                    tracing::info!("node {} answers ping again -> bringing it up", self.key);
                    self.run_op(Op::Recover {
                        key: self.key.clone(),
                    })
                    .await;
                }
                self.failures = 0;
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                if recorded_down {
                    tracing::debug!("ping to down node {} failed: {e}", self.key);
                } else {
                    tracing::warn!(
                        "ping to node {} failed ({}/{threshold}): {e}",
                        self.key,
                        self.failures
                    );
                }
                if threshold > 0 && self.failures == threshold {
                    tracing::warn!(
                        "node {} failed {threshold} consecutive pings -> marking it down",
                        self.key
                    );
                    self.run_op(Op::Down {
                        key: self.key.clone(),
                        mode: DownMode::Monitor,
                    })
                    .await;
                }
            }
        }
    }

    async fn run_op(&self, op: Op) {
        match self.index.apply(op).await {
            Ok(Outcome::Changed(_)) | Ok(Outcome::Unchanged) => {}
            Err(e) => tracing::error!("monitor operation on node {} failed: {e}", self.key),
        }
    }

    /// Try to deliver the pending message once.
    async fn deliver(&mut self) {
        let Some(msg) = self.pending.clone() else {
            return;
        };
        if !self.gate_passed {
            let limit =
                self.cfg.connect_timeout + self.cfg.sync_timeout() + Duration::from_millis(500);
            msg.wait_for_prior(limit).await;
            self.gate_passed = true;
        }
        self.slot.set("node_sync", SlotState::Execute);
        let timeout = self.cfg.sync_timeout();
        let result = match self.conn().await {
            Ok(c) => sync::deliver(c, &msg, timeout).await,
            Err(e) => Delivery::Failed(e.into()),
        };
        self.slot.set("", SlotState::Wait);
        if let Some(owed) = self.owed_gate.take() {
            owed.release_prior();
        }
        let done = |agent: &mut Agent| {
            agent.pending = None;
            agent.pending_since = None;
            agent.attempts = 0;
            agent.backoff = RETRY_MIN;
            agent.retry_at = None;
            agent.slot.set_queued(None);
        };
        match &result {
            Delivery::Accepted | Delivery::Stale => &self.stats.syncs,
            Delivery::Failed(_) => &self.stats.sync_failures,
        }
        .fetch_add(1, Ordering::Relaxed);
        match result {
            Delivery::Accepted => {
                tracing::debug!("node sync (version {}) -> {}: OK", msg.version, self.key);
                if self.attempts > 0 {
                    tracing::info!(
                        "node {} took node sync version {} after {} failed attempt(s)",
                        self.key,
                        msg.version,
                        self.attempts
                    );
                }
                done(self);
            }
            Delivery::Stale => {
                tracing::warn!(
                    "node {} rejected node sync version {} as stale (it holds a newer node map)",
                    self.key,
                    msg.version
                );
                done(self);
            }
            Delivery::Failed(e) => {
                self.conn = None;
                self.attempts += 1;
                if self.attempts == 1 {
                    tracing::warn!(
                        "node sync (version {}) -> {} failed: {e} (retrying)",
                        msg.version,
                        self.key
                    );
                } else {
                    tracing::debug!(
                        "node sync (version {}) -> {} failed again ({} attempts): {e}",
                        msg.version,
                        self.key,
                        self.attempts
                    );
                }
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = sync::next_backoff(self.backoff);
            }
        }
    }
}
