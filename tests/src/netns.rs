//! Network namespaces for the partition tests (`tests/partitions.rs`,
//! docs/reliability.md).
//!
//! A [`Net`] is a small network of its own: a hub namespace holding a bridge,
//! and one namespace per host, each with `lo` up and a veth pair to the hub's
//! bridge, with the address `10.<k>.0.<i>/24`. Nothing is added to or changed
//! in the test process's own namespace (no veth end, address or route), so
//! tests running in parallel, or sharing a subnet, do not see each other.
//! Dropping the `Net` deletes its namespaces (and kills nothing).
//!
//! Partitions are routes, as the kernel may have no netem:
//! [`Net::partition`] adds a blackhole route to the other host in both
//! namespaces (a new connection fails at once, an established one hangs
//! until its timeouts), [`Net::isolate`] sets the host's link down.
//!
//! The test reaches into a namespace by opening a socket from a short-lived
//! thread that joined it (`setns`): a socket keeps its namespace, so the
//! stream is then used from any thread. A server runs as
//! `ip netns exec <ns> <binary> …` (`ip` execs the binary: the child's pid is
//! the daemon's). The test's own control connections (`stats nodes`,
//! `node role`, dumps) go to a server's loopback inside its namespace
//! ([`Host::tcp`]), which no partition cuts.
//!
//! Needs root and iproute2: without them [`Net::new`] fails the test with a
//! message saying so (it never skips).

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::{wait_until, Cluster, Conn, Flarei, WAIT};

/// flarei's port in its namespace (each namespace has its own ports).
pub const FLAREI_PORT: u16 = 12120;
/// flared's port in its namespace.
pub const FLARED_PORT: u16 = 12121;

/// Connect timeout of the test's connections into a namespace.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Where `ip netns add` puts the namespaces.
const NETNS_DIR: &str = "/var/run/netns";
/// Every namespace this module creates is named `flt-<pid>-<n>-<host>`.
const PREFIX: &str = "flt-";
/// What a failure to build the network means.
const NEEDS: &str =
    "the network partition tests need root and iproute2 (`ip netns`, veth and bridge links)";

/// Where a test server runs: its network namespace (`None`: the test's own)
/// and the address it is known by (its `server-name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub netns: Option<String>,
    pub addr: String,
}

impl Host {
    /// 127.0.0.1 in the test's own namespace (what every other test uses).
    pub fn loopback() -> Host {
        Host {
            netns: None,
            addr: "127.0.0.1".to_string(),
        }
    }

    /// A connection to `port` on this host's loopback (from inside its
    /// namespace): the test's control path, which no partition cuts.
    pub fn tcp(&self, port: u16) -> io::Result<TcpStream> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match &self.netns {
            None => TcpStream::connect(addr),
            Some(ns) => connect_in(ns, addr, CONNECT_TIMEOUT),
        }
    }

    /// `program` as a command that runs in this host's namespace.
    pub fn command(&self, program: &Path) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut c = Command::new(ip_program());
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.netns {
            None => write!(f, "{}", self.addr),
            Some(ns) => write!(f, "{} (netns {ns})", self.addr),
        }
    }
}

/// A TCP connection to `addr` opened inside the network namespace `netns`
/// (by a thread that joins it and ends right after).
pub fn connect_in(netns: &str, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let ns = std::fs::File::open(Path::new(NETNS_DIR).join(netns))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: `ns` is an open namespace file for the duration of the
            // call; setns changes the network namespace of this thread only,
            // which ends after the connect.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&addr, timeout)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("connect thread panicked")))
    })
}

/// The `ip` binary (root's PATH has sbin, a test runner's may not).
fn ip_program() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// Run `ip <args>`; fail the test (saying `why`) if it does not succeed.
#[track_caller]
fn ip(args: &[&str], why: &str) -> String {
    let out = Command::new(ip_program())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{why}: cannot run `ip {}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{why}: `ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Delete the namespaces left by test processes that no longer run (a
/// crashed or killed run cannot clean up after itself). Only names of the
/// form `flt-<pid>-<n>-…` are considered.
fn remove_stale() {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.strip_prefix(PREFIX).unwrap_or("").splitn(3, '-');
        let (Some(pid), Some(n), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if numeric(pid) && numeric(n) && !Path::new("/proc").join(pid).exists() {
            let _ = Command::new(ip_program())
                .args(["netns", "del", &name])
                .output();
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);
static STALE: std::sync::Once = std::sync::Once::new();

/// One host of a [`Net`].
struct Node {
    label: String,
    netns: String,
    addr: Ipv4Addr,
}

/// A hub namespace with a bridge and one namespace per host (see the module
/// documentation).
pub struct Net {
    hub: Option<String>,
    nodes: Vec<Node>,
    /// Pairs of hosts (indexes, smaller first) cut from each other.
    cuts: Mutex<BTreeSet<(usize, usize)>>,
    /// Hosts whose link is down.
    isolated: Mutex<BTreeSet<usize>>,
}

impl Net {
    /// A network of one namespace per label (`[a-z0-9]+`, e.g. `"m"`),
    /// addressed `10.<k>.0.1`, `10.<k>.0.2`, … in the order given. Fails the
    /// test if the namespaces cannot be made.
    #[track_caller]
    pub fn new(labels: &[&str]) -> Net {
        assert!(
            !labels.is_empty() && labels.len() < 250,
            "1 to 249 hosts per network"
        );
        for (i, l) in labels.iter().enumerate() {
            assert!(
                !l.is_empty()
                    && l.len() <= 8
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "host label {l:?}: 1 to 8 of [a-z0-9]"
            );
            assert!(!labels[..i].contains(l), "host label {l:?} twice");
            assert_ne!(*l, "hub", "the label hub is the bridge's namespace");
        }
        STALE.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let subnet = 20 + (n % 200);
        // built into `net` step by step, so that a failure half-way still
        // deletes what was made (`Drop`)
        let mut net = Net {
            hub: None,
            nodes: Vec::new(),
            cuts: Mutex::default(),
            isolated: Mutex::default(),
        };
        let hub = format!("{base}-hub");
        ip(&["netns", "add", &hub], NEEDS);
        net.hub = Some(hub.clone());
        ip(&["-n", &hub, "link", "set", "lo", "up"], NEEDS);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"], NEEDS);
        ip(&["-n", &hub, "link", "set", "br0", "up"], NEEDS);
        for (i, label) in labels.iter().enumerate() {
            let netns = format!("{base}-{label}");
            ip(&["netns", "add", &netns], NEEDS);
            let addr = Ipv4Addr::new(10, subnet as u8, 0, i as u8 + 1);
            net.nodes.push(Node {
                label: label.to_string(),
                netns: netns.clone(),
                addr,
            });
            let port = format!("h{}", i + 1);
            let cidr = format!("{addr}/24");
            ip(&["-n", &netns, "link", "set", "lo", "up"], NEEDS);
            ip(
                &[
                    "-n", &netns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                    "netns", &hub,
                ],
                NEEDS,
            );
            ip(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"], NEEDS);
            ip(&["-n", &netns, "link", "set", "eth0", "up"], NEEDS);
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"], NEEDS);
            ip(&["-n", &hub, "link", "set", &port, "up"], NEEDS);
        }
        for i in 0..net.nodes.len() {
            net.wait_link_up(i);
        }
        net
    }

    #[track_caller]
    fn index(&self, label: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.label == label)
            .unwrap_or_else(|| panic!("no host {label:?} in this network"))
    }

    #[track_caller]
    fn node(&self, label: &str) -> &Node {
        &self.nodes[self.index(label)]
    }

    /// Host `label`: its namespace and address.
    #[track_caller]
    pub fn host(&self, label: &str) -> Host {
        let n = self.node(label);
        Host {
            netns: Some(n.netns.clone()),
            addr: n.addr.to_string(),
        }
    }

    /// The address of host `label`.
    #[track_caller]
    pub fn addr(&self, label: &str) -> String {
        self.node(label).addr.to_string()
    }

    /// The operational state of `eth0` of host `i` is UP.
    #[track_caller]
    fn wait_link_up(&self, i: usize) {
        let ns = &self.nodes[i].netns;
        wait_until(&format!("the link of {ns} is up"), WAIT, || {
            ip(&["-n", ns, "-o", "link", "show", "dev", "eth0"], NEEDS).contains(" state UP ")
        });
    }

    /// Cut `a` and `b` from each other, both directions (blackhole routes):
    /// their packets to each other are dropped. Nothing if already cut.
    #[track_caller]
    pub fn partition(&self, a: &str, b: &str) {
        let (i, j) = (self.index(a), self.index(b));
        assert_ne!(i, j, "a host cannot be cut from itself");
        let pair = (i.min(j), i.max(j));
        if self.lock_cuts().insert(pair) {
            self.blackhole("add", i, j);
            self.blackhole("add", j, i);
        }
    }

    /// Undo [`Net::partition`] of `a` and `b`. Nothing if they are not cut.
    #[track_caller]
    pub fn heal(&self, a: &str, b: &str) {
        let (i, j) = (self.index(a), self.index(b));
        if self.lock_cuts().remove(&(i.min(j), i.max(j))) {
            self.blackhole("del", i, j);
            self.blackhole("del", j, i);
        }
    }

    /// Take host `a` off the network (its link down); it still reaches
    /// itself. Nothing if already isolated.
    #[track_caller]
    pub fn isolate(&self, a: &str) {
        let i = self.index(a);
        if self.lock_isolated().insert(i) {
            ip(
                &["-n", &self.nodes[i].netns, "link", "set", "eth0", "down"],
                "isolate a host",
            );
        }
    }

    /// Undo [`Net::isolate`] of `a` (waits until its link is up).
    #[track_caller]
    pub fn rejoin(&self, a: &str) {
        let i = self.index(a);
        if self.lock_isolated().remove(&i) {
            ip(
                &["-n", &self.nodes[i].netns, "link", "set", "eth0", "up"],
                "rejoin a host",
            );
            self.wait_link_up(i);
        }
    }

    /// Undo every partition and isolation.
    #[track_caller]
    pub fn heal_all(&self) {
        let cuts: Vec<(usize, usize)> = self.lock_cuts().iter().copied().collect();
        for (i, j) in cuts {
            let (a, b) = (self.nodes[i].label.clone(), self.nodes[j].label.clone());
            self.heal(&a, &b);
        }
        let isolated: Vec<usize> = self.lock_isolated().iter().copied().collect();
        for i in isolated {
            let a = self.nodes[i].label.clone();
            self.rejoin(&a);
        }
    }

    fn lock_cuts(&self) -> std::sync::MutexGuard<'_, BTreeSet<(usize, usize)>> {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_isolated(&self) -> std::sync::MutexGuard<'_, BTreeSet<usize>> {
        self.isolated.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `ip route <op> blackhole <addr of to>/32` in the namespace of `from`.
    #[track_caller]
    fn blackhole(&self, op: &str, from: usize, to: usize) {
        let dest = format!("{}/32", self.nodes[to].addr);
        ip(
            &[
                "-n",
                &self.nodes[from].netns,
                "route",
                op,
                "blackhole",
                &dest,
            ],
            "change a partition",
        );
    }

    /// A TCP connection from host `from` to `port` of host `to`, through
    /// the network (so partitions apply).
    pub fn connect(&self, from: &str, to: &str, port: u16) -> io::Result<TcpStream> {
        (self.dialer(from, to, port))()
    }

    /// [`Net::connect`] as a function that can be called again (from any
    /// thread), e.g. to reconnect after an error.
    #[track_caller]
    pub fn dialer(
        &self,
        from: &str,
        to: &str,
        port: u16,
    ) -> impl Fn() -> io::Result<TcpStream> + Send + Sync + 'static {
        let netns = self.node(from).netns.clone();
        let addr = SocketAddr::from((self.node(to).addr, port));
        move || connect_in(&netns, addr, CONNECT_TIMEOUT)
    }

    /// [`Net::connect`] as a [`Conn`]; fails the test if it cannot connect.
    #[track_caller]
    pub fn client(&self, from: &str, to: &str, port: u16) -> Conn {
        let stream = self
            .connect(from, to, port)
            .unwrap_or_else(|e| panic!("connect from {from} to {to} port {port}: {e}"));
        Conn::from_stream(stream)
    }

    /// A [`Cluster`] whose flarei runs on host `index` (port
    /// [`FLAREI_PORT`], `index_conf` appended to its config); add nodes with
    /// [`Cluster::add_node_on`] (`node_conf` is appended to each node's
    /// config).
    #[track_caller]
    pub fn cluster(&self, index: &str, index_conf: &str, node_conf: &str) -> Cluster {
        let flarei = Flarei::start_on(&self.host(index), FLAREI_PORT, index_conf);
        Cluster::with_index(flarei, node_conf)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let names = self
            .nodes
            .iter()
            .map(|n| n.netns.clone())
            .chain(self.hub.take());
        for name in names {
            match Command::new(ip_program())
                .args(["netns", "del", &name])
                .output()
            {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "ip netns del {name}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => eprintln!("ip netns del {name}: {e}"),
            }
        }
    }
}
