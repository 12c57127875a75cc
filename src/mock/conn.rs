//! A GOAWAY with a chosen last-stream-id, which hyper's server cannot send.
//!
//! hyper only sends GOAWAY on shutdown, naming the last stream it received,
//! so nothing is ever "above" it. Real servers (APNs among them) name a
//! stream below some the client has already sent, and the client must
//! re-send those. [`Wire`] sits between TLS and hyper and watches the frame
//! headers going both ways: asked to go away, it writes a GOAWAY frame at
//! the next outgoing frame boundary naming the last stream hyper has
//! received in full, and from then on passes hyper no more input, so the
//! streams above it are never processed. The connection task closes the
//! connection once the streams at or below it have been answered.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the connection's request handlers share with its [`Wire`].
#[derive(Default)]
pub(crate) struct ConnCtl {
    /// Set by a handler: send GOAWAY at the next frame boundary.
    pub go_away: AtomicBool,
    /// The last-stream-id sent in the GOAWAY, once sent (0 before).
    pub last_stream_id: AtomicU32,
    /// Requests being handled on this connection.
    pub in_flight: AtomicUsize,
    /// Wakes the connection task when the GOAWAY went out.
    pub sent: tokio::sync::Notify,
}

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

/// Tracks frame boundaries in one direction of an HTTP/2 byte stream.
#[derive(Default)]
struct Frames {
    /// Bytes of preface still to skip (client side only).
    skip: usize,
    header: Vec<u8>,
    /// Payload bytes left in the current frame.
    remaining: usize,
    /// Set when the current frame ends a stream: (stream id).
    ends_stream: Option<u32>,
    /// Highest stream whose request (headers and body) is complete.
    complete: u32,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.header.is_empty() && self.remaining == 0
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
            } else if self.remaining > 0 {
                let n = self.remaining.min(bytes.len());
                self.remaining -= n;
                bytes = &bytes[n..];
                if self.remaining == 0 {
                    self.frame_done();
                }
            } else {
                let n = (FRAME_HEADER_LEN - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if self.header.len() == FRAME_HEADER_LEN {
                    let h = std::mem::take(&mut self.header);
                    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    let (kind, flags) = (h[3], h[4]);
                    let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    // DATA or HEADERS with END_STREAM.
                    self.ends_stream = (kind <= 1 && flags & 1 == 1).then_some(id);
                    self.remaining = len;
                    if len == 0 {
                        self.frame_done();
                    }
                }
            }
        }
    }

    fn frame_done(&mut self) {
        if let Some(id) = self.ends_stream.take() {
            self.complete = self.complete.max(id);
        }
    }
}

/// The TLS stream with GOAWAY injection (see the module doc).
pub(crate) struct Wire<T> {
    inner: T,
    ctl: Arc<ConnCtl>,
    inbound: Frames,
    outbound: Frames,
    /// The GOAWAY frame's bytes not yet written.
    injecting: Vec<u8>,
    reads_stopped: bool,
}

impl<T> Wire<T> {
    pub fn new(inner: T, ctl: Arc<ConnCtl>) -> Wire<T> {
        Wire {
            inner,
            ctl,
            inbound: Frames {
                skip: PREFACE_LEN,
                ..Frames::default()
            },
            outbound: Frames::default(),
            injecting: Vec::new(),
            reads_stopped: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Wire<T> {
    /// Starts the GOAWAY if one was asked for and the output is at a frame
    /// boundary, then writes what is left of it.
    fn poll_inject(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.reads_stopped
            && self.outbound.at_boundary()
            && self.ctl.go_away.load(Ordering::Acquire)
        {
            let last = self.inbound.complete;
            self.reads_stopped = true;
            let mut frame = vec![0, 0, 8, 7, 0, 0, 0, 0, 0];
            frame.extend_from_slice(&last.to_be_bytes());
            frame.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR
            self.injecting = frame;
            self.ctl
                .last_stream_id
                .store(last.max(1), Ordering::Release);
        }
        while !self.injecting.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.injecting))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.injecting.drain(..n);
            if self.injecting.is_empty() {
                self.ctl.sent.notify_one();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Wire<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.reads_stopped {
            // The streams above the GOAWAY are never seen; the connection
            // task closes the connection.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.inbound.feed(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Wire<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_inject(cx))?;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.outbound.feed(&buf[..n]);
        // The frame just finished may be the boundary a pending GOAWAY
        // waits for.
        let _ = this.poll_inject(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_inject(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
