//! The index's side of the `flare-net` connection loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use flare_net::listener::Admit;
use flare_net::{Next, Out, Registry, Service, Slot};
use flare_proto::{Decoder, Dialect, Parser, Request};

use crate::commands;
use crate::config::NET_READ_TIMEOUT_SHOWN;
use crate::index::{now, Index};

/// The original's idle timeout: 600000 s × 1000 ms (≈ 6.9 days).
const READ_TIMEOUT: Duration = Duration::from_millis(NET_READ_TIMEOUT_SHOWN * 1000);
/// A client that takes no reply bytes for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest amount of unparsed input kept for one connection.
const MAX_BUFFER: usize = 4 << 20;

impl Service for Index {
    fn decoder(&self) -> Decoder {
        Decoder::new(Parser::new(Dialect::Index))
    }

    fn read_timeout(&self) -> Duration {
        READ_TIMEOUT
    }

    fn write_timeout(&self) -> Duration {
        WRITE_TIMEOUT
    }

    fn max_buffer(&self) -> usize {
        MAX_BUFFER
    }

    fn count_read(&self, n: usize) {
        self.counters
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    fn count_written(&self, n: usize) {
        self.counters
            .bytes_written
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    fn execute<'a>(
        this: &'a Arc<Self>,
        slot: &'a Arc<Slot>,
        _proxy: Option<Vec<String>>,
        request: Request,
        out: &'a mut Out<'_>,
    ) -> impl std::future::Future<Output = Next> + Send + 'a {
        commands::execute(this, slot, request, out)
    }
}

impl Admit for Index {
    fn admit(&self, peer: String) -> Option<Arc<Slot>> {
        let max = self.max_connection();
        let slot = self.registry.register_client(peer.clone(), now(), max);
        match &slot {
            Some(_) => {
                self.counters
                    .total_connections
                    .fetch_add(1, Ordering::Relaxed);
            }
            None => tracing::warn!(
                "too many connection(s) [{max}] -> closing socket and continue ({peer})"
            ),
        }
        slot
    }

    fn registry(&self) -> &Registry {
        &self.registry
    }
}
