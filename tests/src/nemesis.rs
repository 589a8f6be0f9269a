//! Shared by the nemesis tests (`tests/faults.rs`, `tests/partitions.rs`,
//! docs/reliability.md): a seeded RNG, a register linearizability checker,
//! and the client workload with its final check.
//!
//! The workload is one or more client threads on the same keys: `sync`
//! writes of values unique over all clients, reads, `sync` deletes, and
//! `incr … sync` on a counter per client ([`Mix`]). [`OPS_PER_KEY`]
//! operations go to a key, from whichever clients come first, then the next
//! key; every operation is recorded with its invocation and answer times.
//! [`Workload::finish`] reads every key and counter once more and checks
//! that
//! * every key's history, with that last read, is linearizable as a
//!   register ([`lin`]; a delete writes "absent"; a write or delete whose
//!   outcome is unknown may have taken effect or not; a read that misses
//!   during the run is not checked, because a read through a proxy also
//!   misses when the forward fails during a failover). A final miss that no
//!   delete explains is a lost write;
//! * every counter's answers increase and its final value is at least the
//!   number of acknowledged increments and at most that plus the unknown
//!   ones;
//! * no version is ever read with two different values (reads are `gets`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{wait_until, LoadClient, WAIT};

/// A register history and its checker.
pub mod lin {
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
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(2).wrapping_add(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The environment variable `name` as a number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Operations per key (the checker's search is exponential in the worst case).
pub const OPS_PER_KEY: u64 = 12;

/// The longest a workload runs, whatever the test does.
const MAX_RUN: Duration = Duration::from_secs(900);

/// What the clients did.
#[derive(Default)]
pub struct History {
    /// Per key (`f<index>`): its events, from every client.
    pub keys: Vec<Vec<lin::Event>>,
    /// Writes and deletes answered `STORED` / `DELETED` / `NOT_FOUND`.
    pub acked: u64,
    /// Writes and deletes without an answer.
    pub unknown: u64,
    /// Deletes among `acked`.
    pub deletes: u64,
    /// Per client: its counter `c<client>`.
    pub counters: Vec<Counter>,
    /// Every (key, version) read, with the value read: one version must
    /// never carry two values.
    pub versions: std::collections::HashMap<(u64, u64), u64>,
    /// (key, version, first value, other value) where it did.
    pub version_conflicts: Vec<(String, u64, u64, u64)>,
}

impl History {
    /// Remember that `key` (its number) read `value` at `version`.
    fn saw(&mut self, key: u64, version: u64, value: u64) {
        match self.versions.entry((key, version)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(value);
            }
            std::collections::hash_map::Entry::Occupied(e) if *e.get() != value => {
                let first = *e.get();
                self.version_conflicts
                    .push((format!("f{key}"), version, first, value));
            }
            std::collections::hash_map::Entry::Occupied(_) => {}
        }
    }
}

/// One client's counter: `incr c<client> 1 sync`, one at a time.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    /// Increments answered with a number.
    pub acked: u64,
    /// Increments without an answer (may or may not have happened).
    pub unknown: u64,
    /// The numbers answered, in order.
    pub answers: Vec<u64>,
    /// The counter key answered `NOT_FOUND` (it was created with `sync`).
    pub vanished: bool,
}

impl Counter {
    /// Whether the answers and `last` (the value read at the end) are
    /// possible: every answer above the previous one and within what could
    /// have happened by then, and `last` between the acknowledged count and
    /// that plus the unknown ones.
    fn consistent(&self, last: u64) -> bool {
        let increasing = self.answers.windows(2).all(|w| w[0] < w[1]);
        !self.vanished
            && increasing
            && last >= self.acked
            && last <= self.acked + self.unknown
            && self.answers.last().is_none_or(|&a| a <= last)
    }
}

/// How a client (re)connects after an error.
pub type Connect = Arc<dyn Fn() -> std::io::Result<LoadClient> + Send + Sync>;

/// The client threads of a nemesis test.
pub struct Workload {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    origin: Instant,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The final figures of a workload.
pub struct Verdict {
    pub keys: usize,
    pub acked: u64,
    pub unknown: u64,
    pub deletes: u64,
    /// Increments acknowledged, over all counters.
    pub increments: u64,
    /// Keys whose acknowledged write is not readable at the end (a miss
    /// no delete explains).
    pub lost: Vec<String>,
    /// Keys whose history is not linearizable, with the history.
    pub violations: Vec<(String, Vec<lin::Event>)>,
    /// Counters whose answers or final value are impossible.
    pub bad_counters: Vec<(String, Counter, Option<u64>)>,
    /// Distinct (key, version) pairs read (`gets`).
    pub versions_seen: usize,
    /// A version read with two different values: (key, version, value, value).
    pub version_conflicts: Vec<(String, u64, u64, u64)>,
}

impl Verdict {
    /// Fails the test if no write was acknowledged, one was lost, a history
    /// is not linearizable, or a counter lost or invented increments.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.acked > 0, "no write was acknowledged");
        assert!(
            self.lost.is_empty(),
            "acknowledged writes lost: {:?}",
            self.lost
        );
        assert!(
            self.violations.is_empty(),
            "non-linearizable histories: {:?}",
            self.violations
        );
        assert!(
            self.bad_counters.is_empty(),
            "counters that lost or invented increments: {:?}",
            self.bad_counters
        );
        assert!(
            self.version_conflicts.is_empty(),
            "one version, two values: {:?}",
            self.version_conflicts
        );
    }
}

/// The operation mix of a workload, in percent (the rest are reads).
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub writes: u64,
    pub deletes: u64,
    pub increments: u64,
}

/// The mix of the single-client workload: 60 % writes, 40 % reads.
pub const WRITES_AND_READS: Mix = Mix {
    writes: 60,
    deletes: 0,
    increments: 0,
};

/// Writes, reads, deletes and increments.
pub const EVERYTHING: Mix = Mix {
    writes: 45,
    deletes: 10,
    increments: 10,
};

impl Workload {
    /// One client, 60 % `sync` writes and 40 % reads, drawn from `seed`;
    /// `connect` opens a connection (again after any error).
    pub fn start(seed: u64, connect: Connect) -> Workload {
        Workload::start_with(seed, 1, WRITES_AND_READS, connect)
    }

    /// `clients` threads on the same keys (each key gets [`OPS_PER_KEY`]
    /// operations from whichever clients come first), with the operation
    /// `mix`; values are unique over all clients.
    pub fn start_with(seed: u64, clients: usize, mix: Mix, connect: Connect) -> Workload {
        let origin = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History {
            counters: vec![Counter::default(); clients],
            ..History::default()
        }));
        if mix.increments > 0 {
            // The counters start at 0 before any fault: a `set` whose
            // outcome is unknown may take effect any time later (even after
            // the increments that followed it), so it cannot be part of the
            // checked history.
            for id in 0..clients {
                wait_until("the counters are created", WAIT, || {
                    connect()
                        .and_then(|mut c| c.set(&format!("c{id}"), b"0", "sync"))
                        .is_ok_and(|r| r == "STORED")
                });
            }
        }
        let next_op = Arc::new(AtomicU64::new(0));
        let next_value = Arc::new(AtomicU64::new(1));
        let threads = (0..clients)
            .map(|id| {
                let ctx = ClientCtx {
                    id,
                    mix,
                    origin,
                    stop: Arc::clone(&stop),
                    history: Arc::clone(&history),
                    next_op: Arc::clone(&next_op),
                    next_value: Arc::clone(&next_value),
                    connect: Arc::clone(&connect),
                    rng: Rng::new(seed.rotate_left(17) ^ id as u64),
                };
                std::thread::spawn(move || ctx.run())
            })
            .collect();
        Workload {
            stop,
            history,
            origin,
            threads,
        }
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes and deletes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// Positive marker: wait (at most `limit`) until `more` writes were
    /// acknowledged after this call.
    #[track_caller]
    pub fn wait_acked(&self, more: u64, limit: Duration) {
        let before = self.acked();
        wait_until("writes go through again", limit, || {
            self.acked() >= before + more
        });
    }

    /// Stop the clients, read every key and counter once more with
    /// `final_reader` (retrying misses for a while: the cluster may still be
    /// settling), and check the histories.
    pub fn finish(mut self, final_reader: &mut LoadClient) -> Verdict {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().expect("client thread");
        }
        let origin = self.origin;
        let now = || origin.elapsed().as_nanos() as u64;
        let mut h = self.lock();
        let mut lost = Vec::new();
        let mut violations = Vec::new();
        let mut seen = Vec::new();
        for (k, events) in h.keys.iter_mut().enumerate() {
            let name = format!("f{k}");
            let deadline = Instant::now() + WAIT;
            // A miss that the history does not explain (no delete could be
            // last) is retried for a while: a read through a proxy also
            // misses when a forward fails while the cluster settles.
            loop {
                let start = now();
                let found = final_reader.gets(&name).expect("final read");
                let value = found.as_ref().map_or(0, |(v, _)| value_of(v));
                if let Some((_, version)) = found {
                    seen.push((k as u64, version, value));
                }
                events.push(lin::Event {
                    op: lin::Op::Read(value),
                    start,
                    end: Some(now()),
                });
                if lin::check(events) {
                    break;
                }
                if value != 0 {
                    violations.push((name, events.clone()));
                    break;
                }
                if Instant::now() > deadline {
                    lost.push(name);
                    break;
                }
                events.pop();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for (key, version, value) in seen {
            h.saw(key, version, value);
        }
        let mut bad_counters = Vec::new();
        for (id, counter) in h.counters.iter().enumerate() {
            if counter.acked + counter.unknown == 0 && !counter.vanished {
                continue;
            }
            let name = format!("c{id}");
            let last = final_reader
                .get(&name)
                .expect("final read")
                .map(|v| value_of(&v));
            if !last.is_some_and(|l| counter.consistent(l)) {
                bad_counters.push((name, counter.clone(), last));
            }
        }
        Verdict {
            keys: h.keys.len(),
            acked: h.acked,
            unknown: h.unknown,
            deletes: h.deletes,
            increments: h.counters.iter().map(|c| c.acked).sum(),
            versions_seen: h.versions.len(),
            version_conflicts: h.version_conflicts.clone(),
            lost,
            violations,
            bad_counters,
        }
    }
}

/// A stored value: the decimal number a client wrote.
fn value_of(v: &[u8]) -> u64 {
    String::from_utf8_lossy(v)
        .trim()
        .parse()
        .expect("a value the clients wrote")
}

/// One client thread.
struct ClientCtx {
    id: usize,
    mix: Mix,
    origin: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    next_op: Arc<AtomicU64>,
    next_value: Arc<AtomicU64>,
    connect: Connect,
    rng: Rng,
}

impl ClientCtx {
    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ns(&self, t: Instant) -> u64 {
        t.duration_since(self.origin).as_nanos() as u64
    }

    fn run(mut self) {
        let mut conn: Option<LoadClient> = None;
        let counter = format!("c{}", self.id);
        while !self.stop.load(Ordering::SeqCst) && self.origin.elapsed() < MAX_RUN {
            if conn.is_none() {
                conn = (self.connect)().ok();
            }
            let Some(cl) = conn.as_mut() else {
                // no server reachable: back off before reconnecting
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let dice = self.rng.below(100);
            let m = self.mix;
            if dice >= m.writes + m.deletes && dice < m.writes + m.deletes + m.increments {
                let r = cl.request(format!("incr {counter} 1 sync\r\n").as_bytes());
                let mut h = self.lock();
                let c = &mut h.counters[self.id];
                match &r {
                    Ok(line) if line == "NOT_FOUND" => c.vanished = true,
                    Ok(line) => match line.parse::<u64>() {
                        Ok(n) => {
                            c.acked += 1;
                            c.answers.push(n);
                        }
                        Err(_) => c.unknown += 1,
                    },
                    Err(_) => c.unknown += 1,
                }
                drop(h);
                if r.is_err() {
                    conn = None;
                }
                continue;
            }
            let key = self.next_op.fetch_add(1, Ordering::SeqCst) / OPS_PER_KEY;
            let name = format!("f{key}");
            let start = Instant::now();
            let event = if dice < m.writes + m.deletes {
                let is_delete = dice >= m.writes;
                let (r, value) = if is_delete {
                    (cl.request(format!("delete {name} sync\r\n").as_bytes()), 0)
                } else {
                    let v = self.next_value.fetch_add(1, Ordering::SeqCst);
                    (cl.set(&name, format!("{v}").as_bytes(), "sync"), v)
                };
                let end = Instant::now();
                let ok = match &r {
                    Ok(s) if is_delete => s == "DELETED" || s == "NOT_FOUND",
                    Ok(s) => s == "STORED",
                    Err(_) => false,
                };
                if r.is_err() {
                    conn = None;
                }
                let mut h = self.lock();
                if ok {
                    h.acked += 1;
                    if is_delete {
                        h.deletes += 1;
                    }
                } else {
                    h.unknown += 1;
                }
                lin::Event {
                    op: lin::Op::Write(value),
                    start: self.ns(start),
                    end: ok.then(|| self.ns(end)),
                }
            } else {
                match cl.gets(&name) {
                    Ok(Some((v, version))) => {
                        let value = value_of(&v);
                        self.lock().saw(key, version, value);
                        lin::Event {
                            op: lin::Op::Read(value),
                            start: self.ns(start),
                            end: Some(self.ns(Instant::now())),
                        }
                    }
                    // a miss is not checked (see the module docs)
                    Ok(None) => continue,
                    Err(_) => {
                        conn = None;
                        continue;
                    }
                }
            };
            let mut h = self.lock();
            let k = key as usize;
            if h.keys.len() <= k {
                h.keys.resize(k + 1, Vec::new());
            }
            h.keys[k].push(event);
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod history_tests {
    use super::History;

    #[test]
    fn one_version_with_two_values_is_reported() {
        let mut h = History::default();
        h.saw(3, 10, 1);
        h.saw(3, 10, 1);
        h.saw(3, 11, 2);
        h.saw(4, 10, 7);
        assert!(h.version_conflicts.is_empty());
        h.saw(3, 10, 5);
        assert_eq!(h.version_conflicts, vec![("f3".to_string(), 10, 1, 5)]);
    }
}
