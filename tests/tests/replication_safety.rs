//! Replication sequences that used to lose or diverge data (docs/replication.md
//! §1.1 and §3): versions that collide across a failover, a slave that
//! silently misses writes, a master that stops without delivering what it
//! acknowledged, and one key written from two connections at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flare_e2e::*;

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

/// `gets <key>` on `c`: (value, version), or `None` on a miss.
fn gets(c: &mut Conn, key: &str) -> Option<(Vec<u8>, u64)> {
    c.gets(key).map(|(_, v, version)| (v, version))
}

/// Resumes a stopped process when the test ends, however it ends.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, SIGCONT);
    }
}

/// M writes k=A at version v+1 that reaches slave S2 only, then dies; S1 is
/// promoted and a client writes k=B with `sync`. With per-key counters S1
/// issued v+1 again: S2 answered `NOT_STORED`, the client was told `STORED`,
/// and S2 kept A forever. Versions carry the master's epoch, so S1's write
/// is above anything M issued and S2 takes it.
#[test]
fn versions_after_a_failover_are_above_the_old_masters() {
    let mut c = Cluster::start(4);
    let (m, s1, s2, p) = (0, 1, 2, 3);
    c.first_master(m);
    // S1 has the higher balance: it is the one promoted
    c.add_slave(s1, 2, 0, WAIT);
    c.add_slave(s2, 1, 0, WAIT);

    let mut master = c.conn(m);
    master.expect(b"set k 0 0 1 sync\r\nX\r\n", b"STORED\r\n");
    let (_, v) = gets(&mut master, "k").expect("k on the master");
    // what M would have sent S2 for its next write of k, had it reached S2 only
    let forged = format!("<{}>set k 0 0 1 {}\r\nA\r\n", c.key(m), v + 1);
    c.conn(s2).expect(forged.as_bytes(), b"STORED\r\n");

    c.nodes[m].kill9();
    c.wait_records(
        &[(s1, rec("master", "active", 0, 2, c.tt(s1)))],
        Duration::from_secs(30),
    );
    c.wait_converged(WAIT);

    // a sync write through the proxy, on the new master
    c.conn(p)
        .expect(b"set k 0 0 1 sync\r\nB\r\n", b"STORED\r\n");
    let (value, v1) = gets(&mut c.conn(s1), "k").expect("k on the new master");
    assert_eq!(value, b"B");
    assert!(
        v1 > v + 1,
        "new master's version {v1} must be above {}",
        v + 1
    );
    assert_eq!(
        gets(&mut c.conn(s2), "k"),
        Some((b"B".to_vec(), v1)),
        "the acknowledged sync write must be on every slave"
    );
}

/// A slave that stops answering while the index still lists it: the
/// master's retries run out, and the slave has missed a write. It used to
/// stay `active` (readable, promotable) with only a log line; now the master
/// reports it and the index marks it down.
#[test]
fn a_slave_that_missed_a_write_is_taken_out() {
    // the index's own monitor would take an hour to notice; short retries
    let mut c = Cluster::start_with(
        "monitor-interval = 1\nmonitor-threshold = 3600\n",
        "proxy-timeout = 200\n",
        2,
    );
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);

    let _resume = Resume(c.nodes[s].pid());
    signal(c.nodes[s].pid(), SIGSTOP);
    c.conn(m)
        .expect(b"set missed 0 0 1\r\nx\r\n", b"STORED\r\n");
    let tt = c.tt(s);
    c.wait_records(
        &[(s, rec("proxy", "down", -1, 0, tt))],
        Duration::from_secs(60),
    );
    assert!(
        c.log(m).contains("missed a write"),
        "the master logs why:\n{}",
        c.log(m)
    );
}

/// SIGTERM on a master: it used to tell the index first (a slave is promoted
/// at once) and exit with replication still queued. Now it delivers what is
/// queued (bounded) before it tells the index.
#[test]
fn a_stopping_master_delivers_what_it_acknowledged() {
    // patient retries on the master: the slave is only paused
    // (a slow monitor: the pause must not look like a dead slave)
    let mut c = Cluster::start_with(
        "monitor-interval = 1\nmonitor-threshold = 30\n",
        "proxy-timeout = 20000\n",
        2,
    );
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);

    let resume = Resume(c.nodes[s].pid());
    signal(c.nodes[s].pid(), SIGSTOP);
    let mut master = c.conn(m);
    for i in 0..50 {
        master.expect(
            format!("set queued{i} 0 0 2 async\r\nq{}\r\n", i % 10).as_bytes(),
            b"STORED\r\n",
        );
    }
    // the slave resumes once the stopping master says it drains
    let log = c.nodes[m].dir.path().join("flared.stderr");
    let resumer = std::thread::spawn(move || {
        wait_until("the master drains its replication", WAIT, || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("draining replication queues")
        });
        drop(resume);
    });
    let status = c.nodes[m].terminate();
    resumer.join().expect("resumer");
    assert!(status.success(), "{status}");
    let tt = c.tt(s);
    c.wait_records(
        &[(s, rec("master", "active", 0, 1, tt))],
        Duration::from_secs(30),
    );
    let mut slave = c.conn(s);
    for i in 0..50 {
        expect_value(
            &mut slave,
            &format!("queued{i}"),
            format!("q{}", i % 10).as_bytes(),
        );
    }
}

/// Two connections writing one key at once: the slave must end with what
/// the master has. Applying a write and queueing its replication used to be
/// two steps, so the slave could get a set and a delete in the other order
/// (and keep a key the master had deleted).
#[test]
fn one_key_written_from_two_connections_ends_the_same_on_the_slave() {
    let mut c = Cluster::start_with(FAST_MONITOR, "proxy-concurrency = 1\n", 2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    let port = c.port(m);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut cl = LoadClient::connect(port, WAIT).expect("connect");
                for i in 0..400 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    for key in ["hot0", "hot1", "hot2"] {
                        let r = if (i + t) % 2 == 0 {
                            cl.set(key, format!("{t}-{i}").as_bytes(), "")
                        } else {
                            cl.request(format!("delete {key}\r\n").as_bytes())
                        };
                        r.expect("write");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::SeqCst);
    // positive marker: one lane (proxy-concurrency = 1), so once this sync
    // write is acknowledged everything before it was delivered
    c.conn(m)
        .expect(b"set marker 0 0 1 sync\r\nm\r\n", b"STORED\r\n");
    let (mut mc, mut sc) = (c.conn(m), c.conn(s));
    for key in ["hot0", "hot1", "hot2"] {
        assert_eq!(
            gets(&mut sc, key),
            gets(&mut mc, key),
            "slave and master differ on {key}"
        );
    }
}

/// Fencing: the index replaced a master that did not hear of it (here: it
/// holds a map with a version above anything the index will send, so it
/// refuses the index's syncs, as a master cut off from the index would miss
/// them). Its `sync` writes used to be applied by the promoted slave as if a
/// client had sent them, and acknowledged. Now the new master and the other
/// slave refuse them, the write is not acknowledged, and the refusing
/// slaves are not reported as diverged.
#[test]
fn a_replaced_master_cannot_acknowledge_sync_writes() {
    let mut c = Cluster::start(3);
    let (m, s1, s2) = (0, 1, 2);
    c.first_master(m);
    c.add_slave(s1, 2, 0, WAIT);
    c.add_slave(s2, 1, 0, WAIT);

    let mut sync = String::from("node sync 1000000\r\n");
    for (key, r) in c.records() {
        sync.push_str(&r.node_line(&key));
    }
    sync.push_str("END\r\n");
    c.conn(m).expect(sync.as_bytes(), b"OK\r\n");

    c.state_ok(m, "down");
    let (tt1, tt2) = (c.tt(s1), c.tt(s2));
    c.wait_records(
        &[
            (s1, rec("master", "active", 0, 2, tt1)),
            (s2, rec("slave", "active", 0, 1, tt2)),
        ],
        WAIT,
    );
    let want = c.index_conn().nodes_raw();
    wait_until(
        "the promoted master and the slave have the new map",
        WAIT,
        || c.conn(s1).nodes_raw() == want && c.conn(s2).nodes_raw() == want,
    );

    let mut old = c.conn(m);
    old.send(b"set fenced 0 0 1 sync\r\nX\r\n");
    let reply = old.read_line();
    assert!(
        reply.starts_with("SERVER_ERROR replication to ") && reply.contains("fenced"),
        "a replaced master must not acknowledge a sync write: {reply:?}"
    );
    c.conn(s1).expect(b"get fenced\r\n", b"END\r\n");
    c.conn(s2).expect(b"get fenced\r\n", b"END\r\n");
    // the slaves that refused are not taken out
    c.wait_records(
        &[
            (s1, rec("master", "active", 0, 2, tt1)),
            (s2, rec("slave", "active", 0, 1, tt2)),
        ],
        WAIT,
    );
    // and the new master still takes writes, replicated to the slave
    c.conn(s1)
        .expect(b"set after 0 0 1 sync\r\nY\r\n", b"STORED\r\n");
    expect_value(&mut c.conn(s2), "after", b"Y");
}

/// Deletes replicated to a slave while it copies its partition must win over
/// the copy, however many there are. They were kept only in the tombstone
/// cache (here 16 entries), which evicted them, and the copy then brought the
/// deleted keys back on the slave.
#[test]
fn deletes_during_a_long_copy_do_not_come_back() {
    // 20 ms per copied record: the 300-record copy takes about 6 s
    let mut c = Cluster::start_with(
        FAST_MONITOR,
        "storage-cache-size = 16\nreconstruction-interval = 20000\n",
        2,
    );
    let (m, s) = (0, 1);
    c.first_master(m);
    let mut mc = c.conn(m);
    for i in 0..300 {
        mc.set(&format!("d{i:03}"), 0, b"v");
    }
    c.role_ok(s, "slave 0 0");
    let mut sc = c.conn(s);
    wait_until("the copy is running", WAIT, || {
        sc.stats("")
            .iter()
            .any(|(k, v)| k == "reconstruction_state" && v == "running")
            && sc.stat("reconstruction_records") != "0"
    });
    for i in 100..300 {
        mc.expect(format!("delete d{i:03}\r\n").as_bytes(), b"DELETED\r\n");
    }
    assert_eq!(
        sc.stat("reconstruction_state"),
        "running",
        "the deletes must happen while the copy runs"
    );
    let tt = c.tt(s);
    c.wait_records(
        &[(s, rec("slave", "active", 0, 0, tt))],
        Duration::from_secs(60),
    );
    let (on_master, on_slave) = (dump_sorted(c.port(m)), dump_sorted(c.port(s)));
    assert_eq!(on_master.len(), 100);
    assert_eq!(
        dump_keys(&on_slave),
        dump_keys(&on_master),
        "deleted keys came back on the slave"
    );
}

/// `index-silence-limit`: a master that stops hearing from the index (here
/// the index is paused) refuses writes once the limit has passed, so that it
/// cannot acknowledge writes while the index may be promoting a slave; it
/// accepts them again once the index is back.
#[test]
fn a_master_without_the_index_stops_accepting_writes() {
    let mut c = Cluster::start_with(
        "monitor-interval = 1\nmonitor-threshold = 3\n",
        "index-silence-limit = 2000\n",
        2,
    );
    let (m, p) = (0, 1);
    c.first_master(m);
    let mut mc = c.conn(m);
    mc.expect(b"set before 0 0 1\r\nb\r\n", b"STORED\r\n");
    c.conn(p)
        .expect(b"set before2 0 0 1\r\nb\r\n", b"STORED\r\n");

    let index = c.index.pid();
    let resume = Resume(index);
    signal(index, SIGSTOP);
    let mut refused = String::new();
    let mut i = 0;
    wait_until("the master refuses writes without the index", WAIT, || {
        i += 1;
        mc.send(format!("set during{i} 0 0 1\r\nx\r\n").as_bytes());
        refused = mc.read_line();
        refused != "STORED\r\n"
    });
    assert!(
        refused.starts_with("SERVER_ERROR no contact with the index for "),
        "{refused:?}"
    );
    // through a proxy too
    let mut pc = c.conn(p);
    pc.send(b"set viaproxy 0 0 1\r\nx\r\n");
    let line = pc.read_line();
    assert!(
        line.starts_with("SERVER_ERROR no contact with the index"),
        "{line:?}"
    );
    // reads are still served
    expect_value(&mut mc, "before", b"b");

    drop(resume);
    wait_until("the master accepts writes again", WAIT, || {
        i += 1;
        mc.send(format!("set after{i} 0 0 1\r\nx\r\n").as_bytes());
        mc.read_line() == "STORED\r\n"
    });
}

/// A `touch` used to be replicated without a version: when a batch was sent
/// again (its answers lost), a `touch` of an older version reached the slave
/// after a later `set` and replaced that write's expiry there only. A
/// replicated `touch` now carries the record's version and applies only at
/// exactly that version; a client's version is still ignored (1.3.4).
#[test]
fn a_late_touch_does_not_change_a_later_write() {
    let mut c = Cluster::start(2);
    let (m, s) = (0, 1);
    c.first_master(m);
    c.add_slave(s, 1, 0, WAIT);
    let mut master = c.conn(m);
    master.expect(b"set k 0 0 1 sync\r\nA\r\n", b"STORED\r\n");
    let (_, v1) = gets(&mut master, "k").expect("k");
    master.expect(b"set k 0 0 1 sync\r\nB\r\n", b"STORED\r\n");
    let (_, v2) = gets(&mut master, "k").expect("k");
    let expire_at_slave = |c: &Cluster| {
        dump_sorted(c.port(s))
            .into_iter()
            .find(|r| r.key == "k")
            .map(|r| (r.version, r.expire))
    };
    assert_eq!(expire_at_slave(&c), Some((v2, 0)));
    // the master's touch of v1, arriving late
    let late = format!("<{}>touch k 2000000000 {v1}\r\n", c.key(m));
    c.conn(s).expect(late.as_bytes(), b"NOT_STORED\r\n");
    assert_eq!(expire_at_slave(&c), Some((v2, 0)));
    // a touch of the current version applies
    let current = format!("<{}>touch k 2000000000 {v2}\r\n", c.key(m));
    c.conn(s).expect(current.as_bytes(), b"TOUCHED\r\n");
    assert_eq!(expire_at_slave(&c), Some((v2, 2_000_000_000)));
    // a client's version is accepted and ignored, and the touch reaches
    // the slave with the record's version
    master.expect(b"touch k 2000000100 12345\r\n", b"TOUCHED\r\n");
    wait_until("the slave has the new expire", WAIT, || {
        expire_at_slave(&c) == Some((v2, 2_000_000_100))
    });
}
