//! Failpoints for the fault-injection tests (docs/reliability.md §5).
//!
//! Built on the `fail` crate. Without the `failpoints` feature (every
//! release and package build) each check compiles to nothing and the
//! `failpoint` command answers `ERROR`; with it, `FAILPOINTS=name=actions;…`
//! in the environment configures them at start and `failpoint <name>
//! [<actions>]` at run time (no actions: remove).
//!
//! Actions are the `fail` crate's (`[p%][cnt*]task[(arg)]`, chained with
//! `->`); the tasks a daemon understands are `off`, `return(fail)`,
//! `return(crash)` (abort the process at that point), `return(delay=MS)`
//! (an asynchronous delay where the point is [`hit`] in async code), and
//! `sleep(MS)` (blocks the thread: a slow disk where the point is [`block`]).

use std::time::Duration;

/// What a failpoint asks of the code at that point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail the step as its real failure would (an I/O error).
    Fail,
    /// Wait this long, then go on.
    Delay(Duration),
}

/// A step failed by a failpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("failpoint {0}")]
pub struct Injected(pub &'static str);

/// Why a failpoint could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("failpoints are not compiled into this build")]
    NotCompiled,
    #[error("bad failpoint actions: {0}")]
    BadActions(String),
}

/// Read `FAILPOINTS` from the environment (feature builds only).
pub fn setup() {
    #[cfg(feature = "failpoints")]
    {
        if let Ok(spec) = std::env::var("FAILPOINTS") {
            for item in spec.split(';').filter(|s| !s.trim().is_empty()) {
                let (name, actions) = item.split_once('=').unwrap_or((item, "off"));
                match configure(name.trim(), actions.trim()) {
                    Ok(()) => tracing::warn!("failpoint {name} set to {actions}"),
                    Err(e) => tracing::error!("failpoint {name}: {e}"),
                }
            }
        }
    }
}

/// Configure (`actions` non-empty) or remove a failpoint.
pub fn configure(name: &str, actions: &str) -> Result<(), FaultError> {
    #[cfg(feature = "failpoints")]
    {
        if actions.is_empty() {
            fail::remove(name);
            return Ok(());
        }
        fail::cfg(name, actions).map_err(FaultError::BadActions)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = (name, actions);
        Err(FaultError::NotCompiled)
    }
}

/// Whether this build has failpoints.
pub const COMPILED: bool = cfg!(feature = "failpoints");

/// Evaluate the failpoint `name`: `None` when it is off (always, without the
/// feature). `return(crash)` aborts the process here.
#[inline]
pub fn check(name: &str) -> Option<Fault> {
    #[cfg(feature = "failpoints")]
    {
        let arg = fail::eval(name, |arg| arg.unwrap_or_default())?;
        if arg == "crash" {
            tracing::error!("failpoint {name}: crash");
            std::process::abort();
        }
        if let Some(ms) = arg.strip_prefix("delay=") {
            return Some(Fault::Delay(Duration::from_millis(
                ms.parse().unwrap_or(1000),
            )));
        }
        Some(Fault::Fail)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        None
    }
}

/// An async failpoint: delays asynchronously, and returns [`Injected`]
/// where the step must fail.
#[inline]
pub async fn hit(name: &'static str) -> Result<(), Injected> {
    match check(name) {
        None => Ok(()),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Some(Fault::Fail) => Err(Injected(name)),
    }
}

/// A blocking failpoint (the thread itself is slow, as on a slow disk):
/// returns [`Injected`] where the step must fail.
#[inline]
pub fn block(name: &'static str) -> Result<(), Injected> {
    match check(name) {
        None => Ok(()),
        Some(Fault::Delay(d)) => {
            std::thread::sleep(d);
            Ok(())
        }
        Some(Fault::Fail) => Err(Injected(name)),
    }
}

/// The reply to `failpoint <name> [<actions>]`: `OK`, `ERROR` (no
/// failpoints in this build, as for any unknown command) or a
/// `CLIENT_ERROR` naming the bad actions.
pub fn command_reply(name: &str, actions: &str) -> String {
    match configure(name, actions) {
        Ok(()) => {
            tracing::warn!("failpoint {name} set to {actions:?}");
            "OK\r\n".to_string()
        }
        Err(FaultError::NotCompiled) => "ERROR\r\n".to_string(),
        Err(e) => format!("CLIENT_ERROR {e}\r\n"),
    }
}
