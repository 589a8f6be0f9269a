//! Results as a text table or JSON.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::{OpStats, Totals};

/// One kind of request (or all of them).
#[derive(Debug, Serialize)]
pub struct KindReport {
    /// Requests answered correctly.
    pub ops: u64,
    pub ops_per_s: f64,
    /// Keys asked for by those requests (a multi-get of 10 counts 10).
    pub keys: u64,
    pub keys_per_s: f64,
    pub hits: u64,
    pub misses: u64,
    /// Requests that failed: a wrong value, an unexpected line, a lost
    /// connection (and a miss unless misses are allowed).
    pub errors: u64,
    /// Items that were wrong (values that did not verify, unexpected lines).
    pub wrong_items: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

impl KindReport {
    fn new(s: &OpStats, secs: f64) -> KindReport {
        let h: &Histogram<u64> = &s.hist;
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(p))
            }
        };
        KindReport {
            ops: s.ok,
            ops_per_s: (s.ok as f64 / secs).round(),
            keys: s.keys,
            keys_per_s: (s.keys as f64 / secs).round(),
            hits: s.hits,
            misses: s.misses,
            errors: s.failed,
            wrong_items: s.wrong,
            mean_us: if h.is_empty() {
                0.0
            } else {
                (h.mean() / 100.0).round() / 10.0
            },
            p50_us: q(0.50),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0.0 } else { us(h.max()) },
        }
    }
}

/// What was run.
#[derive(Debug, Serialize)]
pub struct Setup {
    pub label: String,
    pub mode: &'static str,
    pub server: String,
    pub connections: usize,
    pub pipeline: usize,
    pub threads: usize,
    pub keys: u64,
    pub key_prefix: String,
    pub distribution: String,
    pub value_size: usize,
    pub get_ratio: f64,
    pub multiget: usize,
    pub duration_limit_s: f64,
    pub ops_limit: Option<u64>,
    pub allow_miss: bool,
}

/// The whole result.
#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub setup: Setup,
    pub elapsed_s: f64,
    /// Preload: every key was stored.
    pub complete: bool,
    pub total: KindReport,
    pub get: KindReport,
    pub set: KindReport,
    pub error_samples: Vec<String>,
}

impl Report {
    pub fn new(setup: Setup, t: &Totals, complete: bool) -> Report {
        let secs = t.elapsed.as_secs_f64().max(1e-9);
        let mut all = t.get.clone();
        all.merge(&t.set);
        Report {
            setup,
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            complete,
            total: KindReport::new(&all, secs),
            get: KindReport::new(&t.get, secs),
            set: KindReport::new(&t.set, secs),
            error_samples: t.samples.clone(),
        }
    }

    /// No failed request (and, for preload, every key stored).
    pub fn ok(&self) -> bool {
        self.total.errors == 0 && self.total.wrong_items == 0 && self.complete
    }

    pub fn table(&self) -> String {
        let s = &self.setup;
        let mut out = String::new();
        let what = if s.mode == "preload" {
            format!("set each of {} keys once", s.keys)
        } else {
            let mg = if s.multiget > 1 {
                format!(" (multi-get of {})", s.multiget)
            } else {
                String::new()
            };
            format!(
                "{} keys {}, get {:.0}%{mg} / set {:.0}%",
                s.keys,
                s.distribution,
                s.get_ratio * 100.0,
                (1.0 - s.get_ratio) * 100.0
            )
        };
        out.push_str(&format!(
            "flare-bench {}{}: {}, {} connections, pipeline {}, {} runtime thread(s)\n",
            s.mode,
            if s.label.is_empty() {
                String::new()
            } else {
                format!(" [{}]", s.label)
            },
            s.server,
            s.connections,
            s.pipeline,
            s.threads
        ));
        out.push_str(&format!(
            "{what}, key prefix {:?}, value {} B; elapsed {:.2} s\n\n",
            s.key_prefix, s.value_size, self.elapsed_s
        ));
        out.push_str(&format!(
            "{:<6} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7}\n",
            "op",
            "ops",
            "ops/s",
            "keys/s",
            "mean us",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "misses",
            "errors"
        ));
        let rows = [
            ("get", &self.get),
            ("set", &self.set),
            ("total", &self.total),
        ];
        for (name, k) in rows {
            if name != "total" && k.ops + k.errors == 0 {
                continue;
            }
            out.push_str(&format!(
                "{:<6} {:>10} {:>10.0} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>8} {:>7}\n",
                name,
                k.ops,
                k.ops_per_s,
                k.keys_per_s,
                k.mean_us,
                k.p50_us,
                k.p99_us,
                k.p999_us,
                k.max_us,
                k.misses,
                k.errors
            ));
        }
        if !self.complete {
            out.push_str("\nINCOMPLETE: not every key was stored before the time limit\n");
        }
        if !self.error_samples.is_empty() {
            out.push_str("\nerrors (first few):\n");
            for e in &self.error_samples {
                out.push_str(&format!("  {e}\n"));
            }
        }
        out
    }
}
