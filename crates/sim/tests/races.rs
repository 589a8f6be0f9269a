//! Races between replication, failover and reconstruction, made to happen
//! in a chosen order by holding and cutting links of the in-process cluster
//! (flare-sim): no sleeps decide the order, only the links.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use flare_e2e::{dump_sorted, wait_until, Conn, NodeRec};
use flare_sim::{LinkState, Sim, INDEX};

const LIMIT: Duration = Duration::from_secs(30);

/// Options of every node here: patient peers, so that a held link is not
/// given up on before the test releases it.
const PATIENT: &[(&str, &str)] = &[("proxy-timeout", "30000")];

fn admin(sim: &Sim, line: &str) -> String {
    Conn::connect(sim.index_port()).command(line)
}

#[track_caller]
fn role_ok(sim: &Sim, i: usize, args: &str) {
    let line = format!("node role {} {args}", sim.name_port(i));
    assert_eq!(admin(sim, &line), "OK", "{line}");
}

fn record(sim: &Sim, i: usize) -> Option<NodeRec> {
    let key = sim.key(i);
    Conn::connect(sim.index_port())
        .nodes()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| r)
}

#[track_caller]
fn wait_record(sim: &Sim, i: usize, role: &str, state: &str) {
    wait_until(&format!("n{i} {role} {state}"), LIMIT, || {
        record(sim, i).is_some_and(|r| r.role == role && r.state == state)
    });
}

/// Wait until node `i` has the index's map.
#[track_caller]
fn wait_map(sim: &Sim, i: usize) {
    wait_until(&format!("n{i} has the index's map"), LIMIT, || {
        Conn::connect(sim.port(i)).map_version() == Conn::connect(sim.index_port()).map_version()
    });
}

/// n0 master, n1 slave (active), then `more` proxies; every node has the map.
fn master_and_slave(more: usize) -> Sim {
    let mut sim = Sim::new(&[]);
    for _ in 0..2 + more {
        sim.add_node(PATIENT);
    }
    for i in 0..2 + more {
        wait_record(&sim, i, "proxy", "active");
    }
    role_ok(&sim, 0, "master 1 0");
    wait_record(&sim, 0, "master", "active");
    role_ok(&sim, 1, "slave 1 0");
    wait_record(&sim, 1, "slave", "active");
    for i in 0..2 + more {
        wait_map(&sim, i);
    }
    sim
}

/// Send `request` on a new connection to `port` from another thread; the
/// handle gives the first answer line.
fn request_in_background(port: u16, request: &[u8]) -> std::thread::JoinHandle<String> {
    let request = request.to_vec();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        s.write_all(&request).expect("send");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("answer");
        line
    })
}

/// Smoke test of the harness: a write through a proxy reaches master and
/// slave through the relays.
#[test]
fn writes_through_a_proxy_reach_master_and_slave() {
    let sim = master_and_slave(1);
    Conn::connect(sim.port(2)).expect(b"set k 0 0 1 sync\r\nA\r\n", b"STORED\r\n");
    let at_master = Conn::connect(sim.port(0)).gets("k");
    assert!(at_master.is_some());
    assert_eq!(Conn::connect(sim.port(1)).gets("k"), at_master);
    assert!(sim.net.bytes.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

/// A `sync` write is on its way to the slave (held on the link) when the
/// master is cut off from the index and the slave is promoted. When the
/// held write arrives, the new master refuses it (fencing): the old master
/// cannot acknowledge it, and the new master does not have it.
#[test]
fn a_write_held_across_a_promotion_is_refused_not_acknowledged() {
    let (m, s) = (0, 1);
    let sim = master_and_slave(0);
    sim.net.pause(sim.name(m), sim.name(s));
    let write = request_in_background(sim.port(m), b"set k 0 0 1 sync\r\nA\r\n");
    // the master applied it locally; its replication is held
    wait_until("the master has the write", LIMIT, || {
        Conn::connect(sim.port(m)).get("k").is_some()
    });
    sim.net.cut(INDEX, sim.name(m));
    wait_record(&sim, s, "master", "active");
    wait_map(&sim, s);
    sim.net.resume(sim.name(m), sim.name(s));
    let answer = write.join().expect("client thread");
    assert!(
        answer.starts_with("SERVER_ERROR "),
        "the write must not be acknowledged: {answer:?}"
    );
    assert_eq!(Conn::connect(sim.port(s)).get("k"), None);
}

/// A proxy that has not heard of a failover (its link from the index is
/// held) forwards a `sync` write to the old master, which is cut off from
/// the index: the promoted slave refuses the old master's replication, so
/// the client is not told `STORED`. Once the proxy has the map, the write
/// goes to the new master.
#[test]
fn a_stale_proxy_and_a_stale_master_cannot_acknowledge_a_write() {
    let (m, s, p) = (0, 1, 2);
    let sim = master_and_slave(1);
    sim.net.pause(INDEX, sim.name(p));
    sim.net.cut(INDEX, sim.name(m));
    wait_record(&sim, s, "master", "active");
    wait_map(&sim, s);
    let answer = request_in_background(sim.port(p), b"set k 0 0 1 sync\r\nB\r\n")
        .join()
        .expect("client thread");
    assert!(
        answer.starts_with("SERVER_ERROR "),
        "the write must not be acknowledged: {answer:?}"
    );
    assert_eq!(Conn::connect(sim.port(s)).get("k"), None);
    sim.net.resume(INDEX, sim.name(p));
    wait_map(&sim, p);
    Conn::connect(sim.port(p)).expect(b"set k 0 0 1 sync\r\nC\r\n", b"STORED\r\n");
    assert_eq!(
        Conn::connect(sim.port(s)).get("k"),
        Some((0, b"C".to_vec()))
    );
}

/// A new slave's copy is held in the middle of the dump; meanwhile the
/// master deletes and rewrites keys the slave has not received yet (the
/// slave gets those writes by replication first). When the rest of the
/// dump arrives it must neither bring the deleted keys back nor overwrite
/// the newer values.
#[test]
fn a_copy_held_mid_dump_neither_resurrects_nor_overwrites() {
    let (m, s) = (0, 1);
    let mut sim = Sim::new(&[]);
    sim.add_node(PATIENT);
    sim.add_node(PATIENT);
    wait_record(&sim, m, "proxy", "active");
    wait_record(&sim, s, "proxy", "active");
    role_ok(&sim, m, "master 1 0");
    wait_record(&sim, m, "master", "active");
    let value = vec![b'v'; 1000];
    let mut w = Conn::connect(sim.port(m));
    for i in 0..300 {
        let mut req = format!("set key{i:03} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        w.expect(&req, b"STORED\r\n");
    }
    // the dump (~310 KB, key order) stops after its first 64 KiB
    sim.net.pause_after(sim.name(s), sim.name(m), 64 << 10);
    role_ok(&sim, s, "slave 1 0");
    wait_until("the copy is held mid-dump", LIMIT, || {
        sim.net.state(sim.name(s), sim.name(m)) == LinkState::Paused
    });
    wait_map(&sim, m);
    for i in 200..300 {
        w.expect(format!("delete key{i:03}\r\n").as_bytes(), b"DELETED\r\n");
    }
    for i in 150..200 {
        w.expect(
            format!("set key{i:03} 0 0 3\r\nnew\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    // the slave has the late writes (by replication) before the dump's rest
    // (its own records: a preparing slave forwards reads to the master)
    wait_until("the slave has the rewrites", LIMIT, || {
        dump_sorted(sim.port(s))
            .iter()
            .any(|r| r.key == "key199" && r.value == b"new")
    });
    sim.net.resume(sim.name(s), sim.name(m));
    wait_record(&sim, s, "slave", "active");
    let (at_master, at_slave) = (dump_sorted(sim.port(m)), dump_sorted(sim.port(s)));
    assert_eq!(at_master.len(), 200);
    assert_eq!(at_slave, at_master);
    // keep the sim alive until here
    sim.crash(s);
}
