//! One client connection: read, parse every complete request, execute, and
//! write the replies of the whole batch with one write.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use flare_proto::{reply, Dialect, Frame, Parser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::commands::{self, Next};
use crate::config::NET_READ_TIMEOUT_SHOWN;
use crate::index::Index;
use crate::registry::{Slot, SlotState};

/// The original's idle timeout: 600000 s × 1000 ms (≈ 6.9 days).
const READ_TIMEOUT: Duration = Duration::from_millis(NET_READ_TIMEOUT_SHOWN * 1000);
/// Largest amount of unparsed input kept for one connection.
const MAX_BUFFER: usize = 4 << 20;

async fn flush<S: AsyncWrite + Unpin>(index: &Index, stream: &mut S, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = stream.write_all(out).await.is_ok();
    index
        .counters
        .bytes_written
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    ok
}

/// Serve a connection until the peer closes, quits, sends a binary request,
/// or is killed.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    index: Arc<Index>,
    mut stream: S,
    slot: Arc<Slot>,
) {
    let parser = Parser::new(Dialect::Index);
    let mut rbuf = BytesMut::with_capacity(4 << 10);
    let mut out = BytesMut::with_capacity(4 << 10);
    let mut skip: u64 = 0;
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
            let Some(frame) = parser.parse(&mut rbuf) else {
                break;
            };
            match frame {
                Frame::Request { request, .. } => {
                    slot.set(request.op_name(), SlotState::Execute);
                    if commands::execute(&index, &slot, request, &mut out) == Next::Close {
                        flush(&index, &mut stream, &mut out).await;
                        return;
                    }
                }
                Frame::TooLarge { skip: n } => {
                    out.extend_from_slice(reply::TOO_LARGE);
                    skip = n;
                }
                Frame::LineTooLong => {
                    tracing::warn!(
                        "closing connection from {}: request line too long",
                        slot.peer
                    );
                    out.extend_from_slice(reply::LINE_TOO_LONG);
                    flush(&index, &mut stream, &mut out).await;
                    return;
                }
                Frame::Binary => {
                    // TV-57: the index closes the connection without a reply
                    tracing::debug!("closing connection from {}: binary request", slot.peer);
                    flush(&index, &mut stream, &mut out).await;
                    return;
                }
            }
        }
        if !flush(&index, &mut stream, &mut out).await {
            return;
        }
        if rbuf.len() > MAX_BUFFER {
            tracing::warn!("closing connection from {}: request too large", slot.peer);
            return;
        }
        slot.set_state(SlotState::Wait);
        if slot.is_killed() {
            return;
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(4 << 10);
        }
        tokio::select! {
            r = tokio::time::timeout(READ_TIMEOUT, stream.read_buf(&mut rbuf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(n)) => {
                    index.counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            _ = slot.killed() => return,
        }
    }
}
