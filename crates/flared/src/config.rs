//! flared's options (operations.md §2.3) and their effective values.

use std::path::PathBuf;

use flare_daemon::{ConfigError, OptKind::*, OptSpec, Settings};
use flare_storage::{Compression, FsyncPolicy};

/// Every flared option: the original's, then flare-rs extensions (marked in the help).
pub const SPECS: &[OptSpec] = &[
    OptSpec::new("back-log", Int, Some("30"), false, "listen backlog"),
    OptSpec::new("daemonize", Switch, None, false, "run as a daemon"),
    OptSpec::new("data-dir", Str, None, false, "data directory (required)"),
    OptSpec::new(
        "index-servers",
        Str,
        None,
        true,
        "index servers: host:port[,host:port...]",
    ),
    OptSpec::new(
        "index-server-name",
        Str,
        None,
        true,
        "index server name (deprecated, use index-servers)",
    ),
    OptSpec::new(
        "index-server-port",
        Int,
        Some("12120"),
        true,
        "index server port (deprecated, use index-servers)",
    ),
    OptSpec::new(
        "log-facility",
        Str,
        Some(""),
        true,
        "syslog facility (user, daemon, local0..local7)",
    ),
    OptSpec::new(
        "max-connection",
        Int,
        Some("128"),
        true,
        "max number of client connections",
    ),
    OptSpec::new(
        "mutex-slot",
        Int,
        Some("64"),
        false,
        "number of storage lock stripes",
    ),
    OptSpec::new(
        "mysql-replication",
        Switch,
        None,
        false,
        "MySQL replication (not supported by flare-rs; accepted and ignored)",
    ),
    OptSpec::new(
        "mysql-replication-port",
        Int,
        Some("12122"),
        false,
        "MySQL replication port (ignored)",
    ),
    OptSpec::new(
        "mysql-replication-id",
        UInt,
        Some("19790217"),
        false,
        "MySQL replication server id (ignored)",
    ),
    OptSpec::new(
        "mysql-replication-db",
        Str,
        Some("flare"),
        false,
        "MySQL replication db name (ignored)",
    ),
    OptSpec::new(
        "mysql-replication-table",
        Str,
        Some("flare"),
        false,
        "MySQL replication table name (ignored)",
    ),
    OptSpec::new(
        "noreply-window-limit",
        Int,
        Some("0"),
        true,
        "noreply window limit",
    ),
    OptSpec::new(
        "net-read-timeout",
        Int,
        Some("600"),
        true,
        "read timeout of client connections (seconds)",
    ),
    OptSpec::new(
        "proxy-concurrency",
        Int,
        Some("2"),
        false,
        "connections per destination node",
    ),
    OptSpec::new(
        "reconstruction-interval",
        Int,
        Some("0"),
        true,
        "pause per record during reconstruction (usec)",
    ),
    OptSpec::new(
        "reconstruction-bwlimit",
        Int,
        Some("0"),
        true,
        "reconstruction bandwidth limit (KB/s, 0 = none)",
    ),
    OptSpec::new(
        "replication-type",
        Str,
        Some("async"),
        true,
        "replication type (async, sync)",
    ),
    OptSpec::new(
        "server-name",
        Str,
        None,
        false,
        "node server name (node identity; default: host name)",
    ),
    OptSpec::new("server-port", Int, Some("12121"), false, "node server port"),
    OptSpec::new(
        "server-socket",
        Str,
        Some(""),
        false,
        "also listen on this unix domain socket",
    ),
    OptSpec::new(
        "stack-size",
        Int,
        Some("128"),
        false,
        "thread stack size (KiB; accepted, unused)",
    ),
    OptSpec::new(
        "storage-ap",
        UInt,
        Some("4"),
        false,
        "tc/kc record alignment (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-fp",
        UInt,
        Some("10"),
        false,
        "tc free block pool (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-bucket-size",
        UInt,
        Some("131071"),
        false,
        "tc/kc bucket size (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-cache-size",
        Int,
        Some("65536"),
        false,
        "deleted-key (tombstone) cache entries",
    ),
    OptSpec::new(
        "storage-compress",
        Str,
        Some(""),
        false,
        "compression: \"\", deflate, bz2, tcbs, lz4, snappy",
    ),
    OptSpec::new(
        "storage-large",
        Switch,
        None,
        false,
        "tc large database (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-lmemb",
        Int,
        Some("128"),
        false,
        "tcb leaf members (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-nmemb",
        Int,
        Some("256"),
        false,
        "tcb non-leaf members (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-dfunit",
        Int,
        Some("0"),
        false,
        "defragmentation unit (ignored by RocksDB)",
    ),
    OptSpec::new(
        "storage-type",
        Str,
        Some("rocksdb"),
        false,
        "storage type: rocksdb (tch, tcb, kch map to rocksdb)",
    ),
    OptSpec::new(
        "thread-pool-size",
        Int,
        Some("5"),
        true,
        "thread pool size (accepted; flare-rs uses async tasks)",
    ),
    OptSpec::new(
        "proxy-prior-netmask",
        UInt,
        Some("0"),
        false,
        "prefer proxy targets in this netmask (0 = off)",
    ),
    OptSpec::new(
        "max-total-thread-queue",
        UInt,
        Some("0"),
        true,
        "max queued internal jobs (0 = unlimited)",
    ),
    OptSpec::new(
        "time-watcher-enabled",
        Bool,
        Some("false"),
        true,
        "storage access watchdog",
    ),
    OptSpec::new(
        "time-watcher-polling-interval-msec",
        UInt,
        Some("0"),
        true,
        "watchdog polling interval",
    ),
    OptSpec::new(
        "storage-access-watch-threshold-warn-msec",
        UInt,
        Some("0"),
        true,
        "warn on slow storage access",
    ),
    OptSpec::new(
        "storage-access-watch-threshold-ping-ng-msec",
        UInt,
        Some("0"),
        true,
        "fail ping on slow storage access",
    ),
    OptSpec::new(
        "cluster-replication",
        Bool,
        Some("false"),
        true,
        "cluster replication (not yet supported)",
    ),
    OptSpec::new(
        "cluster-replication-server-name",
        Str,
        Some(""),
        true,
        "cluster replication destination",
    ),
    OptSpec::new(
        "cluster-replication-server-port",
        Int,
        Some("12121"),
        true,
        "cluster replication destination port",
    ),
    OptSpec::new(
        "cluster-replication-concurrency",
        Int,
        None,
        false,
        "cluster replication senders",
    ),
    OptSpec::new(
        "cluster-replication-mode",
        Str,
        Some("duplicate"),
        true,
        "cluster replication mode (duplicate, forward)",
    ),
    // flare-rs extensions
    OptSpec::new(
        "storage-fsync",
        Str,
        Some("never"),
        false,
        "[flare-rs] fsync each write: never (WAL in page cache) or always",
    ),
    OptSpec::new(
        "storage-block-cache-size",
        Int,
        Some("64"),
        false,
        "[flare-rs] RocksDB block cache (MiB)",
    ),
    OptSpec::new(
        "storage-write-buffer-size",
        Int,
        Some("32"),
        false,
        "[flare-rs] RocksDB memtable size (MiB)",
    ),
    OptSpec::new(
        "max-item-size",
        Int,
        Some("67108864"),
        false,
        "[flare-rs] largest value accepted (bytes)",
    ),
    OptSpec::new(
        "max-line-size",
        Int,
        Some("1048576"),
        false,
        "[flare-rs] longest request line accepted (bytes)",
    ),
    OptSpec::new(
        "storage-record-cache-size",
        Int,
        Some("64"),
        false,
        "[flare-rs] records kept in memory in front of RocksDB (MiB, 0 = none)",
    ),
    OptSpec::new(
        "proxy-timeout",
        Int,
        Some("5000"),
        false,
        "[flare-rs] timeout of one forwarded request (ms)",
    ),
    OptSpec::new(
        "index-silence-limit",
        Int,
        Some("0"),
        true,
        "[flare-rs] a master that has not heard from an index for this long (ms) refuses writes until it does (0 = off)",
    ),
    flare_daemon::networks::ADMIN_NETWORKS,
    flare_daemon::networks::CLUSTER_SECRET_FILE,
    flare_daemon::networks::CLUSTER_SECRET_REQUIRED,
    flare_daemon::metrics::METRICS_PORT,
    flare_daemon::metrics::METRICS_ADDRESS,
    OptSpec::new(
        "tls-port",
        Int,
        Some("0"),
        false,
        "[flare-rs] also serve clients over TLS on this port (0 = off; needs tls-cert-file and tls-key-file)",
    ),
    OptSpec::new(
        "tls-cert-file",
        Str,
        Some(""),
        true,
        "[flare-rs] PEM certificate chain of the TLS port",
    ),
    OptSpec::new(
        "tls-key-file",
        Str,
        Some(""),
        true,
        "[flare-rs] PEM private key of the TLS port",
    ),
    OptSpec::new(
        "tls-ca-file",
        Str,
        Some(""),
        true,
        "[flare-rs] PEM CA certificates: TLS clients must present a certificate signed by one (empty: no client certificates)",
    ),
];

/// Storage backend requested (`storage-type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageType {
    /// What the file said (`rocksdb`, `tch`, `tcb`, `kch`).
    pub configured: String,
}

/// Effective node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub settings: Settings,
    pub data_dir: PathBuf,
    pub back_log: i32,
    pub index_servers: Vec<(String, u16)>,
    pub max_connection: usize,
    pub mutex_slot: usize,
    pub net_read_timeout: u64,
    pub server_name: String,
    pub server_port: u16,
    pub server_socket: Option<PathBuf>,
    pub storage_cache_size: usize,
    pub storage_type: StorageType,
    pub compression: Compression,
    pub fsync: FsyncPolicy,
    pub block_cache_bytes: usize,
    pub record_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    pub max_item_size: usize,
    pub max_line_size: usize,
    pub proxy_concurrency: usize,
    pub proxy_timeout_ms: u64,
    /// `index-silence-limit` (ms, 0 = off): see docs/replication.md §6.1.
    pub index_silence_limit_ms: u64,
    /// `admin-networks`: who may send `flush_all`, `kill`, `verbosity`, and
    /// `dump` unless it is a node of the cluster (docs/security.md).
    pub admin_networks: flare_daemon::Networks,
    /// `tls-port` (0 = off).
    pub tls_port: u16,
    /// `metrics-address:metrics-port` (`None`: no metrics endpoint).
    pub metrics: Option<std::net::SocketAddr>,
    /// The TLS configuration of `tls-cert-file`, `tls-key-file`,
    /// `tls-ca-file` (read again on reload).
    pub tls: Option<std::sync::Arc<flare_net::tls::rustls::ServerConfig>>,
    /// `cluster-secret-file` and `cluster-secret-required`.
    pub cluster_auth: Option<std::sync::Arc<flare_net::auth::ClusterAuth>>,
    /// `replication-type = sync`: writes wait for the slaves unless `async`.
    pub replication_sync: bool,
    /// Notices about options that are accepted but mapped or ignored.
    pub notices: Vec<String>,
}

/// The TLS configuration, when `tls-port` is set.
fn tls_config(
    s: &Settings,
) -> Result<Option<std::sync::Arc<flare_net::tls::rustls::ServerConfig>>, ConfigError> {
    if int(s, "tls-port")? == 0 {
        return Ok(None);
    }
    let file = |name: &str| s.str(name).unwrap_or("").to_string();
    let (cert, key, ca) = (
        file("tls-cert-file"),
        file("tls-key-file"),
        file("tls-ca-file"),
    );
    if cert.is_empty() || key.is_empty() {
        return Err(ConfigError::Invalid(
            "tls-port needs tls-cert-file and tls-key-file (PEM files)".to_string(),
        ));
    }
    let ca = (!ca.is_empty()).then(|| std::path::PathBuf::from(ca));
    flare_net::tls::server_config(cert.as_ref(), key.as_ref(), ca.as_deref())
        .map(Some)
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

fn int(s: &Settings, name: &str) -> Result<i64, ConfigError> {
    Ok(s.int(name)?.unwrap_or(0))
}

fn invalid(name: &str, value: impl ToString) -> ConfigError {
    ConfigError::InvalidValue {
        option: name.to_string(),
        value: value.to_string(),
    }
}

fn positive(s: &Settings, name: &str) -> Result<usize, ConfigError> {
    let v = int(s, name)?;
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| invalid(name, v))
}

/// This host's name (the original uses the FQDN; we use what gethostname says).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for writes of buf.len() bytes; gethostname NUL-terminates
    // within the buffer on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl NodeConfig {
    /// Validate settings into an effective configuration.
    pub fn from_settings(settings: Settings) -> Result<NodeConfig, ConfigError> {
        let s = &settings;
        let data_dir = PathBuf::from(s.require("data-dir")?);
        let mut notices = Vec::new();

        let index_servers = match (s.str("index-servers"), s.str("index-server-name")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "option [index-server-name] is found although [index-servers] is specified"
                        .into(),
                ))
            }
            (Some(list), None) => flare_daemon::parse_index_servers(list)?,
            (None, Some(name)) => {
                let port = int(s, "index-server-port")?;
                let port = u16::try_from(port).map_err(|_| invalid("index-server-port", port))?;
                vec![(name.to_string(), port)]
            }
            (None, None) => Vec::new(),
        };

        let storage_type = match s.str("storage-type").unwrap_or("rocksdb") {
            "rocksdb" => StorageType {
                configured: "rocksdb".into(),
            },
            t @ ("tch" | "tcb" | "kch") => {
                notices.push(format!(
                    "storage-type [{t}] is a Flare 1.x backend: flare-rs stores data in RocksDB ({}/flare.rocksdb)",
                    data_dir.display()
                ));
                StorageType {
                    configured: t.into(),
                }
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown storage type [{other}]"
                )))
            }
        };
        let compression = match s.str("storage-compress").unwrap_or("") {
            "" => Compression::None,
            "deflate" => Compression::Zlib,
            "bz2" => Compression::Bz2,
            "tcbs" => {
                notices.push("storage-compress [tcbs] has no RocksDB equivalent: using lz4".into());
                Compression::Lz4
            }
            "lz4" => Compression::Lz4,
            "snappy" => Compression::Snappy,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown storage compress [{other}]"
                )))
            }
        };
        let fsync = match s.str("storage-fsync").unwrap_or("never") {
            "never" => FsyncPolicy::Never,
            "always" => FsyncPolicy::Always,
            other => return Err(invalid("storage-fsync", other)),
        };
        let replication_sync = match s.str("replication-type").unwrap_or("async") {
            "async" => false,
            "sync" => true,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown replication type [{other}]"
                )))
            }
        };
        match s.str("cluster-replication-mode").unwrap_or("duplicate") {
            "duplicate" | "forward" => {}
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown cluster replication mode [{other}]"
                )))
            }
        }
        for ignored in [
            "storage-ap",
            "storage-fp",
            "storage-bucket-size",
            "storage-large",
            "storage-lmemb",
            "storage-nmemb",
            "storage-dfunit",
            "mysql-replication",
            "stack-size",
        ] {
            if s.is_set(ignored) {
                notices.push(format!(
                    "option [{ignored}] is accepted but ignored by flare-rs"
                ));
            }
        }
        if s.bool("cluster-replication")?.unwrap_or(false) {
            notices.push("cluster-replication is not supported by flare-rs yet: ignored".into());
        }

        let server_port = int(s, "server-port")?;
        let server_port =
            u16::try_from(server_port).map_err(|_| invalid("server-port", server_port))?;
        let net_read_timeout = int(s, "net-read-timeout")?;
        let net_read_timeout = u64::try_from(net_read_timeout)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid("net-read-timeout", net_read_timeout))?;
        let storage_cache_size = int(s, "storage-cache-size")?;
        let storage_cache_size = usize::try_from(storage_cache_size)
            .map_err(|_| invalid("storage-cache-size", storage_cache_size))?;
        let back_log =
            i32::try_from(int(s, "back-log")?).map_err(|_| invalid("back-log", "out of range"))?;
        let socket = s.str("server-socket").unwrap_or("");

        Ok(NodeConfig {
            data_dir,
            back_log,
            index_servers,
            max_connection: positive(s, "max-connection")?,
            mutex_slot: positive(s, "mutex-slot")?,
            net_read_timeout,
            server_name: s
                .str("server-name")
                .map(str::to_string)
                .unwrap_or_else(host_name),
            server_port,
            server_socket: (!socket.is_empty()).then(|| PathBuf::from(socket)),
            storage_cache_size,
            storage_type,
            compression,
            fsync,
            block_cache_bytes: positive(s, "storage-block-cache-size")? << 20,
            record_cache_bytes: {
                let v = int(s, "storage-record-cache-size")?;
                usize::try_from(v).map_err(|_| invalid("storage-record-cache-size", v))? << 20
            },
            write_buffer_bytes: positive(s, "storage-write-buffer-size")? << 20,
            max_item_size: positive(s, "max-item-size")?,
            max_line_size: positive(s, "max-line-size")?.max(64),
            proxy_concurrency: positive(s, "proxy-concurrency")?,
            proxy_timeout_ms: positive(s, "proxy-timeout")? as u64,
            admin_networks: flare_daemon::Networks::admin(s)?,
            tls_port: {
                let v = int(s, "tls-port")?;
                u16::try_from(v).map_err(|_| invalid("tls-port", v))?
            },
            tls: tls_config(s)?,
            metrics: flare_daemon::metrics::endpoint(
                s.str("metrics-address").unwrap_or("0.0.0.0"),
                int(s, "metrics-port")?,
            )
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            cluster_auth: flare_net::auth::ClusterAuth::from_options(
                s.str("cluster-secret-file").unwrap_or(""),
                s.bool("cluster-secret-required")?.unwrap_or(true),
            )
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            index_silence_limit_ms: {
                let v = int(s, "index-silence-limit")?;
                u64::try_from(v).map_err(|_| invalid("index-silence-limit", v))?
            },
            replication_sync,
            notices,
            settings,
        })
    }

    /// The running configuration as `show variables` prints it (operations.md §2.3):
    /// `(name, value)` in the original's order.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let v = |name: &str| s.str(name).unwrap_or("").to_string();
        let b = |on: bool| if on { "true" } else { "false" }.to_string();
        let index = self
            .index_servers
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            ("back_log", self.back_log.to_string()),
            (
                "config_path",
                s.config_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "pid_path",
                s.pid_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("daemonize", b(s.switch("daemonize"))),
            ("data_dir", self.data_dir.display().to_string()),
            ("index_server(s)", index),
            ("max_connection", self.max_connection.to_string()),
            ("mutex_slot", self.mutex_slot.to_string()),
            ("noreply_window_limit", v("noreply-window-limit")),
            ("net_read_timeout", self.net_read_timeout.to_string()),
            ("proxy_concurrency", v("proxy-concurrency")),
            ("reconstruction_interval", v("reconstruction-interval")),
            ("reconstruction_bwlimit", v("reconstruction-bwlimit")),
            ("replication_type", v("replication-type")),
            ("server_name", self.server_name.clone()),
            ("server_port", self.server_port.to_string()),
            ("server_socket", v("server-socket")),
            ("stack_size", v("stack-size")),
            ("storage_ap", v("storage-ap")),
            ("storage_bucket_size", v("storage-bucket-size")),
            ("storage_cache_size", self.storage_cache_size.to_string()),
            ("storage_compress", v("storage-compress")),
            ("storage_large", b(s.switch("storage-large"))),
            ("storage_lmemb", v("storage-lmemb")),
            ("storage_nmemb", v("storage-nmemb")),
            ("storage_dfunit", v("storage-dfunit")),
            ("storage_type", self.storage_type.configured.clone()),
            ("thread_pool_size", v("thread-pool-size")),
            ("proxy_prior_netmask", v("proxy-prior-netmask")),
            ("max_total_thread_queue", v("max-total-thread-queue")),
            (
                "time_watcher_enabled",
                b(s.bool("time-watcher-enabled")
                    .ok()
                    .flatten()
                    .unwrap_or(false)),
            ),
            (
                "time_watcher_polling_interval_msec",
                v("time-watcher-polling-interval-msec"),
            ),
            (
                "storage_access_watch_threshold_warn_msec",
                v("storage-access-watch-threshold-warn-msec"),
            ),
            (
                "storage_access_watch_threshold_ping_ng_msec",
                v("storage-access-watch-threshold-ping-ng-msec"),
            ),
            (
                "cluster_replication",
                if s.bool("cluster-replication")
                    .ok()
                    .flatten()
                    .unwrap_or(false)
                {
                    "1"
                } else {
                    "0"
                }
                .to_string(),
            ),
            (
                "cluster_replication_server_name",
                v("cluster-replication-server-name"),
            ),
            (
                "cluster_replication_server_port",
                v("cluster-replication-server-port"),
            ),
            (
                "cluster_replication_concurrency",
                s.str("cluster-replication-concurrency")
                    .unwrap_or_else(|| s.str("proxy-concurrency").unwrap_or("2"))
                    .to_string(),
            ),
            ("cluster_replication_mode", v("cluster-replication-mode")),
            ("storage_fsync", v("storage-fsync")),
            ("max_item_size", self.max_item_size.to_string()),
            ("admin_networks", self.admin_networks.to_string()),
        ]
    }
}
