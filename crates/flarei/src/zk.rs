//! The node map in ZooKeeper (`index-db = zookeeper://…`, cluster.md §1.5,
//! §2.4): several flarei share one map.
//!
//! Znodes under the chroot (the original's layout, so `flare-zkadmin` and a
//! C++ flarei see the same tree):
//!
//! * `/index/nodemap`: the whole `flare.xml` document;
//! * `/index/lock`: parent of the lock recipe's ephemeral sequential
//!   children `<uuid>-lock-<sequence>` (lowest sequence holds the lock);
//! * `/index/servers/<server-name>:<server-port>`: ephemeral, one per
//!   running flarei;
//! * `/index/meta/<name>`: overrides of the partitioning options.
//!
//! A missing `/index`, `/index/lock`, `/index/servers`, `/index/meta` (and
//! the chroot itself) is created at start-up; a missing `/index/nodemap` is
//! created from `<data-dir>/flare.xml` when that file exists (the migration
//! from `file://`), else as an empty map.
//!
//! A change ([`ZkStore::begin`] → [`ZkStore::commit`]) takes the lock,
//! re-reads the map, and writes it back with `setData` guarded twice: by the
//! znode version it read and by the lock node still existing (a multi-op),
//! so an index that lost its lock or raced another cannot overwrite a newer
//! map. Without a session every change is refused at once
//! ([`ZkError::NoSession`]); the watch task re-establishes an expired
//! session, re-registers the server znode and reloads the map.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use zookeeper_client as zkc;

use crate::map::NodeMap;
use crate::persist;

/// The original's session timeout.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one change's lock (a crashed holder's lock goes away
/// when its session expires, after [`SESSION_TIMEOUT`]).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a change waits for a disconnected session to come back before
/// it is refused.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(4);
/// Longest wait for any other ZooKeeper request.
pub const OP_TIMEOUT: Duration = Duration::from_secs(8);

const NODEMAP: &str = "/index/nodemap";
const LOCK_DIR: &str = "/index/lock";
const SERVERS: &str = "/index/servers";
const META: &str = "/index/meta";
/// The meta variables a `/index/meta/<name>` child may override.
pub const META_NAMES: [&str; 5] = [
    "partition-size",
    "partition-modular-hint",
    "partition-modular-virtual",
    "partition-type",
    "key-hash-algorithm",
];

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error(
        "cannot connect to ZooKeeper {servers}: {source} (is the ensemble running and reachable?)"
    )]
    Connect { servers: String, source: zkc::Error },
    #[error("no ZooKeeper session with {servers} ({state}): the node map cannot change until ZooKeeper is reachable again")]
    NoSession { servers: String, state: String },
    #[error("ZooKeeper {what} failed: {source}")]
    Op { what: String, source: zkc::Error },
    #[error("ZooKeeper {what} did not finish within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("the node map in ZooKeeper ({path}) is not a valid flare.xml document: {reason}")]
    Format { path: String, reason: String },
    #[error("cannot read {path} to seed the ZooKeeper node map: {reason}")]
    Seed { path: String, reason: String },
}

async fn timed<T>(
    what: &str,
    after: Duration,
    f: impl std::future::Future<Output = Result<T, zkc::Error>>,
) -> Result<T, ZkError> {
    match tokio::time::timeout(after, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ZkError::Op {
            what: what.to_string(),
            source,
        }),
        Err(_) => Err(ZkError::Timeout {
            what: what.to_string(),
            after,
        }),
    }
}

/// One flarei's handle on the shared node map.
pub struct ZkStore {
    servers: String,
    chroot: String,
    /// `server-name:server-port` of this flarei.
    me: String,
    /// The chrooted client of the current session (replaced when a session
    /// expired).
    client: RwLock<zkc::Client>,
}

/// A change in progress: the lock, and the map with the znode version it
/// was read at.
pub struct ZkTxn {
    lock: zkc::OwnedLockClient,
    version: i32,
    pub map: NodeMap,
}

fn persistent() -> zkc::CreateOptions<'static> {
    zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all())
}

fn lock_prefix() -> String {
    let r = flare_net::auth::nonce();
    let h = flare_net::auth::hex(&r);
    // A UUID-shaped unique prefix, as the original's lock recipe names its
    // children (`<uuid>-lock-<sequence>`).
    format!(
        "{LOCK_DIR}/{}-{}-{}-{}-{}-lock-",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl ZkStore {
    /// Connect, create what is missing, register this server and load the
    /// map. `seed_dir`: where a `flare.xml` to seed a missing node map may be.
    pub async fn open(
        servers: &str,
        chroot: &str,
        me: &str,
        seed_dir: &Path,
    ) -> Result<(Arc<ZkStore>, NodeMap), ZkError> {
        let client = Self::session(servers, chroot).await?;
        Self::prepare(&client, seed_dir).await?;
        let store = Arc::new(ZkStore {
            servers: servers.to_string(),
            chroot: chroot.to_string(),
            me: me.to_string(),
            client: RwLock::new(client),
        });
        store.register().await?;
        let (map, _) = store.read().await?;
        Ok((store, map))
    }

    /// A new session, with the chroot created if missing.
    async fn session(servers: &str, chroot: &str) -> Result<zkc::Client, ZkError> {
        let connect = zkc::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .connect(servers);
        let root = match tokio::time::timeout(SESSION_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(source)) => {
                return Err(ZkError::Connect {
                    servers: servers.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(ZkError::Timeout {
                    what: format!("connect to {servers}"),
                    after: SESSION_TIMEOUT,
                })
            }
        };
        if chroot == "/" {
            return Ok(root);
        }
        match timed(
            "create of the chroot",
            OP_TIMEOUT,
            root.mkdir(chroot, &persistent()),
        )
        .await
        {
            Ok(())
            | Err(ZkError::Op {
                source: zkc::Error::NodeExists,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        root.chroot(chroot.to_string()).map_err(|_| ZkError::Op {
            what: format!("chroot {chroot}"),
            source: zkc::Error::BadArguments(&"invalid chroot"),
        })
    }

    /// Create the parents and the node map if they are missing.
    async fn prepare(client: &zkc::Client, seed_dir: &Path) -> Result<(), ZkError> {
        for dir in ["/index", LOCK_DIR, SERVERS, META] {
            create_missing(client, dir, b"").await?;
        }
        if timed(
            "exists /index/nodemap",
            OP_TIMEOUT,
            client.check_stat(NODEMAP),
        )
        .await?
        .is_some()
        {
            return Ok(());
        }
        let seed = persist::state_path(seed_dir);
        let doc = match persist::load(seed_dir) {
            Ok(Some(map)) => {
                tracing::info!(
                    "creating {NODEMAP} from {} (node_map_version={}, {} node(s))",
                    seed.display(),
                    map.version,
                    map.len()
                );
                persist::render(&map)
            }
            Ok(None) => {
                tracing::info!("creating {NODEMAP} with an empty node map");
                persist::render(&NodeMap::default())
            }
            Err(e) => {
                return Err(ZkError::Seed {
                    path: seed.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        create_missing(client, NODEMAP, doc.as_bytes()).await
    }

    /// The ephemeral `/index/servers/<me>` of this flarei (one left by an
    /// earlier session of the same server is replaced).
    async fn register(&self) -> Result<(), ZkError> {
        let client = self.client();
        let path = format!("{SERVERS}/{}", self.me);
        let ephemeral = zkc::CreateMode::Ephemeral.with_acls(zkc::Acls::anyone_all());
        for _ in 0..2 {
            match timed(
                "register",
                OP_TIMEOUT,
                client.create(&path, b"", &ephemeral),
            )
            .await
            {
                Ok(_) => return Ok(()),
                Err(ZkError::Op {
                    source: zkc::Error::NodeExists,
                    ..
                }) => {
                    let _ = timed("delete stale", OP_TIMEOUT, client.delete(&path, None)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ZkError::Op {
            what: format!("create {path}"),
            source: zkc::Error::NodeExists,
        })
    }

    pub fn client(&self) -> zkc::Client {
        match self.client.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// `servers` and the chroot, for messages.
    pub fn describe(&self) -> String {
        format!("{}{}", self.servers, self.chroot)
    }

    /// Is the session usable? A session that is reconnecting (its server
    /// went away, another one of the ensemble takes it over) gets
    /// [`RECONNECT_WAIT`] to come back.
    async fn connected(&self, client: &zkc::Client) -> Result<(), ZkError> {
        let mut states = client.state_watcher();
        let deadline = tokio::time::Instant::now() + RECONNECT_WAIT;
        let mut state = client.state();
        while state == zkc::SessionState::Disconnected {
            match tokio::time::timeout_at(deadline, states.changed()).await {
                Ok(s) => state = s,
                Err(_) => break,
            }
        }
        match state {
            zkc::SessionState::SyncConnected => Ok(()),
            other => Err(ZkError::NoSession {
                servers: self.describe(),
                state: format!("{other:?}"),
            }),
        }
    }

    /// The map and its znode version.
    pub async fn read(&self) -> Result<(NodeMap, i32), ZkError> {
        let client = self.client();
        let (data, stat) =
            timed("read of the node map", OP_TIMEOUT, client.get_data(NODEMAP)).await?;
        Ok((parse(&data)?, stat.version))
    }

    /// Take the lock and read the map under it.
    pub async fn begin(&self) -> Result<ZkTxn, ZkError> {
        let client = self.client();
        self.connected(&client).await?;
        let prefix =
            zkc::LockPrefix::new_custom(lock_prefix(), "-lock-").map_err(|source| ZkError::Op {
                what: "lock prefix".into(),
                source,
            })?;
        let options = zkc::LockOptions::new(zkc::Acls::anyone_all());
        let lock = timed(
            "lock",
            LOCK_TIMEOUT,
            client.lock(prefix, self.me.as_bytes(), options),
        )
        .await?
        .into_owned();
        let c = lock.client();
        timed("sync of the node map", OP_TIMEOUT, c.sync(NODEMAP)).await?;
        let (data, stat) = timed("read of the node map", OP_TIMEOUT, c.get_data(NODEMAP)).await?;
        Ok(ZkTxn {
            map: parse(&data)?,
            version: stat.version,
            lock,
        })
    }

    /// Write `map` as the new node map: only if the znode is still at the
    /// version `txn` read and `txn` still holds the lock.
    pub async fn commit(&self, txn: ZkTxn, map: &NodeMap) -> Result<(), ZkError> {
        let doc = persist::render(map);
        timed(
            "write of the node map",
            OP_TIMEOUT,
            txn.lock
                .set_data(NODEMAP, doc.as_bytes(), Some(txn.version)),
        )
        .await?;
        Ok(())
    }

    /// The `/index/meta` overrides (name, value).
    pub async fn meta(&self) -> Result<Vec<(String, String)>, ZkError> {
        let client = self.client();
        let names = timed(
            "list of /index/meta",
            OP_TIMEOUT,
            client.list_children(META),
        )
        .await?;
        let mut out = Vec::new();
        for name in names {
            if !META_NAMES.contains(&name.as_str()) {
                continue;
            }
            let path = format!("{META}/{name}");
            let (data, _) = timed(
                "read of a meta variable",
                OP_TIMEOUT,
                client.get_data(&path),
            )
            .await?;
            out.push((name, String::from_utf8_lossy(&data).trim().to_string()));
        }
        Ok(out)
    }

    /// Watch the node map: call `changed` with every new map, forever.
    /// Re-establishes an expired session (and this server's znode) with a
    /// backoff; while there is none, changes are refused ([`Self::begin`]).
    pub async fn watch(self: Arc<Self>, changed: impl Fn(NodeMap) + Send + 'static) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let client = self.client();
            match client.state() {
                zkc::SessionState::Expired
                | zkc::SessionState::Closed
                | zkc::SessionState::AuthFailed => {
                    tracing::warn!(
                        "ZooKeeper session with {} ended: opening a new one",
                        self.describe()
                    );
                    match Self::session(&self.servers, &self.chroot).await {
                        Ok(c) => {
                            match self.client.write() {
                                Ok(mut g) => *g = c,
                                Err(p) => *p.into_inner() = c,
                            }
                            if let Err(e) = self.register().await {
                                tracing::error!("{e}");
                            }
                            tracing::info!(
                                "ZooKeeper session with {} re-established",
                                self.describe()
                            );
                            backoff = Duration::from_millis(200);
                        }
                        Err(e) => {
                            tracing::error!("{e}");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                    continue;
                }
                _ => {}
            }
            match timed(
                "watch of the node map",
                OP_TIMEOUT,
                client.get_and_watch_data(NODEMAP),
            )
            .await
            {
                Ok((data, _stat, watcher)) => {
                    backoff = Duration::from_millis(200);
                    match parse(&data) {
                        Ok(map) => changed(map),
                        Err(e) => tracing::error!("{e}"),
                    }
                    // Fires on a change, and on the session's end.
                    let _ = watcher.changed().await;
                }
                Err(e) => {
                    tracing::debug!("{e}");
                    // Wait for the session to come back (or to expire).
                    let mut states = client.state_watcher();
                    let _ = tokio::time::timeout(backoff, states.changed()).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn parse(data: &[u8]) -> Result<NodeMap, ZkError> {
    let bad = |reason: String| ZkError::Format {
        path: NODEMAP.to_string(),
        reason,
    };
    let text = std::str::from_utf8(data).map_err(|e| bad(e.to_string()))?;
    persist::parse(text).map_err(bad)
}

async fn create_missing(client: &zkc::Client, path: &str, data: &[u8]) -> Result<(), ZkError> {
    match timed(&format!("create {path}"), OP_TIMEOUT, async {
        client.create(path, data, &persistent()).await.map(|_| ())
    })
    .await
    {
        Ok(()) => Ok(()),
        Err(ZkError::Op {
            source: zkc::Error::NodeExists,
            ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_children_are_named_like_the_originals() {
        let a = lock_prefix();
        let b = lock_prefix();
        assert_ne!(a, b, "each change contends with a prefix of its own");
        let name = a.strip_prefix("/index/lock/").expect("under /index/lock");
        let uuid = name.strip_suffix("-lock-").expect("ends in -lock-");
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
        assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(zkc::LockPrefix::new_custom(a, "-lock-").is_ok());
    }

    #[test]
    fn a_nodemap_that_is_not_a_document_is_a_format_error() {
        let e = parse(b"not xml").expect_err("garbage");
        assert!(e.to_string().contains("/index/nodemap"), "{e}");
        let doc = persist::render(&NodeMap::default());
        assert_eq!(
            parse(doc.as_bytes()).expect("empty map"),
            NodeMap::default()
        );
    }
}
