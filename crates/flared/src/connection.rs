//! One client connection: read, parse every complete request, execute, write
//! the replies of the whole batch with one write.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use flare_proto::{reply, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::commands::{self, Next};
use crate::node::Node;
use crate::registry::{ConnSlot, ConnState};
use crate::stats::add;

/// Replies are written out when the batch grows beyond this.
const FLUSH_AT: usize = 256 << 10;

async fn flush<S: AsyncWrite + Unpin>(node: &Node, stream: &mut S, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = stream.write_all(out).await.is_ok();
    add(&node.counters.bytes_written, out.len() as u64);
    out.clear();
    ok
}

/// Serve a connection until the peer closes, times out, quits or is killed.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    node: Arc<Node>,
    mut stream: S,
    slot: Arc<ConnSlot>,
) {
    let mut rbuf = BytesMut::with_capacity(16 << 10);
    let mut out = BytesMut::with_capacity(16 << 10);
    let mut skip: u64 = 0;
    let timeout = Duration::from_secs(node.config().net_read_timeout);
    let limits = node.parser.limits;
    let max_buffer = limits.max_line + limits.max_value + 4096;
    loop {
        loop {
            if skip > 0 {
                let n = skip.min(rbuf.len() as u64);
                rbuf.advance(n as usize);
                skip -= n;
                if skip > 0 {
                    break;
                }
            }
            let Some(frame) = node.parser.parse(&mut rbuf) else {
                break;
            };
            match frame {
                Frame::Request { proxy, request } => {
                    slot.set(request.op_name(), ConnState::Execute);
                    match commands::execute(&node, &slot, proxy, request, &mut out).await {
                        Next::Continue => {}
                        Next::Close => {
                            flush(&node, &mut stream, &mut out).await;
                            return;
                        }
                        Next::Dump(job) => {
                            if !flush(&node, &mut stream, &mut out).await
                                || !commands::run_dump(&node, job, &mut stream).await
                            {
                                return;
                            }
                        }
                    }
                    if out.len() >= FLUSH_AT && !flush(&node, &mut stream, &mut out).await {
                        return;
                    }
                }
                Frame::TooLarge { skip: n } => {
                    out.extend_from_slice(reply::TOO_LARGE);
                    skip = n;
                }
                Frame::LineTooLong => {
                    tracing::warn!(
                        "closing connection from {}: request line longer than {} bytes",
                        slot.peer,
                        limits.max_line
                    );
                    out.extend_from_slice(reply::LINE_TOO_LONG);
                    flush(&node, &mut stream, &mut out).await;
                    return;
                }
                Frame::Binary => {
                    tracing::warn!(
                        "closing connection from {}: binary protocol is not supported yet",
                        slot.peer
                    );
                    flush(&node, &mut stream, &mut out).await;
                    return;
                }
            }
        }
        if !flush(&node, &mut stream, &mut out).await {
            return;
        }
        if rbuf.len() > max_buffer {
            tracing::warn!(
                "closing connection from {}: request larger than {max_buffer} bytes",
                slot.peer
            );
            return;
        }
        slot.set_state(ConnState::Wait);
        if slot.is_killed() {
            return;
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 << 10);
        }
        tokio::select! {
            r = tokio::time::timeout(timeout, stream.read_buf(&mut rbuf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => add(&node.counters.bytes_read, n as u64),
                Err(_) => {
                    tracing::debug!("closing idle connection from {} (net-read-timeout)", slot.peer);
                    return;
                }
            },
            _ = slot.killed() => return,
        }
    }
}
