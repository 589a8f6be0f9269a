//! Faults injected at named points of the real daemons (docs/reliability.md
//! §5), with the daemons built with the `failpoints` feature (scripts/test.sh
//! keeps them in `<target>/failpoints/`; release and package builds have no
//! failpoints). A failpoint is set over the protocol:
//! `failpoint <name> <actions>` → `OK`.
//!
//! Points: `replication::send`, `replication::ack` (master → slave),
//! `reconstruction::dump`, `reconstruction::item`, `reconstruction::report`
//! (a node copying a partition), `node_sync::apply`, `storage::write`
//! (flared); `persist::save`, `persist::rename`, `failover::decide`,
//! `failover::saved` (flarei).

use std::time::Duration;

use flare_e2e::*;

/// Set failpoint `name` on the daemon behind `c` (empty `actions`: remove).
#[track_caller]
fn failpoint(c: &mut Conn, name: &str, actions: &str) {
    c.expect(
        format!("failpoint {name} {actions}\r\n").as_bytes(),
        b"OK\r\n",
    );
}

fn cluster(index_conf: &str, node_conf: &str, n: usize) -> Cluster {
    use_failpoint_binaries();
    Cluster::start_with(index_conf, node_conf, n)
}

/// `gets <key>` on node `i`: (value, version).
fn gets(c: &Cluster, i: usize, key: &str) -> Option<(Vec<u8>, u64)> {
    c.conn(i).gets(key).map(|(_, v, version)| (v, version))
}

/// What node `i` holds itself for `key` (its dump: a read could be served
/// by another node): (value, version).
fn held(c: &Cluster, i: usize, key: &str) -> Option<(Vec<u8>, u64)> {
    dump_sorted(c.port(i))
        .into_iter()
        .find(|r| r.key == key)
        .map(|r| (r.value, r.version))
}

/// The failpoint builds reject malformed actions (release builds answer
/// `ERROR`: tests/tests/errors.rs).
#[test]
fn failpoint_command_checks_its_actions() {
    let mut c = cluster(FAST_MONITOR, "", 1);
    let mut n = c.conn(0);
    n.expect(
        b"failpoint replication::send bogus(\r\n",
        b"CLIENT_ERROR bad failpoint actions: parentheses do not match\r\n",
    );
    failpoint(&mut n, "replication::send", "off");
    failpoint(&mut n, "replication::send", "");
    c.index_conn()
        .expect(b"failpoint persist::save off\r\n", b"OK\r\n");
    c.nodes[0].kill9();
}

/// Answers of a slave lost after it applied the write: the master sends the
/// write again on a new connection, the slave answers `NOT_STORED` (it holds
/// this exact version), and the `sync` write is acknowledged once, with the
/// same value and version on both.
#[test]
fn lost_answers_are_resent_and_acknowledged_exactly() {
    let mut c = cluster(FAST_MONITOR, "", 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    failpoint(&mut c.conn(m), "replication::ack", "2*return(fail)->off");
    c.conn(m)
        .expect(b"set k 0 0 1 sync\r\nA\r\n", b"STORED\r\n");
    let at_master = gets(&c, m, "k").expect("k on the master");
    assert_eq!(held(&c, s, "k"), Some(at_master.clone()));
    assert_eq!(at_master.0, b"A");
    c.conn(m)
        .expect(b"set k 0 0 1 sync\r\nB\r\n", b"STORED\r\n");
    let at_master = gets(&c, m, "k").expect("k on the master");
    assert_eq!(held(&c, s, "k"), Some(at_master));
    assert!(
        c.log(m).contains("failpoint replication::ack"),
        "the lost answers were injected:\n{}",
        c.log(m)
    );
}

/// A slave the master cannot send to: the `sync` write is not acknowledged
/// (`SERVER_ERROR`), the slave is reported and taken out of the map, and
/// once the link works again it is rebuilt into an exact copy.
#[test]
fn a_slave_the_master_cannot_reach_is_taken_out_and_rebuilt() {
    let mut c = cluster(
        "monitor-interval = 1\nmonitor-threshold = 3600\n",
        "proxy-timeout = 200\n",
        2,
    );
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    for i in 0..50 {
        c.conn(m).expect(
            format!("set before{i} 0 0 1 sync\r\nx\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    failpoint(&mut c.conn(m), "replication::send", "return(fail)");
    let answer = c.conn(m).command("set cut 0 0 1 sync\r\ny");
    assert!(
        answer.starts_with("SERVER_ERROR replication to "),
        "a write the slave did not get is not acknowledged: {answer}"
    );
    let tt = c.tt(s);
    c.wait_records(
        &[(s, rec("proxy", "down", -1, 0, tt))],
        Duration::from_secs(60),
    );
    // once the master has that map, the slave is out: writes go on
    // without it
    let v = c.index_conn().map_version();
    wait_until("the master has the map without the slave", WAIT, || {
        c.conn(m).map_version() >= v
    });
    c.conn(m)
        .expect(b"set after 0 0 1 sync\r\nz\r\n", b"STORED\r\n");
    failpoint(&mut c.conn(m), "replication::send", "");
    // the index brings the live node back as a proxy; make it a slave again
    wait_until("the slave is up again", Duration::from_secs(30), || {
        c.record(s).is_some_and(|r| r.state == "active")
    });
    c.add_slave(s, 1, 0, Duration::from_secs(60));
    assert_eq!(dump_sorted(c.port(s)), dump_sorted(c.port(m)));
}

/// A copy that breaks half-way: the node goes back to proxy (it never
/// serves a partial copy), and a second attempt produces an exact copy.
#[test]
fn a_broken_copy_goes_back_to_proxy_and_can_be_retried() {
    let mut c = cluster(FAST_MONITOR, "", 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    let mut w = c.conn(m);
    for i in 0..500 {
        w.expect(
            format!("set key{i} 0 0 3 noreply\r\nv{:02}\r\n", i % 100).as_bytes(),
            b"",
        );
    }
    w.in_sync();
    failpoint(
        &mut c.conn(s),
        "reconstruction::item",
        "100*off->return(fail)",
    );
    c.role_ok(s, "slave 1 0");
    let tt = c.tt(s);
    c.wait_records(
        &[(s, rec("proxy", "active", -1, 0, tt))],
        Duration::from_secs(60),
    );
    assert!(
        c.log(s)
            .contains("reconstruction of partition 0 failed: connection to"),
        "{}",
        c.log(s)
    );
    failpoint(&mut c.conn(s), "reconstruction::item", "");
    c.add_slave(s, 1, 0, Duration::from_secs(60));
    assert_eq!(dump_sorted(c.port(s)), dump_sorted(c.port(m)));
    assert_eq!(dump_sorted(c.port(s)).len(), 500);
}

/// A copy whose report to the index fails for a while is reported again:
/// the node does not stay `prepare`.
#[test]
fn a_lost_reconstruction_report_is_sent_again() {
    let mut c = cluster(FAST_MONITOR, "", 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.conn(m).expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    failpoint(
        &mut c.conn(s),
        "reconstruction::report",
        "2*return(fail)->off",
    );
    c.add_slave(s, 1, 0, Duration::from_secs(60));
    assert_eq!(held(&c, s, "k").map(|(v, _)| v), Some(b"x".to_vec()));
    assert!(
        c.log(s).contains("failpoint reconstruction::report"),
        "{}",
        c.log(s)
    );
}

/// A node that fails to take a new map twice gets it again from the index.
#[test]
fn a_map_a_node_failed_to_take_is_sent_again() {
    let mut c = cluster(FAST_MONITOR, "", 2);
    failpoint(&mut c.conn(1), "node_sync::apply", "2*return(fail)->off");
    c.first_master(0);
    c.wait_converged(Duration::from_secs(30));
    assert!(
        c.log(1)
            .contains("not applied (failpoint node_sync::apply)"),
        "{}",
        c.log(1)
    );
    assert_eq!(c.conn(1).map_version(), c.index_conn().map_version());
}

/// A slow disk on the slave (every write takes 20 ms longer) slows the
/// `sync` writes down but loses none.
#[test]
fn a_slow_slave_disk_loses_nothing() {
    let mut c = cluster(FAST_MONITOR, "", 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    failpoint(&mut c.conn(s), "storage::write", "sleep(20)");
    let mut w = c.conn(m);
    for i in 0..30 {
        w.expect(
            format!("set slow{i} 0 0 2 sync\r\n{i:02}\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    for i in 0..200 {
        w.expect(
            format!("set async{i} 0 0 2 noreply\r\n{:02}\r\n", i % 100).as_bytes(),
            b"",
        );
    }
    w.expect(b"set last 0 0 1 sync\r\nL\r\n", b"STORED\r\n");
    failpoint(&mut c.conn(s), "storage::write", "");
    assert_eq!(dump_sorted(c.port(m)).len(), 231);
    // the noreply writes travel on other lanes than the last sync write:
    // they arrive, slowly, but all of them
    wait_until("the slave has every write", Duration::from_secs(60), || {
        dump_sorted(c.port(s)) == dump_sorted(c.port(m))
    });
}

/// A slave whose disk fails: it refuses the replicated write, the `sync`
/// write is not acknowledged, and the slave is taken out.
#[test]
fn a_slave_whose_disk_fails_is_taken_out() {
    let mut c = cluster(FAST_MONITOR, "proxy-timeout = 200\n", 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    failpoint(&mut c.conn(s), "storage::write", "return(fail)");
    let answer = c.conn(m).command("set k 0 0 1 sync\r\nx");
    assert!(
        answer.starts_with("SERVER_ERROR replication to "),
        "{answer}"
    );
    let tt = c.tt(s);
    c.wait_records(
        &[(s, rec("proxy", "down", -1, 0, tt))],
        Duration::from_secs(60),
    );
    // the node itself says it is broken: it stays out
    c.conn(s)
        .expect(b"ping\r\n", b"SERVER_ERROR storage error\r\n");
}

/// flarei cannot save the new map: the change is refused and not applied
/// (no node hears of it).
#[test]
fn a_map_that_cannot_be_saved_is_not_applied() {
    let mut c = cluster(FAST_MONITOR, "", 1);
    let before = c.index_conn().map_version();
    failpoint(&mut c.index_conn(), "persist::save", "return(fail)");
    let cmd = format!("node role {} master 1 0", c.name_port(0));
    assert_eq!(
        c.admin(&cmd),
        "SERVER_ERROR failed to set role (and balance)"
    );
    assert_eq!(c.index_conn().map_version(), before);
    assert_eq!(c.record(0).expect("listed").role, "proxy");
    assert!(c.index.log().contains("failpoint persist::save"));
    failpoint(&mut c.index_conn(), "persist::save", "");
    c.first_master(0);
}

/// flarei dies after writing the new map, before putting it in place: it
/// restarts with the previous map, intact, and the change can be made again.
#[test]
fn an_index_that_dies_while_saving_restarts_with_the_previous_map() {
    let mut c = cluster(FAST_MONITOR, "", 1);
    let before = c.index_conn().map_version();
    failpoint(&mut c.index_conn(), "persist::rename", "return(crash)");
    let mut admin = c.index_conn();
    admin.send(format!("node role {} master 1 0\r\n", c.name_port(0)).as_bytes());
    admin.expect_closed();
    c.index.wait_crashed(WAIT);
    c.index.restart();
    assert_eq!(c.index_conn().map_version(), before);
    assert_eq!(c.record(0).expect("listed").role, "proxy");
    c.first_master(0);
    c.conn(0).expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
}

/// flarei dies in the middle of a failover (after deciding, or after
/// saving, before any node heard of it): after a restart the failover
/// completes and the slave serves as master with every acknowledged write.
#[test]
fn an_index_that_dies_during_a_failover_completes_it_after_restart() {
    for point in ["failover::decide", "failover::saved"] {
        let mut c = cluster(FAST_MONITOR, "", 2);
        let (m, s) = (0, 1);
        c.first_master(m);
        c.add_slave(s, 1, 0, WAIT);
        c.conn(m)
            .expect(b"set k 0 0 5 sync\r\nacked\r\n", b"STORED\r\n");
        failpoint(&mut c.index_conn(), point, "return(crash)");
        c.nodes[m].kill9();
        c.index.wait_crashed(Duration::from_secs(30));
        c.index.restart();
        wait_until(
            &format!("{point}: the slave is promoted"),
            Duration::from_secs(30),
            || {
                c.record(s)
                    .is_some_and(|r| r.role == "master" && r.state == "active")
            },
        );
        wait_until(
            &format!("{point}: the promoted slave has the new map"),
            Duration::from_secs(30),
            || c.conn(s).map_version() == c.index_conn().map_version(),
        );
        assert_eq!(gets(&c, s, "k").map(|(v, _)| v), Some(b"acked".to_vec()));
        c.conn(s)
            .expect(b"set k 0 0 3 sync\r\nnew\r\n", b"STORED\r\n");
    }
}
