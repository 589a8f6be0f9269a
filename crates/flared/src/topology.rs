//! This node's view of the cluster: the node map of the last accepted
//! `node sync` (or of `node add` at start-up), the partition maps derived from
//! it, and the key resolver announced by the index (`meta`).

use std::sync::Arc;

use flare_cluster::{HashAlgorithm, ModularTable, PartitionMaps, Router};
use flare_proto::node::{NodeLine, Role, State};

/// Key resolver parameters (`meta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub partition_size: u32,
    pub hash: HashAlgorithm,
    pub hint: u32,
    pub virtual_nodes: u32,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            partition_size: 1024,
            hash: HashAlgorithm::Simple,
            hint: 1,
            virtual_nodes: 4096,
        }
    }
}

/// An immutable snapshot; replaced wholesale on every accepted `node sync`.
#[derive(Debug)]
pub struct Topology {
    /// `node_map_version` of the map (0 until the first `node sync`).
    pub version: u64,
    pub nodes: Vec<NodeLine>,
    pub maps: PartitionMaps,
    pub hash: HashAlgorithm,
    pub table: Arc<ModularTable>,
}

impl Topology {
    /// A standalone node: master of partition 0, nothing else.
    pub fn standalone(
        me_name: &str,
        me_port: u16,
        table: Arc<ModularTable>,
        hash: HashAlgorithm,
    ) -> Topology {
        let me = NodeLine {
            name: me_name.to_string(),
            port: me_port,
            role: Role::Master,
            state: State::Active,
            partition: 0,
            balance: 1,
            thread_type: 16,
        };
        Topology::from_nodes(0, vec![me], None, table, hash)
    }

    /// Build from a node list; when the list does not form valid partition
    /// maps, `previous` maps are kept (cluster.md §1.3).
    pub fn from_nodes(
        version: u64,
        nodes: Vec<NodeLine>,
        previous: Option<&PartitionMaps>,
        table: Arc<ModularTable>,
        hash: HashAlgorithm,
    ) -> Topology {
        let maps = match PartitionMaps::build(&nodes) {
            Ok((maps, warnings)) => {
                for w in warnings {
                    tracing::warn!("node map: {w}");
                }
                maps
            }
            Err(e) => {
                tracing::error!(
                    "node map is inconsistent ({e}): keeping the previous partition map"
                );
                previous.cloned().unwrap_or_default()
            }
        };
        Topology {
            version,
            nodes,
            maps,
            hash,
            table,
        }
    }

    pub fn router<'a>(&'a self, me: &'a str) -> Router<'a> {
        Router {
            maps: &self.maps,
            table: &self.table,
            hash: self.hash,
            me,
        }
    }

    pub fn node(&self, key: &str) -> Option<&NodeLine> {
        self.nodes.iter().find(|n| n.key() == key)
    }
}
