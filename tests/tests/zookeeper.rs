//! flarei with its node map in ZooKeeper (`index-db = zookeeper://…`,
//! issue 12): the znodes an index creates, several index servers at once
//! over one map (every change through either, the same `stats nodes` and
//! `node_map_version` on both), a killed index server, idle or in the
//! middle of changes (the other one still fails a master over; the
//! restarted one agrees; acknowledged changes are kept), concurrent changes
//! through both indexes (no lost update), the loss of ZooKeeper servers and
//! of the quorum (changes refused, the data path unaffected, recovery), and
//! the migration from `file://` (the map seeded from `flare.xml`). The
//! ZooKeeper servers come from [`flare_e2e::zookeeper`] (Debian's
//! `zookeeper` package).

use std::time::{Duration, Instant};

use flare_e2e::zookeeper::{ZooKeeper, ZK_START};
use flare_e2e::{
    expect_value, flare_xml_doc, rec, wait_until, Cluster, Flarei, LoadClient, FAST_MONITOR, WAIT,
};

/// Longest wait for a failover while another index may hold the ZooKeeper
/// lock until its session (10 s) expires.
const ZK_FAILOVER: Duration = Duration::from_secs(25);

/// flarei settings of these tests: [`FAST_MONITOR`] and the node map under
/// `chroot` of `zk`.
fn index_conf(zk: &ZooKeeper, chroot: &str) -> String {
    format!("{FAST_MONITOR}index-db = {}\n", zk.index_db(chroot))
}

/// `indexes` flarei on `chroot` of `zk` (started one after the other), and
/// `nodes` flared naming them all, each registered (active) before the
/// next starts.
fn zk_cluster(zk: &ZooKeeper, chroot: &str, indexes: usize, nodes: usize) -> Cluster {
    let conf = index_conf(zk, chroot);
    let first = Flarei::start_with(&conf, &[]);
    let more = (1..indexes)
        .map(|_| Flarei::start_with(&conf, &[]))
        .collect();
    let mut c = Cluster::with_indexes(first, more, "");
    for _ in 0..nodes {
        c.add_node("");
    }
    c
}

/// One command line to index `k`; its one-line answer without CRLF.
fn admin_at(c: &Cluster, k: usize, line: &str) -> String {
    c.index_at(k).connect().command(line)
}

/// Index `k`'s raw `stats nodes` and `node_map_version`.
fn view(c: &Cluster, k: usize) -> (String, u64) {
    let mut conn = c.index_at(k).connect();
    (conn.nodes_raw(), conn.map_version())
}

/// Wait (at most `limit`) until the indexes `ks` show the same `stats nodes`
/// and `node_map_version` (each read twice, so that a change in between is
/// not taken for agreement); returns that view.
#[track_caller]
fn wait_agree(c: &Cluster, ks: &[usize], limit: Duration) -> (String, u64) {
    let mut last = Vec::new();
    let mut agreed = None;
    wait_until(&format!("indexes {ks:?} show the same map"), limit, || {
        let views: Vec<(String, u64)> = ks.iter().map(|&k| view(c, k)).collect();
        let again: Vec<(String, u64)> = ks.iter().map(|&k| view(c, k)).collect();
        let same = views.iter().all(|v| *v == views[0]) && views == again;
        if same {
            agreed = Some(views[0].clone());
        }
        last = views;
        same
    });
    agreed.unwrap_or_else(|| panic!("no agreement: {last:?}"))
}

/// Wait (at most [`WAIT`]) until node `i` answers `get <key>` with
/// `value` (a slave gets a write asynchronously).
#[track_caller]
fn wait_value(c: &Cluster, i: usize, key: &str, value: &[u8]) {
    wait_until(&format!("{key} on node {i}"), WAIT, || {
        c.conn(i).get(key) == Some((0, value.to_vec()))
    });
}

/// `/index/servers` of `chroot`: the running index servers' znodes.
fn servers(zk: &ZooKeeper, chroot: &str) -> Option<Vec<String>> {
    zk.zk_children(&format!("{chroot}/index/servers"))
}

/// `127.0.0.1:<port>` of each index `ks`, sorted (as [`servers`] lists them).
fn index_keys(c: &Cluster, ks: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = ks
        .iter()
        .map(|&k| format!("127.0.0.1:{}", c.index_at(k).port))
        .collect();
    v.sort();
    v
}

/// `/index/nodemap` of `chroot` as text.
fn nodemap(zk: &ZooKeeper, chroot: &str) -> Option<String> {
    zk.zk_get(&format!("{chroot}/index/nodemap"))
        .map(|d| String::from_utf8(d).expect("flare.xml is UTF-8"))
}

/// The harness itself: a standalone server and a 3-server ensemble serve,
/// an ensemble member can be killed (the other two go on serving) and
/// started again, and zkCli reads znodes.
#[test]
fn harness_standalone_and_ensemble() {
    let started = Instant::now();
    let solo = ZooKeeper::standalone();
    assert!(solo.ruok(0));
    assert_eq!(solo.mode(0).as_deref(), Some("standalone"));
    assert_eq!(
        solo.connect_string(),
        format!("127.0.0.1:{}", solo.client_port(0))
    );
    assert_eq!(
        solo.index_db("/flare-x"),
        format!("zookeeper://127.0.0.1:{}/flare-x", solo.client_port(0))
    );
    assert_eq!(solo.zk_get("/flare-nothing-here"), None);
    assert_eq!(solo.zk_children("/flare-nothing-here"), None);
    assert_eq!(solo.zk_children("/"), Some(vec!["zookeeper".to_string()]));
    let out = solo.zk_cli(&["create", "/flare-h", "hello\nworld"]);
    assert!(out.status.success(), "{out:?}");
    let out = solo.zk_cli(&["create", "/flare-h/child", ""]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(solo.zk_get("/flare-h"), Some(b"hello\nworld".to_vec()));
    assert_eq!(solo.zk_get("/flare-h/child"), Some(Vec::new()));
    assert_eq!(
        solo.zk_children("/flare-h"),
        Some(vec!["child".to_string()])
    );
    assert_eq!(solo.zk_children("/flare-h/child"), Some(Vec::new()));
    eprintln!("standalone checked after {:?}", started.elapsed());

    let started = Instant::now();
    let mut zk = ZooKeeper::ensemble(3);
    eprintln!("ensemble serving after {:?}", started.elapsed());
    assert_eq!(zk.len(), 3);
    let modes: Vec<String> = (0..3).map(|i| zk.mode(i).expect("serving")).collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "leader").count(),
        1,
        "{modes:?}"
    );
    assert_eq!(
        modes.iter().filter(|m| *m == "follower").count(),
        2,
        "{modes:?}"
    );
    assert!((0..3).all(|i| zk.ruok(i)));
    let ports: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", zk.client_port(i)))
        .collect();
    assert_eq!(zk.connect_string(), ports.join(","));

    // kill the leader: the other two elect one and serve
    let leader = modes.iter().position(|m| m == "leader").expect("a leader");
    zk.kill(leader);
    assert!(!zk.is_running(leader));
    assert_eq!(zk.four_letter(leader, "ruok"), None);
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    wait_until("a new leader among the other two", ZK_START, || {
        others
            .iter()
            .any(|&i| zk.mode(i).as_deref() == Some("leader"))
    });
    for &i in &others {
        zk.wait_serving(i);
    }
    let out = zk.zk_cli(&["create", "/flare-e", "two of three"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(zk.zk_get("/flare-e"), Some(b"two of three".to_vec()));

    // started again, it catches up
    zk.start(leader);
    zk.wait_serving(leader);
    assert_eq!(zk.mode(leader).as_deref(), Some("follower"));
    assert_eq!(
        zk.zk_get_on(leader, "/flare-e"),
        Some(b"two of three".to_vec())
    );
    eprintln!("ensemble checked after {:?}", started.elapsed());
}

/// An index creates the znodes under its chroot, with an empty map at
/// version 0, and registers itself under `/index/servers`; a second index
/// joins. Every kind of change (registration, `node role`, `node state`,
/// the monitor's up, a graceful stop's down, `node remove`) made through
/// either index shows on both, with the same `node_map_version`, and
/// `/index/nodemap` holds the map as `flare.xml`.
#[test]
fn two_indexes_share_one_map() {
    let zk = ZooKeeper::standalone();
    let chroot = "/flare-shared";
    let conf = index_conf(&zk, chroot);
    let a = Flarei::start_with(&conf, &[]);
    let key_a = format!("127.0.0.1:{}", a.port);
    wait_until("the first index's server znode", WAIT, || {
        servers(&zk, chroot) == Some(vec![key_a.clone()])
    });
    assert_eq!(
        zk.zk_children(&format!("{chroot}/index")),
        Some(
            ["lock", "meta", "nodemap", "servers"]
                .map(String::from)
                .to_vec()
        )
    );
    assert_eq!(zk.zk_children(chroot), Some(vec!["index".to_string()]));
    assert_eq!(nodemap(&zk, chroot), Some(flare_xml_doc(0, &[], 16)));
    let mut conn = a.connect();
    conn.expect(b"stats nodes\r\n", b"END\r\n");
    assert_eq!(conn.map_version(), 0);

    let b = Flarei::start_with(&conf, &[]);
    let key_b = format!("127.0.0.1:{}", b.port);
    let mut both = vec![key_a, key_b];
    both.sort();
    wait_until("both indexes' server znodes", WAIT, || {
        servers(&zk, chroot).as_ref() == Some(&both)
    });
    let mut conn = b.connect();
    conn.expect(b"stats nodes\r\n", b"END\r\n");
    assert_eq!(conn.map_version(), 0);
    assert_eq!(nodemap(&zk, chroot), Some(flare_xml_doc(0, &[], 16)));

    // registration (through either index: flared picks one at random)
    let mut c = Cluster::with_indexes(a, vec![b], "");
    let (m, s, p) = (c.add_node(""), c.add_node(""), c.add_node(""));
    let (raw, v) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(v, 3, "{raw}");
    for (i, tt) in [(m, 16), (s, 17), (p, 18)] {
        assert_eq!(c.record(i), Some(rec("proxy", "active", -1, 0, tt)));
    }

    // node role through the first index
    c.first_master(m);
    let (_, v) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(v, 4);
    // and through the second
    c.via_index(1);
    c.add_slave(s, 1, 0, WAIT);
    let (_, v) = wait_agree(&c, &[0, 1], WAIT);
    c.via_index(0);
    c.wait_converged(WAIT);
    assert_eq!(c.record(s), Some(rec("slave", "active", 0, 1, 17)));
    c.conn(p).set("foo", 0, b"1");
    wait_value(&c, s, "foo", b"1");

    // node state through the second index; the monitor brings it up again
    c.via_index(1);
    c.state_ok(p, "down");
    assert_eq!(c.record(p), Some(rec("proxy", "down", -1, 0, 18)));
    c.via_index(0);
    c.wait_records(&[(p, rec("proxy", "down", -1, 0, 18))], WAIT);
    c.wait_records(&[(p, rec("proxy", "active", -1, 0, 18))], WAIT);
    let (_, v2) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(v2, v + 2, "down, then up");

    // a graceful stop marks it down, node remove through the second index
    let status = c.nodes[p].terminate();
    assert!(status.success(), "SIGTERM: {status}");
    c.wait_records(&[(p, rec("proxy", "down", -1, 0, 18))], WAIT);
    wait_agree(&c, &[0, 1], WAIT);
    let cmd = format!("node remove {}", c.name_port(p));
    assert_eq!(admin_at(&c, 1, &cmd), "OK");
    let kp = c.key(p);
    let (raw, v) = wait_agree(&c, &[0, 1], WAIT);
    assert!(!raw.contains(&kp), "{raw}");
    assert_eq!(v, v2 + 2, "down, then removed");
    c.wait_converged(WAIT);
    c.via_index(1);
    c.wait_converged(WAIT);
    expect_value(&mut c.conn(s), "foo", b"1");

    // the znode holds the same map
    let records = c.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(nodemap(&zk, chroot), Some(flare_xml_doc(v, &records, 19)));
}

/// kill -9 of one index: the other one still detects a master's kill -9 and
/// fails over to its slave, registers a restarted node and takes `node
/// role`; the killed index's server znode goes away with its session. The
/// restarted index shows the same map and version, and changes through it
/// work again.
#[test]
fn killed_index_the_other_fails_over_and_the_restarted_one_agrees() {
    let zk = ZooKeeper::standalone();
    let chroot = "/flare-killed-index";
    let mut c = zk_cluster(&zk, chroot, 2, 3);
    let (m, s, p) = (0, 1, 2);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    c.conn(p).set("foo", 0, b"1");
    let (_, v) = wait_agree(&c, &[0, 1], WAIT);

    c.index_at_mut(0).kill9();
    c.via_index(1);
    let killed = Instant::now();
    c.nodes[m].kill9();
    c.wait_records(
        &[
            (m, rec("proxy", "down", -1, 0, 16)),
            (s, rec("master", "active", 0, 1, 17)),
        ],
        ZK_FAILOVER,
    );
    eprintln!(
        "failover through the surviving index {:?} after kill -9",
        killed.elapsed()
    );
    assert_eq!(view(&c, 1).1, v + 1, "one change: the failover");
    c.wait_converged(WAIT);
    let mut via = c.conn(p);
    expect_value(&mut via, "foo", b"1");
    via.set("foo", 0, b"2");
    expect_value(&mut c.conn(s), "foo", b"2");

    // the killed index's session expires
    let only_b = index_keys(&c, &[1]);
    wait_until(
        "only the surviving index's server znode",
        ZK_FAILOVER,
        || servers(&zk, chroot).as_ref() == Some(&only_b),
    );

    // the restarted node registers through the survivor; node role works
    c.restart_node(m);
    c.wait_records(&[(m, rec("proxy", "active", -1, 0, 16))], WAIT);
    c.add_slave(m, 1, 0, WAIT);
    assert_eq!(c.record(m), Some(rec("slave", "active", 0, 1, 16)));
    let after = view(&c, 1);

    // the killed index comes back with the same map
    c.index_at_mut(0).restart();
    let agreed = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(agreed, after);
    let both = index_keys(&c, &[0, 1]);
    wait_until("both server znodes again", WAIT, || {
        servers(&zk, chroot).as_ref() == Some(&both)
    });
    c.via_index(0);
    c.role_ok(m, "slave 3");
    c.wait_records(&[(m, rec("slave", "active", 0, 3, 16))], WAIT);
    let (_, v2) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(v2, after.1 + 1);
    c.wait_converged(WAIT);
    c.via_index(1);
    c.wait_converged(WAIT);
    expect_value(&mut c.conn(m), "foo", b"2");
}

/// kill -9 of an index in the middle of a stream of changes through it
/// (so that it likely holds the ZooKeeper lock): the other index still
/// fails a killed master over (once the killed index's session expired),
/// and every change the killed index acknowledged is in the map (the one
/// in flight may or may not be).
#[test]
fn index_killed_while_changing_the_map() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let zk = ZooKeeper::standalone();
    let chroot = "/flare-killed-busy";
    let mut c = zk_cluster(&zk, chroot, 2, 3);
    let (m, s, p) = (0, 1, 2);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    let (_, v) = wait_agree(&c, &[0, 1], WAIT);

    // `node role <proxy> proxy` changes nothing but the version
    let oks = AtomicU64::new(0);
    let req = format!("node role {} proxy\r\n", c.name_port(p));
    let port_a = c.index_at(0).port;
    let killed = std::thread::scope(|scope| {
        let changes = scope.spawn(|| {
            let mut client = LoadClient::connect(port_a, Duration::from_secs(40)).expect("connect");
            loop {
                match client.request(req.as_bytes()) {
                    Ok(a) if a == "OK" => {
                        oks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(a) => return Some(a),
                    Err(_) => return None,
                }
            }
        });
        wait_until("changes through the first index", WAIT, || {
            oks.load(Ordering::SeqCst) >= 20
        });
        c.index_at_mut(0).kill9();
        let killed = Instant::now();
        let unexpected = changes.join().expect("thread");
        assert_eq!(unexpected, None, "an answer other than OK");
        killed
    });
    let oks = oks.load(Ordering::SeqCst);
    c.via_index(1);
    c.nodes[m].kill9();
    c.wait_records(
        &[
            (m, rec("proxy", "down", -1, 0, 16)),
            (s, rec("master", "active", 0, 1, 17)),
        ],
        ZK_FAILOVER,
    );
    eprintln!(
        "failover through the surviving index {:?} after the busy index was killed ({oks} changes acknowledged)",
        killed.elapsed()
    );
    let after = view(&c, 1).1;
    assert!(
        after == v + oks + 1 || after == v + oks + 2,
        "version {after}: {v} + {oks} acknowledged changes (+ 1 in flight) + the failover"
    );
    c.wait_converged(WAIT);
    c.role_ok(s, "master 2");
    c.wait_records(&[(s, rec("master", "active", 0, 2, 17))], WAIT);
    assert_eq!(view(&c, 1).1, after + 1);
}

/// Balance changes sent to both indexes at once (one thread per index,
/// each on its own slave) lose nothing: every one answers `OK`, each slave
/// ends with its thread's last balance, and `node_map_version` grew by the
/// number of changes.
#[test]
fn concurrent_changes_through_both_indexes_lose_nothing() {
    const CHANGES: i32 = 20;
    let zk = ZooKeeper::standalone();
    let chroot = "/flare-concurrent";
    let mut c = zk_cluster(&zk, chroot, 2, 3);
    let (m, s1, s2) = (0, 1, 2);
    c.first_master(m);
    c.add_slave(s1, 0, 0, WAIT);
    c.add_slave(s2, 0, 0, WAIT);
    let (_, v0) = wait_agree(&c, &[0, 1], WAIT);

    let started = Instant::now();
    let answers: Vec<Vec<(i32, String)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = [(0, s1), (1, s2)]
            .into_iter()
            .map(|(k, node)| {
                let port = c.index_at(k).port;
                let name_port = c.name_port(node);
                scope.spawn(move || {
                    let mut client =
                        LoadClient::connect(port, Duration::from_secs(40)).expect("connect");
                    (1..=CHANGES)
                        .map(|b| {
                            let req = format!("node role {name_port} slave {b}\r\n");
                            let answer = client
                                .request(req.as_bytes())
                                .unwrap_or_else(|e| format!("(no answer: {e})"));
                            (b, answer)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    eprintln!(
        "{} concurrent changes answered in {:?}",
        2 * CHANGES,
        started.elapsed()
    );
    let ok = answers.iter().flatten().filter(|(_, a)| a == "OK").count() as u64;
    for (k, a) in answers.iter().enumerate() {
        let refused: Vec<&(i32, String)> = a.iter().filter(|(_, a)| a != "OK").collect();
        assert!(refused.is_empty(), "through index {k}: {refused:?}");
    }
    let (raw, v) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(
        c.record(s1),
        Some(rec("slave", "active", 0, CHANGES, 17)),
        "{raw}"
    );
    assert_eq!(
        c.record(s2),
        Some(rec("slave", "active", 0, CHANGES, 18)),
        "{raw}"
    );
    assert_eq!(v, v0 + ok, "{ok} changes answered OK");
    c.wait_converged(WAIT);
    let records = c.records();
    assert_eq!(nodemap(&zk, chroot), Some(flare_xml_doc(v, &records, 19)));
}

/// A 3-server ensemble: with one server killed changes work through both
/// indexes; with two killed (no quorum) a change answers `SERVER_ERROR`
/// within 15 s and the map stays as it was, while the nodes go on serving
/// reads and writes; with the servers back a change works again and both
/// indexes agree.
#[test]
fn ensemble_server_loss_and_quorum_loss() {
    let mut zk = ZooKeeper::ensemble(3);
    let chroot = "/flare-quorum";
    let mut c = zk_cluster(&zk, chroot, 2, 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 0, 0, WAIT);
    c.conn(s).set("foo", 0, b"1");

    // one server lost: the other two keep the quorum
    zk.kill(0);
    let s_name = c.name_port(s);
    let role = |b: i32| format!("node role {s_name} slave {b}");
    assert_eq!(admin_at(&c, 0, &role(1)), "OK");
    assert_eq!(admin_at(&c, 1, &role(2)), "OK");
    let (_, v) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(c.record(s), Some(rec("slave", "active", 0, 2, 17)));
    c.wait_converged(WAIT);

    // the quorum lost
    zk.kill(1);
    zk.wait_not_serving(2, ZK_START);
    let before = (view(&c, 0), view(&c, 1));
    for (k, b) in [(0, 3), (1, 4)] {
        let sent = Instant::now();
        let answer = admin_at(&c, k, &role(b));
        let took = sent.elapsed();
        eprintln!("without a quorum index {k} answered {answer:?} after {took:?}");
        assert!(answer.starts_with("SERVER_ERROR"), "index {k}: {answer:?}");
        assert!(
            took < Duration::from_secs(15),
            "index {k} answered after {took:?}"
        );
    }
    let state = admin_at(&c, 1, &format!("node state {} down", c.name_port(s)));
    assert!(state.starts_with("SERVER_ERROR"), "{state:?}");
    assert_eq!((view(&c, 0), view(&c, 1)), before, "the map did not change");
    assert_eq!(before.0 .1, v);
    // the data path does not need the index
    let mut via = c.conn(s);
    via.set("foo", 0, b"2");
    via.set("bar", 0, b"3");
    expect_value(&mut c.conn(m), "foo", b"2");
    expect_value(&mut c.conn(m), "bar", b"3");
    wait_until("the slave has the writes", WAIT, || {
        c.conn(s).get("bar") == Some((0, b"3".to_vec()))
    });

    // the servers back: changes work again
    zk.start(0);
    zk.start(1);
    for i in 0..3 {
        zk.wait_serving(i);
    }
    let back = Instant::now();
    let mut answers = Vec::new();
    wait_until(
        "a node role accepted again",
        Duration::from_secs(40),
        || {
            let a = admin_at(&c, 0, &role(5));
            let ok = a == "OK";
            answers.push(a);
            ok
        },
    );
    eprintln!(
        "node role accepted {:?} after the quorum came back; answers before: {:?}",
        back.elapsed(),
        &answers[..answers.len() - 1]
    );
    assert!(
        answers[..answers.len() - 1]
            .iter()
            .all(|a| a.starts_with("SERVER_ERROR")),
        "{answers:?}"
    );
    let (_, v2) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(v2, v + 1, "one change: the refused ones did not count");
    assert_eq!(c.record(s), Some(rec("slave", "active", 0, 5, 17)));
    wait_until(
        "a node role through the second index",
        Duration::from_secs(40),
        || admin_at(&c, 1, &role(6)) == "OK",
    );
    let (_, v3) = wait_agree(&c, &[0, 1], WAIT);
    assert_eq!(v3, v2 + 1);
    c.wait_converged(WAIT);
    expect_value(&mut c.conn(s), "bar", b"3");
}

/// Migration from `file://`: a file-based index with a master and a slave
/// is stopped and started again on the same data dir with `index-db =
/// zookeeper://…` on an empty chroot: the node map is seeded from its
/// `flare.xml` (same records, same version), changes go on, and another
/// index joining with a stale `flare.xml` of its own takes the map from
/// ZooKeeper.
#[test]
fn migration_from_file_index_keeps_the_map() {
    let mut c = Cluster::start_with(FAST_MONITOR, "", 3);
    let (m, s, p) = (0, 1, 2);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    c.conn(p).set("foo", 0, b"1");
    let before = view(&c, 0);
    let xml_before = std::fs::read_to_string(c.index.state_file()).expect("flare.xml");
    assert!(
        xml_before.contains(&format!("<version>{}</version>", before.1)),
        "{xml_before}"
    );
    let status = c.index.terminate();
    assert!(status.success(), "SIGTERM: {status}");

    let zk = ZooKeeper::standalone();
    let chroot = "/flare-migrated";
    assert_eq!(zk.zk_children(chroot), None, "an empty chroot");
    let mut conf = std::fs::read_to_string(&c.index.conf).expect("flarei.conf");
    conf.push_str(&format!("index-db = {}\n", zk.index_db(chroot)));
    std::fs::write(&c.index.conf, &conf).expect("write flarei.conf");
    c.index.restart();
    assert_eq!(view(&c, 0), before);
    assert_eq!(nodemap(&zk, chroot), Some(xml_before.clone()));
    let key_a = index_keys(&c, &[0]);
    wait_until("the index's server znode", WAIT, || {
        servers(&zk, chroot).as_ref() == Some(&key_a)
    });

    // changes go on, and the nodes take them from the migrated index
    c.role_ok(s, "slave 2");
    c.wait_records(&[(s, rec("slave", "active", 0, 2, 17))], WAIT);
    let after = view(&c, 0);
    assert_eq!(after.1, before.1 + 1);
    c.wait_converged(WAIT);
    wait_value(&c, s, "foo", b"1");
    let records = c.records();
    assert_eq!(
        nodemap(&zk, chroot),
        Some(flare_xml_doc(after.1, &records, 19))
    );

    // a second index with the old flare.xml in its data dir: the znode
    // exists, so it is not seeded again
    let mut b = Flarei::configure(&index_conf(&zk, chroot), &[]);
    std::fs::write(b.state_file(), &xml_before).expect("write flare.xml");
    b.restart();
    let mut conn = b.connect();
    assert_eq!((conn.nodes_raw(), conn.map_version()), after);
    drop(conn);
    b.kill9();
    assert_eq!(view(&c, 0), after);
    assert_eq!(
        nodemap(&zk, chroot),
        Some(flare_xml_doc(after.1, &records, 19))
    );
}
