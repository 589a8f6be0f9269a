//! `ping`, `kill`.

use bytes::BytesMut;
use flare_proto::reply;

use super::Next;
use crate::node::Node;
use flare_net::Slot;

pub fn ping(node: &Node, out: &mut BytesMut) {
    if node.storage_failed() {
        out.extend_from_slice(reply::STORAGE_ERROR);
    } else {
        out.extend_from_slice(reply::OK);
    }
}

/// `kill <id>`: close another connection, or this one after `OK`.
pub fn kill(node: &Node, conn: &Slot, id: u32, out: &mut BytesMut) -> Next {
    if id == conn.id {
        out.extend_from_slice(reply::OK);
        return Next::Close;
    }
    if node.registry.kill(id) {
        out.extend_from_slice(reply::OK);
    } else {
        out.extend_from_slice(reply::THREAD_NOT_FOUND);
    }
    Next::Continue
}

/// `verbosity <n>`: 0 = the default (notice and above), 1 = info, 2+ = debug.
/// (The original accepts the command and ignores it.)
pub fn verbosity(node: &Node, level: i32) {
    use flare_daemon::LevelFilter;
    let filter = match level {
        i32::MIN..=0 => flare_daemon::logging::DEFAULT_LEVEL,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    if let Some(log) = &node.log {
        match log.set_level(filter) {
            Ok(()) => tracing::info!("verbosity {level}: log level is now {filter}"),
            Err(e) => tracing::warn!("verbosity {level}: {e}"),
        }
    }
}
