//! Network partitions (docs/reliability.md §2): the index, the data nodes, a
//! proxy and the client each in their own network namespace (`netns::Net`),
//! and links cut with blackhole routes or taken down.
//!
//! * a master cut off from the index only: the index promotes its slave;
//!   the old master can no longer acknowledge a `sync` write (fencing), and
//!   with `index-silence-limit` it refuses writes by itself first;
//! * a master cut off from its slave only: its `sync` writes fail until the
//!   slave is taken out of the map, then succeed; the slave is rebuilt;
//! * clients cut off from the master (or from the proxy) still work
//!   through the other;
//! * a seeded nemesis of partitions with a client writing through a proxy,
//!   checked by `nemesis::Workload` (0 lost, linearizable).
//!
//! Needs root and iproute2; the tests fail (never skip) without them.

use std::time::{Duration, Instant};

use flare_e2e::nemesis::{env_u64, Rng, Workload};
use flare_e2e::netns::{Net, FLARED_PORT as PORT};
use flare_e2e::*;

/// `set <key> 0 0 <len>[ <option>]` with `value`.
fn set_req(key: &str, value: &str, option: &str) -> Vec<u8> {
    let option = if option.is_empty() {
        String::new()
    } else {
        format!(" {option}")
    };
    format!("set {key} 0 0 {}{option}\r\n{value}\r\n", value.len()).into_bytes()
}

/// Send a `set` and return the reply line (with its CRLF).
fn store(c: &mut Conn, key: &str, value: &str, option: &str) -> String {
    c.send(&set_req(key, value, option));
    c.read_line()
}

/// Every `(key, value)` of `acked` reads back exactly on `c`.
#[track_caller]
fn expect_all(c: &mut Conn, acked: &[(String, String)]) {
    for (k, v) in acked {
        expect_value(c, k, v.as_bytes());
    }
}

/// A cluster with its index on host `i` and one node on each host of
/// `nodes`, in order (node `n` is on `nodes[n]`).
fn cluster(net: &Net, index_conf: &str, node_conf: &str, nodes: &[&str]) -> Cluster {
    let mut c = net.cluster("i", index_conf, node_conf);
    for host in nodes {
        c.add_node_on(&net.host(host), PORT, "");
    }
    c
}

/// Node 0 master and node 1 slave (balance 0) of partition 0.
fn master_and_slave(c: &mut Cluster) {
    c.first_master(0);
    c.add_slave(1, 0, 0, WAIT);
}

/// Ten `set <prefix><i>` with `option` on `conn`, each answered `STORED`;
/// appended to `acked`.
#[track_caller]
fn ten_writes(conn: &mut Conn, prefix: &str, option: &str, acked: &mut Vec<(String, String)>) {
    for i in 0..10 {
        let (k, v) = (format!("{prefix}{i}"), format!("{}{i}", &prefix[..1]));
        conn.expect(&set_req(&k, &v, option), b"STORED\r\n");
        acked.push((k, v));
    }
}

/// Wait until the index has promoted node `s` (a slave of balance 0, so its
/// balance becomes 1) and recorded the old master `m` down, and until `s`
/// and every node of `others` have the index's map.
#[track_caller]
fn wait_failover(c: &Cluster, m: usize, s: usize, others: &[usize]) {
    let (tt_m, tt_s) = (c.tt(m), c.tt(s));
    c.wait_records(
        &[
            (s, rec("master", "active", 0, 1, tt_s)),
            (m, rec("proxy", "down", -1, 0, tt_m)),
        ],
        Duration::from_secs(30),
    );
    let want = c.index_conn().nodes_raw();
    wait_until(
        "the promoted slave and the others have the new map",
        WAIT,
        || {
            std::iter::once(s)
                .chain(others.iter().copied())
                .all(|i| c.conn(i).nodes_raw() == want)
        },
    );
}

/// Master M cut off from the index only: clients and its slave S still
/// reach it. The index promotes S. M does not hear of it, and acknowledges
/// `sync` writes only as long as S takes them; once S has the new map, S
/// fences M's replicated writes and M answers a `SERVER_ERROR`. After the
/// heal M comes back as a proxy, every acknowledged write is at S, and M
/// rebuilt as a slave has exactly S's data.
#[test]
fn a_master_cut_off_from_the_index_is_fenced_by_the_promoted_slave() {
    let net = Net::new(&["i", "m", "s", "p", "c"]);
    let mut c = cluster(
        &net,
        FAST_MONITOR,
        "proxy-timeout = 1000\n",
        &["m", "s", "p"],
    );
    let (m, s, p) = (0, 1, 2);
    master_and_slave(&mut c);
    let tt_m = c.tt(m);

    let mut acked = Vec::new();
    let mut via_p = net.client("c", "p", PORT);
    ten_writes(&mut via_p, "before", "sync", &mut acked);

    net.partition("m", "i");
    let fenced_prefix = format!(
        "SERVER_ERROR replication to {} failed: fenced by the destination: ",
        c.key(s)
    );
    // Until S has the new map, M's sync writes (direct, from C) are taken by
    // S and acknowledged; after, they are fenced.
    let mut direct = net.client("c", "m", PORT);
    let mut i = 0;
    let mut during = 0;
    wait_until(
        "the index promotes the slave",
        Duration::from_secs(30),
        || {
            i += 1;
            let (k, v) = (format!("during{i}"), format!("d{i}"));
            let r = store(&mut direct, &k, &v, "sync");
            if r == "STORED\r\n" {
                acked.push((k, v));
                during += 1;
            } else {
                assert!(r.starts_with(&fenced_prefix), "write to M: {r:?}");
            }
            c.record(s).is_some_and(|r| r.role == "master")
        },
    );
    eprintln!("{during} sync writes acknowledged by the cut-off master before the failover");
    wait_failover(&c, m, s, &[p]);
    // M did not hear of it
    assert!(
        c.conn(m)
            .nodes()
            .contains(&(c.key(m), rec("master", "active", 0, 1, tt_m))),
        "the cut-off master still believes it is the master"
    );

    // fenced: M cannot acknowledge a sync write any more
    let version = c.conn(s).map_version();
    let t = Instant::now();
    let reply = store(&mut direct, "fenced", "X", "sync");
    eprintln!("the fenced write was answered after {:?}", t.elapsed());
    assert_eq!(
        reply,
        format!(
            "{fenced_prefix}{} refused: SERVER_ERROR fenced: {} is not the master of this key in node map {version}\r\n",
            c.key(s),
            c.key(m)
        )
    );
    c.conn(s).expect(b"get fenced\r\n", b"END\r\n");
    // the clients of P write to S now
    ten_writes(&mut via_p, "after", "sync", &mut acked);

    net.heal("m", "i");
    c.wait_records(&[(m, rec("proxy", "active", -1, 0, tt_m))], WAIT);
    c.wait_converged(WAIT);
    // 0 lost: every acknowledged write is at the current master, and M (a
    // proxy now) forwards to it instead of serving its own data
    expect_all(&mut net.client("c", "s", PORT), &acked);
    let mut via_m = net.client("c", "m", PORT);
    expect_all(&mut via_m, &acked);
    via_m.expect(b"get fenced\r\n", b"END\r\n");

    // M rebuilt as a slave: emptied and copied, its refused write is gone
    c.add_slave(m, 0, 0, Duration::from_secs(30));
    let on_s = dump_request_on(&net.host("s"), PORT, "dump\r\n");
    assert_eq!(on_s.len(), acked.len());
    assert_eq!(dump_request_on(&net.host("m"), PORT, "dump\r\n"), on_s);
}

/// The same cut with `index-silence-limit` on the nodes (docs/replication.md
/// §6.1: limit 2000 ms < 3 pings × 1 s − 500 ms): M stops accepting writes,
/// even `async` ones, by itself before the index promotes S, so no write it
/// acknowledged is missing at S (with `async` writes, which fencing does not
/// cover). After the heal M forwards writes again (as a proxy).
#[test]
fn a_master_cut_off_from_the_index_refuses_writes_after_the_silence_limit() {
    let net = Net::new(&["i", "m", "s", "p", "c"]);
    let mut c = cluster(
        &net,
        "monitor-interval = 1\nmonitor-threshold = 3\nmonitor-read-timeout = 500\n",
        "proxy-timeout = 1000\nindex-silence-limit = 2000\n",
        &["m", "s", "p"],
    );
    let (m, s, p) = (0, 1, 2);
    master_and_slave(&mut c);
    let tt_m = c.tt(m);

    let mut acked = Vec::new();
    let mut direct = net.client("c", "m", PORT);
    ten_writes(&mut direct, "before", "", &mut acked);

    net.partition("m", "i");
    let cut = Instant::now();
    let silence = |r: &str| {
        let ms: u64 = r
            .strip_prefix("SERVER_ERROR no contact with the index for ")
            .and_then(|r| r.strip_suffix(" ms: not accepting writes\r\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("write to M: {r:?}"));
        assert!(ms > 2000, "refused after {ms} ms of silence: {r:?}");
    };
    let mut i = 0;
    let mut refusal = String::new();
    wait_until("the master refuses writes", WAIT, || {
        i += 1;
        let (k, v) = (format!("during{i}"), format!("d{i}"));
        let r = store(&mut direct, &k, &v, "");
        if r == "STORED\r\n" {
            acked.push((k, v));
            return false;
        }
        refusal = r;
        true
    });
    silence(&refusal);
    // by itself: the index has not promoted S yet (it needs 3 failed pings)
    let now = c.record(s);
    assert!(
        now.as_ref().is_some_and(|r| r.role == "slave"),
        "M refused writes {:?} after the cut, but the index already promoted S: {now:?}",
        cut.elapsed()
    );
    wait_failover(&c, m, s, &[p]);
    // still refused, by M itself (not a replication failure)
    silence(&store(&mut direct, "late", "x", ""));
    let mut via_p = net.client("c", "p", PORT);
    ten_writes(&mut via_p, "after", "", &mut acked);

    net.heal("m", "i");
    c.wait_records(&[(m, rec("proxy", "active", -1, 0, tt_m))], WAIT);
    c.wait_converged(WAIT);
    // M accepts writes again (it forwards them to S)
    direct.expect(&set_req("healed", "h", ""), b"STORED\r\n");
    acked.push(("healed".to_string(), "h".to_string()));
    // 0 lost, async writes included
    expect_all(&mut net.client("c", "s", PORT), &acked);
}

/// Master M cut off from its slave S only (the index reaches both). A
/// `sync` write at M cannot be replicated: it fails with a `SERVER_ERROR`,
/// and M reports S, which the index takes out of the partition; from then
/// on M's writes succeed, and the index never lists S as an active slave
/// when one is acknowledged. Every acknowledged write is at M. After the
/// heal S is rebuilt and has exactly M's data.
#[test]
fn a_master_cut_off_from_its_slave_fails_writes_until_the_slave_is_out() {
    let net = Net::new(&["i", "m", "s", "c"]);
    let mut c = cluster(&net, FAST_MONITOR, "proxy-timeout = 1000\n", &["m", "s"]);
    let (m, s) = (0, 1);
    master_and_slave(&mut c);
    let (tt_m, tt_s) = (c.tt(m), c.tt(s));

    let mut acked = Vec::new();
    let mut direct = net.client("c", "m", PORT);
    ten_writes(&mut direct, "before", "sync", &mut acked);

    net.partition("m", "s");
    let failed = format!("SERVER_ERROR replication to {} failed: ", c.key(s));
    // S is a replication target until M reports it: the first write fails
    let t = Instant::now();
    let r = store(&mut direct, "cut0", "x", "sync");
    eprintln!(
        "the first write after the cut was answered after {:?}",
        t.elapsed()
    );
    assert!(r.starts_with(&failed), "first write after the cut: {r:?}");
    let is_active_slave = |r: &Option<NodeRec>| {
        r.as_ref()
            .is_some_and(|r| r.role == "slave" && r.state == "active")
    };
    let (mut ok, mut refused) = (0, 1);
    let mut i = 0;
    wait_until("writes at M succeed again", Duration::from_secs(60), || {
        i += 1;
        let (k, v) = (format!("cut{i}"), format!("c{i}"));
        let r = store(&mut direct, &k, &v, "sync");
        if r == "STORED\r\n" {
            let now = c.record(s);
            assert!(
                !is_active_slave(&now),
                "a write was acknowledged while the index lists the unreachable slave: {now:?}"
            );
            acked.push((k, v));
            ok += 1;
        } else {
            assert!(r.starts_with(&failed), "write {i} after the cut: {r:?}");
            refused += 1;
        }
        ok >= 5
    });
    eprintln!("after the cut: {refused} sync writes failed, then {ok} acknowledged");
    assert!(
        c.log(m).contains("missed a write"),
        "the master logs that it reported the slave:\n{}",
        c.log(m)
    );
    // the index reaches S: it is back up, as a proxy (out of the partition)
    c.wait_records(
        &[
            (m, rec("master", "active", 0, 1, tt_m)),
            (s, rec("proxy", "active", -1, 0, tt_s)),
        ],
        WAIT,
    );
    expect_all(&mut direct, &acked);

    net.heal("m", "s");
    c.add_slave(s, 0, 0, Duration::from_secs(30));
    let on_m = dump_request_on(&net.host("m"), PORT, "dump\r\n");
    assert_eq!(dump_request_on(&net.host("s"), PORT, "dump\r\n"), on_m);
    let keys = dump_keys(&on_m);
    for (k, _) in &acked {
        assert!(keys.binary_search(k).is_ok(), "{k} missing at the master");
    }
}

/// Clients that reach only the proxy P (cut off from M, S and the index)
/// read and write through P; clients that reach only the master M read
/// and write at M directly. Both see each other's writes, and the slave
/// has them (`sync`).
#[test]
fn clients_cut_off_from_the_master_or_the_proxy_still_work() {
    let net = Net::new(&["i", "m", "s", "p", "c"]);
    let mut c = cluster(&net, FAST_MONITOR, "", &["m", "s", "p"]);
    let s = 1;
    master_and_slave(&mut c);

    for other in ["i", "m", "s"] {
        net.partition("c", other);
    }
    assert!(
        net.connect("c", "m", PORT).is_err(),
        "C must not reach M any more"
    );
    net.client("c", "p", PORT).transcript(
        "> set viap 0 0 5 sync
         > via-p
         < STORED
         > get viap
         < VALUE viap 0 5
         < via-p
         < END",
    );
    expect_value(&mut c.conn(s), "viap", b"via-p");

    for other in ["i", "m", "s"] {
        net.heal("c", other);
    }
    for other in ["i", "s", "p"] {
        net.partition("c", other);
    }
    assert!(
        net.connect("c", "p", PORT).is_err(),
        "C must not reach P any more"
    );
    net.client("c", "m", PORT).transcript(
        "> set viam 0 0 5 sync
         > via-m
         < STORED
         > get viam viap
         < VALUE viam 0 5
         < via-m
         < VALUE viap 0 5
         < via-p
         < END",
    );
    expect_value(&mut c.conn(s), "viam", b"via-m");
    expect_value(&mut c.conn(2), "viam", b"via-m");
}

// ---- the nemesis ----

/// The data nodes' hosts (nodes 0 and 1; the proxy is node 2, on `p`).
const DATA: [&str; 2] = ["a", "b"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// The master cut off from the index.
    MasterIndex,
    /// The master cut off from the slave.
    MasterSlave,
    /// The slave cut off from the index.
    SlaveIndex,
    IsolateIndex,
    IsolateMaster,
    IsolateSlave,
    IsolateProxy,
}

/// The data node that is the active master of partition 0 (waits for one).
fn master(c: &Cluster, limit: Duration) -> usize {
    let mut found = None;
    wait_until("an active master", limit, || {
        found = (0..DATA.len()).find(|&i| {
            c.record(i)
                .is_some_and(|r| r.role == "master" && r.state == "active")
        });
        found.is_some()
    });
    found.expect("master")
}

/// After the network is healed: wait until no node is down, re-add the
/// data node that is not the master as a slave if it was taken out, wait
/// until it is active and every node has the index's map. Returns whether
/// the slave was rebuilt.
fn restore(c: &mut Cluster) -> bool {
    let limit = Duration::from_secs(60);
    let mut rebuilt = false;
    wait_until("the cluster is whole again", limit, || {
        let recs = c.records();
        if recs.iter().any(|(_, r)| r.state == "down") {
            return false;
        }
        let Some(m) = (0..DATA.len()).find(|&i| {
            c.record(i)
                .is_some_and(|r| r.role == "master" && r.state == "active")
        }) else {
            return false;
        };
        let sl = 1 - m;
        match c.record(sl) {
            Some(r) if r.role == "slave" && r.state == "active" => true,
            Some(r) if r.role == "proxy" && r.state == "active" => {
                // taken out by a fault: rebuild it (refused if the map
                // changed meanwhile; the next poll looks again)
                let cmd = format!("node role {} slave 0 0", c.name_port(sl));
                rebuilt |= c.admin(&cmd) == "OK";
                false
            }
            _ => false,
        }
    });
    c.wait_converged(limit);
    rebuilt
}

/// [`restore`], then wait for 20 more acknowledged writes (the positive
/// marker), again until the index's records did not change meanwhile: a
/// master's replication retries that started during the cut can still
/// run out after the heal and take the slave out (it did miss a write).
/// Returns whether the slave was rebuilt.
fn settle(c: &mut Cluster, client: &Workload) -> bool {
    let mut rebuilt = false;
    for _ in 0..5 {
        rebuilt |= restore(c);
        let before = c.records();
        client.wait_acked(20, Duration::from_secs(60));
        if c.records() == before {
            return rebuilt;
        }
    }
    panic!("the cluster does not settle: {:?}", c.records());
}

/// A seeded nemesis of partitions: each round cuts the master from the
/// index or from the slave, the slave from the index, or isolates one host
/// (index, master, slave or proxy) for 1–7 s, heals the network and the
/// cluster, and waits for 20 more acknowledged writes (`settle`). Meanwhile one client
/// in its own namespace writes unique values with `sync` through the proxy
/// and reads them back. At the end: every acknowledged write readable,
/// every key's history linearizable, and the slave's data equal to the
/// master's.
#[test]
fn partition_nemesis_loses_no_acknowledged_write() {
    let rounds = env_u64("FLARE_PARTITION_ROUNDS", 6);
    // the default schedule has every kind of cut, failovers, and a master
    // cut from its slave for longer than its replication retries
    let seed = env_u64("FLARE_FAULT_SEED", 100);
    let mut rng = Rng::new(seed);
    let net = Net::new(&["i", DATA[0], DATA[1], "p", "c"]);
    let mut c = cluster(
        &net,
        FAST_MONITOR,
        "proxy-timeout = 1000\n",
        &[DATA[0], DATA[1], "p"],
    );
    c.first_master(0);
    c.add_slave(1, 0, 0, WAIT);

    let dial = net.dialer("c", "p", PORT);
    let client = Workload::start(
        seed,
        std::sync::Arc::new(move || LoadClient::from_stream(dial()?, Duration::from_secs(5))),
    );
    client.wait_acked(20, WAIT);

    let mut injected = std::collections::BTreeMap::new();
    let (mut failovers, mut rebuilds) = (0, 0);
    let mut m = master(&c, WAIT);
    for round in 0..rounds {
        let (ml, sl) = (DATA[m], DATA[1 - m]);
        let fault = match rng.below(4) {
            0 => Fault::MasterIndex,
            1 => Fault::MasterSlave,
            2 => Fault::SlaveIndex,
            _ => [
                Fault::IsolateIndex,
                Fault::IsolateMaster,
                Fault::IsolateSlave,
                Fault::IsolateProxy,
            ][rng.below(4) as usize],
        };
        let hold = Duration::from_millis(1000 + rng.below(6000));
        *injected.entry(fault).or_insert(0u32) += 1;
        eprintln!("round {round}: {fault:?} for {hold:?} (master {ml}, slave {sl})");
        match fault {
            Fault::MasterIndex => net.partition(ml, "i"),
            Fault::MasterSlave => net.partition(ml, sl),
            Fault::SlaveIndex => net.partition(sl, "i"),
            Fault::IsolateIndex => net.isolate("i"),
            Fault::IsolateMaster => net.isolate(ml),
            Fault::IsolateSlave => net.isolate(sl),
            Fault::IsolateProxy => net.isolate("p"),
        }
        // the fault's duration (drawn from the seed), not a wait for anything
        std::thread::sleep(hold);
        net.heal_all();
        if settle(&mut c, &client) {
            rebuilds += 1;
        }
        let now = master(&c, WAIT);
        if now != m {
            failovers += 1;
            m = now;
        }
    }

    // Final reads: every key once more, through the proxy.
    let mut reader = LoadClient::from_stream(
        net.connect("c", "p", PORT).expect("connect to the proxy"),
        WAIT,
    )
    .expect("client");
    let verdict = client.finish(&mut reader);
    eprintln!(
        "seed {seed:#x}: {rounds} rounds, faults {injected:?}, {failovers} failovers, {rebuilds} slaves rebuilt, {} keys, {} acknowledged writes, {} unknown outcomes, {} lost, {} non-linearizable keys",
        verdict.keys,
        verdict.acked,
        verdict.unknown,
        verdict.lost.len(),
        verdict.violations.len()
    );
    verdict.assert_ok();
    // the slave has the master's data (replication of writes whose client
    // gave up may still be in flight: poll)
    let (on_m, on_s) = (net.host(DATA[m]), net.host(DATA[1 - m]));
    let deadline = Instant::now() + WAIT;
    loop {
        let (a, b) = (
            dump_request_on(&on_m, PORT, "dump\r\n"),
            dump_request_on(&on_s, PORT, "dump\r\n"),
        );
        if a == b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slave's data differs from the master's: {} records on the master, {} on the slave; first difference: {:?}",
            a.len(),
            b.len(),
            a.iter().zip(&b).find(|(x, y)| x != y)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
