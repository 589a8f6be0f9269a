//! Typed requests produced by the text parser.

use bytes::Bytes;

use crate::node::{NodeLine, Role, State};

/// Which server is parsing: commands the other server owns are unknown (`ERROR`)
/// and, for storage commands, their data block is *not* consumed (protocol.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// flared
    Node,
    /// flarei
    Index,
}

/// `set` family kinds (cas is a separate kind: its unique is mandatory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Set => "set",
            StoreKind::Add => "add",
            StoreKind::Replace => "replace",
            StoreKind::Append => "append",
            StoreKind::Prepend => "prepend",
            StoreKind::Cas => "cas",
        }
    }
}

/// Trailing option words of write commands (§2.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub noreply: bool,
    pub sync: bool,
    pub asynchronous: bool,
}

/// A storage command with its data block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub kind: StoreKind,
    pub key: Bytes,
    pub flags: u32,
    /// As sent by the client (relative or absolute, see [`crate::absolute_expire`]).
    pub exptime: i64,
    /// Explicit version (5th number), 0 = none. For `cas` the unique.
    pub version: u64,
    pub options: WriteOptions,
    pub data: Bytes,
}

/// `stats` sub-commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsKind {
    General,
    Items,
    Slabs,
    Sizes,
    Nodes,
    Threads,
    ThreadsRequest,
    ThreadsSlave,
    ThreadsQueue,
    /// memcached's `stats settings`.
    Settings,
    /// memcached's `stats cachedump <slab> <limit>`.
    Cachedump {
        slab: u32,
        limit: u32,
    },
}

/// Partition filter of `dump` / `dump_key` (already cross-checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionFilter {
    /// Partition wanted.
    pub partition: u32,
    /// Number of partitions the key is resolved against.
    pub partition_size: u32,
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Store(Store),
    Get {
        keys: Vec<Bytes>,
        with_version: bool,
    },
    Touch {
        key: Bytes,
        exptime: i64,
        /// The optional version (0 = none). Ignored for clients, as in
        /// 1.3.4; a replicated touch applies only to a record at exactly
        /// this version (docs/replication.md §1).
        version: u64,
        noreply: bool,
    },
    Gat {
        key: Bytes,
        exptime: i64,
        noreply: bool,
    },
    Arith {
        incr: bool,
        key: Bytes,
        delta: u64,
        options: WriteOptions,
    },
    Delete {
        key: Bytes,
        /// Delete hold time as sent (0 = none).
        time: i64,
        /// Explicit version (0 = none).
        version: u64,
        options: WriteOptions,
    },
    FlushAll {
        noreply: bool,
    },
    Dump {
        wait_us: u32,
        filter: Option<PartitionFilter>,
        bwlimit_kib: u64,
    },
    DumpKey {
        filter: Option<PartitionFilter>,
        bwlimit_kib: u64,
    },
    Keys {
        prefixes: Vec<Bytes>,
        limit: u32,
    },
    /// `node sync` with its whole body.
    NodeSync {
        version: u64,
        nodes: Vec<NodeLine>,
    },
    /// A `node sync` body line that was neither `END` nor a valid `NODE` line:
    /// answered `CLIENT_ERROR format error`; the rest is read as commands.
    NodeSyncFormatError,
    NodeAdd {
        name: String,
        port: i32,
    },
    NodeRole {
        name: String,
        port: i32,
        role: Role,
        balance: i32,
        partition: i32,
    },
    NodeState {
        name: String,
        port: i32,
        state: State,
    },
    NodeRemove {
        name: String,
        port: i32,
    },
    Meta,
    Shutdown {
        name: String,
        port: i32,
    },
    Ping,
    Stats(StatsKind),
    ShowVariables,
    Kill {
        thread_id: u32,
    },
    Verbosity {
        level: i32,
        noreply: bool,
    },
    Version,
    Quit,
    /// Accepted and silently ignored (`verbosity noreply`).
    Ignored,
    /// `failpoint <name> [<actions>]`: configure (or, without actions,
    /// remove) a failpoint. Honoured only by daemons built with the
    /// `failpoints` feature (the fault-injection tests); others answer `ERROR`.
    Failpoint {
        name: String,
        actions: String,
    },
    /// `auth challenge <nonce>`: the cluster's challenge–response
    /// (flare_net::auth), both daemons.
    AuthChallenge {
        nonce: String,
    },
    /// `auth response <proof>`.
    AuthResponse {
        proof: String,
    },
    /// A meta command (`mg`, `ms`, `md`, `ma`, `me`).
    MetaOp(Box<MetaRequest>),
    /// `mn`: answered `MN` (the end marker of a quiet pipeline).
    MetaNoop,
    /// The binary `NOOP`: answered as `ping` (`OK`, or the storage error of
    /// an unhealthy node), from a client.
    Noop,
    /// A request answered with this line (a `CLIENT_ERROR ...` of a
    /// malformed meta command), CRLF included.
    Invalid(&'static str),
    /// Anything not understood: answered `ERROR`.
    Error,
}

impl Request {
    /// The op ident shown in `stats threads` (protocol.md §19.4).
    pub fn op_name(&self) -> &'static str {
        match self {
            Request::Store(s) => s.kind.name(),
            Request::Get { with_version, .. } => {
                if *with_version {
                    "gets"
                } else {
                    "get"
                }
            }
            Request::Touch { .. } => "touch",
            Request::Gat { .. } => "gat",
            Request::Arith { incr, .. } => {
                if *incr {
                    "incr"
                } else {
                    "decr"
                }
            }
            Request::Delete { .. } => "delete",
            Request::FlushAll { .. } => "flush_all",
            Request::Dump { .. } | Request::DumpKey { .. } => "dump",
            Request::Keys { .. } => "keys",
            Request::NodeSync { .. } | Request::NodeSyncFormatError => "node_sync",
            Request::NodeAdd { .. } => "node_add",
            Request::NodeRole { .. } => "node_role",
            Request::NodeState { .. } => "node_state",
            Request::NodeRemove { .. } => "node_remove",
            Request::Meta => "meta",
            Request::Shutdown { .. } => "shutdown",
            Request::Ping => "ping",
            Request::Stats(_) => "stats",
            Request::ShowVariables => "show",
            Request::Kill { .. } => "kill",
            Request::Verbosity { .. } => "verbosity",
            Request::Version => "version",
            Request::Quit => "quit",
            Request::Ignored => "verbosity",
            Request::Failpoint { .. } => "failpoint",
            Request::MetaOp(m) => match m.cmd {
                MetaCmd::Get => "mg",
                MetaCmd::Set => "ms",
                MetaCmd::Delete => "md",
                MetaCmd::Arith => "ma",
                MetaCmd::Debug => "me",
            },
            Request::AuthChallenge { .. } | Request::AuthResponse { .. } => "auth",
            Request::MetaNoop => "mn",
            Request::Noop => "noop",
            Request::Invalid(_) => "error",
            Request::Error => "error",
        }
    }
}

/// The meta commands of memcached 1.6 (protocol.txt, "Meta Commands").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCmd {
    /// `mg`
    Get,
    /// `ms`
    Set,
    /// `md`
    Delete,
    /// `ma`
    Arith,
    /// `me`
    Debug,
}

impl MetaCmd {
    pub fn word(self) -> &'static [u8] {
        match self {
            MetaCmd::Get => b"mg",
            MetaCmd::Set => b"ms",
            MetaCmd::Delete => b"md",
            MetaCmd::Arith => b"ma",
            MetaCmd::Debug => b"me",
        }
    }
}

/// `ms` modes (`M` flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetaMode {
    #[default]
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Incr,
    Decr,
}

/// The flags of one meta command, checked and typed. Flags that return
/// something are kept in request order in `ret` (`b c f h k l O s t`):
/// the reply lists them in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaFlags {
    /// `b`: the key travelled base64-encoded (and is returned so).
    pub base64: bool,
    /// `q`: suppress the success / miss code.
    pub quiet: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `O<token>`: opaque, echoed.
    pub opaque: Option<Bytes>,
    /// Return flags in request order (`c f h k l s t`, and `O`/`b` as
    /// they came).
    pub ret: Vec<u8>,
    /// `T<ttl>`: new TTL (mg, ma: touch on hit; ms: the item's TTL; md
    /// with I).
    pub ttl: Option<i64>,
    /// `N<ttl>`: create on miss with this TTL (mg, ma).
    pub vivify: Option<i64>,
    /// `R<ttl>`: win the recache if the TTL left is below this (mg).
    pub recache: Option<i64>,
    /// `C<cas>`: compare.
    pub compare: Option<u64>,
    /// `E<version>`: the version the write gets (Flare's explicit version).
    pub explicit: Option<u64>,
    /// `F<flags>`: client flags (ms).
    pub client_flags: Option<u32>,
    /// `I`: invalidate (ms with C, md).
    pub invalidate: bool,
    /// `M<mode>`.
    pub mode: MetaMode,
    /// `D<delta>` (ma, default 1).
    pub delta: Option<u64>,
    /// `J<initial>` (ma, default 0).
    pub initial: Option<u64>,
}

/// One meta request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaRequest {
    pub cmd: MetaCmd,
    /// The key (base64-decoded when `flags.base64`).
    pub key: Bytes,
    pub flags: MetaFlags,
    /// The data block of `ms`.
    pub data: Bytes,
}

impl MetaRequest {
    /// Does it change the item? (`mg` only with `T` or `N`.)
    pub fn modifies(&self) -> bool {
        match self.cmd {
            MetaCmd::Get => self.flags.ttl.is_some() || self.flags.vivify.is_some(),
            MetaCmd::Debug => false,
            MetaCmd::Set | MetaCmd::Delete | MetaCmd::Arith => true,
        }
    }

    /// Is it served by the key's master? (`mg` with `T` or `N` changes the
    /// item, `mg` with `R` takes part in the recache protocol, whose state
    /// the master keeps; every `ms`, `md`, `ma`.) Other reads may be served
    /// by a slave.
    pub fn is_write(&self) -> bool {
        self.modifies() || (self.cmd == MetaCmd::Get && self.flags.recache.is_some())
    }
}
