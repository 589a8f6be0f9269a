//! Detaching from the terminal (operations.md §3.2).
//!
//! Semantics of 1.3.4, kept on purpose:
//!
//! * a **single** `fork()`; the parent exits with status 0 at once (via `_exit`, so no
//!   destructors, atexit handlers or buffered output of the parent run twice);
//! * the child calls `setsid()`;
//! * fds 0, 1, 2 are pointed at `/dev/null`;
//! * **no `chdir("/")`** and **no umask change**: relative paths (`-f flared.conf`,
//!   `data-dir = .`) keep working relative to the launch directory.
//!
//! Without `--daemonize` the process simply stays in the foreground (systemd, Docker).

use std::io::{self, Write};

use crate::error::DaemonError;

/// Forks into the background.
///
/// Returns in the child (the daemon) only; the parent process exits with status 0 inside
/// this call. In the child, `setsid()` has been called and stdin, stdout and stderr refer
/// to `/dev/null` (so a stderr logger loses all further output; warn the operator about
/// `-s --daemonize` before calling this).
///
/// **Must be called while the process is single-threaded**: before any tokio runtime,
/// thread pool or other thread exists (a forked child keeps only the calling thread, so
/// any runtime would be broken). On Linux this is checked and reported as
/// [`DaemonError::Threaded`]. Logging set up with [`crate::logging::init`] spawns no
/// threads and survives the fork.
///
/// Errors: [`DaemonError::Fork`] (the original process is still the only one),
/// [`DaemonError::Setsid`] or [`DaemonError::DevNull`] (reported by the child; 1.3.4
/// exited with status 1 in the `/dev/null` case).
pub fn daemonize() -> Result<(), DaemonError> {
    if let Some(n) = thread_count() {
        if n > 1 {
            return Err(DaemonError::Threaded(n));
        }
    }
    // Anything still buffered would otherwise be written by both processes.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();

    // SAFETY: the process is single-threaded (checked above on Linux, documented
    // precondition elsewhere), so the child gets a consistent copy of the whole process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(DaemonError::Fork(io::Error::last_os_error()));
    }
    if pid > 0 {
        // SAFETY: `_exit` terminates the parent immediately without running destructors
        // or atexit handlers, which belong to the child now.
        unsafe { libc::_exit(0) };
    }

    // SAFETY: plain system call without pointer arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(DaemonError::Setsid(io::Error::last_os_error()));
    }
    redirect_std_fds()
}

/// Points fds 0, 1 and 2 at `/dev/null`.
fn redirect_std_fds() -> Result<(), DaemonError> {
    const DEV_NULL: &std::ffi::CStr = c"/dev/null";
    // SAFETY: DEV_NULL is a valid NUL-terminated path; no pointer is retained.
    let fd = unsafe { libc::open(DEV_NULL.as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        return Err(DaemonError::DevNull(io::Error::last_os_error()));
    }
    for target in 0..=2 {
        if fd == target {
            continue;
        }
        // SAFETY: `fd` is an open descriptor we own; dup2 atomically replaces `target`.
        if unsafe { libc::dup2(fd, target) } < 0 {
            let err = io::Error::last_os_error();
            if fd > 2 {
                // SAFETY: `fd` is ours and not one of the standard descriptors.
                unsafe { libc::close(fd) };
            }
            return Err(DaemonError::DevNull(err));
        }
    }
    if fd > 2 {
        // SAFETY: `fd` is ours; fds 0-2 now hold their own duplicates.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Number of threads of this process, where the platform tells us cheaply.
#[cfg(target_os = "linux")]
pub(crate) fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn thread_count() -> Option<usize> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_threaded() {
        // The test harness runs this test on its own thread, so there are at least two.
        let n = thread_count().expect("thread count");
        assert!(n > 1, "expected a multi-threaded test process, got {n}");
        match daemonize() {
            Err(DaemonError::Threaded(m)) => assert!(m > 1),
            other => panic!("unexpected {other:?}"),
        }
    }
}
