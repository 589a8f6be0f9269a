//! Shared by the nemesis tests (`tests/faults.rs`, `tests/partitions.rs`,
//! docs/reliability.md): a seeded RNG, a register linearizability checker,
//! and the client workload with its final check.
//!
//! The workload is one client thread that writes unique values with `sync`
//! (60 % of its operations) and reads them back (40 %), [`OPS_PER_KEY`]
//! operations per key, then the next key, and records every operation with
//! its invocation and answer times. [`Workload::finish`] reads every key once
//! more and checks that
//! * every acknowledged write is readable at the end (0 lost), and
//! * every key's history is linearizable as a register ([`lin`]; a write
//!   whose outcome is unknown may have taken effect or not; a read that
//!   misses is not checked, because a read through a proxy also misses when
//!   the forward fails during a failover).

use std::sync::atomic::{AtomicBool, Ordering};
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

/// What the client did.
#[derive(Default)]
pub struct History {
    /// Per key (`f<index>`): its events.
    pub keys: Vec<Vec<lin::Event>>,
    pub acked: u64,
    pub unknown: u64,
}

/// How the workload (re)connects after an error.
pub type Connect = Box<dyn Fn() -> std::io::Result<LoadClient> + Send>;

/// The client thread of a nemesis test.
pub struct Workload {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    origin: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The final figures of a workload.
pub struct Verdict {
    pub keys: usize,
    pub acked: u64,
    pub unknown: u64,
    /// Keys with an acknowledged write that are not readable at the end.
    pub lost: Vec<String>,
    /// Keys whose history is not linearizable, with the history.
    pub violations: Vec<(String, Vec<lin::Event>)>,
}

impl Verdict {
    /// Fails the test if no write was acknowledged, one was lost, or a
    /// history is not linearizable.
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
    }
}

impl Workload {
    /// Start the client: the operations are drawn from `seed`; `connect`
    /// opens a connection (again after any error).
    pub fn start(seed: u64, connect: Connect) -> Workload {
        let origin = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        let (st, hist) = (Arc::clone(&stop), Arc::clone(&history));
        let mut crng = Rng::new(seed.rotate_left(17));
        let thread = std::thread::spawn(move || {
            let ns = |t: Instant| t.duration_since(origin).as_nanos() as u64;
            let lock = || hist.lock().unwrap_or_else(|e| e.into_inner());
            let mut conn: Option<LoadClient> = None;
            let mut value = 0u64;
            let mut op = 0u64;
            while !st.load(Ordering::SeqCst) && origin.elapsed() < MAX_RUN {
                let key = op / OPS_PER_KEY;
                op += 1;
                if conn.is_none() {
                    conn = connect().ok();
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
                    let mut h = lock();
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
                let mut h = lock();
                let k = key as usize;
                if h.keys.len() <= k {
                    h.keys.resize(k + 1, Vec::new());
                }
                h.keys[k].push(event);
            }
        });
        Workload {
            stop,
            history,
            origin,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes acknowledged so far.
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

    /// Stop the client, read every key once more with `final_reader`
    /// (retrying misses of keys with an acknowledged write: such a key must
    /// be found), and check the histories.
    pub fn finish(mut self, final_reader: &mut LoadClient) -> Verdict {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("client thread");
        }
        let origin = self.origin;
        let mut h = self.lock();
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
                match final_reader.get(&name).expect("final read") {
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
        Verdict {
            keys: h.keys.len(),
            acked: h.acked,
            unknown: h.unknown,
            lost,
            violations,
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
