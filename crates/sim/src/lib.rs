//! In-process cluster harness (docs/reliability.md §6).
//!
//! An index and nodes run in one process, on the memory engine, each on a
//! thread of its own with a current-thread runtime (like separate
//! processes: stopping one drops its runtime, every task and socket with
//! it). Every connection a daemon opens to another (replication, forwarding,
//! `dump`, `node sync`, pings, reports to the index) goes through a relay of
//! the [`Net`], which the test controls per direction:
//!
//! * [`Net::cut`]: connections are reset and new ones refused (a partition
//!   that fails fast);
//! * [`Net::pause`]: bytes are held, in order, until [`Net::resume`] (a
//!   partition that is silent, or a slow link: the other links go on, so
//!   messages on different connections are delivered in another order);
//!   [`Net::pause_after`] pauses a link once a connection on it has carried
//!   a number of bytes back toward the dialer (e.g. in the middle of a dump);
//! * [`Net::delay`]: each chunk waits that long.
//!
//! A node's data stays in its engine across [`Sim::crash`] and
//! [`Sim::restart`], as on disk. Test clients connect directly (not through
//! the [`Net`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flare_net::Dial;
use flare_storage::memory::MemoryEngine;
use flare_storage::{DynEngine, Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// The name of the index in the [`Net`].
pub const INDEX: &str = "index";

/// What a link does with the bytes of its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    #[default]
    Up,
    /// Bytes are held until the link is resumed (or cut).
    Paused,
    /// Connections are reset, new ones refused.
    Cut,
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    state: LinkState,
    delay: Duration,
    /// Pause once a connection has carried this many bytes toward the dialer.
    pause_after: Option<u64>,
}

/// The links between the daemons: one per direction (dialer → listener),
/// named by the daemons' names ([`INDEX`], `n0`, `n1`, …).
#[derive(Default)]
pub struct Net {
    links: Mutex<HashMap<(String, String), Link>>,
    /// `127.0.0.1:<port>` → name.
    names: Mutex<HashMap<String, String>>,
    changed: watch::Sender<u64>,
    /// Bytes carried by all relays (both directions).
    pub bytes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Net {
    fn update(&self, from: &str, to: &str, f: impl FnOnce(&mut Link)) {
        f(lock(&self.links)
            .entry((from.to_string(), to.to_string()))
            .or_default());
        self.changed.send_modify(|v| *v += 1);
    }

    fn link(&self, from: &str, to: &str) -> Link {
        lock(&self.links)
            .get(&(from.to_string(), to.to_string()))
            .copied()
            .unwrap_or_default()
    }

    fn name_of(&self, addr: &str) -> String {
        lock(&self.names)
            .get(addr)
            .cloned()
            .unwrap_or_else(|| addr.to_string())
    }

    fn register(&self, name: &str, port: u16) {
        lock(&self.names).insert(format!("127.0.0.1:{port}"), name.to_string());
    }

    /// The state of the link `from` → `to`.
    pub fn state(&self, from: &str, to: &str) -> LinkState {
        self.link(from, to).state
    }

    /// Cut both directions between `a` and `b`.
    pub fn cut(&self, a: &str, b: &str) {
        self.update(a, b, |l| l.state = LinkState::Cut);
        self.update(b, a, |l| l.state = LinkState::Cut);
    }

    /// Bring both directions between `a` and `b` up again (held bytes flow).
    pub fn heal(&self, a: &str, b: &str) {
        self.update(a, b, |l| *l = Link::default());
        self.update(b, a, |l| *l = Link::default());
    }

    /// Hold the bytes of the connections `from` opened to `to`.
    pub fn pause(&self, from: &str, to: &str) {
        self.update(from, to, |l| l.state = LinkState::Paused);
    }

    /// Pause `from` → `to` once one of its connections has carried `bytes`
    /// toward `from` (counted per connection).
    pub fn pause_after(&self, from: &str, to: &str, bytes: u64) {
        self.update(from, to, |l| l.pause_after = Some(bytes));
    }

    /// Let the held bytes of `from` → `to` go.
    pub fn resume(&self, from: &str, to: &str) {
        self.update(from, to, |l| {
            l.state = LinkState::Up;
            l.pause_after = None;
        });
    }

    /// Delay each chunk of `from` → `to` (both ways on its connections).
    pub fn delay(&self, from: &str, to: &str, d: Duration) {
        self.update(from, to, |l| l.delay = d);
    }

    /// Wait until the link is up (`Ok`) or cut (`Err`).
    async fn passable(&self, from: &str, to: &str) -> Result<Link, ()> {
        let mut rx = self.changed.subscribe();
        loop {
            let link = self.link(from, to);
            match link.state {
                LinkState::Up => return Ok(link),
                LinkState::Cut => return Err(()),
                LinkState::Paused => {
                    if rx.changed().await.is_err() {
                        return Err(());
                    }
                }
            }
        }
    }

    /// Resolves when the link is cut.
    async fn until_cut(&self, from: &str, to: &str) {
        let mut rx = self.changed.subscribe();
        while self.state(from, to) != LinkState::Cut {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// One direction of a relayed connection.
async fn pump(
    mut src: tokio::net::tcp::OwnedReadHalf,
    mut dst: tokio::net::tcp::OwnedWriteHalf,
    net: Arc<Net>,
    from: String,
    to: String,
    toward_dialer: bool,
) {
    let mut buf = vec![0u8; 64 << 10];
    let mut carried = 0u64;
    loop {
        let n = tokio::select! {
            r = src.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = net.until_cut(&from, &to) => return,
        };
        if toward_dialer {
            carried += n as u64;
            if net
                .link(&from, &to)
                .pause_after
                .is_some_and(|limit| carried >= limit)
            {
                net.update(&from, &to, |l| {
                    l.state = LinkState::Paused;
                    l.pause_after = None;
                });
            }
        }
        let Ok(link) = net.passable(&from, &to).await else {
            return;
        };
        if !link.delay.is_zero() {
            tokio::time::sleep(link.delay).await;
        }
        net.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let written = tokio::select! {
            r = dst.write_all(&buf[..n]) => r.is_ok(),
            _ = net.until_cut(&from, &to) => false,
        };
        if !written {
            return;
        }
    }
    let _ = dst.shutdown().await;
}

/// The [`Dial`] of one daemon: its connections go through relays.
struct Dialer {
    origin: String,
    net: Arc<Net>,
}

impl Dial for Dialer {
    fn dial(&self, addr: &str) -> Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>> {
        let net = Arc::clone(&self.net);
        let from = self.origin.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            let to = net.name_of(&addr);
            if net.state(&from, &to) == LinkState::Cut {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("link {from} -> {to} is cut"),
                ));
            }
            let upstream = TcpStream::connect(&addr).await?;
            let local = TcpListener::bind("127.0.0.1:0").await?;
            let (client, accepted) =
                tokio::join!(TcpStream::connect(local.local_addr()?), local.accept());
            let (client, (accepted, _)) = (client?, accepted?);
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (ar, aw) = accepted.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::spawn(pump(
                ar,
                uw,
                Arc::clone(&net),
                from.clone(),
                to.clone(),
                false,
            ));
            tokio::spawn(pump(ur, aw, net, from, to, true));
            Ok(client)
        })
    }
}

/// A memory engine shared across restarts of one node (its "disk").
pub type Disk = Arc<MemoryEngine>;

/// A daemon running on its own thread.
struct Running {
    /// Graceful stop (as SIGTERM).
    stop: watch::Sender<bool>,
    /// Abrupt stop (as `kill -9`): the runtime is dropped.
    crash: Option<oneshot::Sender<()>>,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    fn end(mut self, graceful: bool) {
        if graceful {
            let _ = self.stop.send(true);
        } else if let Some(c) = self.crash.take() {
            let _ = c.send(());
        }
        let _ = self.thread.join();
    }
}

/// Run `serve` on a new thread with a current-thread runtime whose peer
/// connections go through `net` as `name`. `serve` gets the listener and
/// the stop signal and returns the server task.
fn spawn_daemon<F, Fut>(
    name: &str,
    net: &Arc<Net>,
    listener: std::net::TcpListener,
    serve: F,
) -> Running
where
    F: FnOnce(TcpListener, watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<tokio::task::JoinHandle<()>, String>>,
{
    let (stop, stop_rx) = watch::channel(false);
    let (crash, crash_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let dialer = Arc::new(Dialer {
        origin: name.to_string(),
        net: Arc::clone(net),
    });
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            flare_net::set_thread_dialer(dialer);
            rt.block_on(async move {
                let started = async {
                    let _ = listener.set_nonblocking(true);
                    let l = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                    serve(l, stop_rx).await
                };
                let task = match started.await {
                    Ok(t) => {
                        let _ = ready_tx.send(Ok(()));
                        t
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tokio::select! {
                    _ = task => {}
                    _ = crash_rx => {}
                }
            });
            // dropping the runtime cancels every task and closes every socket
            drop(rt);
        })
        .expect("spawn a daemon thread");
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name} did not start: {e}"),
        Err(_) => panic!("{name} did not start"),
    }
    Running {
        stop,
        crash: Some(crash),
        thread,
    }
}

fn listener(port: u16) -> std::net::TcpListener {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // a restart binds the same port again (a crashed daemon's port is free
    // once its runtime is gone)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if std::time::Instant::now() > deadline => panic!("bind {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A daemon of the simulation.
struct Member {
    name: String,
    port: u16,
    dir: tempfile::TempDir,
    /// Extra `name = value` options.
    options: Vec<(String, String)>,
    disk: Disk,
    running: Option<Running>,
}

/// An index and nodes in this process (see the crate docs).
pub struct Sim {
    pub net: Arc<Net>,
    index: Member,
    nodes: Vec<Member>,
}

/// The index's options unless a test says otherwise: a fast monitor.
pub const INDEX_OPTIONS: &[(&str, &str)] = &[("monitor-interval", "1"), ("monitor-threshold", "2")];

impl Sim {
    /// An index with [`INDEX_OPTIONS`] and `extra` options.
    pub fn new(extra: &[(&str, &str)]) -> Sim {
        let net = Arc::new(Net::default());
        let l = listener(0);
        let port = l.local_addr().expect("local_addr").port();
        let mut options: Vec<(String, String)> = INDEX_OPTIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut sim = Sim {
            net,
            index: Member {
                name: INDEX.to_string(),
                port,
                dir: tempfile::tempdir().expect("tempdir"),
                options,
                disk: Disk::default(),
                running: None,
            },
            nodes: Vec::new(),
        };
        sim.net.register(INDEX, port);
        sim.start_index(l);
        sim
    }

    fn start_index(&mut self, l: std::net::TcpListener) {
        let m = &self.index;
        let mut s = flare_daemon::Settings::new(flarei::SPECS);
        let dir = m.dir.path().display().to_string();
        let port = m.port.to_string();
        let mut set = |k: &str, v: &str| s.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        set("data-dir", &dir);
        set("server-name", "127.0.0.1");
        set("server-port", &port);
        for (k, v) in &m.options {
            set(k, v);
        }
        let config = flarei::IndexConfig::from_settings(s).expect("index config");
        let map = flarei::persist::load(&config.db_dir)
            .expect("flare.xml")
            .unwrap_or_default();
        let running = spawn_daemon(INDEX, &self.net, l, move |tcp, stop| async move {
            let store = flarei::MapStore::File(config.db_dir.clone());
            let (_index, task) = flarei::start(config, store, map, tcp, None, None, stop);
            Ok(task)
        });
        self.index.running = Some(running);
    }

    /// Start node `n<i>` (the next number) with `extra` options; it
    /// registers with the index (a proxy). Returns its number.
    pub fn add_node(&mut self, extra: &[(&str, &str)]) -> usize {
        let i = self.nodes.len();
        let l = listener(0);
        let port = l.local_addr().expect("local_addr").port();
        let name = format!("n{i}");
        self.net.register(&name, port);
        self.nodes.push(Member {
            name,
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            options: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            disk: Disk::default(),
            running: None,
        });
        self.start_node(i, l);
        i
    }

    fn start_node(&mut self, i: usize, l: std::net::TcpListener) {
        let m = &self.nodes[i];
        let mut s = flare_daemon::Settings::new(flared::SPECS);
        let dir = m.dir.path().display().to_string();
        let port = m.port.to_string();
        let index = format!("127.0.0.1:{}", self.index.port);
        let mut set = |k: &str, v: &str| s.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        set("data-dir", &dir);
        set("server-name", "127.0.0.1");
        set("server-port", &port);
        set("index-servers", &index);
        for (k, v) in &m.options {
            set(k, v);
        }
        let config = flared::NodeConfig::from_settings(s).expect("node config");
        let disk = m.disk.clone();
        let running = spawn_daemon(&m.name, &self.net, l, move |tcp, stop| async move {
            let store = Store::open(Box::new(disk) as DynEngine, StoreConfig::default())
                .map_err(|e| e.to_string())?;
            let (_node, task) = flared::start(config, store, None, tcp, None, None, stop).await?;
            Ok(task)
        });
        self.nodes[i].running = Some(running);
    }

    /// The index's port.
    pub fn index_port(&self) -> u16 {
        self.index.port
    }

    /// Node `i`'s port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Node `i`'s name in the [`Net`] (`n<i>`).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i` as the index names it: `127.0.0.1:<port>`.
    pub fn key(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i` as index commands want it: `127.0.0.1 <port>`.
    pub fn name_port(&self, i: usize) -> String {
        format!("127.0.0.1 {}", self.nodes[i].port)
    }

    /// Stop node `i` as `kill -9` would (its data stays on its disk).
    pub fn crash(&mut self, i: usize) {
        if let Some(r) = self.nodes[i].running.take() {
            r.end(false);
        }
    }

    /// Stop node `i` as SIGTERM would (drain, then tell the index).
    pub fn stop(&mut self, i: usize) {
        if let Some(r) = self.nodes[i].running.take() {
            r.end(true);
        }
    }

    /// Start a stopped node `i` again on its port and disk.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].running.is_none(), "n{i} is running");
        let l = listener(self.nodes[i].port);
        self.start_node(i, l);
    }

    /// Stop the index abruptly and start it again from its `flare.xml`.
    pub fn restart_index(&mut self) {
        if let Some(r) = self.index.running.take() {
            r.end(false);
        }
        let l = listener(self.index.port);
        self.start_index(l);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        for m in self
            .nodes
            .iter_mut()
            .chain(std::iter::once(&mut self.index))
        {
            if let Some(r) = m.running.take() {
                r.end(false);
            }
        }
    }
}
