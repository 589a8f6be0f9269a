//! `node sync` broadcasts (cluster.md §3).
//!
//! After every saved change the index publishes one [`SyncMsg`] holding the
//! whole map. Each node's agent (see [`crate::monitor`]) delivers the *latest*
//! message to its node, off the request path, and retries with backoff until
//! the node has taken it (`OK`), reports a newer map
//! (`SERVER_ERROR node sync error`), stops being a target (a newer map says it
//! is down) or is removed. Older messages are never sent once a newer exists.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flare_proto::node::State;
use tokio::sync::watch;

use crate::map::{Change, NodeMap};
use flare_net::{PeerConn, PeerError};
use flare_proto::client::ReplyKind;

/// First retry delay after a failed delivery; doubled up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// One broadcast.
#[derive(Debug)]
pub struct SyncMsg {
    pub version: u64,
    /// `node sync <version>`, the `NODE` lines in node-key order, `END`.
    pub payload: Bytes,
    /// Node keys that receive it: every node not `down`, plus a down node the
    /// change says to tell.
    pub targets: BTreeSet<String>,
    /// Nodes served before the others (promoted slave, activated master).
    pub prior: BTreeSet<String>,
    /// Number of prior nodes whose first delivery attempt is still to come.
    gate: watch::Sender<usize>,
}

impl SyncMsg {
    /// The message for `map` after `change`.
    pub fn new(map: &NodeMap, change: &Change) -> SyncMsg {
        let mut text = format!("node sync {}\r\n", map.version);
        for n in map.nodes() {
            text.push_str(&n.to_string());
            text.push_str("\r\n");
        }
        text.push_str("END\r\n");
        let mut targets: BTreeSet<String> = map
            .nodes()
            .filter(|n| n.state != State::Down)
            .map(|n| n.key())
            .collect();
        if let Some(k) = &change.notify_down {
            if map.get(k).is_some() {
                targets.insert(k.clone());
            }
        }
        let prior: BTreeSet<String> = change
            .prior
            .iter()
            .filter(|k| targets.contains(*k))
            .cloned()
            .collect();
        let (gate, _) = watch::channel(prior.len());
        SyncMsg {
            version: map.version,
            payload: Bytes::from(text),
            targets,
            prior,
            gate,
        }
    }

    /// The message for the map loaded at start-up: sent to every node not
    /// `down` (the original sends nothing). An index that stopped after it
    /// saved a change (a failover) and before every node had it delivers it
    /// now; a node that already has this version takes it as a no-op, and one
    /// with a newer map refuses it.
    /// Masters are served first, as a promoted slave is after a failover.
    pub fn startup(map: &NodeMap) -> SyncMsg {
        let masters = map
            .nodes()
            .filter(|n| n.role == flare_proto::node::Role::Master && n.state == State::Active)
            .map(|n| n.key())
            .collect();
        SyncMsg::new(
            map,
            &Change {
                prior: masters,
                notify_down: None,
            },
        )
    }

    pub fn is_target(&self, key: &str) -> bool {
        self.targets.contains(key)
    }

    pub fn is_prior(&self, key: &str) -> bool {
        self.prior.contains(key)
    }

    /// A prior node made its first attempt (or gave up on this message).
    pub fn release_prior(&self) {
        self.gate.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Wait (at most `limit`) until every prior node had its first attempt.
    pub async fn wait_for_prior(&self, limit: Duration) {
        let mut rx = self.gate.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
    }
}

/// How a delivery ended.
#[derive(Debug)]
pub enum Delivery {
    /// `OK`.
    Accepted,
    /// `SERVER_ERROR node sync error`: the node holds a newer map.
    Stale,
    /// Anything else; the connection must be dropped.
    Failed(SyncError),
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("unexpected reply [{0}]")]
    Unexpected(String),
}

/// Send `msg` on `conn` and classify the reply.
pub async fn deliver(conn: &mut PeerConn, msg: &SyncMsg, timeout: Duration) -> Delivery {
    match conn
        .call_within(&msg.payload, ReplyKind::Line, timeout)
        .await
        .map(|r| PeerConn::line(&r))
    {
        Ok(line) if line == "OK" => Delivery::Accepted,
        Ok(line) if line == "SERVER_ERROR node sync error" => Delivery::Stale,
        Ok(line) => Delivery::Failed(SyncError::Unexpected(line)),
        Err(e) => Delivery::Failed(e.into()),
    }
}

/// The next retry delay.
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(RETRY_MAX)
}

/// Shared handle to the latest message.
pub type Latest = watch::Sender<Arc<SyncMsg>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Op;

    #[test]
    fn message_bytes_and_targets() {
        let mut m = NodeMap::default();
        for port in [12121, 12122, 12123] {
            m.apply(&Op::Add {
                name: "127.0.0.1".into(),
                port,
            })
            .expect("add");
        }
        m.apply(&Op::Down {
            key: "127.0.0.1:12122".into(),
            mode: crate::map::DownMode::Monitor,
        })
        .expect("down");
        let msg = SyncMsg::new(&m, &Change::default());
        assert_eq!(
            &msg.payload[..],
            b"node sync 4\r\nNODE 127.0.0.1 12121 2 0 -1 0 16\r\nNODE 127.0.0.1 12122 2 2 -1 0 17\r\nNODE 127.0.0.1 12123 2 0 -1 0 18\r\nEND\r\n"
        );
        assert!(msg.is_target("127.0.0.1:12121"));
        assert!(!msg.is_target("127.0.0.1:12122"));
        let msg = SyncMsg::new(
            &m,
            &Change {
                prior: vec!["127.0.0.1:12123".into(), "127.0.0.1:12122".into()],
                notify_down: Some("127.0.0.1:12122".into()),
            },
        );
        assert!(msg.is_target("127.0.0.1:12122"));
        assert_eq!(msg.prior.len(), 2);
        // at start-up: every node not down; masters first (none here)
        let start = SyncMsg::startup(&m);
        assert_eq!(
            start.targets.iter().collect::<Vec<_>>(),
            ["127.0.0.1:12121", "127.0.0.1:12123"]
        );
        assert!(start.prior.is_empty());
        assert_eq!(start.version, 4);
    }

    #[tokio::test]
    async fn prior_gate() {
        let m = NodeMap::default();
        let msg = SyncMsg::new(
            &m,
            &Change {
                prior: vec![],
                notify_down: None,
            },
        );
        // no prior node: no wait at all
        msg.wait_for_prior(Duration::from_secs(10)).await;
        let (gate, _) = watch::channel(1);
        let msg = SyncMsg { gate, ..msg };
        let start = tokio::time::Instant::now();
        msg.wait_for_prior(Duration::from_millis(50)).await;
        assert!(start.elapsed() >= Duration::from_millis(50));
        msg.release_prior();
        msg.wait_for_prior(Duration::from_secs(10)).await;
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut d = RETRY_MIN;
        let mut seen = vec![];
        for _ in 0..8 {
            seen.push(d.as_millis());
            d = next_backoff(d);
        }
        assert_eq!(seen, vec![200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
