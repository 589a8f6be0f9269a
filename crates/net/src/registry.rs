//! Live "threads" for `stats threads` and `kill`, shared by both daemons:
//! client connections (type 1) and, in the index, one node agent (monitor +
//! sync sender) per node (type = the node's thread type, as the original's
//! monitor threads). The registry lock is taken only on connect, disconnect,
//! `stats threads` and `kill`; per-request updates use the slot's own lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Thread type of a client connection.
pub const TYPE_CLIENT: i32 = 1;

/// State as `stats threads` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    Wait,
    Execute,
    Connect,
}

impl SlotState {
    pub fn word(self) -> &'static str {
        match self {
            SlotState::Wait => "wait",
            SlotState::Execute => "execute",
            SlotState::Connect => "connect",
        }
    }
}

/// One entry.
pub struct Slot {
    pub id: u32,
    /// 1 for a client connection, the node's thread type for a node agent.
    pub kind: i32,
    pub peer: String,
    pub started: i64,
    activity: Mutex<(&'static str, SlotState)>,
    /// Queued jobs (a node agent: 1 while a `node sync` waits for delivery).
    queue: AtomicU64,
    /// Unix time the oldest queued job was queued (0 = none).
    queued_at: AtomicI64,
    killed: AtomicBool,
    kill: Notify,
    /// The cluster's challenge–response on this connection.
    pub auth: crate::auth::AuthState,
}

impl Slot {
    /// The peer's IP address (IPv4-mapped IPv6 as IPv4); `None` for a unix
    /// socket (this host).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        peer_ip(&self.peer)
    }

    pub fn set(&self, op: &'static str, state: SlotState) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner()) = (op, state);
    }
    pub fn set_state(&self, state: SlotState) {
        self.activity.lock().unwrap_or_else(|e| e.into_inner()).1 = state;
    }
    pub fn activity(&self) -> (&'static str, SlotState) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Record the queue: `Some(since)` = one job queued since `since`.
    pub fn set_queued(&self, since: Option<i64>) {
        self.queue
            .store(u64::from(since.is_some()), Ordering::Relaxed);
        self.queued_at.store(since.unwrap_or(0), Ordering::Relaxed);
    }
    pub fn queue(&self) -> u64 {
        self.queue.load(Ordering::Relaxed)
    }
    /// Age of the oldest queued job in seconds (0 if none).
    pub fn behind(&self, now: i64) -> i64 {
        match self.queued_at.load(Ordering::Relaxed) {
            0 => 0,
            t => (now - t).max(0),
        }
    }
    /// Ask the owner to close its connection.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
    /// Clear a kill request (node agents reconnect and carry on).
    pub fn clear_kill(&self) {
        self.killed.store(false, Ordering::SeqCst);
    }
    /// Resolves once [`Slot::kill`] was called.
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill.notified().await;
    }
}

/// All live entries.
pub struct Registry {
    next_id: AtomicU32,
    slots: Mutex<BTreeMap<u32, Arc<Slot>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            next_id: AtomicU32::new(1),
            slots: Mutex::default(),
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_slot(&self, kind: i32, peer: String, now: i64) -> Arc<Slot> {
        Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            kind,
            peer,
            started: now,
            activity: Mutex::new(("", SlotState::Wait)),
            queue: AtomicU64::new(0),
            queued_at: AtomicI64::new(0),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            auth: crate::auth::AuthState::default(),
        })
    }

    /// Register a client connection; `None` when `max` clients are already served.
    pub fn register_client(&self, peer: String, now: i64, max: usize) -> Option<Arc<Slot>> {
        let mut slots = self.lock();
        if slots.values().filter(|s| s.kind == TYPE_CLIENT).count() >= max {
            return None;
        }
        let slot = self.new_slot(TYPE_CLIENT, peer, now);
        slots.insert(slot.id, Arc::clone(&slot));
        Some(slot)
    }

    /// Register a node agent.
    pub fn register_agent(&self, thread_type: i32, peer: String, now: i64) -> Arc<Slot> {
        let slot = self.new_slot(thread_type, peer, now);
        self.lock().insert(slot.id, Arc::clone(&slot));
        slot
    }

    pub fn unregister(&self, id: u32) {
        self.lock().remove(&id);
    }

    /// Entries: clients first, then agents by thread type; each by id.
    pub fn snapshot(&self) -> Vec<Arc<Slot>> {
        let mut v: Vec<Arc<Slot>> = self.lock().values().cloned().collect();
        v.sort_by_key(|s| (s.kind != TYPE_CLIENT, s.kind, s.id));
        v
    }

    pub fn clients(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| s.kind == TYPE_CLIENT)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Kill entry `id`; false when there is none.
    pub fn kill(&self, id: u32) -> bool {
        let slot = self.lock().get(&id).cloned();
        match slot {
            Some(s) => {
                s.kill();
                true
            }
            None => false,
        }
    }

    /// Kill every client connection (shutdown).
    pub fn kill_clients(&self) {
        for s in self.snapshot() {
            if s.kind == TYPE_CLIENT {
                s.kill();
            }
        }
    }
}

/// The IP address of a peer as connections record it (`host:port`),
/// IPv4-mapped IPv6 as IPv4; `None` for a unix socket.
pub fn peer_ip(peer: &str) -> Option<std::net::IpAddr> {
    peer.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_canonical())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_limited_agents_are_not() {
        let r = Registry::default();
        let a = r.register_client("p:1".into(), 0, 1).expect("first");
        assert!(r.register_client("p:2".into(), 0, 1).is_none());
        let g = r.register_agent(16, "n:1".into(), 0);
        assert_eq!(r.clients(), 1);
        assert_eq!(r.len(), 2);
        let ids: Vec<u32> = r.snapshot().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![a.id, g.id]);
        assert!(r.kill(g.id));
        assert!(g.is_killed());
        g.clear_kill();
        assert!(!g.is_killed());
        assert!(!r.kill(999));
        r.unregister(a.id);
        assert!(r.register_client("p:3".into(), 0, 1).is_some());
        g.set_queued(Some(100));
        assert_eq!((g.queue(), g.behind(103)), (1, 3));
        g.set_queued(None);
        assert_eq!((g.queue(), g.behind(103)), (0, 0));
    }
}
