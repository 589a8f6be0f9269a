//! Resource bounds: memory per connection whatever the request (a huge
//! multi-key `get`, declared-but-unsent data blocks, a long `node sync`, an
//! absurd node balance), a client that stops reading a `dump`, and an accept
//! loop that runs out of file descriptors.
//!
//! Every test that could make a faulty server eat the machine's memory runs a
//! [`Watchdog`]: a thread samples `/proc/<pid>/status` every 20 ms, records the
//! maximum `VmRSS` / `VmSize`, and SIGKILLs the server as soon as a hard cap is
//! exceeded, so that the test fails fast instead of taking the machine down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flare_e2e::{
    bin_path, connect_served, rec, signal, wait_until, Cluster, Conn, Flared, ROLE_FAILED, WAIT,
};

/// `/proc` reports KiB.
const KIB_PER_MIB: u64 = 1024;

// ---------------------------------------------------------------------------
// Memory watchdog
// ---------------------------------------------------------------------------

/// `VmRSS` and `VmSize` of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss_kib: u64,
    vm_kib: u64,
}

/// `None` when the process is gone (or a zombie: no `Vm*` lines).
fn mem_of(pid: u32) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Mem {
        rss_kib: field("VmRSS:")?,
        vm_kib: field("VmSize:")?,
    })
}

#[derive(Default)]
struct WatchState {
    base: Mem,
    max: Mem,
    /// Why the watchdog killed the process.
    killed: Option<String>,
    /// The process disappeared (exited or was killed).
    gone: bool,
}

/// Samples a process's memory every 20 ms, keeps the maxima, and SIGKILLs it
/// when `VmRSS` or `VmSize` exceeds its cap. Stops when dropped (declare it
/// after the server handle so that it is dropped first).
struct Watchdog {
    label: String,
    pid: u32,
    state: Arc<Mutex<WatchState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Start watching `pid`; the baseline is its memory now.
    fn start(label: &str, pid: u32, rss_cap_mib: u64, vm_cap_mib: u64) -> Watchdog {
        let base = mem_of(pid).unwrap_or_else(|| panic!("{label} (pid {pid}) is not running"));
        let state = Arc::new(Mutex::new(WatchState {
            base,
            max: base,
            ..WatchState::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let name = label.to_string();
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                let Some(m) = mem_of(pid) else {
                    st.lock().unwrap_or_else(|e| e.into_inner()).gone = true;
                    return;
                };
                let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                s.max.rss_kib = s.max.rss_kib.max(m.rss_kib);
                s.max.vm_kib = s.max.vm_kib.max(m.vm_kib);
                let over = if m.rss_kib > rss_cap_mib * KIB_PER_MIB {
                    Some(format!(
                        "VmRSS {} MiB > cap {rss_cap_mib} MiB",
                        m.rss_kib / KIB_PER_MIB
                    ))
                } else if m.vm_kib > vm_cap_mib * KIB_PER_MIB {
                    Some(format!(
                        "VmSize {} MiB > cap {vm_cap_mib} MiB",
                        m.vm_kib / KIB_PER_MIB
                    ))
                } else {
                    None
                };
                if let Some(why) = over {
                    signal(pid, 9);
                    eprintln!("watchdog: killed {name} (pid {pid}): {why}");
                    s.killed = Some(why);
                    s.gone = true;
                    return;
                }
                drop(s);
                // the sampling period (this thread only measures)
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog {
            label: label.to_string(),
            pid,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Largest `VmRSS` growth over the baseline seen so far, in MiB.
    fn rss_growth_mib(&self) -> u64 {
        let s = self.lock();
        s.max.rss_kib.saturating_sub(s.base.rss_kib) / KIB_PER_MIB
    }

    /// Largest `VmSize` growth over the baseline seen so far, in MiB.
    fn vm_growth_mib(&self) -> u64 {
        let s = self.lock();
        s.max.vm_kib.saturating_sub(s.base.vm_kib) / KIB_PER_MIB
    }

    fn killed(&self) -> Option<String> {
        self.lock().killed.clone()
    }

    /// One line for failure messages.
    fn report(&self) -> String {
        let s = self.lock();
        format!(
            "{} (pid {}): baseline VmRSS {} MiB / VmSize {} MiB, max VmRSS {} MiB / VmSize {} MiB{}{}",
            self.label,
            self.pid,
            s.base.rss_kib / KIB_PER_MIB,
            s.base.vm_kib / KIB_PER_MIB,
            s.max.rss_kib / KIB_PER_MIB,
            s.max.vm_kib / KIB_PER_MIB,
            match &s.killed {
                Some(why) => format!("; KILLED BY THE WATCHDOG: {why}"),
                None => String::new(),
            },
            if s.gone && s.killed.is_none() {
                "; the process is gone"
            } else {
                ""
            }
        )
    }

    /// Fail the test if the watchdog had to kill the process.
    #[track_caller]
    fn assert_not_killed(&self) {
        assert!(self.killed().is_none(), "{}", self.report());
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pid of this test process's child whose command line has `arg` as one of
/// its arguments (flarei does not expose its pid).
fn child_pid_with_arg(arg: &Path) -> u32 {
    let me = std::process::id();
    let want = arg.as_os_str().to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.split(|&b| b == 0).any(|a| a == want.as_bytes()) {
            return pid;
        }
    }
    panic!("no child process with argument {want}");
}

/// Read one line (through LF) without panicking: `Err` describes EOF or error.
fn try_line(s: &mut TcpStream) -> Result<String, String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        if line.len() > 1 << 20 {
            return Err("no LF within 1 MiB".into());
        }
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            Ok(_) => {
                return Err(format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&line)
                ))
            }
            Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&line))),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Send a request and read its one-line answer without panicking.
fn try_request(port: u16, req: &[u8], timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.write_all(req).map_err(|e| format!("send: {e}"))?;
    try_line(&mut s)
}

/// `stats` as a lookup of numbers (absent or non-numeric values are 0).
fn stat_num(stats: &[(String, String)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// A1: a huge multi-key `get`
// ---------------------------------------------------------------------------

/// A1: one `get` line naming a 100 KiB key 200 000 times (a ~20 GB reply)
/// is streamed: the reply arrives complete (exact length) while the server's
/// RSS grows by less than 256 MiB. A server that builds the whole reply in
/// memory first is killed by the watchdog at 2 GiB.
#[test]
fn a1_huge_multi_get_reply_is_streamed() {
    const KEYS: u64 = 200_000;
    const VALUE: usize = 100 * 1024;
    let f = Flared::start();
    let mut c = f.connect();
    let value: Vec<u8> = (0..VALUE).map(|i| b'a' + (i % 26) as u8).collect();
    c.set("k", 0, &value);
    c.in_sync();
    let wd = Watchdog::start("flared", f.pid(), 2048, 64 * 1024);

    let header = format!("VALUE k 0 {VALUE}\r\n");
    let expected: u64 = KEYS * (header.len() as u64 + VALUE as u64 + 2) + b"END\r\n".len() as u64;
    let mut req = Vec::with_capacity(4 + 2 * KEYS as usize + 2);
    req.extend_from_slice(b"get");
    for _ in 0..KEYS {
        req.extend_from_slice(b" k");
    }
    req.extend_from_slice(b"\r\n");
    assert!(
        req.len() < 1 << 20,
        "the request line fits the default max line"
    );

    let mut s = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&req).expect("send the get");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    let mut head: Vec<u8> = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    while total < expected {
        assert!(
            Instant::now() < deadline,
            "reply incomplete after 600 s: {total} of {expected} bytes; {}",
            wd.report()
        );
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "connection closed after {total} of {expected} bytes; {}",
                wd.report()
            ),
            Ok(n) => {
                if head.len() < header.len() {
                    let want = (header.len() - head.len()).min(n);
                    head.extend_from_slice(&buf[..want]);
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 16 {
                    tail.drain(..tail.len() - 16);
                }
                total += n as u64;
            }
            Err(e) => panic!(
                "reading the reply after {total} of {expected} bytes: {e}; {}",
                wd.report()
            ),
        }
    }
    assert_eq!(total, expected, "reply length; {}", wd.report());
    assert_eq!(String::from_utf8_lossy(&head), header, "first VALUE line");
    assert!(
        tail.ends_with(b"\r\nEND\r\n"),
        "reply ends with END: {tail:?}"
    );
    wd.assert_not_killed();
    let growth = wd.rss_growth_mib();
    assert!(
        growth < 256,
        "VmRSS grew by {growth} MiB while serving the reply; {}",
        wd.report()
    );
    // the connection is still in sync and the server serves
    s.write_all(b"version\r\n").expect("send version");
    assert_eq!(
        try_line(&mut s).expect("version reply"),
        "VERSION flare-1.3.4\r\n"
    );
}

// ---------------------------------------------------------------------------
// A2: declared data blocks that never arrive
// ---------------------------------------------------------------------------

/// A2: 128 connections each send `set k<i> 0 0 67108864` (64 MiB declared)
/// and no data. Once the server has read all 128 lines, its VmSize has grown
/// by less than 2 GiB and its VmRSS by less than 256 MiB (nothing is reserved
/// for data that has not arrived).
#[test]
fn a2_declared_blocks_reserve_nothing() {
    const CONNS: usize = 128;
    let f = Flared::start_with("max-connection = 256", &[]);
    let mut st = f.connect();
    // warm-up: the first request on a connection allocates its buffers
    st.set("warm", 0, b"x");
    st.in_sync();
    let wd = Watchdog::start("flared", f.pid(), 2048, 64 * 1024);
    let stats = st.stats("");
    let base_read = stat_num(&stats, "bytes_read");
    let mut line_bytes: u64 = 0;
    let mut conns = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let mut s = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let line = format!("set k{i} 0 0 67108864\r\n");
        s.write_all(line.as_bytes()).expect("send set line");
        line_bytes += line.len() as u64;
        conns.push(s);
    }
    // Positive marker: the server has read every line (`bytes_read` also
    // counts the 7 bytes of each of our `stats` requests).
    let mut polls: u64 = 0;
    let mut last = (0u64, 0u64);
    wait_until("the server read the 128 set lines", WAIT, || {
        polls += 1;
        let s = st.stats("");
        last = (stat_num(&s, "bytes_read"), stat_num(&s, "curr_connections"));
        last.0 >= base_read + 7 * polls + line_bytes && last.1 > CONNS as u64
    });
    // measurement window after the positive marker above (every declaration
    // was read): the watchdog samples the server's memory meanwhile
    let window = Instant::now() + Duration::from_millis(500);
    while Instant::now() < window {
        std::thread::sleep(Duration::from_millis(20));
    }
    wd.assert_not_killed();
    let vm = wd.vm_growth_mib();
    let rss = wd.rss_growth_mib();
    assert!(
        vm < 2048,
        "VmSize grew by {vm} MiB for {CONNS} declared 64 MiB blocks (bytes_read {}, curr_connections {}); {}",
        last.0,
        last.1,
        wd.report()
    );
    assert!(rss < 256, "VmRSS grew by {rss} MiB; {}", wd.report());
    st.in_sync();
    drop(conns);
    // the data never came: nothing was stored
    wait_until("the 128 connections are gone", WAIT, || {
        stat_num(&st.stats(""), "curr_connections") == 1
    });
    st.in_sync();
    assert_eq!(st.get("k0"), None);
}

// ---------------------------------------------------------------------------
// A3: a long `node sync`
// ---------------------------------------------------------------------------

/// Reads the server's `bytes_read` counter over its own connection (through a
/// buffer: one round trip per call). The counter also counts the 7 bytes of
/// every `stats` request this probe sends; [`BytesReadProbe::others`]
/// subtracts them.
struct BytesReadProbe {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
    /// `bytes_read` at the first call minus that call's request.
    base: u64,
    /// `stats` requests sent so far.
    polls: u64,
}

impl BytesReadProbe {
    fn connect(port: u16) -> BytesReadProbe {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect probe");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let writer = s.try_clone().expect("clone");
        let mut p = BytesReadProbe {
            reader: std::io::BufReader::new(s),
            writer,
            base: 0,
            polls: 0,
        };
        p.base = p.raw() - 7;
        p
    }

    fn raw(&mut self) -> u64 {
        use std::io::BufRead;
        self.writer.write_all(b"stats\r\n").expect("send stats");
        self.polls += 1;
        let mut value = None;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).expect("stats line");
            assert!(n > 0, "stats: connection closed");
            if line == "END\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("STAT bytes_read ") {
                value = v.trim_end().parse::<u64>().ok();
            }
        }
        value.expect("STAT bytes_read")
    }

    /// Bytes the server has read from other connections since the probe
    /// connected.
    fn others(&mut self) -> u64 {
        let raw = self.raw();
        raw.saturating_sub(self.base + 7 * self.polls)
    }
}

/// A3: a `node sync` of 100 000 `NODE` lines (the node itself as master of
/// partition 0 and 99 999 proxies), sent one line per write, each write only
/// once the server has read the previous one (so that every read brings one
/// line: a parser that re-scans the whole body on every read is quadratic),
/// is answered `OK` within 120 s with bounded memory, and the server still
/// serves with the new map.
#[test]
fn a3_long_node_sync_is_parsed_in_linear_time() {
    const NODES: usize = 100_000;
    const VERSION: u64 = 7;
    let f = Flared::start();
    let mut c = f.connect();
    c.in_sync();
    drop(c);
    let wd = Watchdog::start("flared", f.pid(), 2048, 64 * 1024);

    let mut lines: Vec<String> = Vec::with_capacity(NODES + 2);
    lines.push(format!("node sync {VERSION}\r\n"));
    lines.push(format!("NODE 127.0.0.1 {} 0 0 0 1 16\r\n", f.port));
    for i in 1..NODES {
        // role 2 = proxy, state 0 = active, partition -1, balance 0;
        // `.invalid` names are never contacted (proxies are not forwarded to)
        lines.push(format!("NODE p{i}.invalid 12121 2 0 -1 0 {}\r\n", 16 + i));
    }
    lines.push("END\r\n".to_string());

    let mut probe = BytesReadProbe::connect(f.port);
    let limit = Duration::from_secs(120);
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut sent: u64 = 0;
    for (n, l) in lines.iter().enumerate() {
        s.set_write_timeout(Some(WAIT)).expect("timeout");
        if let Err(e) = s.write_all(l.as_bytes()) {
            panic!(
                "sending line {n} of {} after {:?}: {e}; {}",
                lines.len(),
                start.elapsed(),
                wd.report()
            );
        }
        sent += l.len() as u64;
        // the server has read this line before the next is sent
        loop {
            if probe.others() >= sent {
                break;
            }
            assert!(
                start.elapsed() < limit,
                "the server did not read the node sync within {limit:?}: {n} of {} lines read; {}",
                lines.len(),
                wd.report()
            );
        }
    }
    let all_read = start.elapsed();
    let left = limit
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).expect("timeout");
    let reply = try_line(&mut s).unwrap_or_else(|e| {
        panic!(
            "no reply to the node sync within {limit:?} (all lines read after {all_read:?}): {e}; {}",
            wd.report()
        )
    });
    let took = start.elapsed();
    assert_eq!(
        reply,
        "OK\r\n",
        "reply to the node sync after {took:?}; {}",
        wd.report()
    );
    wd.assert_not_killed();
    let rss = wd.rss_growth_mib();
    assert!(rss < 256, "VmRSS grew by {rss} MiB; {}", wd.report());
    // the server still serves, and took the new map
    let mut c = f.connect();
    c.expect(b"ping\r\n", b"OK\r\n");
    assert_eq!(c.stat("node_map_version"), VERSION.to_string());
    eprintln!("node sync of {NODES} lines: all read after {all_read:?}, OK after {took:?}");
}

// ---------------------------------------------------------------------------
// A4: the balance bound
// ---------------------------------------------------------------------------

/// A4 (index): `node role ... master 200000000 0` is refused with
/// `SERVER_ERROR failed to set role (and balance)` and changes nothing;
/// flarei keeps running; the documented maximum 65535 is accepted.
#[test]
fn a4_index_refuses_balance_above_maximum() {
    let mut c = Cluster::start(1);
    let flarei_pid = child_pid_with_arg(&c.index.conf);
    let wd_index = Watchdog::start("flarei", flarei_pid, 2048, 64 * 1024);
    let wd_node = Watchdog::start("flared", c.nodes[0].pid(), 2048, 64 * 1024);
    let tt = c.tt(0);
    let before = c.index_conn().map_version();

    let cmd = format!("node role {} master 200000000 0\r\n", c.name_port(0));
    let reply = try_request(c.index.port, cmd.as_bytes(), WAIT);
    assert_eq!(
        reply.as_deref(),
        Ok(format!("{ROLE_FAILED}\r\n").as_str()),
        "reply to {cmd:?}; {}; {}",
        wd_index.report(),
        wd_node.report()
    );
    wd_index.assert_not_killed();
    // flarei still serves, nothing changed
    let mut idx = c.index_conn();
    idx.expect(b"ping\r\n", b"OK\r\n");
    assert_eq!(c.record(0), Some(rec("proxy", "active", -1, 0, tt)));
    assert_eq!(idx.map_version(), before);

    // the documented maximum is accepted
    c.role_ok(0, "master 65535 0");
    c.wait_records(&[(0, rec("master", "active", 0, 65535, tt))], WAIT);
    c.wait_converged(WAIT);
    let mut n = c.conn(0);
    n.expect(b"ping\r\n", b"OK\r\n");
    n.set("x", 0, b"1");
    assert_eq!(n.get("x"), Some((0, b"1".to_vec())));
    wd_index.assert_not_killed();
    wd_node.assert_not_killed();
    assert!(
        wd_index.rss_growth_mib() < 256,
        "flarei memory; {}",
        wd_index.report()
    );
    assert!(
        wd_node.rss_growth_mib() < 256,
        "flared memory; {}",
        wd_node.report()
    );
}

/// A4 (node): a forged `node sync` whose `NODE` line has balance 200000000
/// is answered `CLIENT_ERROR format error` and flared keeps running with its
/// map unchanged.
#[test]
fn a4_node_sync_refuses_balance_above_maximum() {
    let f = Flared::start();
    let mut c = f.connect();
    c.in_sync();
    let wd = Watchdog::start("flared", f.pid(), 2048, 64 * 1024);
    let req = format!(
        "node sync 3\r\nNODE 127.0.0.1 {} 0 0 0 200000000 16\r\nEND\r\n",
        f.port
    );
    let reply = try_request(f.port, req.as_bytes(), WAIT);
    assert_eq!(
        reply.as_deref(),
        Ok("CLIENT_ERROR format error\r\n"),
        "reply to the forged node sync; {}",
        wd.report()
    );
    wd.assert_not_killed();
    let mut c = f.connect();
    c.expect(b"ping\r\n", b"OK\r\n");
    assert_eq!(c.stat("node_map_version"), "0", "the map is unchanged");
    // the maximum itself is fine
    let req = format!(
        "node sync 4\r\nNODE 127.0.0.1 {} 0 0 0 65535 16\r\nEND\r\n",
        f.port
    );
    c.expect(req.as_bytes(), b"OK\r\n");
    assert_eq!(c.stat("node_map_version"), "4");
    c.set("x", 0, b"1");
    assert_eq!(c.get("x"), Some((0, b"1".to_vec())));
    wd.assert_not_killed();
    assert!(wd.rss_growth_mib() < 256, "{}", wd.report());
}

// ---------------------------------------------------------------------------
// A5: a client that never reads its dump
// ---------------------------------------------------------------------------

/// A5: with `net-read-timeout = 2` (also the write timeout toward clients), a
/// client that sends `dump` and never reads ~30 MB of it is dropped within
/// 30 s; it received only part of the dump.
#[test]
fn a5_stalled_dump_reader_is_dropped() {
    const KEYS: usize = 300;
    const VALUE: usize = 100 * 1024;
    let f = Flared::start_with("net-read-timeout = 2", &[]);
    let mut c = f.connect();
    for i in 0..KEYS {
        let v = vec![b'a' + (i % 26) as u8; VALUE];
        c.set(&format!("d{i:04}"), 0, &v);
    }
    // the data alone (a whole dump is more)
    let full = (KEYS * VALUE) as u64;
    drop(c);

    let mut d = TcpStream::connect(("127.0.0.1", f.port)).expect("connect");
    d.set_nodelay(true).expect("nodelay");
    let peer = d.local_addr().expect("local_addr").to_string();
    d.write_all(b"dump\r\n").expect("send dump");

    // Positive marker: the server lists the dump connection.
    let mut mon = f.connect();
    wait_until("the dump connection in stats threads", WAIT, || {
        mon.threads().iter().any(|(_, fields)| {
            fields.iter().any(|(n, v)| n == "peer" && *v == peer)
                && fields.iter().any(|(n, v)| n == "op" && v == "dump")
        })
    });
    let took = wait_until(
        "the server to drop the connection that does not read its dump",
        Duration::from_secs(30),
        || mon.thread_id_of(&peer).is_none(),
    );
    eprintln!("stalled dump connection dropped after {took:?}");
    // the client got part of the dump, then the end of the stream
    d.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match d.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the dropped dump after {got} bytes: {e}"),
        }
        assert!(got < 4 * full, "more than a whole dump");
    }
    assert!(
        got < full,
        "the client received the whole dump ({got} bytes): the test did not stall the server"
    );
    mon.in_sync();
}

// ---------------------------------------------------------------------------
// A6: the accept loop at the file descriptor limit
// ---------------------------------------------------------------------------

/// Kills and reaps a child on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `<data-dir>/flared.stderr`, where [`Flared::log`] looks.
fn log_file(f: &Flared) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(f.dir.path().join("flared.stderr"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let rest = stat.rsplit_once(')').expect("comm").1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after the comm: state(0) ppid(1) ... utime(11) stime(12)
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Whether a new connection gets a `version` answer within `wait`; the
/// stream is returned either way (kept open by the caller).
fn try_served(port: u16, wait: Duration) -> (bool, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect (backlog)");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 21];
    let ok = s.write_all(b"version\r\n").is_ok()
        && s.read_exact(&mut buf).is_ok()
        && &buf == b"VERSION flare-1.3.4\r\n";
    (ok, s)
}

/// A6: flared started with `RLIMIT_NOFILE` 64: once its descriptors are used
/// up by client connections, pending connections in the backlog do not make
/// the accept loop spin (< 50% of a core over 2 s); once clients close, new
/// connections are served again.
#[test]
fn a6_accept_loop_does_not_spin_at_fd_limit() {
    let f = Flared::configure("max-connection = 1000", &[]);
    let child = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(bin_path("flared"))
        .arg("-f")
        .arg(&f.conf)
        .arg("--stderr")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(&f))
        .spawn()
        .expect("spawn prlimit flared");
    let mut child = ChildGuard(child);
    // prlimit execs flared: same pid
    let pid = child.0.id();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", f.port)).is_err() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("flared with 64 descriptors exited: {status}\n{}", f.log());
        }
        assert!(started.elapsed() < WAIT, "flared does not listen");
        // poll (with the deadline above) until it listens
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(connect_served(f.port));

    // use up the descriptors
    let mut served = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..200 {
        let (ok, s) = try_served(f.port, Duration::from_millis(1000));
        if ok {
            served.push(s);
        } else {
            pending.push(s);
            break;
        }
    }
    assert!(
        !pending.is_empty(),
        "200 connections were all served: the descriptor limit was not reached"
    );
    for _ in 0..8 {
        pending.push(TcpStream::connect(("127.0.0.1", f.port)).expect("connect (backlog)"));
    }
    // the served connections still work
    let mut first = Conn {
        stream: served.remove(0),
    };
    first.stream.set_read_timeout(Some(WAIT)).expect("timeout");
    first.in_sync();

    let hz = clock_ticks_per_second();
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid);
    // CPU measurement window, after the positive marker (descriptors used up,
    // connections pending in the backlog)
    let window = Duration::from_secs(2);
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_millis(50));
    }
    let c1 = cpu_ticks(pid);
    let secs = t0.elapsed().as_secs_f64();
    let share = (c1 - c0) as f64 / hz as f64 / secs;
    assert!(
        share < 0.5,
        "flared used {:.0}% of a core over {secs:.1} s with {} connections served and {} pending at the descriptor limit",
        share * 100.0,
        served.len() + 1,
        pending.len()
    );

    // after the clients close, a new connection is served again
    drop(first);
    drop(served);
    drop(pending);
    let mut c = connect_served(f.port);
    c.in_sync();
    assert!(
        matches!(child.0.try_wait(), Ok(None)),
        "flared is still running"
    );
}
