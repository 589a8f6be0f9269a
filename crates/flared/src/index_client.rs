//! Talking to the index server as a client: registration (`node add` +
//! `meta`) at start-up and the shutdown notice (cluster.md §2).

use std::time::Duration;

use flare_cluster::HashAlgorithm;
use flare_net::{PeerConfig, PeerConn, PeerError};
use flare_proto::client::ReplyKind;
use flare_proto::node::NodeLine;

use crate::topology::Meta;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a single index server, 500 ms apart (as the original).
const SINGLE_SERVER_ATTEMPTS: usize = 9;

/// Errors talking to the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("failed to connect to index server {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("failed to add node to index server {server}: {reason}")]
    NodeAdd { server: String, reason: String },
    #[error("failed to get meta data from index server {server}: {reason}")]
    Meta { server: String, reason: String },
    #[error("index server {server}: {reason}")]
    Io { server: String, reason: String },
}

impl IndexError {
    /// The error a failpoint stands for: the index could not be reached.
    pub fn failpoint(e: flare_daemon::fault::Injected) -> IndexError {
        IndexError::Connect {
            servers: "(all)".to_string(),
            reason: e.to_string(),
        }
    }
}

struct IndexConn {
    server: String,
    conn: PeerConn,
}

impl IndexConn {
    fn io(&self, e: PeerError) -> IndexError {
        IndexError::Io {
            server: self.server.clone(),
            reason: e.to_string(),
        }
    }

    /// Send `line` and return the reply's lines (without line ends).
    async fn call(&mut self, line: &str, kind: ReplyKind) -> Result<Vec<String>, PeerError> {
        let reply = self.conn.call(line.as_bytes(), kind).await?;
        Ok(reply
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
            .collect())
    }
}

/// The cluster secret to authenticate with, if any.
pub type Auth = Option<std::sync::Arc<flare_net::auth::ClusterAuth>>;

fn servers_text(servers: &[(String, u16)]) -> String {
    servers
        .iter()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Connect to an index server: one server is tried up to 9 times 500 ms
/// apart; several are tried once each, in random order.
async fn connect(servers: &[(String, u16)], auth: Auth) -> Result<IndexConn, IndexError> {
    let mut order: Vec<&(String, u16)> = servers.iter().collect();
    let attempts = if servers.len() == 1 {
        SINGLE_SERVER_ATTEMPTS
    } else {
        // shuffle (no rand crate needed for this)
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as usize)
            .unwrap_or(0);
        let n = order.len();
        order.rotate_left(seed % n);
        1
    };
    let mut last = String::new();
    for round in 0..attempts {
        for (host, port) in &order {
            let addr = format!("{host}:{port}");
            let mut cfg = PeerConfig::new(READ_TIMEOUT);
            cfg.connect_timeout = CONNECT_TIMEOUT;
            cfg.secret = auth.clone();
            match PeerConn::connect(&addr, cfg).await {
                Ok(conn) => return Ok(IndexConn { server: addr, conn }),
                Err(e) => last = e.to_string(),
            }
            tracing::warn!(
                "connect() to index server {addr} failed: {last} -> wait for 500000 usec"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = round;
    }
    Err(IndexError::Connect {
        servers: servers_text(servers),
        reason: last,
    })
}

/// `node add` + `meta`: the node map and the key resolver parameters.
pub async fn register(
    servers: &[(String, u16)],
    auth: Auth,
    name: &str,
    port: u16,
) -> Result<(Vec<NodeLine>, Meta), IndexError> {
    let mut c = connect(servers, auth).await?;
    tracing::info!("setting up cluster node... (index_server={})", c.server);
    let lines = c
        .call(&format!("node add {name} {port}\r\n"), ReplyKind::Block)
        .await
        .map_err(|e| IndexError::NodeAdd {
            server: c.server.clone(),
            reason: e.to_string(),
        })?;
    let mut nodes = Vec::new();
    for line in lines.iter().take_while(|l| *l != "END") {
        match NodeLine::parse(line.as_bytes()) {
            Some(n) => nodes.push(n),
            None => {
                return Err(IndexError::NodeAdd {
                    server: c.server.clone(),
                    reason: format!(
                    "index answered [{line}] (is {name}:{port} already registered and not down?)"
                ),
                })
            }
        }
    }
    let mut meta = Meta::default();
    let meta_err = |server: &str, reason: String| IndexError::Meta {
        server: server.to_string(),
        reason,
    };
    let lines = c
        .call("meta\r\n", ReplyKind::Block)
        .await
        .map_err(|e| meta_err(&c.server, e.to_string()))?;
    for line in lines.iter().take_while(|l| *l != "END") {
        let mut it = line.split(' ');
        let (Some("META"), Some(key), Some(value)) = (it.next(), it.next(), it.next()) else {
            return Err(meta_err(&c.server, format!("unexpected line [{line}]")));
        };
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| meta_err(&c.server, format!("bad value in [{line}]")))
        };
        match key {
            "partition-size" => meta.partition_size = num(value)?,
            "partition-modular-hint" => meta.hint = num(value)?,
            "partition-modular-virtual" => meta.virtual_nodes = num(value)?,
            "key-hash-algorithm" => {
                meta.hash = HashAlgorithm::from_name(value).ok_or_else(|| {
                    meta_err(&c.server, format!("unknown hash algorithm [{value}]"))
                })?
            }
            "partition-type" if value == "modular" => {}
            "partition-type" => {
                return Err(meta_err(
                    &c.server,
                    format!("unknown partition type [{value}]"),
                ))
            }
            other => tracing::warn!("unknown meta key [{other}] from the index: skipped"),
        }
    }
    tracing::info!(
        "meta data from index server: partition_size={} key_hash_algorithm={} key_resolver_modular_hint={} key_resolver_modular_virtual={}",
        meta.partition_size,
        meta.hash.name(),
        meta.hint,
        meta.virtual_nodes
    );
    Ok((nodes, meta))
}

/// Tell the index this node is stopping (`shutdown <name> <port>`), so that
/// failover starts at once (cluster.md §2.5).
pub async fn notify_shutdown(
    servers: &[(String, u16)],
    auth: Auth,
    name: &str,
    port: u16,
) -> Result<(), IndexError> {
    let mut c = connect(servers, auth).await?;
    let reply = c
        .call(&format!("shutdown {name} {port}\r\n"), ReplyKind::Line)
        .await
        .map_err(|e| c.io(e))?;
    match reply.first().map(String::as_str) {
        Some("OK") => Ok(()),
        other => Err(IndexError::Io {
            server: c.server.clone(),
            reason: format!("shutdown answered [{}]", other.unwrap_or_default()),
        }),
    }
}

/// Send one command line to an index server and return its one-line answer.
pub async fn command(
    servers: &[(String, u16)],
    auth: Auth,
    line: &str,
) -> Result<String, IndexError> {
    let mut c = connect(servers, auth).await?;
    let reply = c.call(line, ReplyKind::Line).await.map_err(|e| c.io(e))?;
    Ok(reply.into_iter().next().unwrap_or_default())
}
