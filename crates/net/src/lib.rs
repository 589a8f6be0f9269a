//! The network layer both daemons use (docs/architecture.md §1).
//!
//! * [`listener`]: accept loops (TCP and unix socket) with back-off on
//!   accept errors, admission against `max-connection`, and the bounded
//!   drain at shutdown.
//! * [`conn`]: the one connection loop, behind the small [`conn::Service`]
//!   trait each daemon implements; replies go through [`conn::Out`], which
//!   flushes as it fills (so no reply is ever built whole in memory) and
//!   bounds every write by a timeout.
//! * [`registry`]: live connections and agents (`stats threads`, `kill`).
//! * [`peer`]: the one client for talking to another flare process:
//!   [`peer::PeerConn`] (one connection, request → reply, dump streams) and
//!   [`peer::Pipe`] / [`peer::Pool`] (pipelined, full duplex, bounded).
//!
//! * [`auth`]: the cluster's challenge–response (`cluster-secret-file`).
//! * [`tls`]: TLS for clients (`tls-port`), with rustls.
//!
//! Keys and values are bytes everywhere: replies are framed by
//! `flare_proto::client`, never decoded as text.

pub mod auth;
pub mod conn;
pub mod error;
pub mod listener;
pub mod peer;
pub mod registry;
pub mod tls;

pub use conn::{Mark, Next, Out, Service};
pub use error::PeerError;
pub use peer::{set_thread_dialer, Dial, PeerConfig, PeerConn, PeerStats, Pipe, Pool};
pub use registry::{Registry, Slot, SlotState, TYPE_CLIENT};
