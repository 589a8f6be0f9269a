//! The Prometheus endpoint of both daemons (USAGE.md, "Monitoring").
//!
//! `metrics-port` (0: off) and `metrics-address` open an HTTP server that
//! answers `GET /metrics` with the daemon's [`Registry`], encoded by
//! `prometheus-client`: the Prometheus text format 0.0.4, or OpenMetrics 1.0
//! when the scraper's `Accept` header asks for `application/openmetrics-text`.
//! Values are read when scraped (collectors over the daemons' own counters),
//! so serving requests costs nothing more than the atomics they already
//! update; request latencies go to [`Histogram`]s (atomic adds to the
//! calling thread's shard: no lock and no cache line shared between cores).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use prometheus_client;

/// `metrics-port`: the HTTP port of `/metrics` (0: no endpoint).
pub const METRICS_PORT: crate::OptSpec = crate::OptSpec::new(
    "metrics-port",
    crate::OptKind::Int,
    Some("0"),
    false,
    "[flare-rs] HTTP port serving Prometheus metrics at /metrics (0: off)",
);

/// `metrics-address`: the address the metrics endpoint listens on.
pub const METRICS_ADDRESS: crate::OptSpec = crate::OptSpec::new(
    "metrics-address",
    crate::OptKind::Str,
    Some("0.0.0.0"),
    false,
    "[flare-rs] address the metrics endpoint listens on (0.0.0.0: every address; 127.0.0.1: this host only)",
);

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics-address {0:?} is not an IP address (write e.g. 0.0.0.0 or 127.0.0.1)")]
    Address(String),
    #[error("metrics-port {0} is out of range (0 turns the endpoint off, else 1-65535)")]
    Port(i64),
    #[error("cannot listen for metrics on {addr}: {source} (is metrics-port in use by another process?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The endpoint's address from the two options; `None` when off.
pub fn endpoint(address: &str, port: i64) -> Result<Option<SocketAddr>, MetricsError> {
    if port == 0 {
        return Ok(None);
    }
    let port = u16::try_from(port).map_err(|_| MetricsError::Port(port))?;
    let ip: std::net::IpAddr = address
        .trim()
        .parse()
        .map_err(|_| MetricsError::Address(address.to_string()))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Bind the endpoint (at start-up, so that a taken port stops the daemon
/// with a clear message rather than failing later in the background).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(64)
    };
    bind().map_err(|source| MetricsError::Bind { addr, source })
}

/// `Content-Type` of OpenMetrics 1.0.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encode `registry` in the format `accept` asks for; returns the content
/// type and the body.
pub fn render(registry: &Registry, accept: &str) -> (&'static str, String) {
    let mut body = String::new();
    let openmetrics = accept
        .split(',')
        .any(|a| a.trim().starts_with("application/openmetrics-text"));
    let (kind, done) = if openmetrics {
        (
            OPENMETRICS,
            prometheus_client::encoding::text::encode(&mut body, registry),
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::encode(&mut body, registry),
        )
    };
    if let Err(e) = done {
        tracing::error!("encoding metrics failed: {e}");
    }
    (kind, body)
}

/// Serve `/metrics` on `listener` until `stop` turns true.
async fn serve(listener: TcpListener, registry: Arc<Registry>, mut stop: watch::Receiver<bool>) {
    if let Ok(a) = listener.local_addr() {
        tracing::info!("metrics endpoint: http://{a}/metrics");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = Arc::clone(&registry);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let registry = Arc::clone(&registry);
                async move { Ok::<_, std::convert::Infallible>(answer(&registry, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::debug!("metrics endpoint: {e}");
                },
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn answer(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        r
    };
    let path = req.uri().path();
    if path != "/metrics" && path != "/" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/" {
        return reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">/metrics</a></body></html>\n".to_string(),
        );
    }
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (kind, body) = render(registry, accept);
    reply(StatusCode::OK, kind, body)
}

/// Upper bounds (seconds) of the request latency histograms: 50 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Shards of a value, one per thread (round robin over [`SHARDS`]), each on
/// its own cache lines: counters that every request updates are added to
/// in the calling thread's shard, so that the cores serving requests do not
/// pass one cache line back and forth; a scrape sums the shards.
pub struct PerThread<T> {
    shards: Box<[Padded<T>]>,
}

/// Shards of a [`PerThread`] (threads beyond it share).
pub const SHARDS: usize = 16;

#[repr(align(128))]
struct Padded<T>(T);

static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl<T: Default> Default for PerThread<T> {
    fn default() -> Self {
        PerThread {
            shards: (0..SHARDS).map(|_| Padded(T::default())).collect(),
        }
    }
}

impl<T> PerThread<T> {
    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        let i = SHARD.with(|s| *s);
        &self.shards[i % self.shards.len()].0
    }

    /// Every shard (to sum them).
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|p| &p.0)
    }
}

/// One thread's share of a [`Histogram`].
struct HistogramShard {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for HistogramShard {
    fn default() -> Self {
        HistogramShard {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]), updated
/// with atomic adds to the calling thread's shard only (no lock, no shared
/// cache line on the request path).
#[derive(Default)]
pub struct Histogram {
    shards: PerThread<HistogramShard>,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        let shard = self.shards.local();
        shard.counts[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        shard.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations per bucket and the sum in nanoseconds, over all shards.
    fn totals(&self) -> ([u64; LATENCY_BUCKETS.len() + 1], u64) {
        let mut counts = [0u64; LATENCY_BUCKETS.len() + 1];
        let mut sum = 0u64;
        for shard in self.shards.all() {
            for (t, c) in counts.iter_mut().zip(&shard.counts) {
                *t += c.load(Ordering::Relaxed);
            }
            sum = sum.wrapping_add(shard.sum_ns.load(Ordering::Relaxed));
        }
        (counts, sum)
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.totals().0.iter().sum()
    }

    /// Encode as one histogram sample (`encoder` of a family member).
    pub fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (counts, sum_ns) = self.totals();
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts.iter().copied())
            .collect();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum_ns as f64 / 1e9,
            counts.iter().sum(),
            &buckets,
            None,
        )
    }
}

/// Writes metrics from a collector: one call a metric family, each with a
/// list of (labels, value) samples. Names are without the registry's
/// `flare_` prefix and, for counters, without `_total` (the encoder adds
/// both).
pub struct Families<'a> {
    encoder: DescriptorEncoder<'a>,
}

/// Label pairs of one sample.
pub type Labels<'a> = Vec<(&'static str, std::borrow::Cow<'a, str>)>;

impl<'a> Families<'a> {
    pub fn new(encoder: DescriptorEncoder<'a>) -> Self {
        Families { encoder }
    }

    /// One unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        m.encode_counter::<prometheus_client::encoding::NoLabelSet, u64, u64>(&v, None)
    }

    /// One unlabelled counter of a fractional quantity (seconds).
    pub fn counter_f64(&mut self, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        m.encode_counter::<prometheus_client::encoding::NoLabelSet, f64, u64>(&v, None)
    }

    /// One unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        m.encode_gauge(&v)
    }

    /// A counter family; nothing is written when `samples` is empty.
    pub fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(L, u64)],
    ) -> Result<(), std::fmt::Error> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in samples {
            m.encode_family(labels)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, u64, u64>(v, None)?;
        }
        Ok(())
    }

    /// A gauge family; nothing is written when `samples` is empty.
    pub fn gauges<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(L, f64)],
    ) -> Result<(), std::fmt::Error> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in samples {
            m.encode_family(labels)?.encode_gauge(v)?;
        }
        Ok(())
    }

    /// A histogram family (seconds).
    pub fn histograms<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(L, &Histogram)],
    ) -> Result<(), std::fmt::Error> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in samples {
            h.encode(m.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// `flare_build_info{version}` and `flare_start_time_seconds`, common to
/// both daemons.
fn process_families(f: &mut Families, started_at: i64) -> Result<(), std::fmt::Error> {
    f.gauges(
        "build_info",
        "The running flare-rs version (always 1).",
        &[([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    )?;
    f.gauge(
        "start_time_seconds",
        "When the daemon started, in seconds since the Unix epoch.",
        started_at as f64,
    )
}

/// A new registry with the `flare` prefix.
fn registry() -> Registry {
    Registry::with_prefix("flare")
}

/// A daemon's figures as a collector: `encode` writes them from the
/// daemon's state `T` when scraped, after [`process_families`]. The state is
/// held weakly: the endpoint does not keep a stopped daemon alive.
pub struct Scrape<T> {
    state: std::sync::Weak<T>,
    started_at: fn(&T) -> i64,
    encode: Encoder<T>,
}

/// What a [`Scrape`] calls to write a daemon's families.
pub type Encoder<T> = fn(&T, &mut Families) -> Result<(), std::fmt::Error>;

impl<T> Scrape<T> {
    pub fn new(state: &Arc<T>, started_at: fn(&T) -> i64, encode: Encoder<T>) -> Self {
        Scrape {
            state: Arc::downgrade(state),
            started_at,
            encode,
        }
    }

    /// A registry with this collector.
    pub fn registry(self) -> Registry
    where
        T: Send + Sync + 'static,
    {
        let mut r = registry();
        r.register_collector(Box::new(self));
        r
    }
}

impl<T> std::fmt::Debug for Scrape<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

impl<T: Send + Sync + 'static> prometheus_client::collector::Collector for Scrape<T> {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(state) = self.state.upgrade() else {
            return Ok(());
        };
        let mut f = Families::new(encoder);
        process_families(&mut f, (self.started_at)(&state))?;
        (self.encode)(&state, &mut f)
    }
}

/// Serve `scrape`'s registry on `listener` (the bound `metrics-port`) in
/// the background until `stop` turns true.
pub fn spawn<T: Send + Sync + 'static>(
    listener: TcpListener,
    scrape: Scrape<T>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(serve(listener, Arc::new(scrape.registry()), stop));
}

/// Naming rules every family of a registry must follow (used by both
/// daemons' tests): `flare_` and lower-case snake case, counters in
/// `_total`, histograms in `_seconds`, every family once in both formats,
/// and each named in `docs` (the "Monitoring" section of USAGE.md).
/// Returns the problems found.
pub fn check_names(registry: &Registry, docs: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (accept, what) in [
        ("", "0.0.4"),
        ("application/openmetrics-text", "OpenMetrics"),
    ] {
        let (_, body) = render(registry, accept);
        let mut seen = std::collections::HashSet::new();
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !seen.insert(name.to_string()) {
                problems.push(format!("{what}: {name} twice"));
            }
            let snake = name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name.starts_with("flare_") || !snake {
                problems.push(format!("{what}: {name} is not flare_ and snake case"));
            }
            if what == "0.0.4" {
                if (kind == "counter") != name.ends_with("_total") {
                    problems.push(format!("{name} ({kind}): _total is for counters only"));
                }
                if kind == "histogram" && !name.ends_with("_seconds") {
                    problems.push(format!("{name}: a histogram not in seconds"));
                }
                if !docs.contains(&format!("`{name}`")) {
                    problems.push(format!("{name} is not documented"));
                }
            }
        }
        if seen.is_empty() {
            problems.push(format!("{what}: no metric at all"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::collector::Collector;

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let mut f = Families::new(encoder);
            f.counter("things", "Things seen.", 3)?;
            f.counters(
                "requests",
                "Requests.",
                &[([("command", "get"), ("outcome", "hit")], 2u64)],
            )?;
            f.gauges::<[(&str, &str); 1]>("empty", "Never written.", &[])?;
            let h = Histogram::default();
            h.observe(Duration::from_micros(30));
            h.observe(Duration::from_millis(3));
            h.observe(Duration::from_secs(20));
            f.histograms(
                "latency_seconds",
                "Latency.",
                &[([("class", "local_read")], &h)],
            )
        }
    }

    fn fixed() -> Registry {
        let mut r = registry();
        r.register_collector(Box::new(Fixed));
        r
    }

    #[test]
    fn classic_text_format_by_default() {
        let (kind, body) = render(&fixed(), "text/plain;version=0.0.4;q=0.5,*/*;q=0.1");
        assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            body.contains("# TYPE flare_things_total counter\nflare_things_total 3\n"),
            "{body}"
        );
        assert!(
            body.contains("flare_requests_total{command=\"get\",outcome=\"hit\"} 2\n"),
            "{body}"
        );
        assert!(!body.contains("flare_empty"), "{body}");
        assert!(!body.contains("# EOF"), "{body}");
        // buckets are cumulative; the 20 s observation only in +Inf
        assert!(
            body.contains("flare_latency_seconds_bucket{class=\"local_read\",le=\"5e-05\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("flare_latency_seconds_bucket{class=\"local_read\",le=\"0.005\"} 2\n"),
            "{body}"
        );
        assert!(
            body.contains("flare_latency_seconds_bucket{class=\"local_read\",le=\"10\"} 2\n"),
            "{body}"
        );
        assert!(
            body.contains("flare_latency_seconds_bucket{class=\"local_read\",le=\"+Inf\"} 3\n"),
            "{body}"
        );
        assert!(
            body.contains("flare_latency_seconds_count{class=\"local_read\"} 3\n"),
            "{body}"
        );
    }

    #[test]
    fn openmetrics_when_asked() {
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let (kind, body) = render(&fixed(), accept);
        assert_eq!(kind, OPENMETRICS);
        assert!(
            body.contains("# TYPE flare_things counter\nflare_things_total 3\n"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[test]
    fn endpoint_options() {
        assert_eq!(endpoint("0.0.0.0", 0).ok(), Some(None));
        assert_eq!(
            endpoint("127.0.0.1", 9122).ok().flatten(),
            Some("127.0.0.1:9122".parse().expect("addr"))
        );
        assert!(matches!(
            endpoint("localhost", 9122),
            Err(MetricsError::Address(_))
        ));
        assert!(matches!(
            endpoint("::", 70000),
            Err(MetricsError::Port(70000))
        ));
    }

    #[test]
    fn naming_rules_catch_bad_names() {
        let docs = "`flare_things_total` `flare_requests_total` `flare_latency_seconds`";
        assert_eq!(check_names(&fixed(), docs), Vec::<String>::new());
        let problems = check_names(&fixed(), "`flare_things_total`");
        assert_eq!(
            problems,
            vec![
                "flare_requests_total is not documented".to_string(),
                "flare_latency_seconds is not documented".to_string()
            ]
        );
        #[derive(Debug)]
        struct Clash;
        impl Collector for Clash {
            fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                let mut f = Families::new(encoder);
                f.gauge("conns", "Open.", 1.0)?;
                f.counter("conns", "Accepted.", 1)?;
                f.gauge("BadName", "Bad.", 1.0)
            }
        }
        let mut r = registry();
        r.register_collector(Box::new(Clash));
        let problems = check_names(&r, "`flare_conns` `flare_conns_total` `flare_BadName`");
        assert!(
            problems.contains(&"OpenMetrics: flare_conns twice".to_string()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"0.0.4: flare_BadName is not flare_ and snake case".to_string()),
            "{problems:?}"
        );
    }

    #[test]
    fn histogram_counts_and_sum() {
        let h = Histogram::default();
        for ms in [1, 2, 3] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 3);
        assert_eq!(h.totals().1, 6_000_000);
        // observations from other threads land in other shards, all counted
        std::thread::scope(|t| {
            for _ in 0..4 {
                t.spawn(|| h.observe(Duration::from_millis(1)));
            }
        });
        assert_eq!(h.count(), 7);
        assert_eq!(h.totals().1, 10_000_000);
    }
}
