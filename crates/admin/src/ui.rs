//! What every sub-command shares: the index address, connections, the
//! confirmation of changes, progress bars and the log file.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Global;
use crate::client::{sort_nodes, Client};
use crate::error::AdminError;
use flare_proto::node::NodeLine;

/// How often a waiting command looks at the cluster again.
pub const POLL: Duration = Duration::from_millis(500);

pub struct Ctx {
    /// `host:port` of the index server.
    pub index: String,
    pub timeout: Duration,
    pub dry_run: bool,
    pub force: bool,
    pub json: bool,
    /// Progress bars are drawn only when stdout is a terminal.
    pub tty: bool,
    log: Option<Mutex<std::fs::File>>,
}

impl Ctx {
    pub fn new(g: &Global) -> Result<Ctx, AdminError> {
        if g.timeout == 0 {
            return Err(AdminError::Usage(
                "--timeout must be at least 1 second".into(),
            ));
        }
        let log = match &g.log_file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(AdminError::file(path))?,
            )),
            None => None,
        };
        Ok(Ctx {
            index: crate::spec::host_port(&g.index_server, g.index_server_port),
            timeout: Duration::from_secs(g.timeout),
            dry_run: g.dry_run,
            force: g.force,
            json: g.json,
            tty: std::io::stdout().is_terminal(),
            log,
        })
    }

    /// A connection to the index server.
    pub async fn index(&self) -> Result<Client, AdminError> {
        Client::connect(&self.index, self.timeout).await
    }

    pub async fn connect(&self, addr: &str) -> Result<Client, AdminError> {
        Client::connect(addr, self.timeout).await
    }

    /// The index's node map, in flare-tools' order.
    pub async fn nodes(&self) -> Result<Vec<NodeLine>, AdminError> {
        let mut idx = self.index().await?;
        let mut nodes = idx.nodes().await?;
        idx.close().await;
        sort_nodes(&mut nodes);
        Ok(nodes)
    }

    /// Append a line to `--log-file` (with the time, in seconds since the epoch).
    pub fn log(&self, line: &str) {
        if let Some(f) = &self.log {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{now} {line}");
            }
        }
    }

    /// Say what happened, on stdout and in the log.
    pub fn say(&self, line: &str) {
        println!("{line}");
        self.log(line);
    }

    /// Print the plan of a change and get the operator's go. `Ok(false)`:
    /// a dry run, nothing to do; `Err(Aborted)`: the operator said no.
    pub fn confirm(&self, plan: &[String]) -> Result<bool, AdminError> {
        println!("plan:");
        for p in plan {
            println!("  {p}");
            self.log(&format!("plan: {p}"));
        }
        if self.dry_run {
            println!("dry run: nothing was changed");
            return Ok(false);
        }
        if self.force {
            return Ok(true);
        }
        print!("commit these changes? (y/n): ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        match answer.trim() {
            "y" | "Y" | "yes" | "YES" | "Yes" => Ok(true),
            _ => {
                self.log("aborted by the operator");
                Err(AdminError::Aborted)
            }
        }
    }

    /// A progress bar with records, bytes, rate and ETA (`len` = 0: no
    /// total known); hidden unless stdout is a terminal.
    pub fn progress(&self, len: u64, prefix: &str) -> ProgressBar {
        let template = if len > 0 {
            "{prefix} [{bar:30}] {human_pos}/{human_len} records, {msg}, eta {eta}"
        } else {
            "{prefix} {spinner} {human_pos} records, {msg}, {elapsed}"
        };
        self.bar(len, prefix, template)
    }

    /// A spinner with a message, for a wait without a count.
    pub fn spinner(&self, prefix: &str, msg: &str) -> ProgressBar {
        let bar = self.bar(0, prefix, "{prefix} {spinner} {msg} {elapsed}");
        bar.set_message(msg.to_string());
        bar
    }

    fn bar(&self, len: u64, prefix: &str, template: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            (len > 0).then_some(len),
            if self.tty && !self.json {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(prefix.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// `n` bytes for people (KiB, MiB, GiB).
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A progress bar's message: `bytes` so far and their rate since `start`.
pub fn bytes_and_rate(bytes: u64, start: std::time::Instant) -> String {
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    format!(
        "{} at {}/s",
        human_bytes(bytes),
        human_bytes((bytes as f64 / secs) as u64)
    )
}

/// Pacing for `--bwlimit` (KiB/s): after `bytes` in all since `start`,
/// sleep until the average is back under the limit.
pub struct Pace {
    limit: u64,
    start: std::time::Instant,
    bytes: u64,
}

impl Pace {
    pub fn new(kib_per_s: u64) -> Pace {
        Pace {
            limit: kib_per_s.saturating_mul(1024),
            start: std::time::Instant::now(),
            bytes: 0,
        }
    }

    pub async fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.limit == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.limit as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}
