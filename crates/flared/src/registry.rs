//! Live connections: ids for `stats threads` and `kill`, the peer, the current
//! op and state. Updated per request with cheap per-connection locks; the
//! registry lock is taken only on connect, disconnect, `stats threads` and `kill`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Connection state as `stats threads` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    Wait,
    Execute,
}

impl ConnState {
    pub fn word(self) -> &'static str {
        match self {
            ConnState::Wait => "wait",
            ConnState::Execute => "execute",
        }
    }
}

/// One connection's entry.
pub struct ConnSlot {
    pub id: u32,
    pub peer: String,
    pub started: i64,
    activity: Mutex<(&'static str, ConnState)>,
    killed: AtomicBool,
    kill: Notify,
}

impl ConnSlot {
    pub fn set(&self, op: &'static str, state: ConnState) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner()) = (op, state);
    }
    pub fn set_state(&self, state: ConnState) {
        self.activity.lock().unwrap_or_else(|e| e.into_inner()).1 = state;
    }
    pub fn activity(&self) -> (&'static str, ConnState) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Ask the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
    /// Resolves once [`ConnSlot::kill`] was called.
    pub async fn killed(&self) {
        if self.is_killed() {
            return;
        }
        self.kill.notified().await;
    }
}

/// All live connections.
#[derive(Default)]
pub struct Registry {
    next_id: AtomicU32,
    slots: Mutex<BTreeMap<u32, Arc<ConnSlot>>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            next_id: AtomicU32::new(1),
            slots: Mutex::default(),
        }
    }

    /// Register a connection; `None` when `max` connections are already served.
    pub fn register(&self, peer: String, now: i64, max: usize) -> Option<Arc<ConnSlot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(ConnSlot {
            id,
            peer,
            started: now,
            activity: Mutex::new(("", ConnState::Wait)),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        slots.insert(id, Arc::clone(&slot));
        Some(slot)
    }

    pub fn unregister(&self, id: u32) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub fn snapshot(&self) -> Vec<Arc<ConnSlot>> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Kill connection `id`; false when there is none.
    pub fn kill(&self, id: u32) -> bool {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        match slot {
            Some(s) => {
                s.kill();
                true
            }
            None => false,
        }
    }

    /// Kill every connection (shutdown).
    pub fn kill_all(&self) {
        for s in self.snapshot() {
            s.kill();
        }
    }
}
