//! Flare / memcached text protocol, off the socket.
//!
//! The parser works on a byte buffer and never touches a socket: feed it what
//! arrived, and it answers [`Frame`]s or `None` (incomplete: read more).
//! Requests split across reads at any byte and pipelined requests are handled
//! the same way. Replies are encoded by the functions in [`reply`].
//!
//! * [`text`]: tokenizer, framing, and one module per command family.
//! * [`request`]: the typed requests the parser produces.
//! * [`reply`]: reply encoders (`VALUE`, `STAT`, `NODE`, ...).
//! * [`node`]: the `NODE` line of `node sync` / `node add`, roles and states.

pub mod binary;
pub mod client;
pub mod node;
pub mod reply;
pub mod request;
pub mod stats;
pub mod text;

pub use request::{Dialect, Request, StoreKind, WriteOptions};
pub use text::{Decoder, Frame, Limits, Parser};

/// The version string flare-tools parses (`VERSION flare-X.Y.Z`): kept at 1.3.4
/// so that feature gates on the number keep working.
pub const PACKAGE_VERSION: &str = "1.3.4";
/// `flare-1.3.4`: what `version` answers after `VERSION `.
pub const VERSION_STRING: &str = "flare-1.3.4";

/// Relative exptimes up to this many seconds (30 days) are relative; larger
/// values are absolute unix times (protocol.md §4.2).
pub const RELATIVE_EXPTIME_MAX: i64 = 2_592_000;

/// Convert a client exptime to an absolute unix time (0 = never), §4.2.
pub fn absolute_expire(exptime: i64, now: i64) -> i64 {
    if exptime == 0 {
        0
    } else if exptime <= RELATIVE_EXPTIME_MAX {
        now.saturating_add(exptime)
    } else {
        exptime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_conversion() {
        assert_eq!(absolute_expire(0, 1000), 0);
        assert_eq!(absolute_expire(1, 1000), 1001);
        assert_eq!(absolute_expire(2_592_000, 1000), 2_593_000);
        assert_eq!(absolute_expire(2_592_001, 1000), 2_592_001);
    }
}
