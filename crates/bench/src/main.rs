//! flare-bench: a load generator for memcached-protocol servers (flared,
//! memcached). Closed loop: N connections, each with up to `--pipeline`
//! requests in flight. Every reply is checked: values are a pure function of
//! (key, size), so each value read back is compared with what the generator
//! writes for that key; a wrong value or an unexpected line is an error, not
//! throughput.

mod dist;
mod reply;
mod report;
mod rng;
mod value;
mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use dist::KeyDist;
use report::{Report, Setup};
use value::ValueGen;
use workload::{Mode, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "flare-bench",
    version,
    about = "memcached-protocol load generator with verified replies"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Store every key 0..KEYS once (the values the run mode verifies).
    Preload {
        #[command(flatten)]
        common: Common,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 1800.0)]
        duration: f64,
    },
    /// Random gets and sets for a bounded time or number of requests.
    Run {
        #[command(flatten)]
        common: Common,
        /// Key distribution.
        #[arg(long, value_enum, default_value_t = Dist::Uniform)]
        dist: Dist,
        /// Zipf exponent (with --dist zipf).
        #[arg(long, default_value_t = 0.99)]
        zipf_s: f64,
        /// Fraction of requests that are gets (the rest are sets): 1 = get
        /// only, 0 = set only, 0.9 = 90/10.
        #[arg(long, default_value_t = 0.9)]
        get_ratio: f64,
        /// Keys per get (a multi-get when > 1; the keys are distinct).
        #[arg(long, default_value_t = 1)]
        multiget: usize,
        /// Stop after this many seconds (always bounded).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many requests (whichever comes first).
        #[arg(long)]
        ops: Option<u64>,
        /// Count a get that misses a key as a success (default: an error,
        /// since the keys are expected to be preloaded).
        #[arg(long)]
        allow_miss: bool,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 12121)]
    port: u16,
    /// Client connections.
    #[arg(short, long, default_value_t = 50)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Number of keys (key i is "<prefix><i>").
    #[arg(short, long, default_value_t = 100_000)]
    keys: u64,
    /// Key name prefix.
    #[arg(long, default_value = "fb:")]
    key_prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Runtime threads of the generator: 1 = a current-thread runtime (the
    /// default, to leave the cores to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A connection that waits longer than this for a reply gives up (s).
    #[arg(long, default_value_t = 10.0)]
    io_timeout: f64,
    /// Random seed (same seed, same request sequence per connection).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON (one object on one line) instead of the table.
    #[arg(long)]
    json: bool,
    /// A label copied into the output.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dist {
    Uniform,
    Zipf,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    if !(v > 0.0 && v <= 86_400.0) {
        return Err(format!("--{name} must be in (0, 86400] seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn prepare(cli: Cli) -> Result<(SocketAddr, usize, Common, Workload, Setup), String> {
    let (common, mode, duration, max_ops, allow_miss, dist_name, get_ratio, multiget) =
        match cli.cmd {
            Cmd::Preload { common, duration } => (
                common,
                None,
                duration,
                None,
                false,
                "sequential".to_string(),
                0.0,
                1,
            ),
            Cmd::Run {
                common,
                dist,
                zipf_s,
                get_ratio,
                multiget,
                duration,
                ops,
                allow_miss,
            } => {
                if !(0.0..=1.0).contains(&get_ratio) {
                    return Err("--get-ratio must be in [0, 1]".into());
                }
                if multiget == 0 || multiget as u64 > common.keys || multiget > 10_000 {
                    return Err("--multiget must be in 1..=min(keys, 10000)".into());
                }
                if ops == Some(0) {
                    return Err("--ops must be positive".into());
                }
                let (kd, name) = match dist {
                    Dist::Uniform => (KeyDist::uniform(common.keys), "uniform".to_string()),
                    Dist::Zipf => (
                        KeyDist::zipf(common.keys, zipf_s)?,
                        format!("zipf({zipf_s})"),
                    ),
                };
                let mode = Mode::Mix {
                    dist: kd,
                    get_ratio,
                    multiget,
                };
                (
                    common,
                    Some(mode),
                    duration,
                    ops,
                    allow_miss,
                    name,
                    get_ratio,
                    multiget,
                )
            }
        };
    if common.connections == 0 || common.connections > 10_000 {
        return Err("--connections must be in 1..=10000".into());
    }
    if common.pipeline == 0 || common.pipeline > 10_000 {
        return Err("--pipeline must be in 1..=10000".into());
    }
    if common.keys == 0 {
        return Err("--keys must be positive".into());
    }
    if common.value_size > 64 << 20 {
        return Err("--value-size must be at most 64 MiB".into());
    }
    if common.threads == 0 || common.threads > 256 {
        return Err("--threads must be in 1..=256".into());
    }
    if common.key_prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("--key-prefix must not contain spaces or control characters".into());
    }
    let addr = (common.host.as_str(), common.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}:{}: {e}", common.host, common.port))?
        .next()
        .ok_or_else(|| format!("{}: no address", common.host))?;
    let duration_d = seconds("duration", duration)?;
    let setup = Setup {
        label: common.label.clone(),
        mode: if mode.is_none() { "preload" } else { "run" },
        server: addr.to_string(),
        connections: common.connections,
        pipeline: common.pipeline,
        threads: common.threads,
        keys: common.keys,
        key_prefix: common.key_prefix.clone(),
        distribution: dist_name,
        value_size: common.value_size,
        get_ratio,
        multiget,
        duration_limit_s: duration,
        ops_limit: max_ops,
        allow_miss,
    };
    let wl = Workload {
        mode: mode.unwrap_or(Mode::Preload),
        keys: common.keys,
        prefix: common.key_prefix.clone(),
        value: ValueGen::new(common.value_size),
        pipeline: common.pipeline,
        allow_miss,
        duration: duration_d,
        max_ops,
        io_timeout: seconds("io-timeout", common.io_timeout)?,
        seed: common.seed,
    };
    Ok((addr, common.connections, common, wl, setup))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (addr, connections, common, wl, setup) = match prepare(cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("flare-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = if common.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(common.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flare-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let preload = matches!(wl.mode, Mode::Preload);
    let keys = wl.keys;
    let totals = match runtime.block_on(workload::run(addr, connections, Arc::new(wl))) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("flare-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let complete = !preload || totals.set.ok == keys;
    let report = Report::new(setup, &totals, complete);
    if common.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("flare-bench: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
