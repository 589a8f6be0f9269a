//! Process-level fault injection (docs/reliability.md).
//!
//! A seeded nemesis kills (`kill -9`), stops (SIGTERM), pauses (SIGSTOP) and
//! restarts masters, slaves and the index, and slows a node's disk (the
//! `storage::write` failpoint: the daemons built with failpoints), and heals
//! the cluster after each fault (restart, re-add as slave), while three
//! clients write unique values with `sync`, delete, increment counters and
//! read, all through a proxy. A checker then requires that
//! * every acknowledged write is readable at the end (0 lost),
//! * every key's history is linearizable as a register (Wing–Gong search;
//!   a write whose outcome is unknown may have taken effect or not; a read
//!   that misses is not checked, because a read through a proxy also misses
//!   when the forward fails during a failover), and
//! * no counter lost an acknowledged increment or gained more than the
//!   unknown ones, and
//! * no version was read with two different values.
//!
//! The client workload and the checker are `flare_e2e::nemesis`, shared
//! with the partition nemesis (`tests/partitions.rs`).
//!
//! CI runs `FLARE_FAULT_ROUNDS` rounds (default 8); set it higher for a soak,
//! and `FLARE_FAULT_SEED` to replay a schedule.

use std::time::Duration;

use flare_e2e::nemesis::{env_u64, Rng, Workload, EVERYTHING};
use flare_e2e::*;

const DATA_NODES: usize = 3;
const PROXY: usize = 3;
const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    TermMaster,
    KillMaster,
    KillSlave,
    PauseSlave,
    RestartIndex,
    SlowDisk,
}

const FAULTS: [Fault; 6] = [
    Fault::TermMaster,
    Fault::KillMaster,
    Fault::KillSlave,
    Fault::PauseSlave,
    Fault::RestartIndex,
    Fault::SlowDisk,
];

/// Clients of the workload.
const CLIENTS: usize = 3;

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

#[test]
fn nemesis_loses_no_acknowledged_write() {
    let rounds = env_u64("FLARE_FAULT_ROUNDS", 8);
    let seed = env_u64("FLARE_FAULT_SEED", 0x5eed_f1a2);
    let mut rng = Rng::new(seed);
    use_failpoint_binaries();
    let mut c = Cluster::start_with(FAST_MONITOR, "proxy-timeout = 2000\n", DATA_NODES + 1);
    c.first_master(0);
    c.add_slave(1, 0, 0, WAIT);
    c.add_slave(2, 0, 0, WAIT);

    let port = c.port(PROXY);
    let client = Workload::start_with(
        seed,
        CLIENTS,
        EVERYTHING,
        std::sync::Arc::new(move || LoadClient::connect(port, Duration::from_secs(5))),
    );

    let started = std::time::Instant::now();
    let mut injected = std::collections::BTreeMap::new();
    for round in 0..rounds {
        let fault = FAULTS[rng.below(FAULTS.len() as u64) as usize];
        *injected.entry(fault).or_insert(0u32) += 1;
        let m = master(&c, Duration::from_secs(60));
        let slaves: Vec<usize> = (0..DATA_NODES).filter(|&i| i != m).collect();
        let slave = slaves[rng.below(slaves.len() as u64) as usize];
        eprintln!(
            "round {round}: {fault:?} (master {m}, slave {slave}) at {:?}",
            started.elapsed()
        );

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
            Fault::SlowDisk => {
                // master or slave: every write waits on its disk
                let i = if rng.below(2) == 0 { m } else { slave };
                let ms = 20 + rng.below(180);
                c.conn(i).expect(
                    format!("failpoint storage::write sleep({ms})\r\n").as_bytes(),
                    b"OK\r\n",
                );
                // the fault's duration (drawn from the seed)
                std::thread::sleep(Duration::from_millis(1000 + rng.below(2000)));
                c.conn(i).expect(b"failpoint storage::write\r\n", b"OK\r\n");
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
        client.wait_acked(20, Duration::from_secs(60));
    }

    // Final reads: every key once more, through the proxy.
    let verdict = client.finish(&mut LoadClient::connect(port, WAIT).expect("connect"));
    eprintln!(
        "seed {seed:#x}: {rounds} rounds, faults {injected:?}, {CLIENTS} clients, {} keys, {} acknowledged writes ({} deletes), {} increments, {} unknown outcomes, {} versions read, {} lost, {} non-linearizable keys, {} bad counters, {} versions with two values",
        verdict.keys,
        verdict.acked,
        verdict.deletes,
        verdict.increments,
        verdict.unknown,
        verdict.versions_seen,
        verdict.lost.len(),
        verdict.violations.len(),
        verdict.bad_counters.len(),
        verdict.version_conflicts.len()
    );
    verdict.assert_ok();
}
