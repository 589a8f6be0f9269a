//! The one connection loop: read, decode every complete request, execute,
//! write the replies. Both daemons run it; what differs is behind
//! [`Service`].
//!
//! Memory per connection is bounded whatever the request: the decoder keeps
//! only what arrived (and never reserves a declared size ahead of it), input
//! beyond [`Service::max_buffer`] closes the connection, and replies go
//! through [`Out`], which writes its buffer out once it passes
//! [`FLUSH_AT`] — a command producing a large reply (a multi-get, `keys`,
//! `dump`) calls [`Out::flush_if_full`] as it goes and so waits for the
//! socket instead of growing. Every wait for the socket is bounded by the
//! write timeout, and by a `kill`.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use flare_proto::{binary, reply, Decoder, Frame, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::registry::{Slot, SlotState};

/// Replies are written out once the buffer holds this much.
pub const FLUSH_AT: usize = 256 << 10;

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Flush the replies and close.
    Close,
}

/// A daemon's side of the connection loop.
pub trait Service: Send + Sync + 'static {
    /// A decoder for a new connection (parser dialect and limits).
    fn decoder(&self) -> Decoder;
    /// Longest wait for the next request (`net-read-timeout`).
    fn read_timeout(&self) -> Duration;
    /// Longest wait for the socket to take reply bytes.
    fn write_timeout(&self) -> Duration;
    /// Unparsed input beyond this closes the connection.
    fn max_buffer(&self) -> usize;
    /// Count bytes read / written (for `stats`).
    fn count_read(&self, n: usize);
    fn count_written(&self, n: usize);
    /// Count a request answered by the connection loop itself (a value
    /// over the size limit, a line too long), with its `reply`.
    fn count_unexecuted(&self, _reply: &[u8]) {}
    /// Execute one request; replies go to `out`. An associated function (not
    /// a method) so that the service can hand out clones of its `Arc`.
    fn execute<'a>(
        this: &'a Arc<Self>,
        slot: &'a Arc<Slot>,
        proxy: Option<Vec<String>>,
        request: Request,
        out: &'a mut Out<'_>,
    ) -> impl Future<Output = Next> + Send + 'a;
}

/// Why writing to the client stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteFailure {
    Io,
    Timeout,
    Killed,
}

/// The reply side of a connection: a buffer (what a command appends to, via
/// `Deref<Target = BytesMut>`) in front of the socket.
pub struct Out<'a> {
    buf: &'a mut BytesMut,
    sink: &'a mut (dyn AsyncWrite + Unpin + Send),
    slot: &'a Slot,
    timeout: Duration,
    written: usize,
    /// Flushes so far (for [`Out::since`]).
    flushes: u64,
    failed: Option<WriteFailure>,
}

/// A position in an [`Out`]'s buffer, to look at what a command appended.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    flushes: u64,
    len: usize,
}

impl<'a> Out<'a> {
    pub fn new(
        buf: &'a mut BytesMut,
        sink: &'a mut (dyn AsyncWrite + Unpin + Send),
        slot: &'a Slot,
        timeout: Duration,
    ) -> Self {
        Out {
            buf,
            sink,
            slot,
            timeout,
            written: 0,
            flushes: 0,
            failed: None,
        }
    }

    /// Write the buffer out. False once writing failed, timed out, or the
    /// connection was killed; the connection is then closed, and a command
    /// streaming a long reply should stop.
    pub async fn flush(&mut self) -> bool {
        let ok = self.failed.is_none()
            && (self.buf.is_empty() || {
                let r = write_bounded(self.sink, self.slot, self.timeout, self.buf).await;
                self.note(r, self.buf.len())
            });
        self.flushes += 1;
        self.buf.clear();
        ok
    }

    /// Where the buffer ends now.
    pub fn mark(&self) -> Mark {
        Mark {
            flushes: self.flushes,
            len: self.buf.len(),
        }
    }

    /// What was appended since `mark`, unless part of it was flushed.
    pub fn since(&self, mark: Mark) -> Option<&[u8]> {
        (mark.flushes == self.flushes)
            .then(|| self.buf.get(mark.len..))
            .flatten()
    }

    fn note(&mut self, r: Option<WriteFailure>, len: usize) -> bool {
        match r {
            None => self.written += len,
            Some(WriteFailure::Timeout) => tracing::info!(
                "closing connection from {}: it did not read its replies for {:?}",
                self.slot.peer,
                self.timeout
            ),
            Some(_) => {}
        }
        self.failed = r;
        r.is_none()
    }

    /// Flush when the buffer passed [`FLUSH_AT`]. Commands that produce a
    /// reply piece by piece call this after each piece.
    pub async fn flush_if_full(&mut self) -> bool {
        if self.buf.len() >= FLUSH_AT {
            self.flush().await
        } else {
            self.failed.is_none()
        }
    }

    /// Write what is buffered and then `chunk`, now (a stream whose pieces
    /// must not wait for the buffer to fill, like a paced `dump`), without
    /// copying a large chunk into the buffer.
    pub async fn write_through(&mut self, chunk: &[u8]) -> bool {
        if chunk.len() < FLUSH_AT / 4 {
            self.buf.extend_from_slice(chunk);
            return self.flush().await;
        }
        if !self.flush().await {
            return false;
        }
        let r = write_bounded(self.sink, self.slot, self.timeout, chunk).await;
        self.note(r, chunk.len())
    }

    fn take_written(&mut self) -> usize {
        std::mem::take(&mut self.written)
    }
}

/// Write `data` within `timeout`, unless the connection is killed first.
async fn write_bounded(
    sink: &mut (dyn AsyncWrite + Unpin + Send),
    slot: &Slot,
    timeout: Duration,
    data: &[u8],
) -> Option<WriteFailure> {
    tokio::select! {
        r = tokio::time::timeout(timeout, sink.write_all(data)) => match r {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(WriteFailure::Io),
            Err(_) => Some(WriteFailure::Timeout),
        },
        _ = slot.killed() => Some(WriteFailure::Killed),
    }
}

impl Deref for Out<'_> {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        self.buf
    }
}

impl DerefMut for Out<'_> {
    fn deref_mut(&mut self) -> &mut BytesMut {
        self.buf
    }
}

/// Serve one connection until the peer closes, times out, quits, sends
/// something fatal, or is killed.
pub async fn serve<S, T>(svc: Arc<S>, mut stream: T, slot: Arc<Slot>)
where
    S: Service,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut decoder = svc.decoder();
    let max_line = decoder.parser.limits.max_line;
    let mut rbuf = BytesMut::with_capacity(16 << 10);
    let mut obuf = BytesMut::with_capacity(16 << 10);
    let mut skip: u64 = 0;
    let read_timeout = svc.read_timeout();
    let write_timeout = svc.write_timeout();
    let max_buffer = svc.max_buffer();
    loop {
        let mut out = Out::new(&mut obuf, &mut stream, &slot, write_timeout);
        let mut close = false;
        loop {
            if skip > 0 {
                let n = skip.min(rbuf.len() as u64);
                rbuf.advance(n as usize);
                skip -= n;
                if skip > 0 {
                    break;
                }
            }
            let Some(frame) = decoder.decode(&mut rbuf) else {
                break;
            };
            match frame {
                Frame::Request { proxy, request } => {
                    slot.set(request.op_name(), SlotState::Execute);
                    let next = S::execute(&svc, &slot, proxy, request, &mut out).await;
                    if next == Next::Close {
                        close = true;
                        break;
                    }
                    if !out.flush_if_full().await {
                        break;
                    }
                }
                Frame::TooLarge { skip: n } => {
                    svc.count_unexecuted(reply::TOO_LARGE);
                    out.extend_from_slice(reply::TOO_LARGE);
                    skip = n;
                }
                Frame::LineTooLong => {
                    tracing::warn!(
                        "closing connection from {}: request line longer than {max_line} bytes",
                        slot.peer
                    );
                    svc.count_unexecuted(reply::LINE_TOO_LONG);
                    out.extend_from_slice(reply::LINE_TOO_LONG);
                    close = true;
                    break;
                }
                Frame::Binary { ctx, request } => {
                    slot.set(request.op_name(), SlotState::Execute);
                    // The command answers in text (meta for key commands)
                    // after `mark`; that answer becomes the binary response.
                    // Commands a binary request maps to never flush midway.
                    let mark = out.len();
                    let next = S::execute(&svc, &slot, None, request, &mut out).await;
                    let at = mark.min(out.len());
                    let text = out.split_off(at);
                    binary::encode_reply(&ctx, &text, &mut out);
                    if next == Next::Close {
                        close = true;
                        break;
                    }
                    if !out.flush_if_full().await {
                        break;
                    }
                }
                Frame::BinaryTooLarge { ctx, skip: n } => {
                    svc.count_unexecuted(reply::TOO_LARGE);
                    binary::put_error(&mut out, &ctx, binary::status::E2BIG, b"");
                    skip = n;
                }
                Frame::BinaryRefused => {
                    tracing::info!(
                        "closing connection from {}: the binary protocol is not supported here",
                        slot.peer
                    );
                    close = true;
                    break;
                }
            }
        }
        let flushed = out.flush().await;
        svc.count_written(out.take_written());
        if close || !flushed {
            return;
        }
        if rbuf.len() > max_buffer {
            tracing::warn!(
                "closing connection from {}: request larger than {max_buffer} bytes",
                slot.peer
            );
            return;
        }
        slot.set_state(SlotState::Wait);
        if slot.is_killed() {
            return;
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 << 10);
        }
        tokio::select! {
            r = tokio::time::timeout(read_timeout, stream.read_buf(&mut rbuf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => svc.count_read(n),
                Err(_) => {
                    tracing::debug!("closing idle connection from {} (read timeout)", slot.peer);
                    return;
                }
            },
            _ = slot.killed() => return,
        }
    }
}
