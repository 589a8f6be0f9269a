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

/// A secret file in `dir` (the same content makes the same secret).
fn secret_file(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{content}\n")).expect("write the secret");
    path.display().to_string()
}

/// Index and nodes with the same `cluster-secret-file` form a cluster (the
/// nodes register, syncs are delivered, a slave is rebuilt, writes
/// replicate, a proxy forwards); a client without the secret can neither
/// push a `node sync` nor send a proxied request, even from the index's
/// address; operators keep their commands.
#[test]
fn a_cluster_with_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), "secret", "a shared secret of the cluster, 42");
    let conf = format!("cluster-secret-file = {secret}\n");
    let mut c = Cluster::start_with(&conf, &conf, 3);
    c.first_master(0);
    let mut m = c.conn(0);
    for i in 0..50 {
        m.set(&format!("s{i}"), 0, b"v");
    }
    c.add_slave(1, 1, 0, WAIT);
    assert_eq!(dump_sorted(c.port(1)).len(), 50);
    // through the proxy (an authenticated forwarding connection)
    let mut p = c.conn(2);
    p.set("through", 0, b"proxy");
    assert_eq!(m.get("through"), Some((0, b"proxy".to_vec())));
    wait_until("replicated", WAIT, || dump_sorted(c.port(1)).len() == 51);
    // a client without the secret, from 127.0.0.1 (the index's address)
    let port = c.port(1);
    let mut x = c.conn(1);
    x.transcript(&format!(
        "
        > node sync 99999
        > NODE 127.0.0.1 {port} 0 0 0 1 17
        > END
        < CLIENT_ERROR authentication required: this node has a cluster secret (cluster-secret-file)
        > <127.0.0.1:{}>set s1 0 0 1 99999999999999
        > x
        < CLIENT_ERROR authentication required: this node has a cluster secret (cluster-secret-file)
        > auth challenge 00112233445566778899aabbccddeeff
        ",
        c.port(0)
    ));
    // it gets a challenge, but cannot answer it
    let line = x.read_line();
    assert!(line.starts_with("AUTH "), "{line}");
    x.expect(
        format!("auth response {}\r\n", "0".repeat(64)).as_bytes(),
        b"CLIENT_ERROR authentication failed\r\n",
    );
    x.expect(
        b"node sync 99999\r\nEND\r\n",
        b"CLIENT_ERROR authentication required: this node has a cluster secret (cluster-secret-file)\r\n",
    );
    assert_eq!(x.get("s1"), Some((0, b"v".to_vec())));
    // an operator's commands do not need the secret (admin-networks: any)
    assert_eq!(x.dump("dump\r\n").len(), 51);
    // whoever proves the secret may send node sync from any address (a
    // multi-homed index): the version guard answers, not the access check
    let mut y = Conn::connect_from(STRANGER, port);
    let client_nonce = "0123456789abcdef0123456789abcdef";
    let challenge = y.command(&format!("auth challenge {client_nonce}"));
    let server_nonce = challenge.split(' ').nth(1).expect("AUTH <nonce> <proof>");
    let proof = hmac_proof(
        "a shared secret of the cluster, 42",
        client_nonce,
        server_nonce,
    );
    y.expect(format!("auth response {proof}\r\n").as_bytes(), b"OK\r\n");
    y.expect(
        b"node sync 1\r\nEND\r\n",
        b"SERVER_ERROR node sync error\r\n",
    );
    c.role_ok(2, "slave 1 0");
}

/// The client proof of the cluster's challenge-response, computed
/// independently (Python's hmac) from the secret and both nonces (hex).
fn hmac_proof(secret: &str, client_hex: &str, server_hex: &str) -> String {
    let script = "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), \
        b'flare-rs cluster auth v1 client' + bytes.fromhex(sys.argv[2]) + bytes.fromhex(sys.argv[3]), \
        hashlib.sha256).hexdigest())";
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script, secret, client_hex, server_hex]);
    let out = flare_e2e::run_bounded(cmd, std::time::Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A node without the secret (or with another one) cannot join an index
/// that has one: registration fails and flared exits 255 naming the index.
#[test]
fn a_node_without_the_secret_cannot_join() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), "secret", "the cluster's secret, long enough");
    let other = secret_file(dir.path(), "other", "somebody else's secret, long enough");
    let i = Flarei::start_with(&format!("cluster-secret-file = {secret}\n"), &[]);
    for extra in [String::new(), format!("cluster-secret-file = {other}\n")] {
        let f = Flared::configure(
            &format!("index-servers = 127.0.0.1:{}\n{extra}", i.port),
            &[],
        );
        let out = flare_e2e::run_bounded(f.command(), std::time::Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{err}");
        if extra.is_empty() {
            assert!(err.contains("authentication required"), "{err}");
        } else {
            assert!(err.contains("does not know the cluster secret"), "{err}");
        }
    }
    assert_eq!(i.connect().nodes_raw(), "END\r\n", "no node registered");
    // an index without the secret cannot push syncs to a node that has it
    // (tested above from a client; here the node refuses to start against
    // an index that cannot prove the secret)
    let plain = Flarei::start();
    let f = Flared::configure(
        &format!(
            "index-servers = 127.0.0.1:{}\ncluster-secret-file = {secret}\n",
            plain.port
        ),
        &[],
    );
    let out = flare_e2e::run_bounded(f.command(), std::time::Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("no cluster secret there"), "{err}");
}

/// `cluster-secret-required = false` (a rolling upgrade): daemons with the
/// secret still talk to one without it.
#[test]
fn a_rolling_upgrade_with_the_secret_not_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), "secret", "the cluster's secret, long enough");
    let conf = format!("cluster-secret-file = {secret}\ncluster-secret-required = false\n");
    // the index not upgraded yet, the nodes upgraded
    let mut c = Cluster::start_with("", &conf, 2);
    c.first_master(0);
    c.conn(0).set("r", 0, b"1");
    c.add_slave(1, 1, 0, WAIT);
    assert_eq!(dump_sorted(c.port(1)).len(), 1);
}

/// A secret shorter than 16 bytes is a configuration error that says what
/// to do.
#[test]
fn a_short_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path(), "secret", "short");
    let f = Flared::configure(&format!("cluster-secret-file = {secret}\n"), &[]);
    let out = flare_e2e::run_bounded(f.command(), std::time::Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(255), "{text}");
    assert!(text.contains("use at least 16"), "{text}");
}
