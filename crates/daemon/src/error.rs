//! Error types of the daemon plumbing.
//!
//! Two enums, split by *when* the problem happens:
//!
//! * [`ConfigError`]: the command line or the configuration file is wrong. These happen
//!   before logging is up; the binaries print the message followed by the help text on
//!   stdout and exit with status 255 (operations.md §1.5).
//! * [`DaemonError`]: the environment refused something (pid file, fork, syslog, ...).
//!
//! Every `Display` is one line that names the option, value or path involved, so an
//! operator can act on it without reading source code.

use std::io;
use std::path::PathBuf;

/// A problem with the command line or the configuration file.
///
/// The messages follow Boost.Program_options' wording (as Flare 1.3.4 printed it), but with
/// the real option names and values filled in instead of Boost's `%canonical_option%`
/// placeholders (operations.md §1.5, quirk Q3).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An option name that no option matches (CLI `--foo`, `-x`; or a key in the file).
    #[error("unrecognised option '{0}'")]
    UnknownOption(String),

    /// A long-option prefix that matches several options (`--server`).
    #[error("option '{option}' is ambiguous and matches {}", quote_list(.candidates))]
    Ambiguous {
        /// The prefix as typed, e.g. `--server`.
        option: String,
        /// The full option names it matches, e.g. `--server-name`.
        candidates: Vec<String>,
    },

    /// An option that needs a value was given without one.
    #[error("the required argument for option '{0}' is missing")]
    MissingArgument(String),

    /// A value was attached to an option that takes none (`--daemonize=yes`).
    #[error("option '{0}' does not take any arguments")]
    UnexpectedArgument(String),

    /// A value that does not parse as the option's type (int, unsigned, ...).
    #[error("the argument ('{value}') for option '{option}' is invalid")]
    InvalidValue {
        /// Option name (without dashes).
        option: String,
        /// The value as given.
        value: String,
    },

    /// A bool option whose value is not one of the accepted words.
    #[error(
        "the argument ('{value}') for option '{option}' is invalid. Valid choices are 'on|off', 'yes|no', '1|0' and 'true|false'"
    )]
    InvalidBool {
        /// Option name (without dashes).
        option: String,
        /// The value as given.
        value: String,
    },

    /// A word on the command line that is not an option (no positionals are accepted).
    #[error("unexpected argument '{0}': positional arguments are not accepted")]
    Positional(String),

    /// The same option twice on the command line, or the same key twice in the file.
    #[error("option '{0}' cannot be specified more than once")]
    Duplicate(String),

    /// The configuration file does not exist.
    #[error("{} not found", .0.display())]
    ConfigNotFound(PathBuf),

    /// The configuration file exists but could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// A configuration-file line that is neither blank, a comment, a `[section]` nor
    /// `name = value`.
    #[error("the options configuration file contains an invalid line '{text}'")]
    InvalidLine {
        /// The line (comment stripped, trimmed) as Boost reports it.
        text: String,
        /// 1-based line number in the file.
        line: usize,
    },

    /// A required option is missing (`data-dir`).
    #[error("option [{0}] is required")]
    Required(String),

    /// `index-servers` contains no `host:port` token.
    #[error("option [index-servers] is invalid")]
    InvalidIndexServers,

    /// A port number that does not fit in 16 bits.
    #[error("invalid port number {0}")]
    InvalidPort(String),

    /// Any other validation failure the daemons detect (`unknown storage type [X]`, ...).
    /// The string is printed as is.
    #[error("{0}")]
    Invalid(String),

    /// A command-line problem clap reported that has no dedicated variant above.
    #[error("{0}")]
    Cli(String),
}

/// A problem with the process environment: pid file, daemonising, logging.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The pid file names a process that is still alive.
    #[error("another process seems to exist [{pid}] (pid file {})", .path.display())]
    AlreadyRunning {
        /// The pid found in the file.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },

    /// The pid file could not be created or written.
    #[error("setting pid failed [{}]: {source}", .path.display())]
    PidWrite {
        /// The pid file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// The pid file could not be removed at shutdown.
    #[error("unlink({}) failed: {source}", .path.display())]
    PidRemove {
        /// The pid file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// `daemonize()` was called while the process already had several threads.
    #[error(
        "cannot daemonize: the process already runs {0} threads (fork must happen before any runtime starts)"
    )]
    Threaded(usize),

    /// `fork()` failed.
    #[error("fork() failed: {0}")]
    Fork(io::Error),

    /// `setsid()` failed.
    #[error("setsid() failed: {0}")]
    Setsid(io::Error),

    /// `/dev/null` could not be opened or duplicated onto fds 0, 1, 2.
    #[error("cannot redirect stdin/stdout/stderr to /dev/null: {0}")]
    DevNull(io::Error),

    /// `log-facility` names no known syslog facility.
    #[error("unknown log facility [{0}]")]
    UnknownFacility(String),

    /// A log level name that is not known.
    #[error("unknown log level [{0}]")]
    UnknownLevel(String),

    /// Logging was already initialised (only one global subscriber can exist).
    #[error("logging is already initialised")]
    LoggingAlreadyInitialised,

    /// Changing the log level or facility at run time failed.
    #[error("cannot reconfigure logging: {0}")]
    LoggingReload(String),
}

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        2 => format!("{} and {}", quoted[0], quoted[1]),
        n => format!("{}, and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_option() {
        let e = ConfigError::InvalidValue {
            option: "server-port".into(),
            value: "abc".into(),
        };
        assert_eq!(
            e.to_string(),
            "the argument ('abc') for option 'server-port' is invalid"
        );
        assert_eq!(
            ConfigError::Required("data-dir".into()).to_string(),
            "option [data-dir] is required"
        );
        assert_eq!(
            ConfigError::ConfigNotFound("/etc/flared.conf".into()).to_string(),
            "/etc/flared.conf not found"
        );
        let e = ConfigError::Ambiguous {
            option: "--server".into(),
            candidates: vec![
                "--server-name".into(),
                "--server-port".into(),
                "--server-socket".into(),
            ],
        };
        assert_eq!(
            e.to_string(),
            "option '--server' is ambiguous and matches '--server-name', '--server-port', and '--server-socket'"
        );
        let e = DaemonError::AlreadyRunning {
            pid: 42,
            path: "/tmp/x.pid".into(),
        };
        assert_eq!(
            e.to_string(),
            "another process seems to exist [42] (pid file /tmp/x.pid)"
        );
    }

    #[test]
    fn quote_list_forms() {
        assert_eq!(quote_list(&[]), "");
        assert_eq!(quote_list(&["a".into()]), "'a'");
        assert_eq!(quote_list(&["a".into(), "b".into()]), "'a' and 'b'");
    }
}
