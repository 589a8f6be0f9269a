//! Process-wide counters of `stats` (protocol.md §19.2).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters; all start at 0 and are process-local.
#[derive(Default)]
pub struct Counters {
    pub total_items: AtomicU64,
    pub total_connections: AtomicU64,
    pub cmd_get: AtomicU64,
    pub cmd_set: AtomicU64,
    pub get_hits: AtomicU64,
    pub get_misses: AtomicU64,
    pub delete_hits: AtomicU64,
    pub delete_misses: AtomicU64,
    pub incr_hits: AtomicU64,
    pub incr_misses: AtomicU64,
    pub decr_hits: AtomicU64,
    pub decr_misses: AtomicU64,
    pub cas_hits: AtomicU64,
    pub cas_misses: AtomicU64,
    pub cas_badval: AtomicU64,
    pub touch_hits: AtomicU64,
    pub touch_misses: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Connections refused by `max-connection`.
    pub refused_connections: AtomicU64,
    /// Requests by command and outcome (metrics).
    pub requests: RequestCounters,
    /// Request latencies by class (metrics).
    pub latency: Latencies,
}

/// Add one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Add `n`.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Read.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The `command` label of `flare_requests_total`: the commands of the
/// protocols (a binary request counts as the meta command it maps to), and
/// `other` for the rest.
pub const COMMANDS: [&str; 27] = [
    "get",
    "gets",
    "set",
    "add",
    "replace",
    "append",
    "prepend",
    "cas",
    "incr",
    "decr",
    "delete",
    "touch",
    "gat",
    "mg",
    "ms",
    "md",
    "ma",
    "mn",
    "me",
    "flush_all",
    "dump",
    "keys",
    "stats",
    "ping",
    "version",
    "node_sync",
    "other",
];

/// The `outcome` label of `flare_requests_total`, read from the reply.
pub const OUTCOMES: [&str; 13] = [
    "hit",
    "miss",
    "stored",
    "not_stored",
    "exists",
    "not_found",
    "deleted",
    "touched",
    "ok",
    "noreply",
    "client_error",
    "server_error",
    "error",
];

/// The index of `op` (a [`flare_proto::Request::op_name`]) in [`COMMANDS`].
pub fn command_index(op: &str) -> usize {
    COMMANDS
        .iter()
        .position(|c| *c == op)
        .unwrap_or(COMMANDS.len() - 1)
}

fn outcome(name: &str) -> usize {
    OUTCOMES.iter().position(|o| *o == name).unwrap_or(8)
}

/// The outcome a reply tells (text or meta; `None`: part of the reply was
/// already written out, which only a long `get`/`dump` reply does).
pub fn outcome_index(command: usize, reply: Option<&[u8]>) -> usize {
    let Some(reply) = reply else {
        return outcome(if command <= 1 { "hit" } else { "ok" });
    };
    let starts = |p: &[u8]| reply.starts_with(p);
    let name = if reply.is_empty() {
        "noreply"
    } else if starts(b"VALUE ") || starts(b"VA ") {
        "hit"
    } else if starts(b"END\r\n") && command <= 1 || starts(b"EN\r\n") {
        "miss"
    } else if starts(b"STORED\r\n") {
        "stored"
    } else if starts(b"NOT_STORED\r\n") || starts(b"NS") {
        "not_stored"
    } else if starts(b"EXISTS\r\n") || starts(b"EX") {
        "exists"
    } else if starts(b"NOT_FOUND\r\n") || starts(b"NF") {
        "not_found"
    } else if starts(b"DELETED\r\n") {
        "deleted"
    } else if starts(b"TOUCHED\r\n") {
        "touched"
    } else if starts(b"HD") {
        match COMMANDS[command] {
            "mg" => "hit",
            "ms" => "stored",
            "md" => "deleted",
            _ => "ok",
        }
    } else if starts(b"CLIENT_ERROR") {
        "client_error"
    } else if starts(b"SERVER_ERROR") {
        "server_error"
    } else if starts(b"ERROR") {
        "error"
    } else {
        "ok"
    };
    outcome(name)
}

/// One thread's counts by command and outcome.
struct Matrix([[AtomicU64; OUTCOMES.len()]; COMMANDS.len()]);

impl Default for Matrix {
    fn default() -> Self {
        Matrix(std::array::from_fn(|_| {
            std::array::from_fn(|_| AtomicU64::new(0))
        }))
    }
}

/// Requests by command and outcome, counted per thread
/// ([`flare_daemon::metrics::PerThread`]: no cache line shared between the
/// cores serving requests).
#[derive(Default)]
pub struct RequestCounters {
    counts: flare_daemon::metrics::PerThread<Matrix>,
}

impl RequestCounters {
    pub fn count(&self, command: usize, outcome: usize) {
        let local = self.counts.local();
        if let Some(c) = local.0.get(command).and_then(|r| r.get(outcome)) {
            inc(c);
        }
    }

    /// The sum over threads of (command, outcome).
    fn total(&self, command: usize, outcome: usize) -> u64 {
        self.counts.all().map(|m| get(&m.0[command][outcome])).sum()
    }

    /// The series to export: every (command, outcome, count) with a count
    /// above 0, and for every command seen, its error outcomes also at 0
    /// (so that the first error of a command is an increase `rate()`
    /// sees, not a new series).
    pub fn series(&self) -> Vec<(&'static str, &'static str, u64)> {
        let errors = [
            outcome("client_error"),
            outcome("server_error"),
            outcome("error"),
        ];
        let mut all = Vec::new();
        for (c, command) in COMMANDS.iter().enumerate() {
            let counts: Vec<u64> = (0..OUTCOMES.len()).map(|o| self.total(c, o)).collect();
            if counts.iter().all(|n| *n == 0) {
                continue;
            }
            for (o, n) in counts.into_iter().enumerate() {
                if n > 0 || errors.contains(&o) {
                    all.push((*command, OUTCOMES[o], n));
                }
            }
        }
        all
    }
}

/// The `class` label of `flare_request_duration_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    LocalRead,
    LocalWrite,
    ProxiedRead,
    ProxiedWrite,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::LocalRead,
        Class::LocalWrite,
        Class::ProxiedRead,
        Class::ProxiedWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::LocalRead => "local_read",
            Class::LocalWrite => "local_write",
            Class::ProxiedRead => "proxied_read",
            Class::ProxiedWrite => "proxied_write",
        }
    }

    pub fn of(write: bool, forwarded: bool) -> Class {
        match (write, forwarded) {
            (false, false) => Class::LocalRead,
            (true, false) => Class::LocalWrite,
            (false, true) => Class::ProxiedRead,
            (true, true) => Class::ProxiedWrite,
        }
    }
}

/// Request latencies, one histogram a [`Class`].
#[derive(Default)]
pub struct Latencies {
    by_class: [flare_daemon::metrics::Histogram; 4],
}

impl Latencies {
    pub fn observe(&self, class: Class, d: std::time::Duration) {
        self.by_class[class as usize].observe(d);
    }

    pub fn get(&self, class: Class) -> &flare_daemon::metrics::Histogram {
        &self.by_class[class as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(op: &str, reply: &[u8]) -> &'static str {
        OUTCOMES[outcome_index(command_index(op), Some(reply))]
    }

    #[test]
    fn outcomes_from_replies() {
        assert_eq!(o("get", b"VALUE k 0 1\r\nv\r\nEND\r\n"), "hit");
        assert_eq!(o("get", b"END\r\n"), "miss");
        assert_eq!(o("stats", b"END\r\n"), "ok");
        assert_eq!(o("set", b"STORED\r\n"), "stored");
        assert_eq!(o("add", b"NOT_STORED\r\n"), "not_stored");
        assert_eq!(o("cas", b"EXISTS\r\n"), "exists");
        assert_eq!(o("delete", b"NOT_FOUND\r\n"), "not_found");
        assert_eq!(o("delete", b"DELETED\r\n"), "deleted");
        assert_eq!(o("touch", b"TOUCHED\r\n"), "touched");
        assert_eq!(o("incr", b"42\r\n"), "ok");
        assert_eq!(o("set", b""), "noreply");
        assert_eq!(o("set", b"SERVER_ERROR out of memory\r\n"), "server_error");
        assert_eq!(o("set", b"CLIENT_ERROR bad data chunk\r\n"), "client_error");
        assert_eq!(o("bogus", b"ERROR\r\n"), "error");
        assert_eq!(COMMANDS[command_index("bogus")], "other");
        assert_eq!(o("mg", b"VA 1\r\nv\r\n"), "hit");
        assert_eq!(o("mg", b"HD\r\n"), "hit");
        assert_eq!(o("mg", b"EN\r\n"), "miss");
        assert_eq!(o("ms", b"HD\r\n"), "stored");
        assert_eq!(o("md", b"HD\r\n"), "deleted");
        assert_eq!(o("md", b"NF\r\n"), "not_found");
        assert_eq!(o("ms", b"NS\r\n"), "not_stored");
        assert_eq!(o("ms", b"EX\r\n"), "exists");
        assert_eq!(OUTCOMES[outcome_index(command_index("get"), None)], "hit");
    }

    #[test]
    fn request_counters_list_what_was_counted() {
        let r = RequestCounters::default();
        r.count(command_index("set"), outcome_index(2, Some(b"STORED\r\n")));
        r.count(command_index("set"), outcome_index(2, Some(b"STORED\r\n")));
        r.count(99, 0); // out of range: ignored
        assert_eq!(
            r.series(),
            vec![
                ("set", "stored", 2),
                ("set", "client_error", 0),
                ("set", "server_error", 0),
                ("set", "error", 0)
            ]
        );
    }
}
