//! The command line: flare-tools 0.7's sub-commands, options and word order.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "flare-admin",
    version = concat!("flare-", env!("CARGO_PKG_VERSION")),
    about = "Inspect and change a flare cluster through its index server",
    long_about = "Inspect and change a flare cluster through its index server.\n\n\
        Sub-commands, options and word order are those of flare-tools 0.7's flare-admin. \
        Changes print their plan and ask for confirmation (--force skips it, --dry-run \
        prints the plan only). Exit codes: 0 success, 1 failure, 2 wrong arguments.",
    after_help = "Run `flare-admin help <sub-command>` for the options of each."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every sub-command (before or after its name).
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Index server: HOST or HOST:PORT [env: FLARE_INDEX_SERVER]
    #[arg(
        short = 'i',
        long = "index-server",
        env = "FLARE_INDEX_SERVER",
        default_value = "127.0.0.1",
        global = true,
        hide_env = true
    )]
    pub index_server: String,
    /// Index server port [env: FLARE_INDEX_SERVER_PORT]
    #[arg(
        short = 'p',
        long = "index-server-port",
        env = "FLARE_INDEX_SERVER_PORT",
        default_value_t = 12120,
        global = true,
        hide_env = true
    )]
    pub index_server_port: u16,
    /// Append what the command did (its plan, each change, errors) to FILE
    #[arg(long = "log-file", global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Print the plan of a change and exit without changing anything
    #[arg(short = 'n', long = "dry-run", global = true)]
    pub dry_run: bool,
    /// Commit changes without asking for confirmation
    #[arg(long, global = true)]
    pub force: bool,
    /// Print data as JSON (list, stats, threads, summary, part, ping, verify)
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for any one reply
    #[arg(long, global = true, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
    /// Accepted for flare-tools compatibility (no effect)
    #[arg(long, global = true, hide = true)]
    pub debug: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the list of nodes in a flare cluster.
    List(ListArgs),
    /// Show the statistics of a flare cluster (= flare-stats).
    Stats(StatsArgs),
    /// Check that nodes (or the index) answer `ping` (= flare-ping).
    Ping(PingArgs),
    /// Show the connections (threads) of a node, or of the index.
    Threads(ThreadsArgs),
    /// Print the index's node map as flare.xml.
    Index(IndexArgs),
    /// Show a summary of a cluster: partitions, nodes, items, bytes.
    Summary(SummaryArgs),
    /// Print the partition of keys (= flare-part).
    Part(PartArgs),
    /// Make proxies the masters of new partitions (HOST:PORT:BALANCE:PARTITION).
    Master(MasterArgs),
    /// Make proxies slaves and wait until they are active (HOST:PORT:BALANCE:PARTITION).
    Slave(SlaveArgs),
    /// Set the balance of nodes (HOST:PORT:BALANCE).
    Balance(BalanceArgs),
    /// Turn nodes down.
    Down(NodesArgs),
    /// Turn nodes active (a new master in state ready).
    Activate(NodesArgs),
    /// Remove down nodes from the cluster.
    Remove(RemoveArgs),
    /// Rebuild nodes by copying their partition anew, one at a time.
    Reconstruct(ReconstructArgs),
    /// Dump the records of partitions to a file.
    Dump(DumpArgs),
    /// Print the keys of partitions.
    Dumpkey(DumpkeyArgs),
    /// Write the records of a dump file through a node.
    Restore(RestoreArgs),
    /// Check that every key lives in its partition and that masters and slaves agree.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show numerical host addresses
    #[arg(long = "numeric-hosts")]
    pub numeric_hosts: bool,
    /// Also show items and uptime (asks each node)
    #[arg(short = 'l', long)]
    pub long: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show queries per second (total, reads, writes)
    #[arg(short = 'q', long)]
    pub qps: bool,
    /// Seconds between repeats
    #[arg(short = 'w', long, default_value_t = 1, value_name = "SECOND")]
    pub wait: u64,
    /// Number of repeats
    #[arg(short = 'c', long, default_value_t = 1, value_name = "REPEATTIME")]
    pub count: u64,
    /// Column delimiter
    #[arg(short = 'd', long, default_value = " ", value_name = "CHAR")]
    pub delimiter: String,
    /// Only these nodes (HOST:PORT)
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PingArgs {
    /// Retry every second until every node answers
    #[arg(long)]
    pub wait: bool,
    /// Nodes to ping (HOST:PORT); none: the index server
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ThreadsArgs {
    /// A node (HOST:PORT); none: the index server
    pub node: Option<String>,
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Write the document to FILE instead of stdout
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Add N to the node map version written (for an index restored from it)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub increment: u64,
}

#[derive(Args, Debug)]
pub struct SummaryArgs {}

#[derive(Args, Debug)]
pub struct PartArgs {
    /// Keys (bytes as given)
    #[arg(required = true)]
    pub keys: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct MasterArgs {
    /// Set the node active once it is ready
    #[arg(long, conflicts_with = "without_activate")]
    pub activate: bool,
    /// Leave the node ready (the default; flare-tools' word)
    #[arg(long = "without-activate")]
    pub without_activate: bool,
    #[command(flatten)]
    pub copy: CopyArgs,
}

#[derive(Args, Debug)]
pub struct SlaveArgs {
    #[command(flatten)]
    pub copy: CopyArgs,
}

/// The arguments `master` and `slave` share.
#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Do not flush_all the node first
    #[arg(long = "without-clean")]
    pub without_clean: bool,
    /// Attempts for each index command
    #[arg(long, default_value_t = 5, value_name = "COUNT")]
    pub retry: u32,
    /// HOST:PORT:BALANCE:PARTITION
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BalanceArgs {
    /// HOST:PORT:BALANCE
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NodesArgs {
    /// HOST:PORT
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// Wait until each node is down (stopped), then until it is gone
    #[arg(long)]
    pub wait: bool,
    /// Attempts of `node remove`
    #[arg(long, default_value_t = 5, value_name = "COUNT")]
    pub retry: u32,
    /// HOST:PORT
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReconstructArgs {
    /// Every master and slave of the cluster
    #[arg(long)]
    pub all: bool,
    /// Only when the partition stays readable (the default)
    #[arg(long, conflicts_with = "unsafe_")]
    pub safe: bool,
    /// Also when the partition has no other active member to read from
    #[arg(long = "unsafe")]
    pub unsafe_: bool,
    /// Attempts for each index command
    #[arg(long, default_value_t = 5, value_name = "COUNT")]
    pub retry: u32,
    /// HOST:PORT
    pub nodes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Output file (`-`: stdout)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Every partition (the default)
    #[arg(long)]
    pub all: bool,
    /// Only this partition
    #[arg(long = "partition", value_name = "N", conflicts_with = "all")]
    pub partition: Option<i32>,
    /// Bandwidth limit per node, KiB/s (0: none)
    #[arg(long, default_value_t = 0, value_name = "KB")]
    pub bwlimit: u64,
}

#[derive(Args, Debug)]
pub struct DumpkeyArgs {
    /// Output file (default: stdout)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Every partition (the default)
    #[arg(long)]
    pub all: bool,
    /// Only this partition
    #[arg(
        short = 'p',
        long = "partition",
        value_name = "N",
        conflicts_with = "all"
    )]
    pub partition: Option<i32>,
    /// Bandwidth limit per node, KiB/s (0: none)
    #[arg(long, default_value_t = 0, value_name = "KB")]
    pub bwlimit: u64,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The dump file (`-`: stdin)
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: PathBuf,
    /// Only keys matching this regular expression
    #[arg(long, value_name = "REGEXP")]
    pub include: Option<String>,
    /// Only keys with this prefix
    #[arg(long = "prefix-include", value_name = "PREFIX")]
    pub prefix_include: Option<String>,
    /// Skip keys with this prefix
    #[arg(long, value_name = "PREFIX")]
    pub exclude: Option<String>,
    /// Print each key restored
    #[arg(long = "print-keys")]
    pub print_keys: bool,
    /// Bandwidth limit, KiB/s (0: none)
    #[arg(long, default_value_t = 0, value_name = "KB")]
    pub bwlimit: u64,
    /// Keep each record's version (cas unique); refused by a master of a
    /// newer epoch, so only into a fresh cluster
    #[arg(long = "keep-versions")]
    pub keep_versions: bool,
    /// The node to write through (HOST:PORT); any node forwards to masters
    pub node: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Also write, check and delete 1000 test keys first
    #[arg(long = "use-test-data")]
    pub use_test_data: bool,
    /// Only check that keys live in their partition (no master/slave comparison)
    #[arg(long = "keys-only")]
    pub keys_only: bool,
}

/// The arguments, with the sub-command taken from the program's name when
/// it is called `flare-stats`, `flare-ping` or `flare-part` (as flare-tools'
/// short commands).
pub fn argv() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(sub) = name.strip_prefix("flare-") {
        if matches!(sub, "stats" | "ping" | "part") {
            args.insert(1, OsString::from(sub));
        }
    }
    args
}
