//! End-to-end check of `daemonize()` in a real, single-threaded process.
//!
//! This file has no libtest harness (`harness = false`): the harness runs tests on extra
//! threads, and `daemonize()` refuses to fork a multi-threaded process. `main` re-runs
//! this executable as a child with `FLARE_DAEMONIZE_TEST_OUT` set; that child daemonizes
//! and the daemon writes a report file that the parent checks.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const ENV: &str = "FLARE_DAEMONIZE_TEST_OUT";

fn main() -> ExitCode {
    if !cfg!(target_os = "linux") {
        println!("daemonize test: skipped (not Linux)");
        return ExitCode::SUCCESS;
    }
    match std::env::var_os(ENV) {
        Some(out) => child(Path::new(&out)),
        None => match parent() {
            Ok(()) => {
                println!("daemonize test: ok");
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("daemonize test FAILED: {msg}");
                ExitCode::FAILURE
            }
        },
    }
}

fn child(out: &Path) -> ExitCode {
    let cwd_before = std::env::current_dir().map(|p| p.display().to_string());
    // SAFETY: getpid has no preconditions.
    let pid_before = unsafe { libc::getpid() };
    let report = match flare_daemon::daemonize::daemonize() {
        Err(e) => format!("error {e}\n"),
        Ok(()) => {
            // SAFETY: getpid/getsid have no preconditions.
            let (pid, sid) = unsafe { (libc::getpid(), libc::getsid(0)) };
            let fd = |n: u8| {
                std::fs::read_link(format!("/proc/self/fd/{n}"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| format!("<{e}>"))
            };
            let cwd_after = std::env::current_dir().map(|p| p.display().to_string());
            format!(
                "forked {}\nsession_leader {}\nfd0 {}\nfd1 {}\nfd2 {}\ncwd_kept {}\n",
                pid != pid_before,
                sid == pid,
                fd(0),
                fd(1),
                fd(2),
                cwd_before.ok() == cwd_after.ok(),
            )
        }
    };
    let tmp = out.with_extension("tmp");
    if std::fs::write(&tmp, report).is_ok() {
        let _ = std::fs::rename(&tmp, out);
    }
    ExitCode::SUCCESS
}

fn parent() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = dir.path().join("report");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .env(ENV, &out)
        .status()
        .map_err(|e| format!("spawn: {e}"))?;
    if !status.success() {
        return Err(format!("launching process exited with {status}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        if let Ok(text) = std::fs::read_to_string(&out) {
            break text;
        }
        if Instant::now() > deadline {
            return Err("the daemon wrote no report within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let expected = [
        "forked true",
        "session_leader true",
        "fd0 /dev/null",
        "fd1 /dev/null",
        "fd2 /dev/null",
        "cwd_kept true",
    ];
    for line in expected {
        if !report.lines().any(|l| l == line) {
            return Err(format!("missing '{line}' in report:\n{report}"));
        }
    }
    Ok(())
}
