//! The `stats` blocks both servers send, in one place: the general list of
//! protocol.md §19.2 (same fields, same order on node and index), the
//! `stats nodes` lines (§19.5) and the eight lines of a `stats threads` entry
//! (§19.4). Callers add the closing `END`.

use std::fmt::Display;

use bytes::BytesMut;

use crate::node::NodeLine;
use crate::reply::stat;

/// Command counters of the general block (all 0 on the index).
#[derive(Clone, Copy, Debug, Default)]
pub struct CommandCounts {
    pub cmd_get: u64,
    pub cmd_set: u64,
    pub get_hits: u64,
    pub get_misses: u64,
    pub delete_hits: u64,
    pub delete_misses: u64,
    pub incr_hits: u64,
    pub incr_misses: u64,
    pub decr_hits: u64,
    pub decr_misses: u64,
    pub cas_hits: u64,
    pub cas_misses: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub touch_misses: u64,
}

/// Values of the general `stats` block.
#[derive(Clone, Debug, Default)]
pub struct General {
    pub pid: u32,
    pub uptime: i64,
    pub time: i64,
    /// `sec.usec`
    pub rusage_user: String,
    /// `sec.usec`
    pub rusage_system: String,
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub curr_connections: u64,
    pub total_connections: u64,
    pub commands: CommandCounts,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub threads: u64,
    pub pool_threads: u64,
    pub node_map_version: u64,
}

/// The general block, field names and order of protocol.md §19.2.
pub fn general(out: &mut BytesMut, g: &General) {
    let c = &g.commands;
    stat(out, "pid", g.pid);
    stat(out, "uptime", g.uptime);
    stat(out, "time", g.time);
    stat(out, "version", crate::PACKAGE_VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", &g.rusage_user);
    stat(out, "rusage_system", &g.rusage_system);
    stat(out, "curr_items", g.curr_items);
    stat(out, "total_items", g.total_items);
    stat(out, "bytes", g.bytes);
    stat(out, "curr_connections", g.curr_connections);
    stat(out, "total_connections", g.total_connections);
    stat(out, "connection_structures", 0);
    for (name, v) in [
        ("cmd_get", c.cmd_get),
        ("cmd_set", c.cmd_set),
        ("get_hits", c.get_hits),
        ("get_misses", c.get_misses),
        ("delete_hits", c.delete_hits),
        ("delete_misses", c.delete_misses),
        ("incr_hits", c.incr_hits),
        ("incr_misses", c.incr_misses),
        ("decr_hits", c.decr_hits),
        ("decr_misses", c.decr_misses),
        ("cas_hits", c.cas_hits),
        ("cas_misses", c.cas_misses),
        ("cas_badval", c.cas_badval),
        ("touch_hits", c.touch_hits),
        ("touch_misses", c.touch_misses),
    ] {
        stat(out, name, v);
    }
    stat(out, "evictions", 0);
    stat(out, "bytes_read", g.bytes_read);
    stat(out, "bytes_written", g.bytes_written);
    stat(out, "limit_maxbytes", 0);
    stat(out, "threads", g.threads);
    stat(out, "pool_threads", g.pool_threads);
    stat(out, "node_map_version", g.node_map_version);
}

/// `stats nodes`: five lines per node, in node-key order.
pub fn nodes<'a>(out: &mut BytesMut, nodes: impl IntoIterator<Item = &'a NodeLine>) {
    let mut list: Vec<&NodeLine> = nodes.into_iter().collect();
    list.sort_by_key(|n| n.key());
    for n in list {
        let k = n.key();
        stat(out, &format!("{k}:role"), n.role);
        stat(out, &format!("{k}:state"), n.state);
        stat(out, &format!("{k}:partition"), n.partition);
        stat(out, &format!("{k}:balance"), n.balance);
        stat(out, &format!("{k}:thread_type"), n.thread_type);
    }
}

/// One `stats threads` entry.
pub struct Thread<'a> {
    pub id: u64,
    pub kind: i64,
    pub peer: &'a str,
    pub op: &'a str,
    pub uptime: i64,
    pub state: &'a str,
    pub info: &'a dyn Display,
    pub queue: u64,
    pub behind: i64,
}

/// The eight lines of a `stats threads` entry.
pub fn thread(out: &mut BytesMut, t: &Thread<'_>) {
    let id = t.id;
    stat(out, &format!("{id}:type"), t.kind);
    stat(out, &format!("{id}:peer"), t.peer);
    stat(out, &format!("{id}:op"), t.op);
    stat(out, &format!("{id}:uptime"), t.uptime);
    stat(out, &format!("{id}:state"), t.state);
    stat(out, &format!("{id}:info"), t.info);
    stat(out, &format!("{id}:queue"), t.queue);
    stat(out, &format!("{id}:behind"), t.behind);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Role, State};

    #[test]
    fn general_field_order() {
        let mut out = BytesMut::new();
        general(&mut out, &General::default());
        let names: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap_or("").to_string())
            .collect();
        assert_eq!(names.len(), 35);
        assert_eq!(
            &names[..5],
            ["pid", "uptime", "time", "version", "pointer_size"]
        );
        assert_eq!(names[34], "node_map_version");
    }

    #[test]
    fn node_lines_sorted() {
        let n = |port, role| NodeLine {
            name: "h".into(),
            port,
            role,
            state: State::Active,
            partition: 0,
            balance: 1,
            thread_type: 16,
        };
        let mut out = BytesMut::new();
        nodes(&mut out, &[n(2, Role::Slave), n(1, Role::Master)]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("STAT h:1:role master\r\n"));
        assert!(text.contains("STAT h:2:role slave\r\n"));
    }
}
