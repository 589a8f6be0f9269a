//! The first steps every daemon takes, in one place: the command line (with
//! `--help`/`--version` and errors printed the same way by both) and the
//! logger built from the settings.

use std::ffi::CStr;
use std::process::ExitCode;

use crate::cli::{parse, Invocation};
use crate::error::DaemonError;
use crate::logging::{init, level_from_env, LogHandle, DEFAULT_LEVEL};
use crate::options::{OptSpec, Settings};

/// Exit status of every start-up failure (as the original).
pub const FAILURE: u8 = 255;

/// Print a start-up error the same way everywhere: `<program>: <message>` on
/// stderr (and in the log once it exists); the exit status to return.
pub fn fail(program: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {msg}");
    tracing::error!("{msg}");
    ExitCode::from(FAILURE)
}

/// Parse the process's command line (and config file). `Err` carries the exit
/// status once help, the version or an error has been printed.
pub fn command_line(program: &'static str, specs: &[OptSpec]) -> Result<Settings, ExitCode> {
    let args: Vec<_> = std::env::args_os().collect();
    let version = format!("flare {}", env!("CARGO_PKG_VERSION"));
    match parse(program, &version, specs, args) {
        Ok(Invocation::Run(s)) => Ok(s),
        Ok(Invocation::Help(text)) | Ok(Invocation::Version(text)) => {
            println!("{text}");
            Err(ExitCode::SUCCESS)
        }
        Err(e) => Err(usage_error(program, e)),
    }
}

/// A configuration error: the message and a hint, exit 255.
pub fn usage_error(program: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {e}");
    eprintln!("Try '{program} --help' for the list of options.");
    ExitCode::from(FAILURE)
}

/// Start the logger from the settings: `log-facility`, `--stderr`, and the
/// level from `FLARE_LOG_LEVEL` (default: notice).
pub fn logging(ident: &'static CStr, settings: &Settings) -> Result<LogHandle, DaemonError> {
    let level = level_from_env()?.unwrap_or(DEFAULT_LEVEL);
    let facility = settings.str("log-facility").unwrap_or("");
    init(ident, facility, settings.stderr, level)
}

/// Make the paths a daemon keeps using absolute (relative to the launch
/// directory, as the original resolves them), so that it can chdir to `/`
/// after daemonizing: the config file (re-read on SIGHUP), the pid file and
/// the path-valued `options`.
pub fn absolutize(s: &mut Settings, options: &[&str]) -> Result<(), crate::ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"));
    let abs = |p: &std::path::Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    s.config_path = s.config_path.as_deref().map(abs);
    s.pid_path = s.pid_path.as_deref().map(abs);
    for name in options {
        if let Some(v) = s.str(name).filter(|v| !v.is_empty()).map(str::to_string) {
            let p = abs(std::path::Path::new(&v));
            s.set(name, &p.to_string_lossy())?;
        }
    }
    Ok(())
}

/// After daemonizing: leave the launch directory (every path is absolute).
fn leave_launch_directory() {
    if let Err(e) = std::env::set_current_dir("/") {
        tracing::warn!("chdir(/) failed: {e}");
    }
}

/// The steps between configuration and serving, in the order they must run:
/// refuse to start when the pid file names a live process, fork into the
/// background when `daemonize` (before any thread exists), leave the launch
/// directory, then build the async runtime. `Err` is the exit status, the
/// error already reported.
pub fn detach(
    program: &str,
    pid_path: &std::path::Path,
    daemonize: bool,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    match crate::PidFile::check(pid_path) {
        Ok(crate::PidCheck::Stale(Some(pid))) => tracing::info!(
            "logged pid [{pid}] seems not to exist ({}) -> ignoring",
            pid_path.display()
        ),
        Ok(_) => {}
        Err(e) => return Err(fail(program, e)),
    }
    // test builds only: FAILPOINTS from the environment
    crate::fault::setup();
    if daemonize {
        if let Err(e) = crate::daemonize() {
            return Err(fail(program, e));
        }
        tracing::info!(
            "daemon process created -> now i have new pid [{}]",
            std::process::id()
        );
        // Every path was made absolute before the fork (see `absolutize`).
        leave_launch_directory();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(program, format!("cannot start the async runtime: {e}")))
}
