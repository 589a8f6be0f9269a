//! The node map and the index's state machine (cluster.md §1, §2.2, §8.3).
//!
//! Pure data and rules: no I/O. Every operation works on a copy of the map
//! and is committed only when it succeeds and the result is a consistent map
//! (valid partition maps, thread types below the counter). A successful
//! operation that must be saved and broadcast bumps the version by exactly 1.

use std::collections::BTreeMap;

use flare_cluster::PartitionMaps;
use flare_proto::node::{NodeLine, Role, State, MAX_BALANCE};

/// The first thread type the index hands out (cluster.md §1.2).
pub const FIRST_THREAD_TYPE: i32 = 16;

/// Why an operation was refused. Every variant maps to the command's
/// `SERVER_ERROR ...` reply; the message is for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("unknown node [{0}]")]
    UnknownNode(String),
    #[error("node [{0}] is already registered and not down")]
    NotDown(String),
    #[error("invalid port [{0}]")]
    BadPort(i32),
    #[error("node [{key}]: {reason}")]
    Refused { key: String, reason: String },
    #[error("the operation would leave an inconsistent node map: {0}")]
    Inconsistent(String),
}

fn refused(key: &str, reason: impl Into<String>) -> OpError {
    OpError::Refused {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Who asked for a node to go down: decides whether the node itself still
/// receives the resulting `node sync` (cluster.md §2.5, §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownMode {
    /// `node state <X> down` by an operator: X is alive and is told.
    Manual,
    /// The monitor found X unreachable: X is not told.
    Monitor,
    /// X's own `shutdown` message: X is told only if it was an active master.
    Shutdown,
}

/// A mutating index operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `node add <name> <port>`.
    Add { name: String, port: i32 },
    /// `node state X down`, a monitor down request, `shutdown X`.
    Down { key: String, mode: DownMode },
    /// `node state X active`.
    Up { key: String },
    /// The monitor got an answer from X: [`Op::Up`] if X is down, else nothing.
    Recover { key: String },
    /// `node state X ready`.
    Ready { key: String },
    /// `node remove X`.
    Remove { key: String },
    /// `node role X <role> [<balance> [<partition>]]`.
    Role {
        key: String,
        role: Role,
        balance: i32,
        partition: i32,
    },
}

/// Delivery hints of a change for the `node sync` broadcast.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Nodes that get the new map before everybody else (promoted slave; new
    /// master and its slaves on activation), in this order.
    pub prior: Vec<String>,
    /// A node in state `down` that still receives this map.
    pub notify_down: Option<String>,
}

/// Result of a successful operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: no save, no broadcast (`already down`, `already active`).
    Unchanged,
    /// The map was changed (or must be re-saved): version + 1, save, broadcast.
    Changed(Change),
}

impl Outcome {
    fn changed() -> Self {
        Outcome::Changed(Change::default())
    }
}

/// The node map with its version and thread-type counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeMap {
    nodes: BTreeMap<String, NodeLine>,
    /// `node_map_version`: bumped by every saved change.
    pub version: u64,
    /// The next thread type to hand out (never reused).
    pub next_thread_type: i32,
}

impl Default for NodeMap {
    fn default() -> Self {
        NodeMap {
            nodes: BTreeMap::new(),
            version: 0,
            next_thread_type: FIRST_THREAD_TYPE,
        }
    }
}

/// `name:port`.
pub fn node_key(name: &str, port: i32) -> String {
    format!("{name}:{port}")
}

impl NodeMap {
    /// A map from loaded records. Keys are the records' `name:port`.
    pub fn from_parts(nodes: Vec<NodeLine>, version: u64, next_thread_type: i32) -> NodeMap {
        NodeMap {
            nodes: nodes.into_iter().map(|n| (n.key(), n)).collect(),
            version,
            next_thread_type,
        }
    }

    /// Records in node-key order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeLine> {
        self.nodes.values()
    }

    /// Node keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }

    pub fn get(&self, key: &str) -> Option<&NodeLine> {
        self.nodes.get(key)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Records as a vector (node-key order).
    pub fn lines(&self) -> Vec<NodeLine> {
        self.nodes.values().cloned().collect()
    }

    /// The derived partition maps; empty when the map is inconsistent (which a
    /// committed map never is).
    pub fn partition_maps(&self) -> PartitionMaps {
        PartitionMaps::build(&self.lines())
            .map(|(m, _)| m)
            .unwrap_or_default()
    }

    /// Every consistency rule a stored map must satisfy: partition maps build
    /// without any error or warning (cluster.md §1.3, fatal at index start-up),
    /// thread types below the counter (§1.5), keys match the records.
    pub fn check(&self) -> Result<(), String> {
        for (key, n) in &self.nodes {
            if *key != n.key() {
                return Err(format!("record [{key}] describes node [{}]", n.key()));
            }
            if n.thread_type >= self.next_thread_type {
                return Err(format!(
                    "node [{key}] has thread_type {} but the next thread_type is {}",
                    n.thread_type, self.next_thread_type
                ));
            }
        }
        match PartitionMaps::build(&self.lines()) {
            Ok((_, warnings)) if warnings.is_empty() => Ok(()),
            Ok((_, warnings)) => Err(warnings.join("; ")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Apply `op`. On success with [`Outcome::Changed`] the version was bumped;
    /// on error (or [`Outcome::Unchanged`]) the map is untouched.
    pub fn apply(&mut self, op: &Op) -> Result<Outcome, OpError> {
        let mut next = self.clone();
        let outcome = next.run(op)?;
        if let Outcome::Changed(_) = outcome {
            next.check().map_err(OpError::Inconsistent)?;
            next.version += 1;
            *self = next;
        }
        Ok(outcome)
    }

    fn run(&mut self, op: &Op) -> Result<Outcome, OpError> {
        match op {
            Op::Add { name, port } => self.add(name, *port),
            Op::Down { key, mode } => self.down(key, *mode),
            Op::Up { key } => self.up(key),
            Op::Recover { key } => match self.get(key) {
                Some(n) if n.state == State::Down => self.up(key),
                Some(_) => Ok(Outcome::Unchanged),
                None => Err(OpError::UnknownNode(key.clone())),
            },
            Op::Ready { key } => self.ready(key),
            Op::Remove { key } => self.remove(key),
            Op::Role {
                key,
                role,
                balance,
                partition,
            } => self.role(key, *role, *balance, *partition),
        }
    }

    fn node(&self, key: &str) -> Result<&NodeLine, OpError> {
        self.nodes
            .get(key)
            .ok_or_else(|| OpError::UnknownNode(key.to_string()))
    }

    fn node_mut(&mut self, key: &str) -> Result<&mut NodeLine, OpError> {
        self.nodes
            .get_mut(key)
            .ok_or_else(|| OpError::UnknownNode(key.to_string()))
    }

    /// Make `key` a plain active proxy.
    fn reset_to_proxy(&mut self, key: &str) -> Result<(), OpError> {
        let n = self.node_mut(key)?;
        n.role = Role::Proxy;
        n.state = State::Active;
        n.partition = -1;
        n.balance = 0;
        Ok(())
    }

    /// Slaves of the partition in preparation, if it is partition `p`.
    fn prepare_slaves(maps: &PartitionMaps, p: i32) -> Vec<String> {
        match &maps.prepare {
            Some(pp) if usize::try_from(p).ok() == Some(maps.active.len()) => {
                pp.slaves.iter().map(|(k, _)| k.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Another node of partition `p` (any role) is not down.
    fn partition_has_live_other(&self, key: &str, p: i32) -> bool {
        self.nodes
            .values()
            .any(|n| n.partition == p && n.state != State::Down && n.key() != key)
    }

    /// The balance check of cluster.md §8.3.
    fn balance_ok(&self, key: &str, balance: i32) -> Result<bool, OpError> {
        let x = self.node(key)?;
        if balance < 0 {
            return Ok(false);
        }
        let sum: i64 = self
            .nodes
            .values()
            .filter(|n| n.partition == x.partition)
            .map(|n| {
                if n.key() == key {
                    i64::from(balance)
                } else {
                    i64::from(n.balance)
                }
            })
            .sum();
        Ok(sum > 0)
    }

    fn add(&mut self, name: &str, port: i32) -> Result<Outcome, OpError> {
        let port16 = u16::try_from(port).map_err(|_| OpError::BadPort(port))?;
        let key = node_key(name, port);
        if let Some(n) = self.nodes.get(&key) {
            return if n.state == State::Down {
                Ok(Outcome::changed())
            } else {
                Err(OpError::NotDown(key))
            };
        }
        let thread_type = self.next_thread_type;
        self.next_thread_type += 1;
        self.nodes.insert(
            key,
            NodeLine {
                name: name.to_string(),
                port: port16,
                role: Role::Proxy,
                state: State::Active,
                partition: -1,
                balance: 0,
                thread_type,
            },
        );
        Ok(Outcome::changed())
    }

    fn down(&mut self, key: &str, mode: DownMode) -> Result<Outcome, OpError> {
        let x = self.node(key)?.clone();
        if x.state == State::Down {
            return Ok(Outcome::Unchanged);
        }
        let maps = self.partition_maps();
        let mut change = Change::default();
        let active_master = x.role == Role::Master && x.state == State::Active;
        let mut preserved = false;
        if active_master {
            let slaves = usize::try_from(x.partition)
                .ok()
                .and_then(|p| maps.active.get(p))
                .map(|p| p.slaves.clone())
                .unwrap_or_default();
            // highest balance among active slaves; ties: first in key order
            let mut best: Option<(&str, i32)> = None;
            for (k, _) in &slaves {
                let Some(n) = self.nodes.get(k) else { continue };
                if n.state != State::Active {
                    continue;
                }
                if best.is_none_or(|(_, b)| n.balance > b) {
                    best = Some((k.as_str(), n.balance));
                }
            }
            match best {
                None => preserved = true,
                Some((k, _)) => {
                    let sum: i64 = slaves.iter().map(|(_, b)| i64::from(*b)).sum();
                    let k = k.to_string();
                    let n = self.node_mut(&k)?;
                    n.role = Role::Master;
                    if sum == 0 {
                        n.balance = (n.balance + 1).min(MAX_BALANCE);
                    }
                    change.prior.push(k);
                }
            }
        } else if x.role == Role::Master {
            // a preparing / ready master: cancel the partition's slaves
            for k in Self::prepare_slaves(&maps, x.partition) {
                self.reset_to_proxy(&k)?;
            }
        }
        let n = self.node_mut(key)?;
        n.state = State::Down;
        if !preserved {
            n.role = Role::Proxy;
            n.partition = -1;
            n.balance = 0;
        }
        change.notify_down = match mode {
            DownMode::Manual => Some(key.to_string()),
            DownMode::Monitor => None,
            DownMode::Shutdown => active_master.then(|| key.to_string()),
        };
        Ok(Outcome::Changed(change))
    }

    fn up(&mut self, key: &str) -> Result<Outcome, OpError> {
        let x = self.node(key)?.clone();
        match x.state {
            State::Active => Ok(Outcome::Unchanged),
            State::Prepare if x.role != Role::Slave => Err(refused(
                key,
                "a preparing master cannot be activated before it is ready",
            )),
            State::Prepare | State::Ready => {
                let mut change = Change::default();
                if x.role == Role::Master {
                    change.prior.push(key.to_string());
                    change
                        .prior
                        .extend(Self::prepare_slaves(&self.partition_maps(), x.partition));
                }
                self.node_mut(key)?.state = State::Active;
                Ok(Outcome::Changed(change))
            }
            State::Down => {
                // A preserved master stays master unless its partition was
                // taken over by another (live) master. (The spec's wording is
                // "any other node of the partition is not down"; the only other
                // live nodes a masterless partition can have are preparing
                // slaves, and demoting the master then would leave them
                // without a partition.)
                let replaced = self.nodes.values().any(|n| {
                    n.role == Role::Master
                        && n.partition == x.partition
                        && n.state != State::Down
                        && n.key() != key
                });
                let demote = x.role != Role::Master || replaced;
                let n = self.node_mut(key)?;
                if demote {
                    n.role = Role::Proxy;
                    n.partition = -1;
                    n.balance = 0;
                }
                n.state = State::Active;
                Ok(Outcome::changed())
            }
        }
    }

    fn ready(&mut self, key: &str) -> Result<Outcome, OpError> {
        let n = self.node_mut(key)?;
        if n.state != State::Prepare {
            return Err(refused(key, format!("state is {}, not prepare", n.state)));
        }
        n.state = State::Ready;
        Ok(Outcome::changed())
    }

    fn remove(&mut self, key: &str) -> Result<Outcome, OpError> {
        let x = self.node(key)?;
        if x.state != State::Down {
            return Err(refused(key, "only a down node can be removed"));
        }
        if x.role == Role::Master && !self.partition_has_live_other(key, x.partition) {
            return Err(refused(
                key,
                "cannot remove preserved node (its partition has no other live node)",
            ));
        }
        self.nodes.remove(key);
        Ok(Outcome::changed())
    }

    fn role(
        &mut self,
        key: &str,
        role: Role,
        balance: i32,
        partition: i32,
    ) -> Result<Outcome, OpError> {
        let x = self.node(key)?.clone();
        if balance > MAX_BALANCE {
            return Err(refused(
                key,
                format!("balance {balance} is above the maximum {MAX_BALANCE}"),
            ));
        }
        match (x.state, x.role) {
            (State::Down, _) => Err(refused(key, "node is down")),
            (State::Prepare | State::Ready, Role::Master) => match role {
                Role::Master => self.set_balance(key, balance),
                Role::Slave => Err(refused(key, "a master cannot become a slave")),
                Role::Proxy => {
                    // cancel the partition in preparation (cluster.md §7.6)
                    let maps = self.partition_maps();
                    for k in Self::prepare_slaves(&maps, x.partition) {
                        self.reset_to_proxy(&k)?;
                    }
                    self.reset_to_proxy(key)?;
                    Ok(Outcome::changed())
                }
            },
            (State::Prepare | State::Ready, Role::Slave) => match role {
                Role::Master => Err(refused(key, "a slave cannot become a master")),
                Role::Slave => {
                    let preparing = self.nodes.values().any(|n| {
                        n.role == Role::Master
                            && n.partition == x.partition
                            && matches!(n.state, State::Prepare | State::Ready)
                    });
                    if !preparing {
                        return Err(refused(
                            key,
                            "the balance of a preparing slave of an active partition is fixed",
                        ));
                    }
                    self.set_balance(key, balance)
                }
                Role::Proxy => {
                    self.reset_to_proxy(key)?;
                    Ok(Outcome::changed())
                }
            },
            (State::Prepare | State::Ready, Role::Proxy) => {
                self.node_mut(key)?.state = State::Active;
                self.role_of_active_proxy(key, role, balance, partition)
            }
            (State::Active, Role::Master) => match role {
                Role::Master => self.set_balance(key, balance),
                _ => Err(refused(key, "an active master cannot be demoted")),
            },
            (State::Active, Role::Slave) => match role {
                Role::Master => Err(refused(key, "a slave cannot become a master")),
                Role::Slave => self.set_balance(key, balance),
                Role::Proxy => {
                    if !self.balance_ok(key, 0)? {
                        return Err(refused(key, "the partition would have no balance left"));
                    }
                    self.reset_to_proxy(key)?;
                    Ok(Outcome::changed())
                }
            },
            (State::Active, Role::Proxy) => {
                self.role_of_active_proxy(key, role, balance, partition)
            }
        }
    }

    fn set_balance(&mut self, key: &str, balance: i32) -> Result<Outcome, OpError> {
        if !self.balance_ok(key, balance)? {
            return Err(refused(
                key,
                format!("balance {balance} refused (negative, or the partition's total balance would be 0)"),
            ));
        }
        self.node_mut(key)?.balance = balance;
        Ok(Outcome::changed())
    }

    fn role_of_active_proxy(
        &mut self,
        key: &str,
        role: Role,
        balance: i32,
        partition: i32,
    ) -> Result<Outcome, OpError> {
        match role {
            Role::Proxy => Ok(Outcome::changed()),
            Role::Master => {
                let count = self.partition_maps().active.len();
                let count = i32::try_from(count).unwrap_or(i32::MAX);
                if balance <= 0 {
                    return Err(refused(key, "a master needs a balance > 0"));
                }
                if partition < 0 || partition > count {
                    return Err(refused(
                        key,
                        format!("partition {partition} is not in 0..={count}"),
                    ));
                }
                let mut masters = self
                    .nodes
                    .values()
                    .filter(|n| n.role == Role::Master && n.partition == partition);
                let state = if partition == count {
                    if masters.next().is_some() {
                        return Err(refused(
                            key,
                            format!("partition {partition} already has a master"),
                        ));
                    }
                    if partition == 0 {
                        State::Active
                    } else {
                        State::Prepare
                    }
                } else {
                    if masters.any(|n| n.state != State::Down) {
                        return Err(refused(
                            key,
                            format!("partition {partition} has a master that is not down"),
                        ));
                    }
                    State::Active
                };
                let n = self.node_mut(key)?;
                n.role = Role::Master;
                n.state = state;
                n.partition = partition;
                n.balance = balance;
                Ok(Outcome::changed())
            }
            Role::Slave => {
                let master = self
                    .nodes
                    .values()
                    .find(|n| {
                        n.role == Role::Master && n.partition == partition && n.state != State::Down
                    })
                    .map(|n| n.state);
                let Some(master_state) = master.filter(|_| partition >= 0) else {
                    return Err(refused(
                        key,
                        format!("partition {partition} has no live master"),
                    ));
                };
                let n = self.node_mut(key)?;
                n.role = Role::Slave;
                n.state = State::Prepare;
                n.partition = partition;
                n.balance = if master_state == State::Active {
                    0
                } else {
                    balance.max(0)
                };
                Ok(Outcome::changed())
            }
        }
    }
}

#[cfg(test)]
mod tests;
