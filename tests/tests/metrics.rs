//! The Prometheus endpoint (`metrics-port`) of both daemons, end to end:
//! the values on `/metrics` move as the traffic says (counts exact where
//! they can be), the format follows the scraper's `Accept` header, a whole
//! cluster's figures (forwarding, replication, the index's monitor and a
//! failover) are right, and Debian's real Prometheus scrapes an index and
//! two nodes and answers queries over them; `promtool check metrics` is
//! clean on every endpoint. Prometheus and promtool come from
//! `scripts/install-deps.sh`; the test fails, rather than skips, without them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flare_e2e::{free_port, run_bounded, wait_until, Cluster, Flared, Flarei, FAST_MONITOR, WAIT};

/// One HTTP exchange: (status line, headers, body).
fn http(port: u16, path: &str, accept: Option<&str>) -> (String, String, String) {
    try_http(port, path, accept).unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"))
}

/// [`http`], or why it failed (no connection, no complete answer).
fn try_http(
    port: u16,
    path: &str,
    accept: Option<&str>,
) -> std::io::Result<(String, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {raw:?}")))?;
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((status.to_string(), headers.to_lowercase(), body.to_string()))
}

/// The samples of a scrape in the classic text format: series -> value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let (status, _, body) = http(port, "/metrics", None);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            let v = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l}")),
            };
            (series.to_string(), v)
        })
        .collect()
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// `value` after minus before.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

fn metrics_conf(port: u16) -> String {
    format!("metrics-port = {port}\nmetrics-address = 127.0.0.1\n")
}

#[test]
fn a_nodes_metrics_move_with_its_traffic() {
    let mport = free_port();
    let conf = format!("{}max-item-size = 1000\n", metrics_conf(mport));
    let node = Flared::start_with(&conf, &[]);
    let before = scrape(mport);
    assert_eq!(value(&before, "flare_storage_items"), 0.0);
    let mut c = node.connect();
    for k in ["a", "b", "c"] {
        c.expect(format!("set {k} 0 0 1\r\nx\r\n").as_bytes(), b"STORED\r\n");
    }
    c.expect(b"set n 0 0 1\r\n5\r\n", b"STORED\r\n");
    c.send(b"set d 0 0 1 noreply\r\ny\r\n");
    c.expect(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    c.expect(
        b"get a b\r\n",
        b"VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\nx\r\nEND\r\n",
    );
    c.expect(b"get zz\r\n", b"END\r\n");
    c.expect(b"add a 0 0 1\r\nz\r\n", b"NOT_STORED\r\n");
    c.expect(b"delete c\r\n", b"DELETED\r\n");
    c.expect(b"delete c\r\n", b"NOT_FOUND\r\n");
    c.expect(b"incr n 2\r\n", b"7\r\n");
    c.expect(b"bogus\r\n", b"ERROR\r\n");
    c.expect(b"mg a v\r\n", b"VA 1\r\nx\r\n");
    // answered by the connection loop, not a command: counted as `other`
    let mut big = b"set big 0 0 2000\r\n".to_vec();
    big.extend_from_slice(&[b'x'; 2000]);
    big.extend_from_slice(b"\r\n");
    c.expect(&big, b"SERVER_ERROR object too large for cache\r\n");
    let after = scrape(mport);

    let req = |cmd: &str, outcome: &str| {
        delta(
            &before,
            &after,
            &format!("flare_requests_total{{command=\"{cmd}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(req("set", "stored"), 4.0);
    assert_eq!(req("set", "noreply"), 1.0);
    assert_eq!(req("get", "hit"), 2.0);
    assert_eq!(req("get", "miss"), 1.0);
    assert_eq!(req("add", "not_stored"), 1.0);
    assert_eq!(req("delete", "deleted"), 1.0);
    assert_eq!(req("delete", "not_found"), 1.0);
    assert_eq!(req("incr", "ok"), 1.0);
    assert_eq!(req("other", "error"), 1.0);
    assert_eq!(req("mg", "hit"), 1.0);
    assert_eq!(req("other", "server_error"), 1.0);
    // a command seen has its error series, at 0, before any error
    assert_eq!(
        after.get("flare_requests_total{command=\"set\",outcome=\"server_error\"}"),
        Some(&0.0)
    );
    assert_eq!(
        after.get("flare_requests_total{command=\"touch\",outcome=\"server_error\"}"),
        None
    );
    let keys = |o: &str| {
        delta(
            &before,
            &after,
            &format!("flare_get_keys_total{{outcome=\"{o}\"}}"),
        )
    };
    assert_eq!(keys("hit"), 4.0, "get a, get a b, mg a");
    assert_eq!(keys("miss"), 1.0);
    let count = |class: &str| {
        delta(
            &before,
            &after,
            &format!("flare_request_duration_seconds_count{{class=\"{class}\"}}"),
        )
    };
    assert_eq!(count("local_write"), 9.0, "5 sets, add, 2 deletes, incr");
    assert_eq!(count("local_read"), 4.0, "3 gets and an mg");
    assert_eq!(count("proxied_read") + count("proxied_write"), 0.0);
    // every observation is in the +Inf bucket; the sum is positive
    assert_eq!(
        delta(
            &before,
            &after,
            "flare_request_duration_seconds_bucket{class=\"local_write\",le=\"+Inf\"}"
        ),
        9.0
    );
    assert!(
        value(
            &after,
            "flare_request_duration_seconds_sum{class=\"local_write\"}"
        ) > 0.0
    );
    assert_eq!(value(&after, "flare_storage_items"), 4.0, "a b d n");
    assert!(delta(&before, &after, "flare_received_bytes_total") > 100.0);
    assert!(delta(&before, &after, "flare_sent_bytes_total") > 50.0);
    assert!(value(&after, "flare_connections") >= 1.0);
    assert!(delta(&before, &after, "flare_connections_accepted_total") >= 1.0);
    assert_eq!(value(&after, "flare_connections_refused_total"), 0.0);
    // a standalone node: master of partition 0
    let info: Vec<&String> = after
        .keys()
        .filter(|k| k.starts_with("flare_node_info{"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(
        info[0].contains("role=\"master\",state=\"active\",partition=\"0\""),
        "{info:?}"
    );
    assert_eq!(
        value(&after, "flare_reconstruction_state{state=\"idle\"}"),
        1.0
    );
    assert_eq!(value(&after, "flare_build_info{version=\"1.3.4\"}"), 1.0);
    assert!(value(&after, "flare_start_time_seconds") > 1.7e9);
    // the record cache answered the repeated reads of `a`
    assert!(value(&after, "flare_storage_record_cache_hits_total") >= 1.0);
    // RocksDB's counters are there (values depend on flushes)
    for m in [
        "flare_storage_sst_bytes",
        "flare_storage_live_data_bytes",
        "flare_storage_blob_bytes",
        "flare_storage_memtable_bytes",
        "flare_storage_block_cache_hits_total",
        "flare_storage_block_cache_misses_total",
        "flare_storage_write_stall_seconds_total",
    ] {
        assert!(after.contains_key(m), "{m} missing");
    }
    assert!(value(&after, "flare_storage_memtable_bytes") > 0.0);
}

#[test]
fn the_format_follows_the_accept_header() {
    let mport = free_port();
    let _node = Flared::start_with(&metrics_conf(mport), &[]);
    let (status, headers, body) = http(mport, "/metrics", None);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    assert!(
        body.contains("# TYPE flare_connections_accepted_total counter\n"),
        "{body}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    // what Prometheus 2.42 sends
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, headers, body) = http(mport, "/metrics", Some(accept));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{headers}"
    );
    assert!(
        body.contains("# TYPE flare_connections_accepted counter\n"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    // every family once (a gauge and a counter of one name would clash)
    let mut families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let n = families.len();
    families.sort_unstable();
    families.dedup();
    assert_eq!(families.len(), n, "a family name repeats: {body}");
    let (status, _, body) = http(mport, "/nope", None);
    assert_eq!(status, "HTTP/1.1 404 Not Found", "{body}");
    assert_eq!(body, "not found: metrics are at /metrics\n");
}

#[test]
fn refused_connections_and_bad_http_requests() {
    let mport = free_port();
    let conf = format!("{}max-connection = 2\n", metrics_conf(mport));
    let node = Flared::start_with(&conf, &[]);
    // the start's probe connection is gone
    wait_until("no connection open", WAIT, || {
        value(&scrape(mport), "flare_connections") == 0.0
    });
    let mut a = node.connect();
    let mut b = node.connect();
    for c in [&mut a, &mut b] {
        c.expect(b"version\r\n", b"VERSION flare-1.3.4\r\n");
    }
    // a third connection is closed at once, and counted
    let mut third = node.connect();
    third.expect_closed();
    wait_until("the refused connection counted", WAIT, || {
        value(&scrape(mport), "flare_connections_refused_total") == 1.0
    });
    assert_eq!(value(&scrape(mport), "flare_connections"), 2.0);
    // not HTTP, or not GET: an HTTP error; the endpoint and the node go on
    let mut s = TcpStream::connect(("127.0.0.1", mport)).expect("connect");
    s.write_all(b"\x80garbage\r\n\r\n").expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer:?}");
    let mut s = TcpStream::connect(("127.0.0.1", mport)).expect("connect");
    s.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 405 Method Not Allowed"),
        "{answer}"
    );
    assert!(
        answer.to_lowercase().contains("allow: get, head"),
        "{answer}"
    );
    a.expect(b"version\r\n", b"VERSION flare-1.3.4\r\n");
    assert_eq!(
        value(&scrape(mport), "flare_connections_refused_total"),
        1.0
    );
}

#[test]
fn a_bad_metrics_option_stops_the_start_with_one_line() {
    for (conf, want) in [
        (
            "metrics-port = 70000\n",
            "metrics-port 70000 is out of range",
        ),
        (
            "metrics-port = 9100\nmetrics-address = localhost\n",
            "metrics-address \"localhost\" is not an IP address",
        ),
    ] {
        let f = Flared::configure(conf, &[]);
        let out = run_bounded(f.command(), Duration::from_secs(30));
        assert!(!out.status.success(), "{conf}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{conf}: {err}");
    }
    // a port in use: refused at start, with the address
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let f = Flared::configure(&metrics_conf(port), &[]);
    let out = run_bounded(f.command(), Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// An index and three nodes (master, slave, proxy), each with an endpoint.
struct Monitored {
    c: Cluster,
    index_port: u16,
    ports: Vec<u16>,
}

const MASTER: usize = 0;
const SLAVE: usize = 1;
const PROXY: usize = 2;

fn monitored_cluster() -> Monitored {
    let index_port = free_port();
    let index = Flarei::start_with(&format!("{FAST_MONITOR}{}", metrics_conf(index_port)), &[]);
    let mut c = Cluster::with_index(index, "");
    let mut ports = Vec::new();
    for _ in 0..3 {
        let p = free_port();
        c.add_node(&metrics_conf(p));
        ports.push(p);
    }
    c.first_master(MASTER);
    c.add_slave(SLAVE, 1, 0, WAIT);
    Monitored {
        c,
        index_port,
        ports,
    }
}

#[test]
fn a_clusters_forwarding_replication_and_index_figures() {
    let Monitored {
        mut c,
        index_port,
        ports,
    } = monitored_cluster();
    let (master, slave) = (c.key(MASTER), c.key(SLAVE));
    let before_proxy = scrape(ports[PROXY]);
    let before_master = scrape(ports[MASTER]);
    let mut p = c.conn(PROXY);
    for i in 0..10 {
        p.expect(
            format!("set key{i} 0 0 2\r\nv{i}\r\n").as_bytes(),
            b"STORED\r\n",
        );
    }
    p.expect(b"get key1\r\n", b"VALUE key1 0 2\r\nv1\r\nEND\r\n");

    // the proxy forwarded them
    let after = scrape(ports[PROXY]);
    let class = |m: &HashMap<String, f64>, class: &str| {
        value(
            m,
            &format!("flare_request_duration_seconds_count{{class=\"{class}\"}}"),
        )
    };
    assert_eq!(
        class(&after, "proxied_write") - class(&before_proxy, "proxied_write"),
        10.0
    );
    assert!(class(&after, "proxied_read") - class(&before_proxy, "proxied_read") >= 1.0);
    assert_eq!(
        class(&after, "local_write"),
        class(&before_proxy, "local_write")
    );
    let fwd = |m: &HashMap<String, f64>, what: &str, peer: &str| {
        value(m, &format!("flare_forward_{what}_total{{peer=\"{peer}\"}}"))
    };
    let to_master = fwd(&after, "requests", &master) - fwd(&before_proxy, "requests", &master);
    let to_slave = fwd(&after, "requests", &slave) - fwd(&before_proxy, "requests", &slave);
    // the sets to the master, the get to either
    assert_eq!(to_master + to_slave, 11.0, "{after:?}");
    assert!(to_master >= 10.0, "{after:?}");
    assert_eq!(fwd(&after, "errors", &master), 0.0);
    assert_eq!(fwd(&after, "timeouts", &master), 0.0);
    assert_eq!(
        value(
            &after,
            &format!("flare_forward_in_flight{{peer=\"{master}\"}}")
        ),
        0.0
    );
    assert!(after
        .keys()
        .any(|k| k.starts_with("flare_node_info{") && k.contains("role=\"proxy\"")));

    // the master stored them and replicated every one to the slave
    let acks = format!("flare_replication_acks_total{{slave=\"{slave}\"}}");
    wait_until("the slave's acknowledgements", WAIT, || {
        value(&scrape(ports[MASTER]), &acks) - value(&before_master, &acks) == 10.0
    });
    let m = scrape(ports[MASTER]);
    assert_eq!(
        value(
            &m,
            "flare_requests_total{command=\"set\",outcome=\"stored\"}"
        ) - value(
            &before_master,
            "flare_requests_total{command=\"set\",outcome=\"stored\"}"
        ),
        10.0
    );
    for series in [
        format!("flare_replication_queue_writes{{slave=\"{slave}\"}}"),
        format!("flare_replication_queue_bytes{{slave=\"{slave}\"}}"),
        format!("flare_replication_lag_seconds{{slave=\"{slave}\"}}"),
        format!("flare_replication_failures_total{{slave=\"{slave}\"}}"),
        format!("flare_replication_dropped_total{{slave=\"{slave}\"}}"),
    ] {
        assert_eq!(m.get(&series), Some(&0.0), "{series}: {m:?}");
    }
    assert!(m.keys().any(|k| k.starts_with("flare_node_info{")
        && k.contains("role=\"master\",state=\"active\",partition=\"0\"")));
    let version = c.conn(MASTER).map_version() as f64;
    assert_eq!(value(&m, "flare_node_map_version"), version);
    // the slave copied the partition when it joined
    let s = scrape(ports[SLAVE]);
    assert_eq!(
        value(&s, "flare_reconstruction_state{state=\"done\"}"),
        1.0,
        "{s:?}"
    );
    assert_eq!(
        value(&s, "flare_reconstruction_state{state=\"running\"}"),
        0.0
    );
    wait_until("the slave's 10 records", WAIT, || {
        value(&scrape(ports[SLAVE]), "flare_storage_items") == 10.0
    });

    // the index: the map, pings, syncs
    let i = scrape(index_port);
    let nodes = |m: &HashMap<String, f64>, role: &str, state: &str| {
        value(
            m,
            &format!("flare_index_nodes{{role=\"{role}\",state=\"{state}\"}}"),
        )
    };
    assert_eq!(nodes(&i, "master", "active"), 1.0);
    assert_eq!(nodes(&i, "slave", "active"), 1.0);
    assert_eq!(nodes(&i, "proxy", "active"), 1.0);
    assert_eq!(nodes(&i, "master", "down"), 0.0);
    assert_eq!(value(&i, "flare_index_node_map_version"), version);
    assert_eq!(value(&i, "flare_index_node_map_saves_total"), version);
    assert_eq!(value(&i, "flare_index_failovers_total"), 0.0);
    for k in [&master, &slave] {
        let s = format!("flare_index_node_syncs_total{{node=\"{k}\"}}");
        assert!(value(&i, &s) >= 1.0, "{s}: {i:?}");
    }
    let pings = format!("flare_index_pings_total{{node=\"{master}\"}}");
    wait_until("a ping to the master", WAIT, || {
        value(&scrape(index_port), &pings) >= 1.0
    });
    let i = scrape(index_port);
    let rtt = value(
        &i,
        &format!("flare_index_ping_duration_seconds{{node=\"{master}\"}}"),
    );
    assert!(rtt > 0.0 && rtt < 5.0, "{rtt}");

    // a failover: the master dies, the slave takes over
    c.nodes[MASTER].kill9();
    wait_until("the failover", Duration::from_secs(30), || {
        value(&scrape(index_port), "flare_index_failovers_total") == 1.0
    });
    let i = scrape(index_port);
    assert_eq!(
        nodes(&i, "master", "active"),
        1.0,
        "the slave is the master"
    );
    assert_eq!(nodes(&i, "slave", "active"), 0.0);
    assert!(
        value(
            &i,
            &format!("flare_index_ping_failures_total{{node=\"{master}\"}}")
        ) >= 1.0
    );
    wait_until("the new master's info", WAIT, || {
        scrape(ports[SLAVE])
            .keys()
            .any(|k| k.starts_with("flare_node_info{") && k.contains("role=\"master\""))
    });
}

/// Debian's `prometheus`, on a loopback port, scraping `targets` every
/// second, its data in `dir`.
fn start_prometheus(dir: &Path, port: u16, index: u16, nodes: &[u16]) -> Child {
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("'127.0.0.1:{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conf = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: flare-index\n    static_configs:\n      - targets: [{}]\n  - job_name: flare-nodes\n    static_configs:\n      - targets: [{}]\n",
        list(&[index]),
        list(nodes)
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, conf).expect("write prometheus.yml");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    Command::new("prometheus")
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus (Debian package prometheus; scripts/install-deps.sh installs it)")
}

/// The result vector of an instant query: (labels as text, value).
fn query(port: u16, q: &str) -> Vec<(String, String)> {
    let encoded: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, _, body) = http(port, &format!("/api/v1/query?query={encoded}"), None);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("\"status\":\"success\""), "{body}");
    // each result is {"metric":{...},"value":[t,"v"]}
    body.split("{\"metric\":")
        .skip(1)
        .map(|r| {
            let labels = r.split('}').next().unwrap_or("").to_string();
            let v = r
                .split("\"value\":[")
                .nth(1)
                .and_then(|x| x.split('"').nth(1))
                .unwrap_or("")
                .to_string();
            (labels, v)
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_the_cluster_and_promtool_is_clean() {
    let Monitored {
        c,
        index_port,
        ports,
    } = monitored_cluster();
    let mut p = c.conn(PROXY);
    for i in 0..5 {
        p.expect(format!("set k{i} 0 0 1\r\nv\r\n").as_bytes(), b"STORED\r\n");
    }
    // promtool's lint over every endpoint, in both formats' classic form
    for port in [index_port, ports[MASTER], ports[SLAVE], ports[PROXY]] {
        let (_, _, body) = http(port, "/metrics", None);
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool (Debian package prometheus)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("feed promtool");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics on port {port}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let mut prom = start_prometheus(dir.path(), prom_port, index_port, &ports);
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    // listening, then ready (it answers 503 until then), then scraped all
    let up = || {
        try_http(prom_port, "/-/ready", None).is_ok_and(|r| r.0 == "HTTP/1.1 200 OK")
            && query(prom_port, "up == 1").len() == 4
    };
    wait_until(
        "prometheus to scrape the 4 targets",
        Duration::from_secs(90),
        || {
            if let Ok(Some(status)) = prom.try_wait() {
                panic!("prometheus exited ({status}): {}", log());
            }
            up()
        },
    );
    // the proxy's 5 sets, executed by the master
    let stored = query(
        prom_port,
        &format!(
            "flare_requests_total{{job=\"flare-nodes\",instance=\"127.0.0.1:{}\",command=\"set\",outcome=\"stored\"}}",
            ports[MASTER]
        ),
    );
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, "5", "{stored:?}");
    let lag = query(prom_port, "flare_replication_lag_seconds");
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert!(
        lag[0]
            .0
            .contains(&format!("\"slave\":\"{}\"", c.key(SLAVE))),
        "{lag:?}"
    );
    assert_eq!(lag[0].1, "0");
    let nodes = query(prom_port, "sum(flare_index_nodes)");
    assert_eq!(nodes.first().map(|n| n.1.as_str()), Some("3"), "{nodes:?}");
    let _ = prom.kill();
    let _ = prom.wait();
}
