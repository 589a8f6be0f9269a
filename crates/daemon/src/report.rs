//! Small formatting helpers both daemons' reports share.

/// `name:` padded with spaces to `width` characters, then the value (the
/// layout of the start-up banner and `show variables`, operations.md §2.3):
/// a name that fills the width exactly is followed directly by the value, a
/// longer one by one space.
pub fn padded(name: &str, value: &str, width: usize) -> String {
    let label = format!("{name}:");
    if label.len() >= width {
        if label.len() == width {
            format!("{label}{value}")
        } else {
            format!("{label} {value}")
        }
    } else {
        format!("{label:<width$}{value}")
    }
}

/// CPU time of the process: (user, system) as `sec.usec` strings.
pub fn rusage() -> (String, String) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return ("0.000000".into(), "0.000000".into());
    }
    let f = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (f(ru.ru_utime), f(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rules() {
        assert_eq!(padded("back_log", "30", 24), "back_log:               30");
        assert_eq!(
            padded("reconstruction_interval", "0", 24),
            "reconstruction_interval:0"
        );
        assert_eq!(
            padded("time_watcher_polling_interval_msec", "0", 24),
            "time_watcher_polling_interval_msec: 0"
        );
        assert_eq!(
            padded("partition_modular_virtual", "4096", 26),
            "partition_modular_virtual:4096"
        );
    }

    #[test]
    fn rusage_format() {
        let (u, s) = rusage();
        assert!(u.contains('.') && s.contains('.'));
        assert_eq!(u.split('.').nth(1).map(str::len), Some(6));
    }
}
