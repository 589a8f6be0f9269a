//! Daemon plumbing shared by `flarei` and `flared` (operations.md §1–4).
//!
//! * [`cli`]: command line (Boost.Program_options-compatible spellings) and help text;
//! * [`config_file`]: the `name = value` configuration-file reader;
//! * [`options`]: option tables ([`OptSpec`]) and parsed [`Settings`];
//! * [`index_servers`]: flared's `index-servers` value;
//! * [`pidfile`]: pid-file check, write and removal;
//! * [`daemonize`](mod@daemonize): single-fork daemonisation;
//! * [`logging`]: syslog/stderr logging with Flare's line prefix;
//! * [`error`]: [`ConfigError`] and [`DaemonError`];
//! * [`fault`]: failpoints, compiled in only with the `failpoints` feature;
//! * [`metrics`]: the Prometheus endpoint (`metrics-port`) and its helpers.
//!
//! Typical start-up order of a daemon:
//!
//! 1. [`cli::parse`] (on error print the message, then [`cli::help_text`], exit 255);
//! 2. validate (`settings.require("data-dir")`, enum values, ...);
//! 3. [`logging::init`], then log [`Settings::warnings`];
//! 4. [`PidFile::check`] (early, unlike 1.3.4);
//! 5. [`daemonize()`] if the `daemonize` switch is on, before any runtime or thread exists;
//! 6. start the tokio runtime, bind, ...; [`PidFile::write`]; run.

pub mod cli;
pub mod config_file;
pub mod daemonize;
pub mod error;
pub mod fault;
pub mod index_servers;
pub mod logging;
pub mod metrics;
pub mod networks;
pub mod options;
pub mod pidfile;
pub mod report;
pub mod startup;

pub use cli::{help_text, parse, Invocation};
pub use config_file::Entry;
pub use daemonize::daemonize;
pub use error::{ConfigError, DaemonError};
pub use index_servers::parse_index_servers;
pub use logging::{init as init_logging, LogHandle, LogOptions};
pub use networks::Networks;
pub use options::{OptKind, OptSpec, Settings};
pub use pidfile::{PidCheck, PidFile};
pub use report::{padded, rusage};
/// Re-exported so daemons can name log levels without depending on tracing-subscriber.
pub use tracing_subscriber::filter::LevelFilter;
