//! Pid file handling (operations.md §3.3).
//!
//! * [`PidFile::check`] refuses to start when the file names a live process. Unlike 1.3.4
//!   (which checked only at the very end of start-up), the daemons are expected to call it
//!   early, before touching the index or the storage (quirk Q6).
//! * [`PidFile::write`] writes `<pid>\n` (mode from the umask, no locking) and returns a
//!   guard that removes the file on [`PidFile::remove`] or on drop.
//!
//! Write the file **after** [`crate::daemonize::daemonize`], so it holds the daemon's pid.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::DaemonError;

/// Owner of a written pid file; removes it when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    removed: bool,
}

/// What [`PidFile::check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidCheck {
    /// No pid file.
    Absent,
    /// A pid file that names no live process (or is unreadable, empty or not a number,
    /// or names this very process); it will be overwritten. The pid is given when the
    /// file held one.
    Stale(Option<i32>),
}

impl PidFile {
    /// Checks an existing pid file before start-up.
    ///
    /// The first whitespace-separated token of the file is read as a pid. If
    /// `kill(pid, 0)` succeeds or fails with `EPERM`, the process is alive and
    /// [`DaemonError::AlreadyRunning`] is returned. A missing file is fine; a file that
    /// cannot be read, holds no valid positive pid, names a dead process (`ESRCH`) or names
    /// the calling process itself is stale (1.3.4 aborted on non-numeric content, quirk
    /// Q7). The caller may log the [`PidCheck::Stale`] result.
    pub fn check(path: &Path) -> Result<PidCheck, DaemonError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PidCheck::Absent),
            Err(_) => return Ok(PidCheck::Stale(None)),
        };
        let text = String::from_utf8_lossy(&text);
        let Some(pid) = text
            .split_whitespace()
            .next()
            .and_then(|t| t.parse::<i32>().ok())
            .filter(|p| *p > 0)
        else {
            return Ok(PidCheck::Stale(None));
        };
        if pid == std::process::id() as i32 {
            // A leftover from an earlier run that happened to get the same pid (typical
            // for pid 1 in a container): it cannot be another instance.
            return Ok(PidCheck::Stale(Some(pid)));
        }
        if process_alive(pid) {
            Err(DaemonError::AlreadyRunning {
                pid,
                path: path.to_path_buf(),
            })
        } else {
            Ok(PidCheck::Stale(Some(pid)))
        }
    }

    /// Writes the current pid followed by a newline to `path` (creating or truncating
    /// it) and returns the guard that removes it again.
    ///
    /// Failure: [`DaemonError::PidWrite`] (`setting pid failed [<path>]: <io error>`).
    pub fn write(path: &Path) -> Result<PidFile, DaemonError> {
        let content = format!("{}\n", std::process::id());
        std::fs::write(path, content).map_err(|source| DaemonError::PidWrite {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
            removed: false,
        })
    }

    /// The pid file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the pid file now (the last shutdown step), reporting failure as
    /// [`DaemonError::PidRemove`] (`unlink(<path>) failed: ...`). A file that is already
    /// gone is not an error.
    pub fn remove(mut self) -> Result<(), DaemonError> {
        self.removed = true;
        unlink(&self.path)
    }
}

impl Drop for PidFile {
    /// Removes the file if [`PidFile::remove`] was not called; a failure is logged at
    /// error level.
    fn drop(&mut self) {
        if !self.removed {
            self.removed = true;
            if let Err(e) = unlink(&self.path) {
                tracing::error!("{e}");
            }
        }
    }
}

fn unlink(path: &Path) -> Result<(), DaemonError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DaemonError::PidRemove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `kill(pid, 0)`: alive unless it fails with `ESRCH`, or the process is a
/// zombie (it exited and only waits to be reaped by its parent).
fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 performs only the existence/permission check and delivers nothing;
    // `pid` is positive, so it addresses exactly one process (never a group or "all").
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 {
        return io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    !is_zombie(pid)
}

/// The state field of `/proc/<pid>/stat` is `Z`.
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "<pid> (<comm>) <state> ...": comm may contain spaces and parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zombie_counts_as_dead() {
        let child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        // not reaped yet: wait until it has exited (bounded)
        for _ in 0..200 {
            if is_zombie(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(is_zombie(pid));
        assert!(!process_alive(pid));
        drop(child);
    }

    /// A pid that is certainly not running: spawn a child, reap it, use its pid.
    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn absent_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        assert_eq!(PidFile::check(&path).expect("check"), PidCheck::Absent);
    }

    #[test]
    fn live_process_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        // Our parent (cargo / the shell) is alive while we run.
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() };
        std::fs::write(&path, format!("{ppid}\n")).expect("write");
        let err = PidFile::check(&path).expect_err("live");
        assert_eq!(
            err.to_string(),
            format!(
                "another process seems to exist [{ppid}] (pid file {})",
                path.display()
            )
        );
        // pid 1 exists in every pid namespace; EPERM (not root) counts as alive too.
        std::fs::write(&path, "1 trailing junk").expect("write");
        assert!(
            matches!(
                PidFile::check(&path),
                Err(DaemonError::AlreadyRunning { pid: 1, .. })
            ) || std::process::id() == 1
        );
    }

    #[test]
    fn own_pid_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        let me = std::process::id() as i32;
        std::fs::write(&path, format!("{me}\n")).expect("write");
        assert_eq!(
            PidFile::check(&path).expect("own pid"),
            PidCheck::Stale(Some(me))
        );
    }

    #[test]
    fn stale_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        let dead = dead_pid();
        std::fs::write(&path, format!("{dead}\n")).expect("write");
        assert_eq!(
            PidFile::check(&path).expect("stale"),
            PidCheck::Stale(Some(dead))
        );
        for junk in [
            "",
            "\n",
            "abc\n",
            "-1",
            "0",
            "99999999999999",
            "\u{fffd}\u{0}",
        ] {
            std::fs::write(&path, junk).expect("write");
            assert_eq!(
                PidFile::check(&path).expect("garbage"),
                PidCheck::Stale(None),
                "{junk:?}"
            );
        }
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert_eq!(
            PidFile::check(&path).expect("binary"),
            PidCheck::Stale(None)
        );
    }

    #[test]
    fn write_and_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "stale content that is longer\n").expect("write");
        let pf = PidFile::write(&path).expect("write pid");
        assert_eq!(pf.path(), path.as_path());
        let content = std::fs::read_to_string(&path).expect("read");
        assert_eq!(content, format!("{}\n", std::process::id()));
        pf.remove().expect("remove");
        assert!(!path.exists());
    }

    #[test]
    fn drop_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        {
            let _pf = PidFile::write(&path).expect("write pid");
            assert!(path.exists());
        }
        assert!(!path.exists());
        // Already gone: remove is still fine.
        let pf = PidFile::write(&path).expect("write pid");
        std::fs::remove_file(&path).expect("rm");
        pf.remove().expect("remove missing");
    }

    #[test]
    fn write_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no-such-dir").join("x.pid");
        let err = PidFile::write(&path).expect_err("must fail");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("setting pid failed [{}]: ", path.display())),
            "{msg}"
        );
    }
}
