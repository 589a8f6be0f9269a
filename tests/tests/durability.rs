//! Durability: data survives a clean restart (SIGTERM) and a crash (SIGKILL).

use std::time::{Duration, Instant};

use flare_e2e::Flared;

/// Set 100 keys (some overwritten, some appended), SIGTERM: exit status 0 and
/// the pid file removed; after a restart every value, flag and version is back.
#[test]
fn restart_after_sigterm_keeps_everything() {
    let mut f = Flared::start();
    let mut c = f.connect();
    let mut expected = Vec::new();
    for i in 0..100u32 {
        let key = format!("dur:{i}");
        let value = format!("value-{i}-{}", "x".repeat(i as usize));
        c.set(&key, i * 1000, value.as_bytes());
        let mut value = value.into_bytes();
        if i % 3 == 0 {
            c.set(&key, i * 1000 + 1, &value);
        }
        if i % 5 == 0 {
            c.expect(
                format!("append {key} 0 0 1\r\n!\r\n").as_bytes(),
                b"STORED\r\n",
            );
            value.push(b'!');
        }
        let (flags, got, version) = c.gets(&key).expect("just set");
        assert_eq!(got, value);
        expected.push((key, flags, value, version));
    }
    // a key with an explicit version and an expiring one
    c.expect(b"set explicit 1 0 1 4242\r\ne\r\n", b"STORED\r\n");
    c.expect(b"set later 2 100000 1\r\nl\r\n", b"STORED\r\n");
    let later = c
        .dump("dump\r\n")
        .into_iter()
        .find(|r| r.key == "later")
        .expect("later");
    // a deleted key stays deleted
    c.set("gone", 0, b"g");
    c.expect(b"delete gone\r\n", b"DELETED\r\n");
    drop(c);

    let pid_path = f.pid_path();
    f.wait_pid_file(&pid_path);
    let status = f.terminate();
    assert!(
        status.success(),
        "flared exited with {status}; log:\n{}",
        f.log()
    );
    assert!(
        !pid_path.exists(),
        "pid file {} left behind",
        pid_path.display()
    );

    f.restart();
    let mut c = f.connect();
    for (key, flags, value, version) in &expected {
        assert_eq!(
            c.gets(key),
            Some((*flags, value.clone(), *version)),
            "{key} after restart"
        );
    }
    c.expect(
        b"gets explicit\r\n",
        b"VALUE explicit 1 1 4242\r\ne\r\nEND\r\n",
    );
    let later2 = c
        .dump("dump\r\n")
        .into_iter()
        .find(|r| r.key == "later")
        .expect("later");
    assert_eq!(later2, later);
    assert_eq!(c.get("gone"), None);
    assert_eq!(c.stat("curr_items"), "102");
    // and it keeps working: versions continue from the stored ones
    c.set("dur:1", 5, b"new");
    let (_, _, v) = c.gets("dur:1").unwrap();
    assert_eq!(v, expected[1].3 + 1);
    let status = f.terminate();
    assert!(status.success());
}

/// 1000 acknowledged sets plus 100 `noreply` sets confirmed by a `version`
/// round trip; `kill -9`; after a restart every acknowledged key is there.
#[test]
fn kill9_keeps_acknowledged_writes() {
    let mut f = Flared::start();
    let mut c = f.connect();
    for i in 0..1000 {
        c.set(&format!("k9:{i}"), i, format!("acked-{i}").as_bytes());
    }
    let mut batch = Vec::new();
    for i in 0..100 {
        let v = format!("quiet-{i}");
        batch.extend_from_slice(
            format!("set nr:{i} {i} 0 {} noreply\r\n{v}\r\n", v.len()).as_bytes(),
        );
    }
    c.send(&batch);
    c.in_sync();
    c.expect(b"delete k9:0\r\n", b"DELETED\r\n");
    c.expect(b"incr k9:0 1\r\n", b"NOT_FOUND\r\n");
    c.set("k9:1", 1, b"41");
    c.expect(b"incr k9:1 1\r\n", b"42\r\n");
    f.kill9();
    assert!(f.pid_path().exists(), "a killed flared leaves its pid file");

    // the stale pid file does not prevent the restart
    f.restart();
    let mut c = f.connect();
    assert_eq!(c.get("k9:0"), None);
    assert_eq!(c.get("k9:1"), Some((1, b"42".to_vec())));
    for i in 2..1000u32 {
        assert_eq!(
            c.get(&format!("k9:{i}")),
            Some((i, format!("acked-{i}").into_bytes())),
            "k9:{i}"
        );
    }
    for i in 0..100u32 {
        assert_eq!(
            c.get(&format!("nr:{i}")),
            Some((i, format!("quiet-{i}").into_bytes())),
            "nr:{i}"
        );
    }
    assert_eq!(c.stat("curr_items"), "1099");
}

/// `flush_all` is durable too: nothing comes back after a crash.
#[test]
fn flush_all_survives_kill9() {
    let mut f = Flared::start();
    let mut c = f.connect();
    for i in 0..50 {
        c.set(&format!("f{i}"), 0, b"v");
    }
    c.expect(b"flush_all\r\n", b"OK\r\n");
    c.set("after", 0, b"a");
    f.kill9();
    f.restart();
    let mut c = f.connect();
    assert_eq!(c.key_lines("dump_key\r\n"), vec!["after".to_string()]);
}

/// SIGINT shuts down as cleanly as SIGTERM, also with connections open (idle,
/// in the middle of a data block, and one that just wrote): exit 0 quickly,
/// the clients see their connection closed, the data is there after restart.
#[test]
fn graceful_shutdown_with_open_connections() {
    let mut f = Flared::start();
    let mut idle = f.connect();
    idle.in_sync();
    let mut half = f.connect();
    half.send(b"set half 0 0 10\r\nabc");
    let mut writer = f.connect();
    writer.set("w", 1, b"written");
    let t = Instant::now();
    let status = f.stop_with(2);
    assert!(status.success(), "exit status {status}; log:\n{}", f.log());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(!f.pid_path().exists());
    idle.expect_closed();
    half.expect_closed();
    writer.expect_closed();
    f.restart();
    let mut c = f.connect();
    assert_eq!(c.get("w"), Some((1, b"written".to_vec())));
    assert_eq!(c.get("half"), None);
}
