//! Administrative commands: `version`, `ping`, `verbosity`, `quit`,
//! `flush_all`, `stats` (all sub-commands), `show variables`, `kill`, `dump`,
//! `dump_key`, `keys`, `node sync`, the proxy identifier (protocol.md §13 …
//! §24, TV-36 … TV-45, TV-60, TV-61, TV-63 … TV-65) and cluster.md §4.3.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flare_e2e::{version, wait_until, Conn, DumpRecord, Flared, STANDALONE_EPOCH, WAIT};

/// The `n`-th version a key gets from writes without an explicit version on
/// a standalone node (epoch 1: 2^40 + n).
fn v(n: u64) -> u64 {
    version(STANDALONE_EPOCH, n)
}

/// TV-36 version / ping / verbosity / quit, with memcached 1.6's forms
/// (issue 11): `version <args>` answers, `verbosity noreply` is accepted
/// silently, `quit <args>` closes (1.3.4: ERROR, ERROR, ignored).
#[test]
fn tv36_version_ping_verbosity_quit() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > version
        < VERSION flare-1.3.4
        > version x
        < VERSION flare-1.3.4
        > version noreply
        < VERSION flare-1.3.4
        > ping
        < OK
        > ping x
        < ERROR
        > verbosity 1
        < OK
        ",
    );
    // nothing answered before the marker
    c.send(b"verbosity 1 noreply\r\nverbosity noreply\r\n");
    c.in_sync();
    c.transcript(
        "
        > verbosity
        < ERROR
        > verbosity 1 sync
        < ERROR
        > verbosity 1 bogus
        < ERROR
        > verbosity -3 async
        < OK
        > verbosity 1-2
        < ERROR
        ",
    );
    c.transcript(
        "
        > verbosity foo bar my
        < ERROR
        ",
    );
    // quit with an argument closes too
    c.send(b"quit x\r\n");
    c.expect_closed();
    let mut c = f.connect();
    c.send(b"quit\r\n");
    c.expect_closed();
    // requests pipelined after quit are not answered
    let mut c = f.connect();
    c.expect(
        b"version\r\nquit\r\nversion\r\n",
        b"VERSION flare-1.3.4\r\n",
    );
    c.expect_closed();
}

/// TV-37 flush_all.
#[test]
fn tv37_flush_all() {
    let f = Flared::start();
    let mut c = f.connect();
    c.set("a", 0, b"1");
    c.set("b", 0, b"2");
    c.transcript(
        "
        > flush_all
        < OK
        > get a b
        < END
        ",
    );
    c.set("a", 0, b"1");
    c.send(b"flush_all 10 noreply\r\n");
    c.expect_silence(200);
    c.transcript(
        "
        > get a
        < END
        > flush_all sync
        < ERROR
        > flush_all -5
        < OK
        > flush_all 0 async
        < OK
        > flush_all bogus
        < ERROR
        > flush_all 1-2
        < ERROR
        ",
    );
    assert_eq!(c.stat("curr_items"), "0");
}

/// TV-63 flush_all forgets tombstones: versions restart at the first version
/// of the epoch (2^40 + 1), not above the deleted record's.
#[test]
fn tv63_flush_all_forgets_tombstones() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(&format!(
        "
        > set fv 0 0 1
        > a
        < STORED
        > delete fv
        < DELETED
        > flush_all
        < OK
        > set fv 0 0 1
        > b
        < STORED
        > gets fv
        < VALUE fv 0 1 {}
        < b
        < END
        ",
        v(1)
    ));
    // and a delete hold is forgotten as well
    c.transcript(
        "
        > delete fv 1000
        < DELETED
        > add fv 0 0 1
        > c
        < NOT_STORED
        > flush_all
        < OK
        > add fv 0 0 1
        > c
        < STORED
        ",
    );
}

/// TV-38 stats sub-commands, with memcached's `settings`, `items`,
/// `slabs`, `sizes` and `cachedump` (issue 11; 1.3.4 answered them empty or
/// `ERROR`).
#[test]
fn tv38_stats_subcommands() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > stats items
        < END
        > stats sizes
        < STAT sizes_status disabled
        < END
        > stats cachedump 1 0
        < END
        > stats threads queue
        < STAT total_thread_queue 0
        < END
        > stats threads bogus
        < ERROR
        > stats reset
        < ERROR
        > stats detail on
        < ERROR
        > stats cachedump 1
        < ERROR
        > stats queue
        < ERROR
        > stats threads slave
        < END
        > stats items extra words
        < END
        ",
    );
    let slabs = c.stats("slabs");
    assert_eq!(slabs[0], ("active_slabs".to_string(), "0".to_string()));
    assert_eq!(slabs[1].0, "total_malloced");
    let settings = c.stats("settings");
    let get = |k: &str| {
        settings
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("maxconns"), Some("128"));
    assert_eq!(get("tcpport"), Some(f.port.to_string().as_str()));
    assert_eq!(get("cas_enabled"), Some("yes"));
    assert_eq!(get("evictions"), Some("off"));
    assert_eq!(get("item_size_max"), Some("67108864"));
    // with records: class 1 holds them all; cachedump lists keys from storage
    c.set("k1", 0, b"abc");
    c.set("k2", 0, b"defgh");
    c.transcript(
        "
        > set k3 0 100000 1
        > z
        < STORED
        ",
    );
    let items = c.stats("items");
    assert_eq!(items[0], ("items:1:number".to_string(), "3".to_string()));
    assert!(items
        .iter()
        .any(|(n, v)| n == "items:1:evicted" && v == "0"));
    let slabs = c.stats("slabs");
    assert!(slabs.contains(&("1:used_chunks".to_string(), "3".to_string())));
    assert!(slabs.contains(&("active_slabs".to_string(), "1".to_string())));
    c.send(b"stats cachedump 1 0\r\n");
    let mut lines = c.read_until("END\r\n");
    lines.sort();
    let exp = lines
        .iter()
        .find(|l| l.starts_with("ITEM k3 "))
        .and_then(|l| l.strip_prefix("ITEM k3 [1 b; "))
        .and_then(|l| l.strip_suffix(" s]\r\n"))
        .and_then(|t| t.parse::<i64>().ok())
        .expect("k3's line");
    assert!((exp - unix_now() - 100_000).abs() <= 2, "{lines:?}");
    assert_eq!(
        &lines[..3],
        [
            "END\r\n".to_string(),
            "ITEM k1 [3 b; 0 s]\r\n".to_string(),
            "ITEM k2 [5 b; 0 s]\r\n".to_string()
        ]
    );
    c.send(b"stats cachedump 1 2\r\n");
    assert_eq!(c.read_until("END\r\n").len(), 3);
    c.expect(b"stats cachedump 2 0\r\n", b"END\r\n");
}

const STATS_FIELDS: [&str; 35] = [
    "pid",
    "uptime",
    "time",
    "version",
    "pointer_size",
    "rusage_user",
    "rusage_system",
    "curr_items",
    "total_items",
    "bytes",
    "curr_connections",
    "total_connections",
    "connection_structures",
    "cmd_get",
    "cmd_set",
    "get_hits",
    "get_misses",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
    "cas_hits",
    "cas_misses",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "evictions",
    "bytes_read",
    "bytes_written",
    "limit_maxbytes",
    "threads",
    "pool_threads",
    "node_map_version",
];

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn value<'a>(s: &'a [(String, String)], name: &str) -> &'a str {
    s.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no stat {name}"))
}

fn num(s: &[(String, String)], name: &str) -> u64 {
    value(s, name)
        .parse()
        .unwrap_or_else(|_| panic!("stat {name} is not a number: {}", value(s, name)))
}

/// TV-39 stats: the field names in order, fixed values, and counters that move.
#[test]
fn tv39_stats_general() {
    let f = Flared::start();
    let mut c = f.connect();
    // the raw block: every line is `STAT <name> <value>`, then END
    c.send(b"stats\r\n");
    let lines = c.read_until("END\r\n");
    assert_eq!(lines.len(), STATS_FIELDS.len() + 1);
    for (line, name) in lines.iter().zip(STATS_FIELDS) {
        let prefix = format!("STAT {name} ");
        assert!(
            line.starts_with(&prefix) && line.ends_with("\r\n"),
            "{line:?} is not {name}"
        );
        let v = &line[prefix.len()..line.len() - 2];
        assert!(!v.is_empty() && !v.contains(' '), "{line:?}");
    }
    let s0 = c.stats("");
    let names: Vec<&str> = s0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, STATS_FIELDS);
    assert_eq!(value(&s0, "pid"), f.pid().to_string());
    assert_eq!(value(&s0, "version"), "1.3.4");
    assert_eq!(value(&s0, "pointer_size"), "64");
    for fixed in ["connection_structures", "evictions", "limit_maxbytes"] {
        assert_eq!(value(&s0, fixed), "0", "{fixed}");
    }
    assert_eq!(value(&s0, "node_map_version"), "0");
    for r in ["rusage_user", "rusage_system"] {
        let v = value(&s0, r);
        let (sec, usec) = v.split_once('.').unwrap_or_else(|| panic!("{r} = {v}"));
        assert!(
            sec.bytes().all(|b| b.is_ascii_digit()) && !sec.is_empty(),
            "{r} = {v}"
        );
        assert!(
            usec.len() == 6 && usec.bytes().all(|b| b.is_ascii_digit()),
            "{r} = {v}"
        );
    }
    let time: i64 = value(&s0, "time").parse().unwrap();
    assert!((time - unix_now()).abs() <= 2, "time {time}");
    assert!(num(&s0, "uptime") < 60);
    assert!(num(&s0, "curr_connections") >= 1);
    assert!(num(&s0, "total_connections") >= 1);
    for zero in [
        "curr_items",
        "total_items",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "touch_hits",
        "touch_misses",
    ] {
        assert_eq!(value(&s0, zero), "0", "{zero} on a fresh node");
    }

    // n: set = v(1), incr = v(2), decr = v(3)
    c.transcript(&format!(
        "
        > set a 0 0 1
        > 1
        < STORED
        > set n 0 0 1
        > 5
        < STORED
        > add a 0 0 1
        > 2
        < NOT_STORED
        > get a b a
        < VALUE a 0 1
        < 1
        < VALUE a 0 1
        < 1
        < END
        > gets n
        < VALUE n 0 1 {v1}
        < 5
        < END
        > delete a
        < DELETED
        > delete a
        < NOT_FOUND
        > incr n 2
        < 7
        > incr x 2
        < NOT_FOUND
        > decr n 1
        < 6
        > decr x 1
        < NOT_FOUND
        > decr x 1
        < NOT_FOUND
        > cas n 0 0 1 9
        > 1
        < EXISTS
        > cas x 0 0 1 1
        > 1
        < NOT_FOUND
        > cas n 0 0 1 {v3}
        > 1
        < STORED
        > touch n 100
        < TOUCHED
        > touch x 100
        < NOT_FOUND
        > gat n 100
        < VALUE n 0 1
        < 1
        > keys a n 10
        < KEY n
        < END
        ",
        v1 = v(1),
        v3 = v(3)
    ));
    let s1 = c.stats("");
    let expect = [
        // set, set, add, 3 cas, touch, touch, gat
        ("cmd_set", 9),
        // 3 keys of get, 1 of gets, 2 prefixes of keys
        ("cmd_get", 6),
        ("get_hits", 3),
        ("get_misses", 1),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 1),
        ("decr_misses", 2),
        ("cas_hits", 1),
        ("cas_misses", 1),
        ("cas_badval", 1),
        ("touch_hits", 1),
        ("touch_misses", 1),
        // set, set, cas
        ("total_items", 3),
        ("curr_items", 1),
    ];
    for (name, want) in expect {
        assert_eq!(num(&s1, name), want, "{name}");
    }
    assert!(num(&s1, "bytes_read") > num(&s0, "bytes_read"));
    assert!(num(&s1, "bytes_written") > num(&s0, "bytes_written"));
    // total_connections counts accepted connections, curr_connections live ones
    let before = num(&s1, "total_connections");
    let mut others: Vec<Conn> = (0..3).map(|_| f.connect()).collect();
    for o in &mut others {
        o.in_sync();
    }
    let s2 = c.stats("");
    assert_eq!(num(&s2, "total_connections"), before + 3);
    assert!(num(&s2, "curr_connections") >= 4);
    drop(others);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if c.stat("curr_connections") == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "curr_connections does not go back to 1"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `stats nodes` on a standalone node: master of partition 0.
#[test]
fn stats_nodes_standalone() {
    let f = Flared::start();
    let mut c = f.connect();
    let p = f.port;
    c.expect(
        b"stats nodes\r\n",
        format!(
            "STAT 127.0.0.1:{p}:role master\r\n\
             STAT 127.0.0.1:{p}:state active\r\n\
             STAT 127.0.0.1:{p}:partition 0\r\n\
             STAT 127.0.0.1:{p}:balance 1\r\n\
             STAT 127.0.0.1:{p}:thread_type 16\r\n\
             END\r\n"
        )
        .as_bytes(),
    );
}

const THREAD_FIELDS: [&str; 8] = [
    "type", "peer", "op", "uptime", "state", "info", "queue", "behind",
];

/// `stats threads`: eight lines per connection; the caller shows `op stats`,
/// `state execute`; another connection shows its last op and `state wait`.
#[test]
fn stats_threads() {
    let f = Flared::start();
    let mut other = f.connect();
    other.in_sync();
    let mut c = f.connect();
    // the other connection goes back to `wait` once its reply is written
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = c.threads();
        let waiting = t.iter().any(|(_, f)| {
            f.iter()
                .any(|(n, v)| n == "peer" && *v == other.local_addr())
                && f.iter().any(|(n, v)| n == "state" && v == "wait")
        });
        if waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "other connection never shown in state wait: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.send(b"stats threads\r\n");
    let lines = c.read_until("END\r\n");
    assert_eq!((lines.len() - 1) % 8, 0, "{lines:?}");
    for block in lines[..lines.len() - 1].chunks(8) {
        let id = block[0]
            .strip_prefix("STAT ")
            .and_then(|r| r.split_once(':'))
            .map(|(id, _)| id.to_string())
            .expect("STAT <id>:");
        for (line, field) in block.iter().zip(THREAD_FIELDS) {
            assert!(
                line.starts_with(&format!("STAT {id}:{field} ")),
                "{line:?} in {block:?}"
            );
        }
        // the info field is always empty: a trailing space before CRLF
        assert_eq!(block[5], format!("STAT {id}:info \r\n"));
    }
    let threads = c.threads();
    let me = c.local_addr();
    let find = |peer: &str| {
        threads
            .iter()
            .find(|(_, f)| f.iter().any(|(n, v)| n == "peer" && v == peer))
            .unwrap_or_else(|| panic!("no thread with peer {peer} in {threads:?}"))
            .clone()
    };
    let (my_id, mine) = find(&me);
    let get = |f: &[(String, String)], n: &str| f.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get(&mine, "type"), "1");
    assert_eq!(get(&mine, "op"), "stats");
    assert_eq!(get(&mine, "state"), "execute");
    assert_eq!(get(&mine, "info"), "");
    assert_eq!(get(&mine, "queue"), "0");
    assert_eq!(get(&mine, "behind"), "0");
    assert!(get(&mine, "uptime").parse::<u64>().unwrap() < 60);
    let (other_id, theirs) = find(&other.local_addr());
    assert_ne!(my_id, other_id);
    assert_eq!(get(&theirs, "type"), "1");
    assert_eq!(get(&theirs, "op"), "version");
    assert_eq!(get(&theirs, "state"), "wait");
    assert_eq!(get(&theirs, "queue"), "0");
    assert_eq!(get(&theirs, "behind"), "0");
    // `stats threads request`: the client connections, same format
    let req: Vec<(String, String)> = c.stats("threads request");
    assert!(req
        .iter()
        .any(|(k, v)| k == &format!("{my_id}:op") && v == "stats"));
    assert!(req
        .iter()
        .any(|(k, v)| k == &format!("{other_id}:peer") && v == &other.local_addr()));
    // ops follow the other connection
    other.expect(b"get nothing\r\n", b"END\r\n");
    let threads = c.threads();
    let (_, theirs) = threads.iter().find(|(id, _)| *id == other_id).unwrap();
    assert_eq!(get(theirs, "op"), "get");
}

/// TV-40 kill errors; kill of another connection; TV-61 kill of the caller.
#[test]
fn tv40_tv61_kill() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > kill 999999
        < CLIENT_ERROR thread not found
        > kill abc
        < ERROR
        > kill 1 2
        < ERROR
        > kill
        < ERROR
        > kill -1
        < CLIENT_ERROR thread not found
        ",
    );
    // another connection
    let mut victim = f.connect();
    victim.in_sync();
    let id = c
        .thread_id_of(&victim.local_addr())
        .expect("victim's thread");
    c.expect(format!("kill {id}\r\n").as_bytes(), b"OK\r\n");
    victim.expect_closed();
    c.in_sync();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.thread_id_of(&victim.local_addr()).is_some() {
        assert!(Instant::now() < deadline, "killed connection still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.expect(
        format!("kill {id}\r\n").as_bytes(),
        b"CLIENT_ERROR thread not found\r\n",
    );
    // a connection blocked in the middle of a data block is interrupted too
    let mut blocked = f.connect();
    blocked.send(b"set half 0 0 10\r\nabc");
    let deadline = Instant::now() + Duration::from_secs(5);
    let id = loop {
        if let Some(id) = c.thread_id_of(&blocked.local_addr()) {
            break id;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    };
    c.expect(format!("kill {id}\r\n").as_bytes(), b"OK\r\n");
    blocked.expect_closed();
    c.expect(b"get half\r\n", b"END\r\n");
    // TV-61: kill the caller's own thread; the pipelined request is not answered
    let me = c.thread_id_of(&c.local_addr()).expect("own thread");
    c.expect(format!("kill {me}\r\nversion\r\n").as_bytes(), b"OK\r\n");
    c.expect_closed();
}

/// The node lines of `show variables` in the original's order (protocol.md §20).
const SHOW_NAMES: [&str; 39] = [
    "back_log",
    "config_path",
    "pid_path",
    "daemonize",
    "data_dir",
    "index_server(s)",
    "max_connection",
    "mutex_slot",
    "noreply_window_limit",
    "net_read_timeout",
    "proxy_concurrency",
    "reconstruction_interval",
    "reconstruction_bwlimit",
    "replication_type",
    "server_name",
    "server_port",
    "server_socket",
    "stack_size",
    "storage_ap",
    "storage_bucket_size",
    "storage_cache_size",
    "storage_compress",
    "storage_large",
    "storage_lmemb",
    "storage_nmemb",
    "storage_dfunit",
    "storage_type",
    "thread_pool_size",
    "proxy_prior_netmask",
    "max_total_thread_queue",
    "time_watcher_enabled",
    "time_watcher_polling_interval_msec",
    "storage_access_watch_threshold_warn_msec",
    "storage_access_watch_threshold_ping_ng_msec",
    "cluster_replication",
    "cluster_replication_server_name",
    "cluster_replication_server_port",
    "cluster_replication_concurrency",
    "cluster_replication_mode",
];

/// TV-43 show variables.
#[test]
fn tv43_show_variables() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > show
        < ERROR
        > show foo
        < ERROR
        ",
    );
    c.send(b"show variables\r\n");
    let lines = c.read_until("END\r\n");
    let p = f.port;
    let dir = f.dir.path().display().to_string();
    let conf = f.conf.display().to_string();
    for want in [
        "back_log:               30\r\n".to_string(),
        format!("config_path:            {conf}\r\n"),
        "daemonize:              false\r\n".to_string(),
        format!("data_dir:               {dir}\r\n"),
        "max_connection:         128\r\n".to_string(),
        "net_read_timeout:       600\r\n".to_string(),
        "reconstruction_interval:0\r\n".to_string(),
        "replication_type:       async\r\n".to_string(),
        "server_name:            127.0.0.1\r\n".to_string(),
        format!("server_port:            {p}\r\n"),
        "server_socket:          \r\n".to_string(),
        "storage_cache_size:     65536\r\n".to_string(),
        "storage_type:           rocksdb\r\n".to_string(),
        "time_watcher_polling_interval_msec: 0\r\n".to_string(),
        "cluster_replication:    0\r\n".to_string(),
        "admin_networks:         any\r\n".to_string(),
    ] {
        assert!(lines.contains(&want), "missing {want:?} in {lines:?}");
    }
    assert_eq!(lines[0], "back_log:               30\r\n");
    assert_eq!(lines.last().unwrap(), "END\r\n");
    // the original's names, in its order (flare-rs may add lines after them)
    let names: Vec<&str> = lines
        .iter()
        .take(SHOW_NAMES.len())
        .map(|l| l.split_once(':').map(|(n, _)| n).unwrap_or(l))
        .collect();
    assert_eq!(names, SHOW_NAMES);
    for l in &lines[..lines.len() - 1] {
        assert!(!l.starts_with("STAT "), "{l:?}");
        assert!(l.contains(':'), "{l:?}");
    }
    // words after `variables` are ignored
    c.send(b"show variables please\r\n");
    assert_eq!(c.read_until("END\r\n"), lines);
}

/// Configured values show up in `show variables`.
#[test]
fn show_variables_reflects_config() {
    let f = Flared::start_with(
        "max-connection = 7\nreplication-type = sync\nnet-read-timeout = 30\nback-log = 12",
        &[],
    );
    let mut c = f.connect();
    c.send(b"show variables\r\n");
    let lines = c.read_until("END\r\n");
    for want in [
        "back_log:               12\r\n",
        "max_connection:         7\r\n",
        "net_read_timeout:       30\r\n",
        "replication_type:       sync\r\n",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing {want:?} in {lines:?}"
        );
    }
}

/// TV-41 dump; TV-42 dump_key and keys (keys works on RocksDB, unlike the
/// original's tch answer `SERVER_ERROR not available on current storage type`).
#[test]
fn tv41_tv42_dump_dump_key_keys() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > flush_all
        < OK
        > set d1 3 0 2 7
        > xy
        < STORED
        > dump
        < VALUE d1 3 2 7 0
        < xy
        < END
        > dump 0 2
        < ERROR
        > dump 0 0 1
        < VALUE d1 3 2 7 0
        < xy
        < END
        > dump -1
        < ERROR
        > dump_key
        < KEY d1
        < END
        > keys d 10
        < KEY d1
        < END
        > keys d
        < ERROR
        ",
    );
    // more §14.1 argument rules
    c.transcript(
        "
        > dump xyz
        < VALUE d1 3 2 7 0
        < xy
        < END
        > dump 0 -1 0
        < VALUE d1 3 2 7 0
        < xy
        < END
        > dump 0 0 0
        < ERROR
        > dump 0 -1 1
        < ERROR
        > dump 0 0 -1
        < ERROR
        > dump 0 1 1
        < ERROR
        > dump 1-2
        < ERROR
        > dump 0 0 1 100
        < VALUE d1 3 2 7 0
        < xy
        < END
        > dump_key 0 1
        < KEY d1
        < END
        > dump_key 1
        < ERROR
        > dump_key 1 1
        < ERROR
        ",
    );
}

/// TV-64: append keeps flags, incr on non-numeric, touch 0, dump shows
/// version and expire.
#[test]
fn tv64_dump_shows_version_and_expire() {
    let f = Flared::start();
    let mut c = f.connect();
    // set = v(1), append = v(2), incr = v(3); touch keeps the version
    c.transcript(&format!(
        "
        > flush_all
        < OK
        > set ap 5 100 1
        > a
        < STORED
        > append ap 9 0 1
        > b
        < STORED
        > incr ap 1 noreply
        > touch ap 0
        < TOUCHED
        > dump
        < VALUE ap 5 1 {} 0
        < 1
        < END
        ",
        v(3)
    ));
    // a relative exptime is printed as an absolute time
    let before = unix_now();
    c.set("e0", 0, b"x");
    c.expect(b"touch e0 1000\r\n", b"TOUCHED\r\n");
    let recs = c.dump("dump\r\n");
    let e0 = recs.iter().find(|r| r.key == "e0").expect("e0 dumped");
    assert!(
        e0.expire >= before + 1000 && e0.expire <= unix_now() + 1000,
        "{e0:?}"
    );
}

/// Keys of partition 0 and 1 when there are 2 partitions (simple hash,
/// modular resolver; cluster.md §4.3).
const PART0: [&str; 7] = ["a", "bar", "baz", "key0", "key2", "key4", "test_key1"];
const PART1: [&str; 6] = ["foo", "hello", "key1", "key3", "key5", "user:1000"];

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `dump` / `dump_key` with partition filters.
#[test]
fn dump_partition_filters() {
    let f = Flared::start();
    let mut c = f.connect();
    for (i, k) in PART0.iter().chain(PART1.iter()).enumerate() {
        c.set(k, i as u32, format!("v-{k}").as_bytes());
    }
    let all = c.dump("dump\r\n");
    assert_eq!(all.len(), 13);
    let record = |k: &str| {
        let i = PART0
            .iter()
            .chain(PART1.iter())
            .position(|x| *x == k)
            .unwrap();
        DumpRecord {
            key: k.to_string(),
            flags: i as u32,
            version: v(1),
            expire: 0,
            value: format!("v-{k}").into_bytes(),
        }
    };
    let mut got = c.dump("dump 0 0 2\r\n");
    got.sort();
    let mut want: Vec<DumpRecord> = PART0.iter().map(|k| record(k)).collect();
    want.sort();
    assert_eq!(got, want);
    let mut got = c.dump("dump 0 1 2\r\n");
    got.sort();
    let mut want: Vec<DumpRecord> = PART1.iter().map(|k| record(k)).collect();
    want.sort();
    assert_eq!(got, want);
    // one partition = everything
    assert_eq!(c.dump("dump 0 0 1\r\n").len(), 13);
    // dump_key
    let want1 = sorted(PART1.iter().map(|s| s.to_string()).collect());
    assert_eq!(sorted(c.key_lines("dump_key 1 2\r\n")), want1);
    let want0 = sorted(PART0.iter().map(|s| s.to_string()).collect());
    assert_eq!(sorted(c.key_lines("dump_key 0 2\r\n")), want0);
    assert_eq!(c.key_lines("dump_key\r\n").len(), 13);
    // with bwlimit and wait: same records
    let mut got = c.dump("dump 1000 0 2 1000\r\n");
    got.sort();
    assert_eq!(got.len(), PART0.len());
    // partition_size must be < 1024 (the resolver table's size)
    c.transcript(
        "
        > dump 0 1 1024
        < ERROR
        > dump_key 1 1024
        < ERROR
        > dump 0 1023 1024
        < ERROR
        ",
    );
    // the partitions of 3 and of 1023 partitions cover every key exactly once
    for n in [3u32, 1023] {
        let mut union = Vec::new();
        for p in 0..n {
            union.extend(c.key_lines(&format!("dump_key {p} {n}\r\n")));
        }
        let mut want: Vec<String> = PART0
            .iter()
            .chain(PART1.iter())
            .map(|s| s.to_string())
            .collect();
        want.sort();
        assert_eq!(sorted(union), want, "{n} partitions");
    }
    c.in_sync();
}

/// TV-60: `keys` on RocksDB (the default storage).
#[test]
fn tv60_keys() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > set apple 0 0 1
        > 1
        < STORED
        > set apricot 0 0 1
        > 2
        < STORED
        > set banana 0 0 1
        > 3
        < STORED
        > set ap 0 0 1
        > 4
        < STORED
        > keys ap 10
        < KEY ap
        < KEY apple
        < KEY apricot
        < END
        > keys ap 2
        < KEY ap
        < KEY apple
        < END
        > keys ap b 10
        < KEY ap
        < KEY apple
        < KEY apricot
        < KEY banana
        < END
        > keys ap 0
        < ERROR
        > keys zz 5
        < END
        > keys ap -1
        < ERROR
        > keys ap x
        < ERROR
        > keys a a 1
        < KEY ap
        < KEY ap
        < END
        ",
    );
    // deleted keys are gone from `keys`
    c.transcript(
        "
        > delete apple
        < DELETED
        > keys ap 10
        < KEY ap
        < KEY apricot
        < END
        ",
    );
}

/// TV-44 proxy identifier accepted on any command.
#[test]
fn tv44_proxy_identifier() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > <127.0.0.1:9999>version
        < VERSION flare-1.3.4
        > <127.0.0.1:9999 version
        < ERROR
        >  <a>version
        < ERROR
        > <a,b>  version
        < VERSION flare-1.3.4
        ",
    );
    // on storage commands too (standalone: executed locally)
    c.transcript(&format!(
        "
        > <127.0.0.1:9999>set px 2 0 2
        > hi
        < STORED
        > <127.0.0.1:9999>gets px
        < VALUE px 2 2 {}
        < hi
        < END
        > <127.0.0.1:9999>incr px 1
        < 1
        > <127.0.0.1:9999>delete px
        < DELETED
        ",
        v(1)
    ));
}

/// TV-45 index-only commands rejected by the node.
#[test]
fn tv45_index_only_commands() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > meta
        < ERROR
        > node role 127.0.0.1 12121 master 1 0
        < ERROR
        > shutdown 127.0.0.1 12121
        < ERROR
        > node add 127.0.0.1 12121
        < ERROR
        > node state 127.0.0.1 12121 down
        < ERROR
        > node remove 127.0.0.1 12121
        < ERROR
        ",
    );
    c.in_sync();
}

/// TV-65 node sync on a fresh node; then a map with a version.
#[test]
fn tv65_node_sync() {
    let f = Flared::start();
    let mut c = f.connect();
    c.transcript(
        "
        > node sync 1
        > NODE bad
        > END
        < CLIENT_ERROR format error
        < ERROR
        > node sync 1
        > END
        < OK
        > node sync
        > END
        < SERVER_ERROR node sync error
        > node sync 1 2
        < ERROR
        > stats nodes
        < END
        ",
    );
    assert_eq!(c.stat("node_map_version"), "1");
    let p = f.port;
    c.transcript(&format!(
        "
        > node sync 3
        > NODE 127.0.0.1 {p} 0 0 0 1 16
        > NODE 127.0.0.2 12121 1 2 0 0 17
        > END
        < OK
        > stats nodes
        < STAT 127.0.0.1:{p}:role master
        < STAT 127.0.0.1:{p}:state active
        < STAT 127.0.0.1:{p}:partition 0
        < STAT 127.0.0.1:{p}:balance 1
        < STAT 127.0.0.1:{p}:thread_type 16
        < STAT 127.0.0.2:12121:role slave
        < STAT 127.0.0.2:12121:state down
        < STAT 127.0.0.2:12121:partition 0
        < STAT 127.0.0.2:12121:balance 0
        < STAT 127.0.0.2:12121:thread_type 17
        < END
        > node sync 2
        > END
        < SERVER_ERROR node sync error
        > node sync 3
        > NODE 127.0.0.1 {p} 0 0 0 1 16
        > END
        < OK
        > node sync x
        < ERROR
        "
    ));
    assert_eq!(c.stat("node_map_version"), "3");
}

/// A large `dump` streams every record intact; `wait` (µs per record) and
/// `bwlimit` (KiB/s) slow it down.
#[test]
fn dump_streaming_and_pacing() {
    let f = Flared::start();
    let mut c = f.connect();
    let mut batch = Vec::new();
    for i in 0..2000u32 {
        let v = vec![b'a' + (i % 26) as u8; 5000 + i as usize];
        batch.extend_from_slice(format!("set big{i:04} {i} 0 {}\r\n", v.len()).as_bytes());
        batch.extend_from_slice(&v);
        batch.extend_from_slice(b"\r\n");
    }
    c.expect(&batch, "STORED\r\n".repeat(2000).as_bytes());
    let recs = c.dump("dump\r\n");
    assert_eq!(recs.len(), 2000);
    for (i, r) in recs.iter().enumerate() {
        let i = i as u32;
        assert_eq!(r.key, format!("big{i:04}"));
        assert_eq!((r.flags, r.version, r.expire), (i, v(1), 0));
        assert_eq!(r.value, vec![b'a' + (i % 26) as u8; 5000 + i as usize]);
    }
    assert_eq!(c.key_lines("dump_key\r\n").len(), 2000);
    c.expect(b"flush_all\r\n", b"OK\r\n");
    for i in 0..5 {
        c.set(&format!("p{i}"), 0, &[b'x'; 20_000]);
    }
    // 5 records x 100 ms
    let t = Instant::now();
    assert_eq!(c.dump("dump 100000\r\n").len(), 5);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "wait ignored: {:?}",
        t.elapsed()
    );
    // 100 KB at 200 KiB/s
    let t = Instant::now();
    assert_eq!(c.dump("dump 0 -1 0 200\r\n").len(), 5);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "bwlimit ignored: {:?}",
        t.elapsed()
    );
    c.in_sync();
}

/// SIGHUP re-reads the config file: reloadable options change at once, an
/// invalid file changes nothing, and the process keeps serving.
#[test]
fn sighup_reloads_the_config_file() {
    let f = Flared::start_with("max-connection = 100\nnet-read-timeout = 600", &[]);
    let mut c = f.connect();
    let show = |c: &mut Conn, name: &str| -> String {
        c.send(b"show variables\r\n");
        c.read_until("END\r\n")
            .into_iter()
            .find(|l| l.starts_with(&format!("{name}:")))
            .map(|l| l.trim_end().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        show(&mut c, "max_connection"),
        "max_connection:         100"
    );
    let text = std::fs::read_to_string(&f.conf).expect("read conf");
    let reloaded = text
        .replace("max-connection = 100", "max-connection = 42")
        .replace(
            "net-read-timeout = 600",
            "net-read-timeout = 30\nreplication-type = sync",
        );
    std::fs::write(&f.conf, reloaded).expect("write conf");
    flare_e2e::signal(f.pid(), 1);
    wait_until("max_connection reloaded", WAIT, || {
        show(&mut c, "max_connection") == "max_connection:         42"
    });
    assert_eq!(
        show(&mut c, "net_read_timeout"),
        "net_read_timeout:       30"
    );
    assert_eq!(
        show(&mut c, "replication_type"),
        "replication_type:       sync"
    );
    // an unknown option: the whole reload is skipped
    let text = std::fs::read_to_string(&f.conf).expect("read conf");
    std::fs::write(
        &f.conf,
        format!("{text}\nbogus-option = 1\nmax-connection = 7\n"),
    )
    .expect("write");
    flare_e2e::signal(f.pid(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(show(&mut c, "max_connection"), "max_connection:         42");
    c.expect(b"version\r\n", b"VERSION flare-1.3.4\r\n");
}
