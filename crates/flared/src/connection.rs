//! The node's side of the `flare-net` connection loop.

use std::sync::Arc;
use std::time::Duration;

use flare_net::listener::Admit;
use flare_net::{Next, Out, Registry, Service, Slot};
use flare_proto::{Decoder, Request};

use crate::commands;
use crate::node::{now, Node};
use crate::stats::{add, inc};

impl Service for Node {
    fn decoder(&self) -> Decoder {
        Decoder::new(self.parser)
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.config().net_read_timeout)
    }

    /// A client that does not take its replies for `net-read-timeout` is
    /// disconnected (a stalled `dump` reader releases its snapshot).
    fn write_timeout(&self) -> Duration {
        self.read_timeout()
    }

    fn max_buffer(&self) -> usize {
        let l = self.parser.limits;
        l.max_line + l.max_value + 4096
    }

    fn count_read(&self, n: usize) {
        add(&self.counters.bytes_read, n as u64);
    }

    fn count_written(&self, n: usize) {
        add(&self.counters.bytes_written, n as u64);
    }

    fn count_unexecuted(&self, reply: &[u8]) {
        let other = crate::stats::command_index("other");
        self.counters
            .requests
            .count(other, crate::stats::outcome_index(other, Some(reply)));
    }

    fn execute<'a>(
        this: &'a Arc<Self>,
        slot: &'a Arc<Slot>,
        proxy: Option<Vec<String>>,
        request: Request,
        out: &'a mut Out<'_>,
    ) -> impl std::future::Future<Output = Next> + Send + 'a {
        commands::execute(this, slot, proxy, request, out)
    }
}

impl Admit for Node {
    fn admit(&self, peer: String) -> Option<Arc<Slot>> {
        let slot = self
            .registry
            .register_client(peer, now(), self.config().max_connection);
        if slot.is_some() {
            inc(&self.counters.total_connections);
        } else {
            inc(&self.counters.refused_connections);
        }
        slot
    }

    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn tls(&self) -> Option<Arc<flare_net::tls::rustls::ServerConfig>> {
        self.config().tls.clone()
    }
}
