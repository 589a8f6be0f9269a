//! `show variables`: the running configuration.

use bytes::BytesMut;
use flare_proto::reply;

use crate::node::Node;
use flare_daemon::padded;

pub fn apply(node: &Node, out: &mut BytesMut) {
    for (name, value) in node.config().variables() {
        reply::line(out, padded(name, &value, 24));
    }
    out.extend_from_slice(reply::END);
}
