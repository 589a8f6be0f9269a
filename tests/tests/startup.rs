//! Start-up: command line, configuration errors, single-instance protection,
//! the pid file, and `storage-type` compatibility (operations.md §1 … §3).

use std::process::{Command, Stdio};
use std::time::Duration;

use flare_e2e::{bin_path, run_bounded, Flared};

const LIMIT: Duration = Duration::from_secs(15);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run flared with `conf` as its configuration file (in a fresh temp dir, with
/// `data-dir` pointing at that dir unless `conf` says otherwise); returns the
/// output. The process must exit by itself within [`LIMIT`].
fn run_with_conf(conf: &str, extra_args: &[&str]) -> std::process::Output {
    let f = Flared::configure("", &[]);
    let path = f.dir.path().join("custom.conf");
    std::fs::write(&path, conf).expect("write conf");
    let mut cmd = Command::new(bin_path("flared"));
    cmd.arg("-f").arg(&path).arg("--stderr").args(extra_args);
    run_bounded(cmd, LIMIT)
}

/// Start-up failures exit with status 255, as the original.
#[track_caller]
fn assert_failed(out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(255), "{out:?}");
}

fn base_conf(dir: &std::path::Path, port: u16) -> String {
    format!(
        "data-dir = {}\nserver-name = 127.0.0.1\nserver-port = {port}\n",
        dir.display()
    )
}

#[test]
fn version_and_help() {
    let out = run_bounded(
        {
            let mut c = Command::new(bin_path("flared"));
            c.arg("--version");
            c
        },
        LIMIT,
    );
    assert!(out.status.success(), "{:?}", out);
    assert_eq!(text(&out.stdout), "flare 1.3.4\n");

    let out = run_bounded(
        {
            let mut c = Command::new(bin_path("flared"));
            c.arg("--help");
            c
        },
        LIMIT,
    );
    assert!(out.status.success(), "{:?}", out);
    let help = text(&out.stdout);
    for opt in [
        "data-dir",
        "server-port",
        "max-connection",
        "net-read-timeout",
    ] {
        assert!(help.contains(opt), "--help does not mention {opt}:\n{help}");
    }
}

#[test]
fn unknown_option_in_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "{}bogus-option = 1\n",
        base_conf(dir.path(), flare_e2e::free_port())
    );
    let out = run_with_conf(&conf, &[]);
    assert_failed(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains("bogus-option"),
        "stderr does not name the option: {err:?}"
    );
}

#[test]
fn unknown_option_on_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_conf(
        &base_conf(dir.path(), flare_e2e::free_port()),
        &["--no-such-thing"],
    );
    assert_failed(&out);
    assert!(text(&out.stderr).contains("no-such-thing"), "{out:?}");
}

#[test]
fn bad_value_in_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!("data-dir = {}\nserver-port = abc\n", dir.path().display());
    let out = run_with_conf(&conf, &[]);
    assert_failed(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains("server-port"),
        "stderr does not name the option: {err:?}"
    );

    for (line, name) in [
        ("max-connection = many", "max-connection"),
        ("net-read-timeout = -", "net-read-timeout"),
        ("storage-type = xyz", "xyz"),
        ("replication-type = maybe", "maybe"),
    ] {
        let conf = format!("{}{line}\n", base_conf(dir.path(), flare_e2e::free_port()));
        let out = run_with_conf(&conf, &[]);
        assert_failed(&out);
        let err = text(&out.stderr);
        assert!(
            err.contains(name),
            "{line}: stderr does not mention {name}: {err:?}"
        );
    }
}

#[test]
fn missing_data_dir() {
    // no data-dir at all
    let out = run_with_conf(
        &format!(
            "server-name = 127.0.0.1\nserver-port = {}\n",
            flare_e2e::free_port()
        ),
        &[],
    );
    assert_failed(&out);
    assert!(text(&out.stderr).contains("data-dir"), "{out:?}");
    // a data-dir that does not exist
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist");
    let out = run_with_conf(&base_conf(&missing, flare_e2e::free_port()), &[]);
    assert_failed(&out);
    assert!(!missing.exists(), "flared created the missing data-dir");
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin_path("flared"));
    cmd.arg("-f").arg(dir.path().join("nope.conf"));
    let out = run_bounded(cmd, LIMIT);
    assert_failed(&out);
    assert!(text(&out.stderr).contains("nope.conf"), "{out:?}");
}

/// A second flared on the same data-dir (own port and pid file) fails fast
/// with a message about the locked storage; the first one keeps serving.
#[test]
fn second_instance_on_same_data_dir() {
    let f = Flared::start();
    let mut c = f.connect();
    c.set("first", 0, b"1");
    let other_pid = f.dir.path().join("second.pid");
    let conf = base_conf(f.dir.path(), flare_e2e::free_port());
    let out = run_with_conf(&conf, &["--pid", other_pid.to_str().unwrap()]);
    assert_failed(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains("locked"),
        "stderr does not mention the lock: {err:?}"
    );
    assert!(!other_pid.exists(), "the refused instance left a pid file");
    // the same command line as the first (same pid file): refused as well
    let out = run_bounded(f.command(), LIMIT);
    assert_failed(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains(&f.pid().to_string()),
        "stderr does not name the running pid: {err:?}"
    );
    // the first instance is unaffected, its pid file intact
    c.expect(b"get first\r\n", b"VALUE first 0 1\r\n1\r\nEND\r\n");
    assert_eq!(
        std::fs::read_to_string(f.pid_path()).unwrap().trim(),
        f.pid().to_string()
    );
}

/// A stale pid file (a pid that does not exist) does not block the start and
/// is replaced by the new pid.
#[test]
fn stale_pid_file_is_ignored() {
    assert!(
        !std::path::Path::new("/proc/999999").exists(),
        "pid 999999 exists on this machine: the test assumes it does not"
    );
    let mut f = Flared::configure("", &[]);
    std::fs::write(f.pid_path(), "999999\n").unwrap();
    f.restart();
    let mut c = f.connect();
    c.in_sync();
    f.wait_pid_file(&f.pid_path());
    // garbage in the pid file is stale as well
    assert!(f.terminate().success());
    std::fs::write(f.pid_path(), "not a pid\n").unwrap();
    f.restart();
    f.connect().in_sync();
}

/// A pid file naming a live process: flared refuses to start.
#[test]
fn pid_file_of_live_process_blocks_start() {
    let mut sleeper = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let f = Flared::configure("", &[]);
    std::fs::write(f.pid_path(), format!("{}\n", sleeper.id())).unwrap();
    let out = run_bounded(f.command(), LIMIT);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_failed(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains(&sleeper.id().to_string()),
        "stderr does not name the pid: {err:?}"
    );
    // the pid file is left alone and nothing listens on the port
    assert_eq!(
        std::fs::read_to_string(f.pid_path()).unwrap(),
        format!("{}\n", sleeper.id())
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", f.port)).is_err());
}

/// `-p/--pid` puts the pid file elsewhere; it is removed on SIGTERM.
#[test]
fn custom_pid_path() {
    let pid_dir = tempfile::tempdir().unwrap();
    let pid_path = pid_dir.path().join("custom.pid");
    let mut f = Flared::start_with("", &["--pid", pid_path.to_str().unwrap()]);
    f.wait_pid_file(&pid_path);
    assert!(!f.pid_path().exists());
    let mut c = f.connect();
    c.send(b"show variables\r\n");
    let lines = c.read_until("END\r\n");
    let want = format!("pid_path:               {}\r\n", pid_path.display());
    assert!(lines.contains(&want), "{want:?} not in {lines:?}");
    assert!(f.terminate().success());
    assert!(!pid_path.exists());
}

/// `storage-type = tch` (a Flare 1.x setting) still starts, stores in RocksDB
/// and is shown as configured.
#[test]
fn storage_type_tch_starts() {
    let mut f = Flared::start_with("storage-type = tch", &[]);
    let mut c = f.connect();
    c.send(b"show variables\r\n");
    let lines = c.read_until("END\r\n");
    assert!(
        lines.iter().any(|l| l == "storage_type:           tch\r\n"),
        "{lines:?}"
    );
    c.set("t", 1, b"tch");
    assert_eq!(c.get("t"), Some((1, b"tch".to_vec())));
    assert!(f.terminate().success());
    f.restart();
    assert_eq!(f.connect().get("t"), Some((1, b"tch".to_vec())));
}

/// Options given on the command line override the defaults like the file does.
#[test]
fn command_line_options() {
    let f = Flared::configure("", &[]);
    let dir = f.dir.path().display().to_string();
    let port = flare_e2e::free_port();
    let mut child = Command::new(bin_path("flared"))
        .args(["--stderr", "--data-dir", &dir, "--server-name", "127.0.0.1"])
        .args(["--server-port", &port.to_string(), "--max-connection", "9"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flared");
    flare_e2e::wait_for_port(port, Some(&mut child));
    let mut c = flare_e2e::Conn::connect(port);
    c.send(b"show variables\r\n");
    let lines = c.read_until("END\r\n");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l == "max_connection:         9\r\n"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("server_port:            {port}\r\n")),
        "{lines:?}"
    );
}

/// The TCP port is already in use: exit 255 with a message naming the port.
#[test]
fn port_in_use() {
    let f = Flared::start();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_conf(&base_conf(dir.path(), f.port), &[]);
    assert_failed(&out);
    let err = text(&out.stderr);
    assert!(
        err.contains(&f.port.to_string()),
        "stderr does not name the port: {err:?}"
    );
    assert!(!dir.path().join("flared.pid").exists());
    f.connect().in_sync();
}

/// `server-socket`: the same protocol on a unix domain socket; its clients
/// show `peer :0` in `stats threads`; the socket file is removed on shutdown.
#[test]
fn unix_socket() {
    use std::io::{Read, Write};
    let mut f = Flared::configure("", &[]);
    let sock = f.dir.path().join("flared.sock");
    let mut conf = std::fs::read_to_string(&f.conf).unwrap();
    conf.push_str(&format!("server-socket = {}\n", sock.display()));
    std::fs::write(&f.conf, conf).unwrap();
    f.restart();
    let mut u = std::os::unix::net::UnixStream::connect(&sock).expect("connect unix socket");
    u.set_read_timeout(Some(flare_e2e::WAIT)).unwrap();
    u.write_all(b"set us 0 0 2\r\nok\r\nget us\r\n").unwrap();
    let want = b"STORED\r\nVALUE us 0 2\r\nok\r\nEND\r\n";
    let mut got = vec![0u8; want.len()];
    u.read_exact(&mut got).unwrap();
    assert_eq!(text(&got), text(want));
    // visible over TCP, and listed with peer :0
    let mut c = f.connect();
    assert_eq!(c.get("us"), Some((0, b"ok".to_vec())));
    let threads = c.threads();
    assert!(
        threads
            .iter()
            .any(|(_, f)| f.iter().any(|(n, v)| n == "peer" && v == ":0")),
        "{threads:?}"
    );
    drop(u);
    assert!(f.terminate().success());
    assert!(!sock.exists(), "socket file left behind");
}

/// `--daemonize`: the launching command exits 0 at once; the daemon (another
/// pid) writes the pid file, serves with a config and data-dir given as
/// paths relative to the launch directory, leaves that directory (chdir /),
/// and removes the pid file on SIGTERM. Both daemons.
#[test]
fn daemonize_with_relative_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("index")).expect("mkdir");
    std::fs::create_dir(dir.path().join("node")).expect("mkdir");
    let iport = flare_e2e::free_port();
    let nport = flare_e2e::free_port();
    std::fs::write(
        dir.path().join("flarei.conf"),
        format!("data-dir = index\nserver-name = 127.0.0.1\nserver-port = {iport}\n"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("flared.conf"),
        format!("data-dir = node\nserver-name = 127.0.0.1\nserver-port = {nport}\nindex-servers = 127.0.0.1:{iport}\n"),
    )
    .expect("write");
    let mut pids = Vec::new();
    for (bin, conf, port, pidfile) in [
        ("flarei", "flarei.conf", iport, "index/flarei.pid"),
        ("flared", "flared.conf", nport, "node/flared.pid"),
    ] {
        let mut cmd = Command::new(bin_path(bin));
        cmd.current_dir(dir.path())
            .args(["-f", conf, "--daemonize"]);
        let out = run_bounded(cmd, Duration::from_secs(10));
        assert!(out.status.success(), "{bin} --daemonize: {:?}", out.status);
        flare_e2e::wait_for_port(port, None);
        let path = dir.path().join(pidfile);
        flare_e2e::wait_until("pid file", flare_e2e::WAIT, || path.exists());
        let pid: u32 = std::fs::read_to_string(&path)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
        assert_eq!(
            cwd,
            std::path::Path::new("/"),
            "{bin} left the launch directory"
        );
        pids.push((pid, path));
    }
    let mut c = flare_e2e::Conn::connect(iport);
    c.expect(
        format!("node role 127.0.0.1 {nport} master 1 0\r\n").as_bytes(),
        b"OK\r\n",
    );
    let mut n = flare_e2e::Conn::connect(nport);
    flare_e2e::wait_until("the node serves", flare_e2e::WAIT, || {
        n.send(b"set d 0 0 1\r\nx\r\n");
        n.read_line() == "STORED\r\n"
    });
    n.expect(b"get d\r\n", b"VALUE d 0 1\r\nx\r\nEND\r\n");
    for (pid, path) in pids.into_iter().rev() {
        flare_e2e::signal(pid, 15);
        flare_e2e::wait_until("pid file removed", flare_e2e::WAIT, || !path.exists());
        // gone, or a zombie waiting for whatever reaps orphans here
        flare_e2e::wait_until("process gone", flare_e2e::WAIT, || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|st| {
                    st.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
        });
    }
}
