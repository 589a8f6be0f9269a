//! Access control (docs/security.md): `node sync` only from a node's index
//! servers, `admin-networks` on both daemons, `node add`/`shutdown` only
//! from the node they name. Other client hosts are played by sources in
//! 127.0.0.0/8 other than 127.0.0.1 (all local, no namespace needed).

use flare_e2e::{dump_sorted, signal, wait_until, Cluster, Conn, Flared, Flarei, WAIT};

/// A client host that is neither the index nor a node.
const STRANGER: &str = "127.0.0.9";

/// The reproduction of the issue: a client from another address sends a
/// `node sync` far ahead making the master a slave in `prepare`. It is
/// refused, the node keeps serving its keys, and the real index's syncs
/// still apply.
#[test]
fn a_forged_node_sync_is_refused_and_changes_nothing() {
    let mut c = Cluster::start(2);
    c.first_master(0);
    let port = c.port(0);
    let mut m = c.conn(0);
    for i in 0..1000 {
        m.set(&format!("k{i}"), 0, format!("v{i}").as_bytes());
    }
    let before = m.map_version();
    let forged = format!(
        "node sync 999999999\r\nNODE 127.0.0.1 {port} 1 1 0 0 16\r\nNODE 127.0.0.1 {} 0 0 0 1 17\r\nEND\r\n",
        c.port(1)
    );
    let mut x = Conn::connect_from(STRANGER, port);
    x.expect(
        forged.as_bytes(),
        b"CLIENT_ERROR node sync is accepted from this node's index servers only, not 127.0.0.9\r\n",
    );
    // nothing changed: same map, keys served
    assert_eq!(m.map_version(), before);
    for i in [0, 500, 999] {
        assert_eq!(
            m.get(&format!("k{i}")),
            Some((0, format!("v{i}").into_bytes()))
        );
    }
    let log = c.nodes[0].log();
    assert!(
        log.contains("node sync is accepted from this node's index servers only")
            && log.contains("(from 127.0.0.9:"),
        "no warning naming the peer: {log}"
    );
    // the index's syncs still apply: a slave joins and both nodes know it
    c.add_slave(1, 1, 0, WAIT);
    assert!(m.map_version() > before);
    wait_until("the slave has the 1000 keys", WAIT, || {
        dump_sorted(c.port(1)).len() == 1000
    });
}

/// A standalone node has no index: `node sync` only from its own host.
#[test]
fn a_standalone_node_takes_node_sync_only_from_loopback_itself() {
    let f = Flared::start();
    let mut x = Conn::connect_from(STRANGER, f.port);
    x.expect(
        b"node sync 5\r\nEND\r\n",
        b"CLIENT_ERROR node sync is accepted from this node's index servers only, not 127.0.0.9\r\n",
    );
    assert!(f.log().contains("(from 127.0.0.9:"), "{}", f.log());
    f.connect().expect(b"node sync 5\r\nEND\r\n", b"OK\r\n");
}

/// `admin-networks` on flared: `flush_all`, `kill`, `verbosity` and `dump`
/// only from the listed networks; reads and writes from anywhere; a reload
/// changes the list.
#[test]
fn admin_networks_on_a_node() {
    let f = Flared::start_with("admin-networks = 127.0.0.1/32, ::1/128\n", &[]);
    let mut x = Conn::connect_from(STRANGER, f.port);
    x.set("k", 1, b"v");
    assert_eq!(x.get("k"), Some((1, b"v".to_vec())));
    x.transcript(
        "
        > flush_all
        < CLIENT_ERROR flush_all is not allowed from 127.0.0.9 (admin-networks)
        > verbosity 1
        < CLIENT_ERROR verbosity is not allowed from 127.0.0.9 (admin-networks)
        > kill 1
        < CLIENT_ERROR kill is not allowed from 127.0.0.9 (admin-networks)
        > dump
        < CLIENT_ERROR dump is allowed from the cluster's nodes and admin-networks only, not 127.0.0.9
        > dump_key
        < CLIENT_ERROR dump is allowed from the cluster's nodes and admin-networks only, not 127.0.0.9
        ",
    );
    // the binary protocol's FLUSH too
    let mut flush = vec![0x80, 0x08];
    flush.extend_from_slice(&[0; 22]);
    x.send(&flush);
    let h = x.read_exact(24);
    assert_eq!(u16::from_be_bytes([h[6], h[7]]), 0x04, "EINVAL");
    let body = x.read_exact(u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize);
    assert!(String::from_utf8_lossy(&body).contains("admin-networks"));
    assert_eq!(x.get("k"), Some((1, b"v".to_vec())), "nothing was flushed");
    // from an admin network
    let mut a = f.connect();
    a.expect(b"verbosity 0\r\n", b"OK\r\n");
    assert!(a.dump("dump\r\n").iter().any(|r| r.key == "k"));
    // reload: the stranger's network is added
    let conf = std::fs::read_to_string(&f.conf).expect("conf");
    std::fs::write(
        &f.conf,
        conf.replace(
            "admin-networks = 127.0.0.1/32, ::1/128",
            "admin-networks = 127.0.0.0/8",
        ),
    )
    .expect("write conf");
    signal(f.pid(), 1);
    wait_until("the reload admits 127.0.0.9", WAIT, || {
        Conn::connect_from(STRANGER, f.port).command("verbosity 0") == "OK"
    });
    x.expect(b"flush_all\r\n", b"OK\r\n");
    assert_eq!(x.get("k"), None);
    // a bad value is refused by the reload (nothing changes)
    std::fs::write(
        &f.conf,
        conf.replace("127.0.0.1/32, ::1/128", "127.0.0.1/99"),
    )
    .expect("write conf");
    signal(f.pid(), 1);
    wait_until("the reload is refused", WAIT, || {
        f.log().contains("invalid config file -> skip reloading")
    });
    x.expect(b"verbosity 0\r\n", b"OK\r\n");
}

/// A node that is not in admin-networks of its peers can still rebuild
/// itself from them: `dump` from a node of the cluster is allowed.
#[test]
fn reconstruction_needs_no_admin_network() {
    let mut c = Cluster::start_with("", "admin-networks = 10.255.255.0/24\n", 2);
    c.first_master(0);
    let mut m = c.conn(0);
    for i in 0..100 {
        m.set(&format!("r{i}"), 0, b"x");
    }
    c.add_slave(1, 1, 0, WAIT);
    assert_eq!(dump_sorted(c.port(1)).len(), 100);
    // a stranger may not dump
    let mut x = Conn::connect_from(STRANGER, c.port(0));
    x.expect(
        b"dump\r\n",
        b"CLIENT_ERROR dump is allowed from the cluster's nodes and admin-networks only, not 127.0.0.9\r\n",
    );
}

/// flarei: `node role/state/remove` only from admin-networks; `node add`
/// and `shutdown` only from the node they name, unless
/// `node-address-check = false` (NAT).
#[test]
fn index_access_control() {
    let c = Cluster::start_with("admin-networks = 127.0.0.1\n", "", 1);
    let p = c.port(0);
    let mut idx = c.index_conn();
    let mut x = Conn::connect_from(STRANGER, c.index.port);
    x.transcript(&format!(
        "
        > node role 127.0.0.1 {p} master 1 0
        < CLIENT_ERROR node role is not allowed from 127.0.0.9 (admin-networks)
        > node state 127.0.0.1 {p} down
        < CLIENT_ERROR node state is not allowed from 127.0.0.9 (admin-networks)
        > node remove 127.0.0.1 {p}
        < CLIENT_ERROR node remove is not allowed from 127.0.0.9 (admin-networks)
        > node add 127.0.0.1 9
        < CLIENT_ERROR node add 127.0.0.1:9 is accepted only from that node's address, not 127.0.0.9 (node-address-check)
        > shutdown 127.0.0.1 {p}
        < CLIENT_ERROR shutdown 127.0.0.1:{p} is accepted only from that node's address, not 127.0.0.9 (node-address-check)
        "
    ));
    // the node is untouched
    let raw = idx.nodes_raw();
    assert!(
        raw.contains(&format!("127.0.0.1:{p}:state active")),
        "{raw}"
    );
    assert!(raw.contains(&format!("127.0.0.1:{p}:role proxy")), "{raw}");
    // from the admin network
    idx.expect(
        format!("node role 127.0.0.1 {p} master 1 0\r\n").as_bytes(),
        b"OK\r\n",
    );
    // a node may announce itself from its own address (127.0.0.9 names 127.0.0.9)
    x.send(b"node add 127.0.0.9 9\r\n");
    assert_eq!(
        x.read_until("END\r\n").last().map(String::as_str),
        Some("END\r\n")
    );
}

/// `node-address-check = false`: nodes behind NAT announce themselves from
/// an address other than their name.
#[test]
fn node_address_check_can_be_turned_off() {
    let i = Flarei::start_with("node-address-check = false\n", &[]);
    let mut x = Conn::connect_from(STRANGER, i.port);
    x.send(b"node add 10.1.2.3 12121\r\n");
    let reply = x.read_until("END\r\n");
    assert_eq!(reply[0], "NODE 10.1.2.3 12121 2 0 -1 0 16\r\n", "{reply:?}");
}
