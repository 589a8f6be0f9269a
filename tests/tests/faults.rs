//! Process-level fault injection (docs/reliability.md).
//!
//! A seeded nemesis kills (`kill -9`), stops (SIGTERM), pauses (SIGSTOP) and
//! restarts masters, slaves and the index, and heals the cluster after each
//! fault (restart, re-add as slave), while a client writes unique values with
//! `sync` through a proxy and reads them back through it. A checker then
//! requires that
//! * every acknowledged write is readable at the end (0 lost), and
//! * every key's history is linearizable as a register (Wing–Gong search;
//!   a write whose outcome is unknown may have taken effect or not; a read
//!   that misses is not checked, because a read through a proxy also misses
//!   when the forward fails during a failover).
//!
//! CI runs `FLARE_FAULT_ROUNDS` rounds (default 8); set it higher for a soak,
//! and `FLARE_FAULT_SEED` to replay a schedule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flare_e2e::*;

/// A register history and its checker.
mod lin {
    /// What an operation did. Values are ids (0 = never written).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Op {
        Write(u64),
        /// A read that returned this value.
        Read(u64),
    }

    /// One operation: invoked at `start`, answered at `end` (`None`: no
    /// answer; for a write, the outcome is unknown).
    #[derive(Clone, Copy, Debug)]
    pub struct Event {
        pub op: Op,
        pub start: u64,
        pub end: Option<u64>,
    }

    /// Whether `h` is linearizable for a register that starts empty (value
    /// 0). At most 63 events.
    pub fn check(h: &[Event]) -> bool {
        assert!(h.len() < 64, "history too long for the checker");
        let mut seen = std::collections::HashSet::new();
        search(h, 0, 0, &mut seen)
    }

    fn search(
        h: &[Event],
        done: u64,
        value: u64,
        seen: &mut std::collections::HashSet<(u64, u64)>,
    ) -> bool {
        // finished when every answered operation is placed (writes without
        // an answer may never have happened)
        if (0..h.len()).all(|i| done & (1 << i) != 0 || h[i].end.is_none()) {
            return true;
        }
        if !seen.insert((done, value)) {
            return false;
        }
        // the earliest answer among the operations not yet placed: nothing
        // invoked after it can come before it
        let horizon = (0..h.len())
            .filter(|&i| done & (1 << i) == 0)
            .filter_map(|i| h[i].end)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..h.len() {
            if done & (1 << i) != 0 || h[i].start > horizon {
                continue;
            }
            let next = match h[i].op {
                Op::Write(v) => v,
                Op::Read(v) if v == value => value,
                Op::Read(_) => continue,
            };
            if search(h, done | (1 << i), next, seen) {
                return true;
            }
        }
        false
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn ev(op: Op, start: u64, end: Option<u64>) -> Event {
            Event { op, start, end }
        }

        #[test]
        fn accepts_and_rejects_known_histories() {
            use Op::*;
            // sequential
            assert!(check(&[ev(Write(1), 0, Some(1)), ev(Read(1), 2, Some(3))]));
            // stale read after a completed write
            assert!(!check(&[
                ev(Write(1), 0, Some(1)),
                ev(Write(2), 2, Some(3)),
                ev(Read(1), 4, Some(5))
            ]));
            // concurrent write: either value may be read
            assert!(check(&[
                ev(Write(1), 0, Some(1)),
                ev(Write(2), 2, Some(10)),
                ev(Read(1), 3, Some(4)),
                ev(Read(2), 5, Some(6))
            ]));
            // but not back again once the new value was read
            assert!(!check(&[
                ev(Write(1), 0, Some(1)),
                ev(Write(2), 2, Some(10)),
                ev(Read(2), 3, Some(4)),
                ev(Read(1), 5, Some(6))
            ]));
            // an unanswered write may have happened, later
            assert!(check(&[
                ev(Write(1), 0, Some(1)),
                ev(Write(2), 2, None),
                ev(Read(1), 3, Some(4)),
                ev(Read(2), 20, Some(21))
            ]));
            // or not at all
            assert!(check(&[
                ev(Write(1), 0, Some(1)),
                ev(Write(2), 2, None),
                ev(Read(1), 30, Some(31))
            ]));
            // a value nobody wrote
            assert!(!check(&[ev(Read(7), 0, Some(1))]));
            // an acknowledged write that is lost
            assert!(!check(&[
                ev(Write(1), 0, Some(1)),
                ev(Write(2), 2, Some(3)),
                ev(Read(1), 9, Some(10))
            ]));
        }
    }
}

/// xorshift64*: a reproducible schedule from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DATA_NODES: usize = 3;
const PROXY: usize = 3;
/// Operations per key (the checker's search is exponential in the worst case).
const OPS_PER_KEY: u64 = 12;
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    TermMaster,
    KillMaster,
    KillSlave,
    PauseSlave,
    RestartIndex,
}

const FAULTS: [Fault; 5] = [
    Fault::TermMaster,
    Fault::KillMaster,
    Fault::KillSlave,
    Fault::PauseSlave,
    Fault::RestartIndex,
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The data node that is the active master of partition 0 (waits for one).
fn master(c: &Cluster, limit: Duration) -> usize {
    let mut found = None;
    wait_until("an active master", limit, || {
        found = (0..DATA_NODES).find(|&i| {
            c.record(i)
                .is_some_and(|r| r.role == "master" && r.state == "active")
        });
        found.is_some()
    });
    found.expect("master")
}

/// Bring every data node back: wait until the index noticed what died,
/// restart it, re-add as a slave what is not in the partition, and wait
/// until every node is active and has the index's map.
fn heal(c: &mut Cluster) {
    let limit = Duration::from_secs(60);
    let dead: Vec<usize> = (0..DATA_NODES)
        .filter(|&i| !c.nodes[i].is_running())
        .collect();
    for &i in &dead {
        // a node the index still lists as live is refused when it registers
        wait_until("the index marks the dead node down", limit, || {
            c.record(i).is_some_and(|r| r.state == "down")
        });
    }
    let m = master(c, limit);
    for &i in &dead {
        c.nodes[i].restart();
        connect_served(c.port(i));
    }
    for i in (0..DATA_NODES).filter(|&i| i != m) {
        wait_until("the node is up again", limit, || {
            c.record(i).is_some_and(|r| r.state != "down")
        });
        let r = c.record(i).expect("registered");
        if r.role == "proxy" {
            c.role_ok(i, "slave 0 0");
        }
        wait_until("the slave is active", limit, || {
            c.record(i)
                .is_some_and(|r| r.role == "slave" && r.state == "active")
        });
    }
    c.wait_converged(limit);
}

struct History {
    /// Per key: its events.
    keys: Vec<Vec<lin::Event>>,
    acked: u64,
    unknown: u64,
}

#[test]
fn nemesis_loses_no_acknowledged_write() {
    let rounds = env_u64("FLARE_FAULT_ROUNDS", 8);
    let seed = env_u64("FLARE_FAULT_SEED", 0x5eed_f1a2);
    let mut rng = Rng(seed.wrapping_mul(2).wrapping_add(1));
    let mut c = Cluster::start_with(FAST_MONITOR, "proxy-timeout = 2000\n", DATA_NODES + 1);
    c.first_master(0);
    c.add_slave(1, 0, 0, WAIT);
    c.add_slave(2, 0, 0, WAIT);

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History {
        keys: Vec::new(),
        acked: 0,
        unknown: 0,
    }));
    let port = c.port(PROXY);
    let client = {
        let (stop, history) = (Arc::clone(&stop), Arc::clone(&history));
        let mut crng = Rng(seed.rotate_left(17).wrapping_mul(2).wrapping_add(1));
        std::thread::spawn(move || {
            let ns = |t: Instant| t.duration_since(origin).as_nanos() as u64;
            let mut conn: Option<LoadClient> = None;
            let mut value = 0u64;
            let mut op = 0u64;
            while !stop.load(Ordering::SeqCst) && origin.elapsed() < Duration::from_secs(900) {
                let key = op / OPS_PER_KEY;
                op += 1;
                if conn.is_none() {
                    conn = LoadClient::connect(port, Duration::from_secs(5)).ok();
                }
                let Some(cl) = conn.as_mut() else {
                    // no server reachable: back off before reconnecting
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let name = format!("f{key}");
                let start = Instant::now();
                let event = if crng.below(10) < 6 {
                    value += 1;
                    let r = cl.set(&name, format!("{value}").as_bytes(), "sync");
                    let end = Instant::now();
                    let ok = matches!(&r, Ok(s) if s == "STORED");
                    if r.is_err() {
                        conn = None;
                    }
                    let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
                    if ok {
                        h.acked += 1;
                    } else {
                        h.unknown += 1;
                    }
                    lin::Event {
                        op: lin::Op::Write(value),
                        start: ns(start),
                        end: ok.then(|| ns(end)),
                    }
                } else {
                    match cl.get(&name) {
                        Ok(Some(v)) => lin::Event {
                            op: lin::Op::Read(
                                String::from_utf8_lossy(&v)
                                    .parse()
                                    .expect("a value the client wrote"),
                            ),
                            start: ns(start),
                            end: Some(ns(Instant::now())),
                        },
                        Ok(None) => continue,
                        Err(_) => {
                            conn = None;
                            continue;
                        }
                    }
                };
                let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
                let k = key as usize;
                if h.keys.len() <= k {
                    h.keys.resize(k + 1, Vec::new());
                }
                h.keys[k].push(event);
            }
        })
    };

    let mut injected = std::collections::BTreeMap::new();
    for round in 0..rounds {
        let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
        *injected.entry(fault).or_insert(0u32) += 1;
        let m = master(&c, Duration::from_secs(60));
        let slaves: Vec<usize> = (0..DATA_NODES).filter(|&i| i != m).collect();
        let slave = slaves[rng.below(slaves.len() as u64) as usize];
        eprintln!("round {round}: {fault:?} (master {m}, slave {slave})");
        match fault {
            Fault::TermMaster => {
                c.nodes[m].terminate();
            }
            Fault::KillMaster => c.nodes[m].kill9(),
            Fault::KillSlave => c.nodes[slave].kill9(),
            Fault::PauseSlave => {
                let pid = c.nodes[slave].pid();
                signal(pid, SIGSTOP);
                // the fault's duration (drawn from the seed), not a wait for anything
                std::thread::sleep(Duration::from_millis(500 + rng.below(2000)));
                signal(pid, SIGCONT);
            }
            Fault::RestartIndex => {
                c.index.kill9();
                // the index's downtime (drawn from the seed)
                std::thread::sleep(Duration::from_millis(rng.below(1500)));
                c.index.restart();
                connect_served(c.index.port);
            }
        }
        heal(&mut c);
        // positive marker: the client got writes through since the heal
        let before = history.lock().unwrap_or_else(|e| e.into_inner()).acked;
        wait_until("writes go through again", Duration::from_secs(60), || {
            history.lock().unwrap_or_else(|e| e.into_inner()).acked >= before + 20
        });
    }
    stop.store(true, Ordering::SeqCst);
    client.join().expect("client");

    // Final reads: every key once more, through the proxy (retrying misses:
    // the read of a key that has an acknowledged write must find a value).
    let mut h = history.lock().unwrap_or_else(|e| e.into_inner());
    let mut cl = LoadClient::connect(port, WAIT).expect("connect");
    let mut lost = Vec::new();
    let mut violations = Vec::new();
    for (k, events) in h.keys.iter_mut().enumerate() {
        let acked_write = events
            .iter()
            .any(|e| matches!(e.op, lin::Op::Write(_)) && e.end.is_some());
        let name = format!("f{k}");
        let deadline = Instant::now() + WAIT;
        let read = loop {
            let start = origin.elapsed().as_nanos() as u64;
            match cl.get(&name).expect("final read") {
                Some(v) => {
                    break Some(lin::Event {
                        op: lin::Op::Read(String::from_utf8_lossy(&v).parse().expect("value")),
                        start,
                        end: Some(origin.elapsed().as_nanos() as u64),
                    })
                }
                None if !acked_write || Instant::now() > deadline => break None,
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        match read {
            Some(e) => events.push(e),
            None if acked_write => lost.push(name.clone()),
            None => {}
        }
        if !lin::check(events) {
            violations.push((name, events.clone()));
        }
    }
    eprintln!(
        "seed {seed:#x}: {rounds} rounds, faults {injected:?}, {} keys, {} acknowledged writes, {} unknown outcomes, {} lost, {} non-linearizable keys",
        h.keys.len(),
        h.acked,
        h.unknown,
        lost.len(),
        violations.len()
    );
    assert!(h.acked > 0, "no write was acknowledged");
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        violations.is_empty(),
        "non-linearizable histories: {violations:?}"
    );
}
