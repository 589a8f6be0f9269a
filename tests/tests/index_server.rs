//! The index server (flarei) end to end: protocol replies (protocol.md §25–§30,
//! TV-46 … TV-49, TV-57), node syncs pushed to nodes, persistence in
//! `flare.xml`, the monitor (down detection, automatic recovery, failover)
//! and the retry of undelivered syncs. Nodes are played by [`FakeNode`]s.

use std::process::Command;
use std::time::{Duration, Instant};

use flare_e2e::{
    bin_path, connect_served, flare_xml_doc, free_port, run_bounded, Conn, FakeNode, FakeReply,
    Flarei, WAIT,
};

/// Fast monitoring for the tests that wait for it.
const FAST: &str = "monitor-interval = 1\nmonitor-threshold = 2\nmonitor-read-timeout = 300\n";

/// Retry `f` until it holds, at most [`WAIT`].
#[track_caller]
fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `node add` of a fake node; returns the reply lines (through `END`).
fn add(c: &mut Conn, node: &FakeNode) -> Vec<String> {
    c.send(format!("node add 127.0.0.1 {}\r\n", node.port).as_bytes());
    c.read_until("END\r\n")
}

/// (role, state, partition, balance, thread_type) of `key` from `stats nodes`.
fn record(c: &mut Conn, key: &str) -> Option<(String, String, i32, i32, i32)> {
    let stats = c.stats("nodes");
    let get = |f: &str| {
        stats
            .iter()
            .find(|(k, _)| *k == format!("{key}:{f}"))
            .map(|(_, v)| v.clone())
    };
    Some((
        get("role")?,
        get("state")?,
        get("partition")?.parse().ok()?,
        get("balance")?.parse().ok()?,
        get("thread_type")?.parse().ok()?,
    ))
}

fn rec(
    role: &str,
    state: &str,
    p: i32,
    b: i32,
    tt: i32,
) -> Option<(String, String, i32, i32, i32)> {
    Some((role.to_string(), state.to_string(), p, b, tt))
}

/// The five `stats nodes` lines of one node.
fn stat_lines(key: &str, role: &str, state: &str, p: i32, b: i32, tt: i32) -> String {
    format!(
        "STAT {key}:role {role}\r\nSTAT {key}:state {state}\r\nSTAT {key}:partition {p}\r\nSTAT {key}:balance {b}\r\nSTAT {key}:thread_type {tt}\r\n"
    )
}

fn version(c: &mut Conn) -> u64 {
    c.stat("node_map_version").parse().expect("version")
}

#[test]
fn tv46_storage_commands_are_rejected() {
    let i = Flarei::start();
    let mut c = i.connect();
    c.transcript(
        "> get foo
         < ERROR
         > set foo 0 0 1
         > x
         < ERROR
         < ERROR",
    );
    c.transcript(
        "> foo
         < ERROR
         >
         < ERROR
         > node sync 1
         < ERROR
         > dump
         < ERROR
         > stats foo
         < ERROR
         > show
         < ERROR
         > ping
         < OK
         > version
         < VERSION flare-1.3.4
         > verbosity 0
         < OK
         > verbosity 0 noreply
         > kill 99999
         < CLIENT_ERROR thread not found
         > stats items
         < END
         > stats slabs
         < END
         > stats sizes
         < END
         > stats threads slave
         < END",
    );
    c.send(b"quit\r\n");
    c.expect_closed();
}

#[test]
fn tv47_meta_defaults() {
    let i = Flarei::start();
    let mut c = i.connect();
    c.transcript(
        "> meta
         < META partition-size 1024
         < META key-hash-algorithm simple
         < META partition-type modular
         < META partition-modular-hint 1
         < META partition-modular-virtual 4096
         < END
         > meta x
         < ERROR",
    );
}

#[test]
fn meta_with_configured_partitioning() {
    let i = Flarei::start_with(
        "key-hash-algorithm = crc32\npartition-size = 64\npartition-modular-hint = 2\npartition-modular-virtual = 1024\n",
        &[],
    );
    i.connect().transcript(
        "> meta
         < META partition-size 64
         < META key-hash-algorithm crc32
         < META partition-type modular
         < META partition-modular-hint 2
         < META partition-modular-virtual 1024
         < END",
    );
}

#[test]
fn tv48_tv49_node_commands() {
    let i = Flarei::start();
    let n = FakeNode::start();
    let p = n.port;
    let mut c = i.connect();
    assert_eq!(
        add(&mut c, &n),
        vec![
            format!("NODE 127.0.0.1 {p} 2 0 -1 0 16\r\n"),
            "END\r\n".into()
        ]
    );
    c.expect(
        format!("node role 127.0.0.1 {p} master 1 0\r\n").as_bytes(),
        b"OK\r\n",
    );
    // TV-48
    let expected = format!(
        "{}END\r\n",
        stat_lines(&n.key(), "master", "active", 0, 1, 16)
    );
    c.expect(b"stats nodes\r\n", expected.as_bytes());
    // TV-49 with the fake node's port
    c.transcript(&format!(
        "> node role 127.0.0.1 {p} boss 1 0
         < ERROR
         > node role 10.9.9.9 1 master 1 0
         < SERVER_ERROR failed to set role (and balance)
         > node state 127.0.0.1 {p} prepare
         < SERVER_ERROR failed to set state
         > node state 127.0.0.1 {p} sleepy
         < ERROR
         > node remove 127.0.0.1 {p}
         < SERVER_ERROR failed to remove node
         > node add 127.0.0.1 {p}
         < SERVER_ERROR failed to add node
         > node
         < ERROR
         > node sync
         < ERROR
         > node state 127.0.0.1 {p} active
         < OK
         > node role 127.0.0.1 {p} master 1 0
         < OK
         > node role 127.0.0.1 {p} slave 1 0
         < SERVER_ERROR failed to set role (and balance)
         > node role 127.0.0.1 {p} master
         < SERVER_ERROR failed to set role (and balance)
         > node state 127.0.0.1 {p} active x
         < ERROR
         > node remove 127.0.0.1
         < ERROR
         > shutdown 127.0.0.1 5
         < SERVER_ERROR failed to shutdown
         > shutdown
         < ERROR"
    ));
    // add (1), master (2), the no-op master 1 0 (3); `node state active` on an
    // active node is a no-op without a save
    assert_eq!(version(&mut c), 3);
}

#[test]
fn node_add_replies_the_map_and_pushes_node_sync() {
    let i = Flarei::start();
    let a = FakeNode::start();
    let b = FakeNode::start();
    let mut c = i.connect();
    let line_a = format!("NODE 127.0.0.1 {} 2 0 -1 0 16\r\n", a.port);
    let line_b = format!("NODE 127.0.0.1 {} 2 0 -1 0 17\r\n", b.port);
    assert_eq!(add(&mut c, &a), vec![line_a.clone(), "END\r\n".into()]);
    let first = format!("node sync 1\r\n{line_a}END\r\n");
    a.wait_sync("version 1", |m, _| m == first);

    let mut both = vec![line_a.clone(), line_b.clone()];
    if b.port < a.port {
        both.reverse();
    }
    let mut expected = both.clone();
    expected.push("END\r\n".into());
    assert_eq!(add(&mut c, &b), expected);
    let second = format!("node sync 2\r\n{}END\r\n", both.concat());
    a.wait_sync("version 2", |m, _| m == second);
    b.wait_sync("version 2", |m, _| m == second);
    assert!(
        b.syncs().iter().all(|(m, _)| m == &second),
        "b only ever gets the current map: {:?}",
        b.syncs()
    );
    assert_eq!(version(&mut c), 2);

    // a role change is pushed too
    c.expect(
        format!("node role 127.0.0.1 {} master 1 0\r\n", a.port).as_bytes(),
        b"OK\r\n",
    );
    let master_a = format!("NODE 127.0.0.1 {} 0 0 0 1 16\r\n", a.port);
    b.wait_sync("version 3", |m, _| {
        m.starts_with("node sync 3\r\n") && m.contains(&master_a)
    });
}

#[test]
fn stats_threads_and_show_variables() {
    let i = Flarei::start_with("max-connection = 64\nthread-pool-size = 8\n", &[]);
    let n = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &n);
    let stats = c.stats("");
    let names: Vec<&str> = stats.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "pid",
            "uptime",
            "time",
            "version",
            "pointer_size",
            "rusage_user",
            "rusage_system",
            "curr_items",
            "total_items",
            "bytes",
            "curr_connections",
            "total_connections",
            "connection_structures",
            "cmd_get",
            "cmd_set",
            "get_hits",
            "get_misses",
            "delete_hits",
            "delete_misses",
            "incr_hits",
            "incr_misses",
            "decr_hits",
            "decr_misses",
            "cas_hits",
            "cas_misses",
            "cas_badval",
            "touch_hits",
            "touch_misses",
            "evictions",
            "bytes_read",
            "bytes_written",
            "limit_maxbytes",
            "threads",
            "pool_threads",
            "node_map_version"
        ]
    );
    let get = |k: &str| {
        stats
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    assert_eq!(get("version"), "1.3.4");
    assert_eq!(get("curr_items"), "0");
    assert_eq!(get("bytes"), "0");
    assert_eq!(get("curr_connections"), "1");
    assert_eq!(get("node_map_version"), "1");

    let threads = c.threads();
    let me = c.local_addr();
    assert!(
        threads
            .iter()
            .any(|(_, f)| f.iter().any(|(k, v)| k == "peer" && *v == me)
                && f.iter().any(|(k, v)| k == "type" && v == "1")
                && f.iter().any(|(k, v)| k == "op" && v == "stats")),
        "{threads:?}"
    );
    let agent = threads
        .iter()
        .find(|(_, f)| f.iter().any(|(k, v)| k == "peer" && *v == n.key()))
        .expect("an entry for the node's monitor");
    let fields: Vec<&str> = agent.1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        fields,
        vec!["type", "peer", "op", "uptime", "state", "info", "queue", "behind"]
    );
    assert_eq!(agent.1[0].1, "16");
    c.send(b"stats threads request\r\n");
    let lines = c.read_until("END\r\n");
    assert!(lines.iter().all(|l| !l.contains(&n.key())), "{lines:?}");
    poll("empty sync queue", || {
        c.stats("threads queue") == vec![("total_thread_queue".to_string(), "0".to_string())]
    });

    c.send(b"show variables\r\n");
    let lines = c.read_until("END\r\n");
    let expected = vec![
        format!("config_path:              {}\r\n", i.conf.display()),
        "pid_path:                 \r\n".to_string(),
        "daemonize:                false\r\n".to_string(),
        format!("data_dir:                 {}\r\n", i.data_dir().display()),
        "max_connection:           64\r\n".to_string(),
        "monitor_threshold:        3\r\n".to_string(),
        "monitor_interval:         5\r\n".to_string(),
        "monitor_read_timeout:     1000\r\n".to_string(),
        "net_read_timeout:         600000\r\n".to_string(),
        "partition_modular_hint:   1\r\n".to_string(),
        "partition_modular_virtual:4096\r\n".to_string(),
        "partition_size:           1024\r\n".to_string(),
        "partition_type:           modular\r\n".to_string(),
        "key_hash_algorithm:       simple\r\n".to_string(),
        "server_name:              127.0.0.1\r\n".to_string(),
        format!("server_port:              {}\r\n", i.port),
        "server_socket:            \r\n".to_string(),
        "stack_size:               128\r\n".to_string(),
        "thread_pool_size:         8\r\n".to_string(),
        "END\r\n".to_string(),
    ];
    assert_eq!(lines, expected);
}

#[test]
fn tv57_binary_request_closes_the_connection() {
    let i = Flarei::start();
    let mut c = i.connect();
    c.send(&[
        0x80, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    c.expect_closed();
    i.connect().in_sync();
}

#[test]
fn max_connection_closes_extra_clients() {
    let i = Flarei::start_with("max-connection = 1\n", &[]);
    // (the start-up probe connection may still hold the slot for a moment)
    let mut first = connect_served(i.port);
    let mut second = i.connect();
    second.expect_closed();
    first.in_sync();
}

#[test]
fn node_map_is_persisted_and_reloaded() {
    let mut i = Flarei::start();
    let a = FakeNode::start();
    let b = FakeNode::start();
    let mut c = i.connect();
    assert_eq!(c.stats("nodes"), vec![]);
    assert_eq!(version(&mut c), 0);
    assert!(
        !i.state_file().exists(),
        "nothing is written before the first change"
    );
    add(&mut c, &a);
    add(&mut c, &b);
    c.expect(
        format!("node role 127.0.0.1 {} master 2 0\r\n", a.port).as_bytes(),
        b"OK\r\n",
    );
    let mut nodes = vec![
        (
            format!("127.0.0.1:{}", a.port),
            flare_e2e::rec("master", "active", 0, 2, 16),
        ),
        (
            format!("127.0.0.1:{}", b.port),
            flare_e2e::rec("proxy", "active", -1, 0, 17),
        ),
    ];
    nodes.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        std::fs::read_to_string(i.state_file()).expect("flare.xml"),
        flare_xml_doc(3, &nodes, 18)
    );
    c.send(b"stats nodes\r\n");
    let before = c.read_until("END\r\n");
    drop(c);

    let status = i.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");
    assert!(!i.pid_path().exists(), "pid file removed on shutdown");
    i.restart();
    let mut c = i.connect();
    c.send(b"stats nodes\r\n");
    assert_eq!(c.read_until("END\r\n"), before);
    assert_eq!(version(&mut c), 3);
    // the thread type counter survived too
    let d = FakeNode::start();
    let reply = add(&mut c, &d);
    assert!(
        reply.contains(&format!("NODE 127.0.0.1 {} 2 0 -1 0 18\r\n", d.port)),
        "{reply:?}"
    );
    assert_eq!(version(&mut c), 4);
}

/// The example document of cluster.md §1.5, as flarei 1.x writes it.
const ORIGINAL_XML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>
<!DOCTYPE boost_serialization>
<boost_serialization signature=\"serialization::archive\" version=\"18\">
<version>3</version>
<node_map class_id=\"0\" tracking_level=\"0\" version=\"0\">
\t<count>2</count>
\t<item_version>0</item_version>
\t<item class_id=\"1\" tracking_level=\"0\" version=\"0\">
\t\t<first>10.0.0.5:12121</first>
\t\t<second class_id=\"2\" tracking_level=\"0\" version=\"0\">
\t\t\t<node_server_name>10.0.0.5</node_server_name>
\t\t\t<node_server_port>12121</node_server_port>
\t\t\t<node_role>0</node_role>
\t\t\t<node_state>0</node_state>
\t\t\t<node_partition>0</node_partition>
\t\t\t<node_balance>1</node_balance>
\t\t\t<node_thread_type>16</node_thread_type>
\t\t</second>
\t</item>
\t<item>
\t\t<first>10.0.0.6:12121</first>
\t\t<second>
\t\t\t<node_server_name>10.0.0.6</node_server_name>
\t\t\t<node_server_port>12121</node_server_port>
\t\t\t<node_role>1</node_role>
\t\t\t<node_state>0</node_state>
\t\t\t<node_partition>0</node_partition>
\t\t\t<node_balance>0</node_balance>
\t\t\t<node_thread_type>17</node_thread_type>
\t\t</second>
\t</item>
</node_map>
<thread_type>18</thread_type>
</boost_serialization>

";

#[test]
fn original_flare_xml_loads() {
    for doc in [
        ORIGINAL_XML.to_string(),
        ORIGINAL_XML
            .replace(
                "<version>3</version>",
                "<node_map_version>3</node_map_version>",
            )
            .replace("version=\"18\"", "version=\"7\""),
    ] {
        let mut i = Flarei::configure("", &[]);
        std::fs::write(i.state_file(), &doc).expect("write flare.xml");
        i.restart();
        let mut c = i.connect();
        let expected = format!(
            "{}{}END\r\n",
            stat_lines("10.0.0.5:12121", "master", "active", 0, 1, 16),
            stat_lines("10.0.0.6:12121", "slave", "active", 0, 0, 17)
        );
        c.expect(b"stats nodes\r\n", expected.as_bytes());
        assert_eq!(version(&mut c), 3);
        let n = FakeNode::start();
        let reply = add(&mut c, &n);
        assert_eq!(reply.len(), 4);
        assert_eq!(
            reply[2],
            format!("NODE 127.0.0.1 {} 2 0 -1 0 18\r\n", n.port)
        );
        assert_eq!(version(&mut c), 4);
        let xml = std::fs::read_to_string(i.state_file()).expect("flare.xml");
        assert!(xml.contains("<version>4</version>"), "{xml}");
        assert!(xml.contains("<thread_type>19</thread_type>"), "{xml}");
    }
}

#[test]
fn monitor_marks_a_silent_node_down_and_brings_it_back() {
    let i = Flarei::start_with(FAST, &[]);
    let n = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &n);
    poll("pings", || n.pings() >= 2);
    assert_eq!(record(&mut c, &n.key()), rec("proxy", "active", -1, 0, 16));
    n.set_ping(FakeReply::Silent);
    poll("node down", || {
        record(&mut c, &n.key()) == rec("proxy", "down", -1, 0, 16)
    });
    let v = version(&mut c);
    assert_eq!(v, 2);
    n.set_ping(FakeReply::Ok);
    poll("node up again", || {
        record(&mut c, &n.key()) == rec("proxy", "active", -1, 0, 16)
    });
    assert_eq!(version(&mut c), 3);
    // the node is told it is active again
    n.wait_sync("version 3", |m, _| m.starts_with("node sync 3\r\n"));
    // a node answering anything but OK is down as well
    n.set_ping(FakeReply::Line("SERVER_ERROR storage error".into()));
    poll("node down again", || {
        record(&mut c, &n.key()) == rec("proxy", "down", -1, 0, 16)
    });
}

#[test]
fn master_fails_over_to_its_active_slave() {
    let i = Flarei::start_with(FAST, &[]);
    let m = FakeNode::start();
    let s = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &m);
    add(&mut c, &s);
    let (mp, sp) = (m.port, s.port);
    c.transcript(&format!(
        "> node role 127.0.0.1 {mp} master 1 0
         < OK
         > node role 127.0.0.1 {sp} slave 1 0
         < OK"
    ));
    assert_eq!(record(&mut c, &s.key()), rec("slave", "prepare", 0, 0, 17));
    c.expect(
        format!("node state 127.0.0.1 {sp} active\r\n").as_bytes(),
        b"OK\r\n",
    );
    assert_eq!(record(&mut c, &s.key()), rec("slave", "active", 0, 0, 17));
    m.set_ping(FakeReply::Close);
    poll("failover", || {
        record(&mut c, &s.key()) == rec("master", "active", 0, 1, 17)
    });
    assert_eq!(record(&mut c, &m.key()), rec("proxy", "down", -1, 0, 16));
    let promoted = format!("NODE 127.0.0.1 {sp} 0 0 0 1 17\r\n");
    s.wait_sync("with the slave promoted", |msg, _| msg.contains(&promoted));
    // a master without slaves is preserved
    s.set_ping(FakeReply::Close);
    poll("preserved", || {
        record(&mut c, &s.key()) == rec("master", "down", 0, 1, 17)
    });
    c.expect(
        format!("node remove 127.0.0.1 {sp}\r\n").as_bytes(),
        b"SERVER_ERROR failed to remove node\r\n",
    );
    // it comes back as the master of its partition
    s.set_ping(FakeReply::Ok);
    poll("preserved master back", || {
        record(&mut c, &s.key()) == rec("master", "active", 0, 1, 17)
    });
}

#[test]
fn node_remove_only_when_down() {
    let i = Flarei::start_with(FAST, &[]);
    let n = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &n);
    let p = n.port;
    c.expect(
        format!("node remove 127.0.0.1 {p}\r\n").as_bytes(),
        b"SERVER_ERROR failed to remove node\r\n",
    );
    // keep it from coming back up by itself
    n.set_ping(FakeReply::Close);
    c.transcript(&format!(
        "> node state 127.0.0.1 {p} down
         < OK
         > node remove 127.0.0.1 {p}
         < OK
         > stats nodes
         < END
         > node remove 127.0.0.1 {p}
         < SERVER_ERROR failed to remove node"
    ));
    assert_eq!(version(&mut c), 3);
    let other = FakeNode::start();
    let reply = add(&mut c, &other);
    assert_eq!(
        reply[0],
        format!("NODE 127.0.0.1 {} 2 0 -1 0 17\r\n", other.port)
    );
}

#[test]
fn manual_down_is_undone_by_the_monitor() {
    let i = Flarei::start_with(FAST, &[]);
    let n = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &n);
    c.expect(
        format!("node state 127.0.0.1 {} down\r\n", n.port).as_bytes(),
        b"OK\r\n",
    );
    assert_eq!(record(&mut c, &n.key()), rec("proxy", "down", -1, 0, 16));
    // the (alive) node is told it is down
    n.wait_sync("version 2", |m, _| {
        m == format!(
            "node sync 2\r\nNODE 127.0.0.1 {} 2 2 -1 0 16\r\nEND\r\n",
            n.port
        )
    });
    poll("auto up", || {
        record(&mut c, &n.key()) == rec("proxy", "active", -1, 0, 16)
    });
}

#[test]
fn refused_transitions_change_nothing() {
    let i = Flarei::start();
    let a = FakeNode::start();
    let b = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &a);
    add(&mut c, &b);
    let (ap, bp) = (a.port, b.port);
    c.expect(
        format!("node role 127.0.0.1 {ap} master 1 0\r\n").as_bytes(),
        b"OK\r\n",
    );
    let v = version(&mut c);
    c.send(b"stats nodes\r\n");
    let before = c.read_until("END\r\n");
    let f = "SERVER_ERROR failed to set role (and balance)";
    c.transcript(&format!(
        "> node role 127.0.0.1 {ap} master 0
         < {f}
         > node role 127.0.0.1 {ap} proxy
         < {f}
         > node role 127.0.0.1 {ap} slave 0 0
         < {f}
         > node role 127.0.0.1 {bp} master 1 2
         < {f}
         > node role 127.0.0.1 {bp} master 0 1
         < {f}
         > node role 127.0.0.1 {bp} master 1 0
         < {f}
         > node role 127.0.0.1 {bp} slave 0 3
         < {f}
         > node role 127.0.0.1 {bp} slave
         < {f}
         > node role 127.0.0.1 1 proxy
         < {f}
         > node role 127.0.0.1 {bp} boss 1 0
         < ERROR
         > node state 127.0.0.1 {bp} prepare
         < SERVER_ERROR failed to set state
         > node state 127.0.0.1 {bp} sleeping
         < ERROR
         > node state 127.0.0.1 {bp} ready
         < SERVER_ERROR failed to set state
         > node remove 127.0.0.1 {bp}
         < SERVER_ERROR failed to remove node
         > node add 127.0.0.1 {ap}
         < SERVER_ERROR failed to add node"
    ));
    assert_eq!(version(&mut c), v);
    c.send(b"stats nodes\r\n");
    assert_eq!(c.read_until("END\r\n"), before);
    // the no-op is still saved and broadcast
    c.expect(
        format!("node role 127.0.0.1 {bp} proxy\r\n").as_bytes(),
        b"OK\r\n",
    );
    assert_eq!(version(&mut c), v + 1);
    c.send(b"stats nodes\r\n");
    assert_eq!(c.read_until("END\r\n"), before);
    a.wait_sync("the no-op's version", |m, _| {
        m.starts_with(&format!("node sync {}\r\n", v + 1))
    });
}

#[test]
fn shutdown_message_takes_the_node_down_at_once() {
    // no pings during the test: they would bring the nodes back up
    let i = Flarei::start_with("monitor-interval = 60\n", &[]);
    let m = FakeNode::start();
    let s = FakeNode::start();
    let x = FakeNode::start();
    let mut c = i.connect();
    add(&mut c, &m);
    add(&mut c, &s);
    add(&mut c, &x);
    let (mp, sp, xp) = (m.port, s.port, x.port);
    c.transcript(&format!(
        "> node role 127.0.0.1 {mp} master 1 0
         < OK
         > node role 127.0.0.1 {sp} slave 0 0
         < OK
         > node state 127.0.0.1 {sp} active
         < OK"
    ));
    let v = version(&mut c);
    c.expect(format!("shutdown 127.0.0.1 {mp}\r\n").as_bytes(), b"OK\r\n");
    assert_eq!(record(&mut c, &m.key()), rec("proxy", "down", -1, 0, 16));
    assert_eq!(record(&mut c, &s.key()), rec("master", "active", 0, 1, 17));
    assert_eq!(version(&mut c), v + 1);
    // an active master shutting down is still told
    let head = format!("node sync {}\r\n", v + 1);
    m.wait_sync("the shutdown's version", |msg, _| msg.starts_with(&head));
    s.wait_sync("the shutdown's version", |msg, _| msg.starts_with(&head));
    // a proxy shutting down is not
    c.expect(format!("shutdown 127.0.0.1 {xp}\r\n").as_bytes(), b"OK\r\n");
    assert_eq!(record(&mut c, &x.key()), rec("proxy", "down", -1, 0, 18));
    let head = format!("node sync {}\r\n", v + 2);
    s.wait_sync("the second shutdown's version", |msg, _| {
        msg.starts_with(&head)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        x.syncs().iter().all(|(msg, _)| !msg.starts_with(&head)),
        "{:?}",
        x.syncs()
    );
    // already down: OK without a new version
    c.expect(format!("shutdown 127.0.0.1 {xp}\r\n").as_bytes(), b"OK\r\n");
    assert_eq!(version(&mut c), v + 2);
}

#[test]
fn node_sync_is_retried_until_the_node_takes_it() {
    let i = Flarei::start();
    let n = FakeNode::start();
    n.set_sync(FakeReply::Close);
    let mut c = i.connect();
    add(&mut c, &n);
    let msg = format!(
        "node sync 1\r\nNODE 127.0.0.1 {} 2 0 -1 0 16\r\nEND\r\n",
        n.port
    );
    poll("two refused deliveries", || n.syncs().len() >= 2);
    assert!(n
        .syncs()
        .iter()
        .all(|(m, r)| *m == msg && *r == FakeReply::Close));
    assert_eq!(
        c.stats("threads queue"),
        vec![("total_thread_queue".to_string(), "1".to_string())]
    );
    n.set_sync(FakeReply::Line("CLIENT_ERROR format error".into()));
    poll("a delivery answered with an error", || {
        n.syncs().iter().any(|(_, r)| *r != FakeReply::Close)
    });
    n.set_sync(FakeReply::Ok);
    n.wait_sync("accepted", |m, r| m == msg && *r == FakeReply::Ok);
    poll("empty queue", || {
        c.stats("threads queue") == vec![("total_thread_queue".to_string(), "0".to_string())]
    });
    let delivered = n.syncs().len();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(n.syncs().len(), delivered, "no delivery after OK");
}

#[test]
fn stale_sync_rejection_is_final_and_newer_maps_replace_older() {
    let i = Flarei::start();
    let a = FakeNode::start();
    a.set_sync(FakeReply::Line("SERVER_ERROR node sync error".into()));
    let mut c = i.connect();
    add(&mut c, &a);
    a.wait_sync("version 1", |m, _| m.starts_with("node sync 1\r\n"));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(a.syncs().len(), 1, "a stale rejection is not retried");

    // while a node refuses, newer maps replace the undelivered one
    a.set_sync(FakeReply::Close);
    for _ in 0..3 {
        c.expect(
            format!("node role 127.0.0.1 {} proxy\r\n", a.port).as_bytes(),
            b"OK\r\n",
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    a.set_sync(FakeReply::Ok);
    a.wait_sync("version 4", |m, r| {
        m.starts_with("node sync 4\r\n") && *r == FakeReply::Ok
    });
    let accepted: Vec<String> = a
        .syncs()
        .into_iter()
        .filter(|(_, r)| *r == FakeReply::Ok)
        .map(|(m, _)| m)
        .collect();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
}

#[test]
fn startup_errors_exit_255() {
    let run = |extra: &str| {
        let f = Flarei::configure(extra, &[]);
        // (a ZooKeeper session that cannot be made fails after its 10 s)
        let out = run_bounded(f.command(), Duration::from_secs(30));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            f,
        )
    };
    let (code, err, _f) = run("key-hash-algorithm = murmur\n");
    assert_eq!(code, Some(255), "{err}");
    assert!(err.contains("hash algorithm"), "{err}");
    let (code, err, _f) = run("key-hash-algorithm = md5\n");
    assert_eq!(code, Some(255), "{err}");
    let (code, err, _f) = run("index-db = zookeeper://no-port/flare\n");
    assert_eq!(code, Some(255), "{err}");
    assert!(
        err.contains("expected zookeeper://host:port[,host:port...]/<path>"),
        "{err}"
    );
    // nothing listens there: the session cannot be made within its timeout
    let port = free_port();
    let (code, err, _f) = run(&format!("index-db = zookeeper://127.0.0.1:{port}/flare\n"));
    assert_eq!(code, Some(255), "{err}");
    assert!(
        err.contains("flarei: failed to open the node map in ZooKeeper"),
        "{err}"
    );
    let (code, err, _f) = run("partition-type = consistent\n");
    assert_eq!(code, Some(255), "{err}");
    let (code, err, _f) = run("net-read-timeout = 5\n");
    assert_eq!(code, Some(255), "flarei has no net-read-timeout: {err}");

    // a corrupt flare.xml is fatal, and so is an inconsistent one
    for doc in [
        "garbage".to_string(),
        ORIGINAL_XML.replace("<node_role>1</node_role>", "<node_role>0</node_role>"),
    ] {
        let f = Flarei::configure("", &[]);
        std::fs::write(f.state_file(), doc).expect("write");
        let out = run_bounded(f.command(), Duration::from_secs(15));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        assert!(err.contains("flare.xml"), "{err}");
    }

    let mut v = Command::new(bin_path("flarei"));
    v.arg("--version");
    let out = run_bounded(v, Duration::from_secs(15));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "flare 1.3.4\n");
}
