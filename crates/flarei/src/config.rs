//! flarei's options (operations.md §2.2) and their effective values.

use std::path::PathBuf;
use std::time::Duration;

use flare_cluster::HashAlgorithm;
use flare_daemon::{ConfigError, OptKind::*, OptSpec, Settings};

/// flarei's connection read timeout: 600000 "seconds" × 1000 in ms, as the
/// original's hard-wired value (≈ 6.9 days, operations.md §2.2).
pub const NET_READ_TIMEOUT_SHOWN: u64 = 600_000;

/// Every flarei option: the original's, then flare-rs extensions.
pub const SPECS: &[OptSpec] = &[
    OptSpec::new("daemonize", Switch, None, false, "run as a daemon"),
    OptSpec::new("data-dir", Str, None, false, "data directory (required)"),
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
        "monitor-threshold",
        Int,
        Some("3"),
        true,
        "consecutive failed pings before a node is marked down",
    ),
    OptSpec::new(
        "monitor-interval",
        Int,
        Some("5"),
        true,
        "seconds between pings to each node (0 = no pings)",
    ),
    OptSpec::new(
        "monitor-read-timeout",
        Int,
        Some("1000"),
        true,
        "read timeout of a ping (msec)",
    ),
    OptSpec::new(
        "partition-modular-hint",
        Int,
        Some("1"),
        false,
        "partitioning hint (never change it on an existing cluster)",
    ),
    OptSpec::new(
        "partition-modular-virtual",
        Int,
        Some("4096"),
        false,
        "virtual nodes of the modular partitioner",
    ),
    OptSpec::new(
        "partition-size",
        Int,
        Some("1024"),
        false,
        "max number of partitions",
    ),
    OptSpec::new(
        "partition-type",
        Str,
        Some("modular"),
        false,
        "partition type (modular)",
    ),
    OptSpec::new(
        "key-hash-algorithm",
        Str,
        Some("simple"),
        false,
        "key hash algorithm for partitioning (simple, crc32, jenkins)",
    ),
    OptSpec::new(
        "server-name",
        Str,
        None,
        false,
        "index server name (default: host name)",
    ),
    OptSpec::new(
        "server-port",
        Int,
        Some("12120"),
        false,
        "index server port",
    ),
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
        "thread-pool-size",
        Int,
        Some("5"),
        true,
        "thread pool size (accepted; flare-rs uses async tasks)",
    ),
    OptSpec::new(
        "index-db",
        Str,
        None,
        false,
        "where the node map lives: file://<dir> (default: file://<data-dir>) or zookeeper://host:port[,host:port...]/<path>",
    ),
    // flare-rs extensions
    OptSpec::new(
        "monitor-connect-timeout",
        Int,
        Some("1000"),
        true,
        "[flare-rs] connect timeout towards nodes (msec)",
    ),
    flare_daemon::networks::ADMIN_NETWORKS,
    flare_daemon::networks::CLUSTER_SECRET_FILE,
    flare_daemon::networks::CLUSTER_SECRET_REQUIRED,
    flare_daemon::metrics::METRICS_PORT,
    flare_daemon::metrics::METRICS_ADDRESS,
    OptSpec::new(
        "node-address-check",
        Bool,
        Some("true"),
        true,
        "[flare-rs] accept `node add` and `shutdown` only from an address of the node they name (false: behind NAT)",
    ),
];

/// Settings of the node monitors and the sync sender (reloadable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Time between pings; `None` = no pings (`monitor-interval = 0`).
    pub interval: Option<Duration>,
    /// Consecutive failures before a node is marked down; 0 = never.
    pub threshold: u32,
    /// Read timeout of a ping.
    pub read_timeout: Duration,
    /// Connect timeout of every connection to a node.
    pub connect_timeout: Duration,
}

impl MonitorConfig {
    /// Read timeout while waiting for the `OK` to a `node sync`.
    pub fn sync_timeout(&self) -> Duration {
        self.read_timeout.max(Duration::from_secs(5))
    }
}

/// Effective index configuration.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// Where the node map lives (`index-db`).
    pub db: IndexDb,
    /// The directory holding `flare.xml`: the `file://` directory, or, with
    /// ZooKeeper, the data directory whose `flare.xml` (if any) seeds a node
    /// map that does not exist yet in ZooKeeper (the migration path).
    pub db_dir: PathBuf,
    /// `index-db` as shown in the start-up banner.
    pub index_db: String,
    pub max_connection: usize,
    pub monitor: MonitorConfig,
    pub partition_modular_hint: u32,
    pub partition_modular_virtual: u32,
    pub partition_size: u32,
    pub hash: HashAlgorithm,
    pub server_name: String,
    pub server_port: u16,
    pub server_socket: Option<PathBuf>,
    /// Notices about options that are accepted but ignored or odd.
    pub notices: Vec<String>,
    /// Who may send what (docs/security.md).
    pub access: Access,
    /// `cluster-secret-file` / `cluster-secret-required` (the secret is read
    /// at start-up; `required` changes in place on reload).
    pub cluster_auth: Option<std::sync::Arc<flare_net::auth::ClusterAuth>>,
    /// `metrics-address:metrics-port` (`None`: no metrics endpoint).
    pub metrics: Option<std::net::SocketAddr>,
}

/// flarei's access control (reloadable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `admin-networks`: `node role`, `node state`, `node remove`.
    pub admin: flare_daemon::Networks,
    /// `node-address-check`: `node add` and `shutdown` only from the node
    /// they name.
    pub node_address_check: bool,
}

/// The access options of `s`.
pub fn access(s: &Settings) -> Result<Access, ConfigError> {
    Ok(Access {
        admin: flare_daemon::Networks::admin(s)?,
        node_address_check: s.bool("node-address-check")?.unwrap_or(true),
    })
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

fn ranged<T: TryFrom<i64>>(s: &Settings, name: &str, min: i64) -> Result<T, ConfigError> {
    let v = int(s, name)?;
    if v < min {
        return Err(invalid(name, v));
    }
    T::try_from(v).map_err(|_| invalid(name, v))
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

/// Where the node map lives (`index-db`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexDb {
    /// `file://<dir>`: `<dir>/flare.xml`.
    File(PathBuf),
    /// `zookeeper://host:port[,host:port…]/<chroot>`: the znodes under
    /// `<chroot>/index` (docs: USAGE.md "Redundant index servers").
    ZooKeeper {
        /// `host:port,host:port` (ZooKeeper's connect string, no chroot).
        servers: String,
        /// `/<chroot>`, or `/` for none.
        chroot: String,
    },
}

/// Parse an `index-db` URI.
pub fn parse_index_db(uri: &str) -> Result<IndexDb, ConfigError> {
    if let Some(path) = uri.strip_prefix("file://") {
        if path.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "index-db [{uri}]: the file:// URI has no directory"
            )));
        }
        return Ok(IndexDb::File(PathBuf::from(path)));
    }
    if let Some(rest) = uri.strip_prefix("zookeeper://") {
        let (servers, chroot) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let valid_server = |s: &str| {
            s.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
        };
        if servers.is_empty() || !servers.split(',').all(valid_server) {
            return Err(ConfigError::Invalid(format!(
                "index-db [{uri}]: expected zookeeper://host:port[,host:port...]/<path>"
            )));
        }
        let chroot = chroot.trim_end_matches('/');
        let bad_path = chroot
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..");
        if bad_path {
            return Err(ConfigError::Invalid(format!(
                "index-db [{uri}]: the ZooKeeper path must be absolute, without empty, . or .. components"
            )));
        }
        return Ok(IndexDb::ZooKeeper {
            servers: servers.to_string(),
            chroot: if chroot.is_empty() {
                "/".to_string()
            } else {
                chroot.to_string()
            },
        });
    }
    Err(ConfigError::Invalid(format!(
        "failed to create a coordinator: {uri} (use file://<dir> or zookeeper://host:port[,host:port...]/<path>)"
    )))
}

/// The reloadable monitor settings from `s`.
pub fn monitor_config(s: &Settings) -> Result<MonitorConfig, ConfigError> {
    let interval: u64 = ranged(s, "monitor-interval", 0)?;
    let read_ms: u64 = ranged(s, "monitor-read-timeout", 1)?;
    let connect_ms: u64 = ranged(s, "monitor-connect-timeout", 1)?;
    Ok(MonitorConfig {
        interval: (interval > 0).then(|| Duration::from_secs(interval)),
        threshold: ranged(s, "monitor-threshold", 0)?,
        read_timeout: Duration::from_millis(read_ms),
        connect_timeout: Duration::from_millis(connect_ms),
    })
}

impl IndexConfig {
    /// Validate settings into an effective configuration.
    pub fn from_settings(settings: Settings) -> Result<IndexConfig, ConfigError> {
        let s = &settings;
        let data_dir = PathBuf::from(s.require("data-dir")?);
        let mut notices = Vec::new();

        match s.str("partition-type").unwrap_or("modular") {
            "modular" => {}
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown partition type [{other}]"
                )))
            }
        }
        let hash_name = s.str("key-hash-algorithm").unwrap_or("simple");
        let hash = HashAlgorithm::parse_for_partitioning(hash_name).map_err(|e| {
            ConfigError::Invalid(format!("unknown hash algorithm [{hash_name}]: {e}"))
        })?;
        let index_db = match s.str("index-db") {
            Some(uri) => uri.to_string(),
            None => format!("file://{}", data_dir.display()),
        };
        let db = parse_index_db(&index_db)?;
        let db_dir = match &db {
            IndexDb::File(dir) => dir.clone(),
            IndexDb::ZooKeeper { .. } => data_dir.clone(),
        };

        let server_port = int(s, "server-port")?;
        let server_port =
            u16::try_from(server_port).map_err(|_| invalid("server-port", server_port))?;
        let socket = s.str("server-socket").unwrap_or("");
        let monitor = monitor_config(s)?;
        if monitor.interval.is_none() {
            notices
                .push("monitor-interval is 0: nodes are not pinged (no failure detection)".into());
        }
        if monitor.threshold == 0 {
            notices
                .push("monitor-threshold is 0: nodes are never marked down by the monitor".into());
        }
        for ignored in ["stack-size", "thread-pool-size"] {
            if s.is_set(ignored) {
                notices.push(format!(
                    "option [{ignored}] is accepted but has no effect in flare-rs"
                ));
            }
        }
        // Validate the partitioner parameters the way the nodes will use them.
        let hint: u32 = ranged(s, "partition-modular-hint", 1)?;
        let virt: u32 = ranged(s, "partition-modular-virtual", 1)?;
        let size: u32 = ranged(s, "partition-size", 2)?;
        flare_cluster::ModularTable::new(hint, virt, size)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;

        Ok(IndexConfig {
            data_dir,
            db,
            db_dir,
            index_db,
            max_connection: ranged(s, "max-connection", 1)?,
            monitor,
            partition_modular_hint: hint,
            partition_modular_virtual: virt,
            partition_size: size,
            hash,
            server_name: s
                .str("server-name")
                .map(str::to_string)
                .unwrap_or_else(host_name),
            server_port,
            server_socket: (!socket.is_empty()).then(|| PathBuf::from(socket)),
            notices,
            access: access(s)?,
            cluster_auth: flare_net::auth::ClusterAuth::from_options(
                s.str("cluster-secret-file").unwrap_or(""),
                s.bool("cluster-secret-required")?.unwrap_or(true),
            )
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            metrics: flare_daemon::metrics::endpoint(
                s.str("metrics-address").unwrap_or("0.0.0.0"),
                s.int("metrics-port")?.unwrap_or(0),
            )
            .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            settings,
        })
    }

    fn path_of(p: &Option<PathBuf>) -> String {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// The running configuration as `show variables` prints it
    /// (operations.md §2.2 / protocol.md §20): `(name, value)` in order.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let v = |name: &str| s.str(name).unwrap_or("").to_string();
        let b = |on: bool| if on { "true" } else { "false" }.to_string();
        vec![
            ("config_path", Self::path_of(&s.config_path)),
            ("pid_path", Self::path_of(&s.pid_path)),
            ("daemonize", b(s.switch("daemonize"))),
            ("data_dir", self.data_dir.display().to_string()),
            ("max_connection", self.max_connection.to_string()),
            ("monitor_threshold", self.monitor.threshold.to_string()),
            (
                "monitor_interval",
                self.monitor
                    .interval
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    .to_string(),
            ),
            (
                "monitor_read_timeout",
                self.monitor.read_timeout.as_millis().to_string(),
            ),
            ("net_read_timeout", NET_READ_TIMEOUT_SHOWN.to_string()),
            (
                "partition_modular_hint",
                self.partition_modular_hint.to_string(),
            ),
            (
                "partition_modular_virtual",
                self.partition_modular_virtual.to_string(),
            ),
            ("partition_size", self.partition_size.to_string()),
            ("partition_type", "modular".to_string()),
            ("key_hash_algorithm", self.hash.name().to_string()),
            ("server_name", self.server_name.clone()),
            ("server_port", self.server_port.to_string()),
            ("server_socket", v("server-socket")),
            ("stack_size", v("stack-size")),
            ("thread_pool_size", v("thread-pool-size")),
        ]
    }

    /// The start-up banner's variable lines (operations.md §3.1, item 3).
    pub fn banner(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let v = |name: &str| s.str(name).unwrap_or("").to_string();
        let b = |on: bool| if on { "true" } else { "false" }.to_string();
        let vars = self.variables();
        let var = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        vec![
            ("config_path", var("config_path")),
            ("pid_path", var("pid_path")),
            ("stderr", b(s.stderr)),
            ("daemonize", var("daemonize")),
            ("data_dir", var("data_dir")),
            ("max_connection", var("max_connection")),
            ("monitor_threshold", var("monitor_threshold")),
            ("monitor_interval", var("monitor_interval")),
            ("monitor_read_timeout", var("monitor_read_timeout")),
            ("net_read_timeout", var("net_read_timeout")),
            ("server_name", var("server_name")),
            ("server_port", var("server_port")),
            ("server_socket", v("server-socket")),
            ("stack_size", v("stack-size")),
            ("thread_pool_size", v("thread-pool-size")),
        ]
    }

    /// The partition settings logged after the coordinator is set up (§3.1 item 5).
    /// Overrides of the partitioning options from ZooKeeper's
    /// `/index/meta/<name>` children (cluster.md §1.5), checked like the
    /// options themselves.
    pub fn apply_meta(&mut self, meta: &[(String, String)]) -> Result<(), ConfigError> {
        let number = |name: &str, v: &str, min: u32| -> Result<u32, ConfigError> {
            v.parse::<u32>().ok().filter(|n| *n >= min).ok_or_else(|| {
                ConfigError::Invalid(format!("{name} [{v}] is not a number >= {min}"))
            })
        };
        let (mut hint, mut virt, mut size) = (
            self.partition_modular_hint,
            self.partition_modular_virtual,
            self.partition_size,
        );
        let mut hash = self.hash;
        for (name, v) in meta {
            match name.as_str() {
                "partition-size" => size = number(name, v, 2)?,
                "partition-modular-hint" => hint = number(name, v, 1)?,
                "partition-modular-virtual" => virt = number(name, v, 1)?,
                "partition-type" if v == "modular" => {}
                "partition-type" => {
                    return Err(ConfigError::Invalid(format!(
                        "unknown partition type [{v}]"
                    )))
                }
                "key-hash-algorithm" => {
                    hash = HashAlgorithm::parse_for_partitioning(v).map_err(|e| {
                        ConfigError::Invalid(format!("unknown hash algorithm [{v}]: {e}"))
                    })?
                }
                _ => {}
            }
        }
        flare_cluster::ModularTable::new(hint, virt, size)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.partition_modular_hint = hint;
        self.partition_modular_virtual = virt;
        self.partition_size = size;
        self.hash = hash;
        Ok(())
    }

    pub fn partition_banner(&self) -> Vec<(&'static str, String)> {
        vec![
            ("index_db", self.index_db.clone()),
            (
                "partition_modular_hint",
                self.partition_modular_hint.to_string(),
            ),
            (
                "partition_modular_virtual",
                self.partition_modular_virtual.to_string(),
            ),
            ("partition_size", self.partition_size.to_string()),
            ("partition_type", "modular".to_string()),
            ("key_hash_algorithm", self.hash.name().to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flare_daemon::padded;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut s = Settings::new(SPECS);
        for (k, v) in pairs {
            s.set(k, v).expect("valid option value");
        }
        s
    }

    fn config(pairs: &[(&str, &str)]) -> Result<IndexConfig, ConfigError> {
        IndexConfig::from_settings(settings(pairs))
    }

    #[test]
    fn defaults() {
        let c = config(&[("data-dir", "/var/lib/flarei")]).expect("valid");
        assert_eq!(c.server_port, 12120);
        assert_eq!(c.max_connection, 128);
        assert_eq!(
            c.monitor,
            MonitorConfig {
                interval: Some(Duration::from_secs(5)),
                threshold: 3,
                read_timeout: Duration::from_millis(1000),
                connect_timeout: Duration::from_millis(1000),
            }
        );
        assert_eq!(c.partition_modular_hint, 1);
        assert_eq!(c.partition_modular_virtual, 4096);
        assert_eq!(c.partition_size, 1024);
        assert_eq!(c.hash, HashAlgorithm::Simple);
        assert_eq!(c.index_db, "file:///var/lib/flarei");
        assert_eq!(c.db_dir, PathBuf::from("/var/lib/flarei"));
        assert!(!c.server_name.is_empty());
        assert!(c.server_socket.is_none());
    }

    #[test]
    fn data_dir_is_required() {
        let e = config(&[]).expect_err("data-dir missing");
        assert_eq!(e.to_string(), "option [data-dir] is required");
    }

    #[test]
    fn hash_algorithms() {
        for (name, alg) in [
            ("simple", HashAlgorithm::Simple),
            ("crc32", HashAlgorithm::Crc32),
            ("jenkins", HashAlgorithm::Jenkins),
        ] {
            let c = config(&[("data-dir", "/d"), ("key-hash-algorithm", name)]).expect("valid");
            assert_eq!(c.hash, alg);
        }
        for bad in ["murmur", "adler32", "bitshift", "md5", ""] {
            let e =
                config(&[("data-dir", "/d"), ("key-hash-algorithm", bad)]).expect_err("refused");
            assert!(e.to_string().contains("hash algorithm"), "{bad}: {e}");
        }
    }

    #[test]
    fn zookeeper_meta_overrides_the_partitioning_options() {
        let mut c = config(&[("data-dir", "/d")]).expect("config");
        let meta = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        c.apply_meta(&meta(&[
            ("partition-size", "32"),
            ("key-hash-algorithm", "crc32"),
            ("partition-type", "modular"),
        ]))
        .expect("valid meta");
        assert_eq!(c.partition_size, 32);
        assert_eq!(c.hash, HashAlgorithm::Crc32);
        for bad in [
            ("partition-size", "1"),
            ("partition-modular-hint", "x"),
            ("partition-type", "consistent"),
            ("key-hash-algorithm", "md5"),
        ] {
            let mut c2 = c.clone();
            let e = c2.apply_meta(&meta(&[bad])).expect_err(bad.0);
            assert!(e.to_string().contains(bad.1), "{e}");
            assert_eq!(c2.partition_size, 32, "a bad meta changes nothing");
        }
    }

    #[test]
    fn partition_type_and_index_db() {
        let e = config(&[("data-dir", "/d"), ("partition-type", "consistent")]).expect_err("bad");
        assert_eq!(e.to_string(), "unknown partition type [consistent]");
        let c = config(&[("data-dir", "/d"), ("index-db", "file:///elsewhere")]).expect("file");
        assert_eq!(c.db_dir, PathBuf::from("/elsewhere"));
        let c = config(&[
            ("data-dir", "/d"),
            ("index-db", "zookeeper://h:2181,g:2182/flare/a/"),
        ])
        .expect("zookeeper");
        assert_eq!(
            c.db,
            IndexDb::ZooKeeper {
                servers: "h:2181,g:2182".into(),
                chroot: "/flare/a".into()
            }
        );
        assert_eq!(c.db_dir, PathBuf::from("/d"));
        let c = config(&[("data-dir", "/d"), ("index-db", "zookeeper://h:2181")]).expect("root");
        assert!(matches!(c.db, IndexDb::ZooKeeper { ref chroot, .. } if chroot == "/"));
        for bad in [
            "zookeeper://",
            "zookeeper://h/x",
            "zookeeper://h:0/x",
            "zookeeper://h:1//x",
            "zookeeper://h:1/a/../b",
        ] {
            let e = config(&[("data-dir", "/d"), ("index-db", bad)]).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(config(&[("data-dir", "/d"), ("index-db", "http://x")]).is_err());
        assert!(config(&[("data-dir", "/d"), ("index-db", "file://")]).is_err());
    }

    #[test]
    fn ranges() {
        for (k, v) in [
            ("server-port", "70000"),
            ("max-connection", "0"),
            ("monitor-threshold", "-1"),
            ("monitor-interval", "-1"),
            ("monitor-read-timeout", "0"),
            ("monitor-connect-timeout", "0"),
            ("partition-size", "1"),
            ("partition-modular-hint", "0"),
            ("partition-modular-virtual", "0"),
        ] {
            assert!(config(&[("data-dir", "/d"), (k, v)]).is_err(), "{k} = {v}");
        }
        let c = config(&[
            ("data-dir", "/d"),
            ("monitor-interval", "0"),
            ("monitor-threshold", "0"),
        ])
        .expect("valid");
        assert_eq!(c.monitor.interval, None);
        assert_eq!(c.monitor.threshold, 0);
        assert_eq!(c.notices.len(), 2);
    }

    #[test]
    fn show_variables_lines() {
        let c = config(&[
            ("data-dir", "/srv/flarei/data"),
            ("server-name", "127.0.0.1"),
            ("monitor-interval", "1"),
            ("max-connection", "256"),
            ("thread-pool-size", "8"),
        ])
        .expect("valid");
        let lines: Vec<String> = c
            .variables()
            .iter()
            .map(|(n, v)| padded(n, v, 26))
            .collect();
        let expected = "config_path:              \n\
pid_path:                 \n\
daemonize:                false\n\
data_dir:                 /srv/flarei/data\n\
max_connection:           256\n\
monitor_threshold:        3\n\
monitor_interval:         1\n\
monitor_read_timeout:     1000\n\
net_read_timeout:         600000\n\
partition_modular_hint:   1\n\
partition_modular_virtual:4096\n\
partition_size:           1024\n\
partition_type:           modular\n\
key_hash_algorithm:       simple\n\
server_name:              127.0.0.1\n\
server_port:              12120\n\
server_socket:            \n\
stack_size:               128\n\
thread_pool_size:         8\n";
        let got: String = lines.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(got, expected);
    }
}
