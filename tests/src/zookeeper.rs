//! ZooKeeper servers for the tests of flarei's `index-db = zookeeper://…`
//! (tests/zookeeper.rs): a standalone server or an ensemble, each server
//! a `java … QuorumPeerMain <zoo.cfg>` of Debian's `zookeeper` package on
//! 127.0.0.1 with ports from [`free_port`], its config, data and log in a
//! temp dir. Servers can be killed (`SIGKILL`) and started again on the same
//! config and data; dropping the [`ZooKeeper`] kills every process it
//! started. [`ZooKeeper::zk_get`] and [`ZooKeeper::zk_children`] read znodes
//! with the package's `zkCli.sh`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, poll_until, run_bounded, wait_until};

/// ZooKeeper's jar (its manifest names the jars it needs).
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// The package's command line client.
pub const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// The slf4j binding and log4j, added to a server's class path when present
/// so that its warnings reach its log file (without them slf4j logs
/// nothing).
const LOG_JARS: [&str; 2] = [
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];

/// Console appender, warnings and errors only.
const LOG4J_PROPERTIES: &str = "log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Threshold=WARN
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
";

/// JVM options of servers and of `zkCli.sh`: a small heap and a quick
/// start-up (two cores shared with cargo and the daemons).
const JVM_FLAGS: [&str; 3] = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];

/// How long a server may take to serve after it was started (a JVM start
/// plus, in an ensemble, a leader election).
pub const ZK_START: Duration = Duration::from_secs(30);

/// How long one `zkCli.sh` run may take.
const ZKCLI_LIMIT: Duration = Duration::from_secs(30);

/// One server of a [`ZooKeeper`].
struct Server {
    /// `<tmp>/s<i>`: `zoo.cfg`, `data/` (with `myid` in an ensemble),
    /// `zookeeper.log`.
    dir: PathBuf,
    client_port: u16,
    child: Option<Child>,
}

/// A standalone ZooKeeper server or an ensemble, on 127.0.0.1. Servers are
/// numbered from 0 (server `i` has `myid` `i + 1`).
pub struct ZooKeeper {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

impl ZooKeeper {
    /// One standalone server, serving when this returns.
    pub fn standalone() -> ZooKeeper {
        ZooKeeper::create(1, false)
    }

    /// An ensemble of `n` servers (`server.<i+1>=127.0.0.1:<quorum
    /// port>:<election port>`, each with its own client port), every one of
    /// them serving (leader or follower) when this returns.
    pub fn ensemble(n: usize) -> ZooKeeper {
        assert!(n >= 2, "an ensemble has at least 2 servers");
        ZooKeeper::create(n, true)
    }

    fn create(n: usize, quorum: bool) -> ZooKeeper {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("log4j.properties"), LOG4J_PROPERTIES)
            .expect("write log4j.properties");
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peers: Vec<(u16, u16)> = if quorum {
            (0..n).map(|_| (free_port(), free_port())).collect()
        } else {
            Vec::new()
        };
        let mut servers = Vec::new();
        for (i, &client_port) in client_ports.iter().enumerate() {
            let sdir = dir.path().join(format!("s{i}"));
            let data = sdir.join("data");
            std::fs::create_dir_all(&data).expect("create the server's data dir");
            let mut cfg = format!(
                "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client_port}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=ruok,srvr,stat\n",
                data.display()
            );
            for (j, (q, e)) in peers.iter().enumerate() {
                cfg.push_str(&format!("server.{}=127.0.0.1:{q}:{e}\n", j + 1));
            }
            if quorum {
                std::fs::write(data.join("myid"), format!("{}\n", i + 1)).expect("write myid");
            }
            std::fs::write(sdir.join("zoo.cfg"), cfg).expect("write zoo.cfg");
            servers.push(Server {
                dir: sdir,
                client_port,
                child: None,
            });
        }
        let mut zk = ZooKeeper { dir, servers };
        for i in 0..n {
            zk.start(i);
        }
        for i in 0..n {
            zk.wait_serving(i);
        }
        zk
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there is no server (never: kept for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Client port of server `i`.
    pub fn client_port(&self, i: usize) -> u16 {
        self.servers[i].client_port
    }

    /// `127.0.0.1:<p1>,127.0.0.1:<p2>,…` (every server, killed or not).
    pub fn connect_string(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The flarei `index-db` value for `chroot` (`/name`):
    /// `zookeeper://<connect string><chroot>`.
    pub fn index_db(&self, chroot: &str) -> String {
        assert!(chroot.starts_with('/'), "a chroot starts with /: {chroot}");
        format!("zookeeper://{}{chroot}", self.connect_string())
    }

    /// Start server `i` (again: same config and data). Does not wait: see
    /// [`ZooKeeper::wait_serving`] (an ensemble member serves only with a
    /// quorum).
    pub fn start(&mut self, i: usize) {
        assert!(
            self.servers[i].child.is_none(),
            "ZooKeeper server {i} is already running"
        );
        let mut cp = self.dir.path().display().to_string();
        cp.push(':');
        cp.push_str(ZOOKEEPER_JAR);
        for jar in LOG_JARS {
            if Path::new(jar).exists() {
                cp.push(':');
                cp.push_str(jar);
            }
        }
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.dir.join("zookeeper.log"))
            .expect("open the server's log");
        let err = log.try_clone().expect("clone the log file");
        let child = Command::new("java")
            .args(JVM_FLAGS)
            .arg("-cp")
            .arg(&cp)
            .arg(format!("-Dzookeeper.log.dir={}", s.dir.display()))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(s.dir.join("zoo.cfg"))
            .current_dir(&s.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn java (is the zookeeper package installed?)");
        s.child = Some(child);
    }

    /// `SIGKILL` server `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether server `i` was started and has not exited.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.servers[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What server `i` logged (warnings and errors, appended across
    /// restarts).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.servers[i].dir.join("zookeeper.log")).unwrap_or_default()
    }

    /// Send a four-letter command (`ruok`, `srvr`, `stat`) to server `i`;
    /// its whole answer, or `None` if it does not answer (not listening,
    /// closed without a byte, or silent for 2 s).
    pub fn four_letter(&self, i: usize, cmd: &str) -> Option<String> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.servers[i].client_port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(cmd.as_bytes()).ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) if !out.is_empty() => break,
                Err(_) => return None,
            }
        }
        if out.is_empty() {
            return None;
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// Whether server `i` answers `ruok` with `imok` (it runs; it may still
    /// not serve clients, e.g. without a quorum).
    pub fn ruok(&self, i: usize) -> bool {
        self.four_letter(i, "ruok").as_deref() == Some("imok")
    }

    /// The `Mode:` of server `i`'s `srvr` answer (`standalone`, `leader`,
    /// `follower`), or `None` if it does not serve (`srvr` then answers
    /// "This ZooKeeper instance is not currently serving requests").
    pub fn mode(&self, i: usize) -> Option<String> {
        let srvr = self.four_letter(i, "srvr")?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(|m| m.trim().to_string())
    }

    /// Wait (at most [`ZK_START`]) until server `i` serves: `srvr` reports
    /// Mode standalone, leader or follower. Fails at once if it exited.
    #[track_caller]
    pub fn wait_serving(&mut self, i: usize) {
        let mut exited = None;
        let served = poll_until(ZK_START, || {
            if let Some(c) = self.servers[i].child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    exited = Some(status);
                    return true;
                }
            }
            matches!(
                self.mode(i).as_deref(),
                Some("standalone" | "leader" | "follower")
            )
        });
        if let Some(status) = exited {
            panic!(
                "ZooKeeper server {i} exited ({status}) before serving; its log:\n{}",
                self.log(i)
            );
        }
        assert!(
            served,
            "ZooKeeper server {i} does not serve after {ZK_START:?} (srvr: {:?}); its log:\n{}",
            self.four_letter(i, "srvr"),
            self.log(i)
        );
    }

    /// Wait (at most `limit`) until server `i` no longer serves (e.g. an
    /// ensemble member that lost its quorum).
    #[track_caller]
    pub fn wait_not_serving(&self, i: usize, limit: Duration) {
        wait_until(
            &format!("ZooKeeper server {i} stops serving"),
            limit,
            || {
                !matches!(
                    self.mode(i).as_deref(),
                    Some("standalone" | "leader" | "follower")
                )
            },
        );
    }

    /// Run `zkCli.sh -server <connect string> -waitforconnection <args>`
    /// (bounded); its output. `stdout` has the client's connection lines,
    /// then what the command printed; errors (e.g. `Node does not exist:
    /// <path>`) go to stderr with exit status 1.
    pub fn zk_cli(&self, args: &[&str]) -> std::process::Output {
        zk_cli_at(&self.connect_string(), args)
    }

    /// [`ZooKeeper::zk_cli`] connected to server `i` only.
    pub fn zk_cli_on(&self, i: usize, args: &[&str]) -> std::process::Output {
        zk_cli_at(&format!("127.0.0.1:{}", self.client_port(i)), args)
    }

    /// The data of znode `path` (`None` if it does not exist). zkCli prints
    /// a znode without data (null) as `null`: that comes back as those 4
    /// bytes; an empty znode as empty bytes. zkCli prints the data as
    /// UTF-8 text: binary data does not come back byte for byte.
    pub fn zk_get(&self, path: &str) -> Option<Vec<u8>> {
        get_data(path, self.zk_cli(&["get", path]))
    }

    /// [`ZooKeeper::zk_get`] from server `i` only.
    pub fn zk_get_on(&self, i: usize, path: &str) -> Option<Vec<u8>> {
        get_data(path, self.zk_cli_on(i, &["get", path]))
    }

    /// The children of znode `path`, sorted (`None` if it does not exist).
    pub fn zk_children(&self, path: &str) -> Option<Vec<String>> {
        let args = ["ls", path];
        let printed = cli_result(&args, self.zk_cli(&args))?;
        let list = printed
            .trim_end()
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .unwrap_or_else(|| panic!("zkCli ls {path}: unexpected output {printed:?}"));
        let mut children: Vec<String> = if list.is_empty() {
            Vec::new()
        } else {
            list.split(", ").map(str::to_string).collect()
        };
        children.sort();
        Some(children)
    }
}

/// `zkCli.sh -server <server> -timeout 10000 -waitforconnection <args>`,
/// bounded by [`ZKCLI_LIMIT`].
fn zk_cli_at(server: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(ZKCLI);
    cmd.env("CLIENT_JVMFLAGS", JVM_FLAGS.join(" "))
        .arg("-server")
        .arg(server)
        .arg("-timeout")
        .arg("10000")
        .arg("-waitforconnection")
        .args(args);
    run_bounded(cmd, ZKCLI_LIMIT)
}

/// What a zkCli command (`args`, its output `out`) printed after the
/// connection was made, or `None` if it answered `Node does not exist`.
/// Fails on other errors.
fn cli_result(args: &[&str], out: std::process::Output) -> Option<String> {
    // With -waitforconnection the watcher prints the connection event
    // before the command runs (and nothing else in a short session).
    const CONNECTED: &str = "WatchedEvent state:SyncConnected type:None path:null\n";
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("Node does not exist") {
        return None;
    }
    assert!(
        out.status.success(),
        "zkCli {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let at = stdout.find(CONNECTED).unwrap_or_else(|| {
        panic!("zkCli {args:?}: no connection line in its output:\n{stdout}\nstderr: {stderr}")
    });
    Some(stdout[at + CONNECTED.len()..].to_string())
}

/// The data `zkCli get <path>` printed (its output `out`).
fn get_data(path: &str, out: std::process::Output) -> Option<Vec<u8>> {
    let printed = cli_result(&["get", path], out)?;
    let data = printed
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("zkCli get {path}: no final newline in {printed:?}"));
    Some(data.as_bytes().to_vec())
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
