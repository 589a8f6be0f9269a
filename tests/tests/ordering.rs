//! Forwarding through a proxy keeps order and never deadlocks: a cluster of
//! an index, a master A of partition 0 and a proxy B that forwards every
//! request to A.
//!
//! * `noreply` writes forwarded by B apply in the order of the client's
//!   connection, and before the requests that follow them on it.
//! * B's pooled connection to A reads while it writes (full duplex): large
//!   sets and large get replies sharing one connection do not wait for each
//!   other until `proxy-timeout`.

use std::time::{Duration, Instant};

use flare_e2e::{Cluster, Conn, LoadClient, WAIT};

/// Index (default monitoring), A = node 0 (master of partition 0),
/// B = node 1 (proxy, with `proxy_conf`); every node knows the map.
fn proxy_cluster(proxy_conf: &str) -> Cluster {
    let mut c = Cluster::start_with("", "", 0);
    let a = c.add_node("");
    c.first_master(a);
    let b = c.add_node(proxy_conf);
    assert_eq!((a, b), (0, 1));
    c.wait_converged(WAIT);
    c
}

/// Read one `get <key>` reply: `Some(value)` or `None` on a miss.
fn read_get_reply(c: &mut Conn, key: &str) -> Option<Vec<u8>> {
    let line = c.read_line();
    if line == "END\r\n" {
        return None;
    }
    let f: Vec<&str> = line
        .trim_end_matches("\r\n")
        .strip_prefix("VALUE ")
        .unwrap_or_else(|| panic!("get {key}: unexpected line {line:?}"))
        .split(' ')
        .collect();
    assert_eq!(f.first(), Some(&key), "get {key}: {line:?}");
    let len: usize = f
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("get {key}: bad VALUE line {line:?}"));
    let mut data = c.read_exact(len + 2);
    assert_eq!(&data[len..], b"\r\n", "get {key}: data trailer");
    data.truncate(len);
    assert_eq!(c.read_line(), "END\r\n", "get {key}: END");
    Some(data)
}

/// B1: on one connection to the proxy, pipelined `noreply` sets of 300 keys
/// (values a, b, c, d, then z) each followed by a `get`: every get answers
/// `z`. Then, one at a time, `set ... noreply` immediately followed by
/// `get` returns the value just set.
#[test]
fn b1_forwarded_noreply_writes_keep_connection_order() {
    const KEYS: usize = 300;
    let c = proxy_cluster("");
    let mut b = c.conn(1);
    b.in_sync();
    let mut req = Vec::new();
    for i in 0..KEYS {
        for v in ["a", "b", "c", "d", "z"] {
            req.extend_from_slice(format!("set k{i} 0 0 1 noreply\r\n{v}\r\n").as_bytes());
        }
        req.extend_from_slice(format!("get k{i}\r\n").as_bytes());
    }
    b.send(&req);
    let mut pipelined = Vec::new();
    for i in 0..KEYS {
        let key = format!("k{i}");
        let got = read_get_reply(&mut b, &key);
        if got.as_deref() != Some(b"z".as_slice()) {
            pipelined.push(format!(
                "{key}={:?}",
                got.map(|v| String::from_utf8_lossy(&v).into_owned())
            ));
        }
    }
    b.in_sync();

    // set noreply, then get, one pair at a time
    let mut paired = Vec::new();
    for j in 0..200 {
        let v = format!("v{j}");
        b.send(format!("set s 0 0 {} noreply\r\n{v}\r\nget s\r\n", v.len()).as_bytes());
        let got = read_get_reply(&mut b, "s");
        if got.as_deref() != Some(v.as_bytes()) {
            paired.push(format!(
                "{v}: got {:?}",
                got.map(|g| String::from_utf8_lossy(&g).into_owned())
            ));
        }
    }
    b.in_sync();
    assert!(
        pipelined.is_empty() && paired.is_empty(),
        "{} of {KEYS} gets after pipelined noreply sets did not see the last value z: {:?}\n\
         {} of 200 gets right after a noreply set did not return it: {:?}",
        pipelined.len(),
        &pipelined[..pipelined.len().min(10)],
        paired.len(),
        &paired[..paired.len().min(10)]
    );
    // and A holds z everywhere (nothing applied late)
    let mut a = c.conn(0);
    for i in 0..KEYS {
        assert_eq!(
            a.get(&format!("k{i}")),
            Some((0, b"z".to_vec())),
            "k{i} on A"
        );
    }
}

/// The 8 MiB value of key `key` (a pattern that differs per key and offset).
fn big_value(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'!' + ((i as u64 * 7 + seed as u64 * 13) % 90) as u8)
        .collect()
}

/// B2: with `proxy-concurrency = 1` on the proxy (one pooled connection to
/// A), 3 threads set 8 MiB values and 3 threads get 8 MiB values through it
/// at the same time, 20 operations each: every set is `STORED` and every get
/// returns the whole value (no `SERVER_ERROR proxy error`, no miss). A
/// thread stops at its first failure.
#[test]
fn b2_forwarding_connection_is_full_duplex() {
    const LEN: usize = 8 << 20;
    const SETTERS: u8 = 3;
    const GETTERS: u8 = 3;
    const OPS: usize = 20;
    let c = proxy_cluster("proxy-concurrency = 1\n");
    let b_port = c.port(1);
    // the values the getters read, stored directly on A
    let mut a = c.conn(0);
    let gets: Vec<Vec<u8>> = (0..GETTERS).map(|g| big_value(100 + g, LEN)).collect();
    for (g, v) in gets.iter().enumerate() {
        a.set(&format!("g{g}"), 0, v);
    }
    let sets: Vec<Vec<u8>> = (0..SETTERS).map(|s| big_value(s, LEN)).collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let op_timeout = Duration::from_secs(60);

    let failures: Vec<String> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for s in 0..SETTERS {
            let value = &sets[s as usize];
            handles.push(scope.spawn(move || {
                let mut errs = Vec::new();
                let mut cl = match LoadClient::connect(b_port, op_timeout) {
                    Ok(cl) => cl,
                    Err(e) => return vec![format!("setter {s}: connect: {e}")],
                };
                for n in 0..OPS {
                    if Instant::now() > deadline {
                        errs.push(format!("setter {s}: deadline passed after {n} sets"));
                        break;
                    }
                    let t = Instant::now();
                    match cl.set(&format!("s{s}"), value, "") {
                        Ok(l) if l == "STORED" => {}
                        Ok(l) => {
                            errs.push(format!(
                                "setter {s}, set {n}: {l:?} after {:?}",
                                t.elapsed()
                            ));
                            break;
                        }
                        Err(e) => {
                            errs.push(format!("setter {s}, set {n}: {e} after {:?}", t.elapsed()));
                            break;
                        }
                    }
                }
                errs
            }));
        }
        for g in 0..GETTERS {
            let want = &gets[g as usize];
            handles.push(scope.spawn(move || {
                let mut errs = Vec::new();
                let mut cl = match LoadClient::connect(b_port, op_timeout) {
                    Ok(cl) => cl,
                    Err(e) => return vec![format!("getter {g}: connect: {e}")],
                };
                for n in 0..OPS {
                    if Instant::now() > deadline {
                        errs.push(format!("getter {g}: deadline passed after {n} gets"));
                        break;
                    }
                    let t = Instant::now();
                    match cl.get(&format!("g{g}")) {
                        Ok(Some(v)) if v == *want => {}
                        Ok(Some(v)) => {
                            errs.push(format!(
                                "getter {g}, get {n}: wrong value of {} bytes after {:?}",
                                v.len(),
                                t.elapsed()
                            ));
                            break;
                        }
                        Ok(None) => {
                            errs.push(format!("getter {g}, get {n}: miss after {:?}", t.elapsed()));
                            break;
                        }
                        Err(e) => {
                            errs.push(format!("getter {g}, get {n}: {e} after {:?}", t.elapsed()));
                            break;
                        }
                    }
                }
                errs
            }));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failed operations through the proxy with one pooled connection: {:?}\nproxy log:\n{}",
        failures.len(),
        &failures[..failures.len().min(20)],
        tail(&c.log(1), 2000)
    );
    // the last set of each setter is on A
    for (s, v) in sets.iter().enumerate() {
        let (_, got) = a.get(&format!("s{s}")).expect("set value on A");
        assert!(got == *v, "s{s} on A");
    }
}

/// The last `n` bytes of a log, for failure messages.
fn tail(log: &str, n: usize) -> &str {
    let mut start = log.len().saturating_sub(n);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}
