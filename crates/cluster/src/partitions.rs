//! The partition maps every process derives from the node map (cluster.md §1.3)
//! and the routing decisions made on them (cluster.md §5) as pure functions.

use std::collections::BTreeSet;

use flare_proto::node::{NodeLine, Role, State};

use crate::hash::HashAlgorithm;
use crate::modular::ModularTable;

/// One partition: its master, slaves and read weights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partition {
    /// Master node key and balance; `None` for a preserved partition whose
    /// master is down.
    pub master: Option<(String, i32)>,
    /// Slaves in node-key order with their effective balance (0 unless active).
    pub slaves: Vec<(String, i32)>,
    /// The weighted read targets: each member with a balance > 0, in the
    /// order they were added, with its balance. A pick walks the cumulative
    /// weights, so memory does not depend on the balance values.
    pub read_weights: Vec<(String, u32)>,
    /// Sum of the weights in `read_weights`.
    pub read_total: u64,
    /// Master and slaves.
    pub members: BTreeSet<String>,
}

impl Partition {
    fn push_weighted(&mut self, key: &str, balance: i32) {
        if balance > 0 {
            self.read_weights.push((key.to_string(), balance as u32));
            self.read_total += u64::from(balance as u32);
        }
    }

    /// The read target for a point `at` in `0..read_total` (clamped).
    pub fn weighted(&self, at: u64) -> Option<&str> {
        let mut at = at.min(self.read_total.checked_sub(1)?);
        for (k, w) in &self.read_weights {
            if at < u64::from(*w) {
                return Some(k);
            }
            at -= u64::from(*w);
        }
        None
    }

    pub fn master_key(&self) -> Option<&str> {
        self.master.as_ref().map(|(k, _)| k.as_str())
    }

    pub fn is_master(&self, me: &str) -> bool {
        self.master_key() == Some(me)
    }

    /// `me` is a slave with effective balance > 0.
    pub fn is_reading_slave(&self, me: &str) -> bool {
        self.slaves.iter().any(|(k, b)| k == me && *b > 0)
    }
}

/// Active partitions (`AP`) and the partition in preparation (`PP`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionMaps {
    /// Indexed by partition number: `0..len`.
    pub active: Vec<Partition>,
    /// At most one partition in preparation; its number is `active.len()`.
    pub prepare: Option<Partition>,
}

/// Why the node map does not form valid partition maps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("active partitions are not numbered 0..{0} without gaps")]
    Gap(usize),
    #[error("partition {0} is being prepared, but only partition {1} may be")]
    BadPrepare(i32, usize),
    #[error("more than one partition is being prepared")]
    TwoPrepares,
}

impl PartitionMaps {
    /// Derive the maps. `nodes` in any order (they are sorted by node key).
    /// Individual inconsistent nodes are skipped and reported in the returned
    /// warnings; a structural inconsistency is an error (keep the old maps).
    pub fn build(nodes: &[NodeLine]) -> Result<(PartitionMaps, Vec<String>), MapError> {
        let mut sorted: Vec<&NodeLine> = nodes.iter().collect();
        sorted.sort_by_key(|n| n.key());
        let mut active: std::collections::BTreeMap<i32, Partition> = Default::default();
        let mut prepare: std::collections::BTreeMap<i32, Partition> = Default::default();
        let mut warnings = Vec::new();

        for n in sorted.iter().filter(|n| n.role == Role::Master) {
            let key = n.key();
            if n.partition < 0 {
                warnings.push(format!("master {key} has partition {}", n.partition));
                continue;
            }
            match n.state {
                State::Down => {
                    active.entry(n.partition).or_default();
                }
                State::Active => {
                    let p = active.entry(n.partition).or_default();
                    if p.master.is_some() {
                        warnings.push(format!(
                            "partition {}: master already set, {key} ignored",
                            n.partition
                        ));
                        continue;
                    }
                    p.master = Some((key.clone(), n.balance));
                    p.push_weighted(&key, n.balance);
                    p.members.insert(key);
                }
                State::Prepare | State::Ready => {
                    let p = prepare.entry(n.partition).or_default();
                    if p.master.is_some() {
                        warnings.push(format!(
                            "partition {}: preparing master already set, {key} ignored",
                            n.partition
                        ));
                        continue;
                    }
                    p.master = Some((key.clone(), n.balance));
                    p.push_weighted(&key, n.balance);
                    p.members.insert(key);
                }
            }
        }
        for n in sorted
            .iter()
            .filter(|n| n.role == Role::Slave && n.state != State::Down)
        {
            let key = n.key();
            if n.partition < 0 {
                warnings.push(format!("slave {key} has partition {}", n.partition));
                continue;
            }
            let balance = if n.state == State::Active {
                n.balance
            } else {
                0
            };
            let p = match (active.get_mut(&n.partition), prepare.get_mut(&n.partition)) {
                (Some(p), _) | (None, Some(p)) => p,
                (None, None) => {
                    warnings.push(format!(
                        "no node partition for slave {key} (partition {})",
                        n.partition
                    ));
                    continue;
                }
            };
            p.slaves.push((key.clone(), balance));
            p.push_weighted(&key, balance);
            p.members.insert(key);
        }

        let len = active.len();
        if let Some((&last, _)) = active.iter().next_back() {
            if last as usize + 1 != len {
                return Err(MapError::Gap(len));
            }
        }
        if prepare.len() > 1 {
            return Err(MapError::TwoPrepares);
        }
        if let Some((&p, _)) = prepare.iter().next() {
            if p as usize != len {
                return Err(MapError::BadPrepare(p, len));
            }
        }
        Ok((
            PartitionMaps {
                active: active.into_values().collect(),
                prepare: prepare.into_values().next(),
            },
            warnings,
        ))
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }
}

/// Where a read goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadRoute {
    Local,
    Remote(String),
    /// No partition or no read target: the key is a miss.
    Miss,
}

/// Where a write goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteRoute {
    /// Execute here. `master_of` is the partition (active or preparing) this
    /// node is the master of for this key, if any: the one to replicate to.
    Local { master: bool },
    /// Forward to this master.
    Forward(String),
    /// There is no active partition at all.
    NoPartition,
    /// The key's partition has no live master.
    NoMaster,
}

/// Routing inputs that do not change per request.
pub struct Router<'a> {
    pub maps: &'a PartitionMaps,
    pub table: &'a ModularTable,
    pub hash: HashAlgorithm,
    /// This node's key (`host:port`).
    pub me: &'a str,
}

impl Router<'_> {
    fn partition_of(&self, key: &[u8], count: usize) -> Option<u32> {
        if count == 0 {
            return None;
        }
        self.table.partition_of_key(self.hash, key, count as u32)
    }

    /// Read routing (cluster.md §5.1). `pick(n)` chooses a point in `0..n`.
    pub fn read(&self, key: &[u8], pick: impl FnOnce(u64) -> u64) -> ReadRoute {
        let Some(p) = self
            .partition_of(key, self.maps.active_count())
            .and_then(|p| self.maps.active.get(p as usize))
        else {
            return ReadRoute::Miss;
        };
        if p.is_master(self.me) || p.is_reading_slave(self.me) {
            return ReadRoute::Local;
        }
        if p.read_total == 0 {
            return ReadRoute::Miss;
        }
        match p.weighted(pick(p.read_total)) {
            Some(k) => ReadRoute::Remote(k.to_string()),
            None => ReadRoute::Miss,
        }
    }

    /// Write routing (cluster.md §5.2 pre-routing). `proxied` = the request
    /// carried a proxy identifier.
    pub fn write(&self, key: &[u8], proxied: bool) -> WriteRoute {
        let count = self.maps.active_count();
        let Some(pnum) = self.partition_of(key, count) else {
            return WriteRoute::NoPartition;
        };
        let Some(p) = self.maps.active.get(pnum as usize) else {
            return WriteRoute::NoPartition;
        };
        let moving = self
            .maps
            .prepare
            .as_ref()
            .filter(|_| self.partition_of(key, count + 1) == Some(count as u32));
        if p.is_master(self.me) {
            return WriteRoute::Local { master: true };
        }
        if proxied {
            if let Some(pp) = moving {
                if pp.is_master(self.me) {
                    return WriteRoute::Local { master: true };
                }
                if pp.members.contains(self.me) {
                    return WriteRoute::Local { master: false };
                }
            }
            if p.members.contains(self.me) {
                return WriteRoute::Local { master: false };
            }
        }
        match p.master_key() {
            Some(m) => WriteRoute::Forward(m.to_string()),
            None => WriteRoute::NoMaster,
        }
    }

    /// Whether `sender` may replicate a write of `key` to this node: it is
    /// the master of the key's partition, or, while the key moves to the
    /// partition being prepared, that partition's master. Anything else that
    /// reaches a partition member as a proxied write comes from a node with a
    /// stale map (a former master, a proxy that missed a failover): fencing
    /// refuses it (docs/replication.md §6.1).
    pub fn may_replicate(&self, key: &[u8], sender: &str) -> bool {
        let count = self.maps.active_count();
        let Some(p) = self
            .partition_of(key, count)
            .and_then(|n| self.maps.active.get(n as usize))
        else {
            return false;
        };
        if p.is_master(sender) {
            return true;
        }
        self.maps
            .prepare
            .as_ref()
            .filter(|_| self.partition_of(key, count + 1) == Some(count as u32))
            .is_some_and(|pp| pp.is_master(sender))
    }

    /// Where a write executed here must be replicated (cluster.md §5.2
    /// post-routing): the slaves of the partition this node is the master of
    /// for the key (preparing slaves included), and, while a partition is
    /// being prepared and the key moves to it, that partition's master.
    pub fn replicas(&self, key: &[u8], proxied: bool) -> Replicas {
        let count = self.maps.active_count();
        let mut out = Replicas::default();
        let Some(p) = self
            .partition_of(key, count)
            .and_then(|n| self.maps.active.get(n as usize))
        else {
            return out;
        };
        let moving = self
            .maps
            .prepare
            .as_ref()
            .filter(|_| self.partition_of(key, count + 1) == Some(count as u32));
        if p.is_master(self.me) {
            out.slaves = p.slaves.iter().map(|(k, _)| k.clone()).collect();
            out.preparing_master = moving.and_then(|pp| pp.master_key().map(str::to_string));
        } else if let Some(pp) = moving.filter(|pp| proxied && pp.is_master(self.me)) {
            out.slaves = pp.slaves.iter().map(|(k, _)| k.clone()).collect();
        }
        out
    }
}

/// Replication targets of one write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replicas {
    /// Slaves to replicate to (waited for when the write is `sync`).
    pub slaves: Vec<String>,
    /// The preparing master of a moving key (never waited for).
    pub preparing_master: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        port: u16,
        role: Role,
        state: State,
        partition: i32,
        balance: i32,
    ) -> NodeLine {
        NodeLine {
            name: name.into(),
            port,
            role,
            state,
            partition,
            balance,
            thread_type: 16,
        }
    }

    #[test]
    fn builds_active_and_prepare() {
        let nodes = vec![
            node("h", 1, Role::Master, State::Active, 0, 1),
            node("h", 2, Role::Slave, State::Active, 0, 2),
            node("h", 3, Role::Slave, State::Prepare, 0, 5),
            node("h", 4, Role::Master, State::Prepare, 1, 1),
            node("h", 5, Role::Proxy, State::Active, -1, 0),
        ];
        let (m, w) = PartitionMaps::build(&nodes).expect("valid");
        assert!(w.is_empty());
        assert_eq!(m.active.len(), 1);
        let p = &m.active[0];
        assert_eq!(p.master_key(), Some("h:1"));
        assert_eq!(p.slaves, vec![("h:2".into(), 2), ("h:3".into(), 0)]);
        assert_eq!(
            p.read_weights,
            vec![("h:1".to_string(), 1), ("h:2".to_string(), 2)]
        );
        assert_eq!(p.read_total, 3);
        assert_eq!(p.weighted(0), Some("h:1"));
        assert_eq!(p.weighted(1), Some("h:2"));
        assert_eq!(p.weighted(2), Some("h:2"));
        assert_eq!(p.weighted(99), Some("h:2"));
        assert!(m.prepare.is_some());
    }

    #[test]
    fn preserved_and_gaps() {
        let nodes = vec![node("h", 1, Role::Master, State::Down, 0, 1)];
        let (m, _) = PartitionMaps::build(&nodes).expect("valid");
        assert_eq!(m.active.len(), 1);
        assert_eq!(m.active[0].master, None);
        let nodes = vec![node("h", 1, Role::Master, State::Active, 1, 1)];
        assert_eq!(PartitionMaps::build(&nodes), Err(MapError::Gap(1)));
    }

    #[test]
    fn routing() {
        let table = ModularTable::default();
        let nodes = vec![
            node("h", 1, Role::Master, State::Active, 0, 1),
            node("h", 2, Role::Master, State::Active, 1, 1),
            node("h", 3, Role::Proxy, State::Active, -1, 0),
        ];
        let (maps, _) = PartitionMaps::build(&nodes).expect("valid");
        let r = |me| Router {
            maps: &maps,
            table: &table,
            hash: HashAlgorithm::Simple,
            me,
        };
        // with 2 partitions: "bar" -> 0, "foo" -> 1
        assert_eq!(
            r("h:1").write(b"bar", false),
            WriteRoute::Local { master: true }
        );
        assert_eq!(
            r("h:1").write(b"foo", false),
            WriteRoute::Forward("h:2".into())
        );
        assert_eq!(
            r("h:3").read(b"foo", |_| 0),
            ReadRoute::Remote("h:2".into())
        );
        assert_eq!(r("h:2").read(b"foo", |_| 0), ReadRoute::Local);
        // only a key's master may replicate it
        assert!(r("h:3").may_replicate(b"foo", "h:2"));
        assert!(!r("h:3").may_replicate(b"foo", "h:1"));
        assert!(!r("h:3").may_replicate(b"bar", "h:3"));
        let empty = PartitionMaps::default();
        let r0 = Router {
            maps: &empty,
            table: &table,
            hash: HashAlgorithm::Simple,
            me: "h:1",
        };
        assert_eq!(r0.write(b"foo", false), WriteRoute::NoPartition);
        assert_eq!(r0.read(b"foo", |_| 0), ReadRoute::Miss);
    }
}
