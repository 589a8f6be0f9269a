//! Logging to syslog or stderr (operations.md §4).
//!
//! Every line has Flare's bracketed prefix, which monitoring may grep:
//!
//! ```text
//! [<thread-id>][<LVL>][<module>:<line>] <message> [field=value ...]
//! ```
//!
//! * `thread-id`: the pthread id as an unsigned decimal number (as 1.3.4 printed it);
//! * `LVL`: three-letter code. `tracing` has five levels and syslog eight, so they map as
//!   `ERROR`→`ERR`, `WARN`→`WRN`, `INFO`→`NTC` (notice), `DEBUG`→`INF`, `TRACE`→`DBG`; the
//!   syslog priority follows the same mapping (`syslog-tracing` sends `INFO` as
//!   `LOG_NOTICE`). Daemons therefore log 1.3.4's notice-level lines with `info!`;
//! * `<module>:<line>`: the Rust module path and line instead of 1.3.4's
//!   `file.cc:line-function` (the function name is not available in `tracing`).
//!
//! Destinations: syslog (`openlog(ident, LOG_NDELAY|LOG_PID, facility)`) by default, or
//! stderr with `-s`, one line per event, without timestamp unless asked for
//! ([`LogOptions::stderr_timestamp`]). The level threshold defaults to notice
//! ([`DEFAULT_LEVEL`]) like 1.3.4's release builds, and can be changed while running
//! ([`LogHandle::set_level`]), as can the syslog facility ([`LogHandle::set_facility`],
//! used on SIGHUP).

use std::ffi::CStr;
use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, RwLock};

use syslog_tracing::{Options, Syslog, SyslogWriter};

/// syslog facility (re-exported from `syslog-tracing`), as returned by [`parse_facility`].
pub use syslog_tracing::Facility;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{self as tfmt, FormatEvent, FormatFields};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{reload, Registry};

use crate::error::DaemonError;

/// The default threshold: notice and above (`tracing`'s `INFO`), as 1.3.4 release builds.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

/// Environment variable that overrides the threshold (see [`level_from_env`]).
pub const LEVEL_ENV: &str = "FLARE_LOG_LEVEL";

/// Everything [`init_with`] needs.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// syslog ident (`flarei` / `flared`).
    pub ident: &'static CStr,
    /// `log-facility` value (see [`parse_facility`]); ignored except for validation when
    /// logging to stderr.
    pub facility: String,
    /// `-s`: log to stderr instead of syslog.
    pub to_stderr: bool,
    /// Level threshold.
    pub level: LevelFilter,
    /// Prefix stderr lines with an RFC 3339 UTC timestamp (off by default, as 1.3.4).
    pub stderr_timestamp: bool,
}

/// Handle to the installed logger, for run-time changes. Cheap to clone.
#[derive(Clone)]
pub struct LogHandle {
    level: reload::Handle<LevelFilter, Registry>,
    sink: Arc<LogSink>,
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogHandle")
            .field("to_stderr", &self.sink.to_stderr)
            .field("level", &self.level())
            .finish()
    }
}

/// Installs the global logger: syslog with `ident` and `facility`, or stderr when
/// `to_stderr`; threshold `level`. Same as [`init_with`] without stderr timestamps.
pub fn init(
    ident: &'static CStr,
    facility: &str,
    to_stderr: bool,
    level: LevelFilter,
) -> Result<LogHandle, DaemonError> {
    init_with(&LogOptions {
        ident,
        facility: facility.to_string(),
        to_stderr,
        level,
        stderr_timestamp: false,
    })
}

/// Installs the global logger described by `opts`.
///
/// Errors: [`DaemonError::UnknownFacility`] for a bad `log-facility` (checked in stderr
/// mode too, so a typo is noticed before the daemon is deployed with syslog), and
/// [`DaemonError::LoggingAlreadyInitialised`] if a global subscriber or syslog connection
/// already exists (only one can exist per process).
pub fn init_with(opts: &LogOptions) -> Result<LogHandle, DaemonError> {
    let facility = parse_facility(&opts.facility)?;
    let sink = if opts.to_stderr {
        LogSink::stderr(opts.ident)
    } else {
        LogSink::syslog(opts.ident, facility)?
    };
    let sink = Arc::new(sink);
    let format = FlareFormat {
        timestamp: opts.to_stderr && opts.stderr_timestamp,
        newline: opts.to_stderr,
    };
    let (subscriber, level) = build_subscriber(SinkWriter(sink.clone()), format, opts.level);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| DaemonError::LoggingAlreadyInitialised)?;
    Ok(LogHandle { level, sink })
}

impl LogHandle {
    /// Changes the level threshold of the running logger.
    pub fn set_level(&self, level: LevelFilter) -> Result<(), DaemonError> {
        self.level
            .reload(level)
            .map_err(|e| DaemonError::LoggingReload(e.to_string()))
    }

    /// The current level threshold (`None` if the logger is gone).
    pub fn level(&self) -> Option<LevelFilter> {
        self.level.clone_current()
    }

    /// Whether logging goes to stderr (`-s`) rather than syslog.
    pub fn to_stderr(&self) -> bool {
        self.sink.to_stderr
    }

    /// Re-opens syslog with a new facility (reload of `log-facility`, logged by 1.3.4 as
    /// `re-opening syslog...`). In stderr mode the name is only validated.
    ///
    /// Lines logged by other threads while syslog is being re-opened are dropped.
    pub fn set_facility(&self, facility: &str) -> Result<(), DaemonError> {
        let facility = parse_facility(facility)?;
        self.sink.reopen(facility)
    }
}

/// Maps a `log-facility` value to a syslog facility: `""` and `user` → user, `auth`,
/// `daemon`, `local0` … `local7`.
///
/// **Deviation:** any other name is [`DaemonError::UnknownFacility`]
/// (`unknown log facility [X]`); 1.3.4 silently used `user` for it.
pub fn parse_facility(name: &str) -> Result<Facility, DaemonError> {
    Ok(match name {
        "" | "user" => Facility::User,
        "auth" => Facility::Auth,
        "daemon" => Facility::Daemon,
        "local0" => Facility::Local0,
        "local1" => Facility::Local1,
        "local2" => Facility::Local2,
        "local3" => Facility::Local3,
        "local4" => Facility::Local4,
        "local5" => Facility::Local5,
        "local6" => Facility::Local6,
        "local7" => Facility::Local7,
        other => return Err(DaemonError::UnknownFacility(other.to_string())),
    })
}

/// Parses a level threshold name, case-insensitively. Names are syslog severities (as
/// printed in the log lines), mapped onto `tracing` levels:
///
/// | name | threshold |
/// |---|---|
/// | `off` | nothing |
/// | `err`, `error` | `ERROR` |
/// | `wrn`, `warn`, `warning` | `WARN` |
/// | `ntc`, `notice` | `INFO` (default) |
/// | `inf`, `info` | `DEBUG` |
/// | `dbg`, `debug`, `trace` | `TRACE` |
pub fn parse_level(name: &str) -> Result<LevelFilter, DaemonError> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "off" => LevelFilter::OFF,
        "err" | "error" => LevelFilter::ERROR,
        "wrn" | "warn" | "warning" => LevelFilter::WARN,
        "ntc" | "notice" => LevelFilter::INFO,
        "inf" | "info" => LevelFilter::DEBUG,
        "dbg" | "debug" | "trace" => LevelFilter::TRACE,
        _ => return Err(DaemonError::UnknownLevel(name.to_string())),
    })
}

/// The threshold from `FLARE_LOG_LEVEL` (see [`parse_level`]), or `None` when unset or
/// empty.
pub fn level_from_env() -> Result<Option<LevelFilter>, DaemonError> {
    match std::env::var(LEVEL_ENV) {
        Ok(v) if !v.trim().is_empty() => parse_level(&v).map(Some),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(DaemonError::UnknownLevel(v.to_string_lossy().into_owned()))
        }
    }
}

/// Flare's three-letter code for a `tracing` level (see the module documentation).
pub fn level_code(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERR",
        Level::WARN => "WRN",
        Level::INFO => "NTC",
        Level::DEBUG => "INF",
        Level::TRACE => "DBG",
    }
}

/// Builds the (not yet installed) subscriber and its level handle.
fn build_subscriber<W>(
    writer: W,
    format: FlareFormat,
    level: LevelFilter,
) -> (
    impl Subscriber + Send + Sync + 'static,
    reload::Handle<LevelFilter, Registry>,
)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let (filter, handle) = reload::Layer::new(level);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(format)
        .with_writer(writer);
    let subscriber = tracing_subscriber::registry().with(filter).with(layer);
    (subscriber, handle)
}

/// Event formatter producing Flare's line format.
#[derive(Clone, Copy, Debug)]
struct FlareFormat {
    timestamp: bool,
    newline: bool,
}

impl<S, N> FormatEvent<S, N> for FlareFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: tfmt::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.timestamp {
            SystemTime.format_time(&mut writer)?;
            writer.write_char(' ')?;
        }
        let meta = event.metadata();
        write!(
            writer,
            "[{}][{}][{}",
            thread_id(),
            level_code(*meta.level()),
            meta.target()
        )?;
        if let Some(line) = meta.line() {
            write!(writer, ":{line}")?;
        }
        writer.write_str("] ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        if self.newline {
            writer.write_char('\n')?;
        }
        Ok(())
    }
}

/// The calling thread's pthread id as a number.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions and always succeeds.
    let id = unsafe { libc::pthread_self() };
    id as u64
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn thread_id() -> u64 {
    // SAFETY: pthread_self has no preconditions and always succeeds.
    let id = unsafe { libc::pthread_self() };
    id as usize as u64
}

/// Where formatted lines go: stderr, or the (re-openable) syslog connection.
struct LogSink {
    ident: &'static CStr,
    to_stderr: bool,
    syslog: RwLock<Option<Syslog>>,
}

impl LogSink {
    fn stderr(ident: &'static CStr) -> LogSink {
        LogSink {
            ident,
            to_stderr: true,
            syslog: RwLock::new(None),
        }
    }

    fn syslog(ident: &'static CStr, facility: Facility) -> Result<LogSink, DaemonError> {
        let syslog = open_syslog(ident, facility)?;
        Ok(LogSink {
            ident,
            to_stderr: false,
            syslog: RwLock::new(Some(syslog)),
        })
    }

    fn reopen(&self, facility: Facility) -> Result<(), DaemonError> {
        if self.to_stderr {
            return Ok(());
        }
        let mut slot = self
            .syslog
            .write()
            .map_err(|_| DaemonError::LoggingReload("syslog lock poisoned".into()))?;
        // closelog() first: only one syslog connection can exist at a time.
        drop(slot.take());
        *slot = Some(open_syslog(self.ident, facility)?);
        Ok(())
    }

    fn writer(&self, meta: Option<&Metadata<'_>>) -> LogWriter {
        if self.to_stderr {
            return LogWriter::Stderr(io::stderr());
        }
        match self.syslog.read() {
            Ok(guard) => match guard.as_ref() {
                Some(syslog) => LogWriter::Syslog(match meta {
                    Some(meta) => syslog.make_writer_for(meta),
                    None => syslog.make_writer(),
                }),
                None => LogWriter::Discard,
            },
            Err(_) => LogWriter::Discard,
        }
    }
}

fn open_syslog(ident: &'static CStr, facility: Facility) -> Result<Syslog, DaemonError> {
    Syslog::new(ident, Options::LOG_NDELAY | Options::LOG_PID, facility)
        .ok_or(DaemonError::LoggingAlreadyInitialised)
}

/// `MakeWriter` over the shared sink.
struct SinkWriter(Arc<LogSink>);

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.0.writer(None)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LogWriter {
        self.0.writer(Some(meta))
    }
}

/// One event's writer.
enum LogWriter {
    Stderr(io::Stderr),
    Syslog(SyslogWriter),
    Discard,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LogWriter::Stderr(w) => w.write(buf),
            LogWriter::Syslog(w) => w.write(buf),
            LogWriter::Discard => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LogWriter::Stderr(w) => w.flush(),
            LogWriter::Syslog(w) => w.flush(),
            LogWriter::Discard => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Captures formatted output in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Capture {
        fn text(&self) -> String {
            let buf = self.0.lock().expect("lock");
            String::from_utf8_lossy(&buf).into_owned()
        }
    }

    struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

    impl Write for CaptureWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = CaptureWriter;
        fn make_writer(&'a self) -> CaptureWriter {
            CaptureWriter(self.0.clone())
        }
    }

    #[test]
    fn line_format_and_level_reload() {
        let cap = Capture::default();
        let format = FlareFormat {
            timestamp: false,
            newline: true,
        };
        let (subscriber, handle) = build_subscriber(cap.clone(), format, DEFAULT_LEVEL);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("entering running loop");
            tracing::warn!(node = "a:1", "too many connections [{}]", 129);
            tracing::error!("bind() failed");
            tracing::debug!("hidden at notice level");
            handle.reload(LevelFilter::DEBUG).expect("reload");
            tracing::debug!("now visible");
            tracing::trace!("still hidden");
        });
        let text = cap.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let tid = thread_id().to_string();
        let module = "flare_daemon::logging::tests";
        for (line, code, msg) in [
            (lines[0], "NTC", "entering running loop"),
            (lines[1], "WRN", "too many connections [129] node=\"a:1\""),
            (lines[2], "ERR", "bind() failed"),
            (lines[3], "INF", "now visible"),
        ] {
            let prefix = format!("[{tid}][{code}][{module}:");
            assert!(line.starts_with(&prefix), "{line:?} vs {prefix:?}");
            assert!(line.ends_with(&format!("] {msg}")), "{line:?}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn timestamp_and_no_newline_variants() {
        let cap = Capture::default();
        let format = FlareFormat {
            timestamp: true,
            newline: false,
        };
        let (subscriber, _h) = build_subscriber(cap.clone(), format, DEFAULT_LEVEL);
        tracing::subscriber::with_default(subscriber, || tracing::info!("x"));
        let text = cap.text();
        // e.g. "2024-05-01T12:00:00.123456Z [1234][NTC][...:12] x"
        let (ts, rest) = text.split_once(' ').expect("timestamp");
        assert!(ts.len() >= 20 && ts.contains('T'), "{text:?}");
        assert!(rest.starts_with('['), "{text:?}");
        assert!(rest.ends_with("] x"), "{text:?}");
    }

    #[test]
    fn facilities() {
        assert!(matches!(parse_facility(""), Ok(Facility::User)));
        assert!(matches!(parse_facility("user"), Ok(Facility::User)));
        assert!(matches!(parse_facility("daemon"), Ok(Facility::Daemon)));
        assert!(matches!(parse_facility("auth"), Ok(Facility::Auth)));
        assert!(matches!(parse_facility("local0"), Ok(Facility::Local0)));
        assert!(matches!(parse_facility("local7"), Ok(Facility::Local7)));
        let e = parse_facility("local8").expect_err("bad");
        assert_eq!(e.to_string(), "unknown log facility [local8]");
        assert!(parse_facility("LOCAL0").is_err());
    }

    #[test]
    fn levels() {
        assert_eq!(parse_level("notice").expect("ok"), LevelFilter::INFO);
        assert_eq!(parse_level("NTC").expect("ok"), LevelFilter::INFO);
        assert_eq!(parse_level("info").expect("ok"), LevelFilter::DEBUG);
        assert_eq!(parse_level("Debug").expect("ok"), LevelFilter::TRACE);
        assert_eq!(parse_level("warning").expect("ok"), LevelFilter::WARN);
        assert_eq!(parse_level("err").expect("ok"), LevelFilter::ERROR);
        assert_eq!(parse_level("off").expect("ok"), LevelFilter::OFF);
        assert_eq!(
            parse_level("loud").expect_err("bad").to_string(),
            "unknown log level [loud]"
        );
        assert_eq!(level_code(Level::INFO), "NTC");
        assert_eq!(level_code(Level::TRACE), "DBG");
    }

    /// The only test that touches the process-wide syslog connection.
    #[test]
    fn syslog_sink_reopen_and_exclusivity() {
        let sink = LogSink::syslog(c"flare-daemon-test", Facility::User).expect("open");
        assert!(matches!(
            LogSink::syslog(c"flare-daemon-test", Facility::User),
            Err(DaemonError::LoggingAlreadyInitialised)
        ));
        sink.reopen(Facility::Local1).expect("reopen");
        assert!(matches!(sink.writer(None), LogWriter::Syslog(_)));
        drop(sink);
        // closelog() happened: a new connection can be opened.
        let again = LogSink::syslog(c"flare-daemon-test", Facility::Daemon).expect("reopen");
        drop(again);
    }

    /// The only test that installs the global subscriber.
    #[test]
    fn init_once() {
        let e = init(c"flare-daemon-test", "bogus", true, DEFAULT_LEVEL).expect_err("facility");
        assert!(matches!(e, DaemonError::UnknownFacility(_)));
        let handle = init(c"flare-daemon-test", "local0", true, LevelFilter::WARN).expect("init");
        assert!(handle.to_stderr());
        assert_eq!(handle.level(), Some(LevelFilter::WARN));
        handle.set_level(LevelFilter::INFO).expect("set level");
        assert_eq!(handle.level(), Some(LevelFilter::INFO));
        handle.set_facility("daemon").expect("validate only");
        assert!(handle.set_facility("nope").is_err());
        let e = init(c"flare-daemon-test", "", true, DEFAULT_LEVEL).expect_err("twice");
        assert!(matches!(e, DaemonError::LoggingAlreadyInitialised));
    }
}
