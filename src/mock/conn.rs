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
//!
//! It also plays APNs' stream limit at the start of a connection: the
//! server advertises one concurrent stream until the sender's credentials
//! are accepted, then its real limit. hyper fixes its SETTINGS at the
//! handshake, so [`Wire`] rewrites the limit in hyper's first SETTINGS
//! frame to 1 (hyper itself keeps enforcing the real one), and when a
//! handler says the credentials were accepted it writes a SETTINGS frame
//! with the real limit and removes the client's acknowledgement of it
//! before hyper sees it (hyper would take an ACK of a SETTINGS frame it
//! never sent for a protocol error).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the connection's request handlers share with its [`Wire`].
#[derive(Default)]
pub(crate) struct ConnCtl {
    /// Set by a handler: send GOAWAY at the next frame boundary.
    pub go_away: AtomicBool,
    /// Requests being handled on this connection.
    pub in_flight: AtomicUsize,
    /// Wakes the connection task when the GOAWAY went out.
    pub sent: tokio::sync::Notify,
    /// Set by a handler once the connection's credentials were accepted:
    /// advertise the real stream limit.
    pub authenticated: AtomicBool,
}

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const SETTINGS: u8 = 4;
const MAX_CONCURRENT_STREAMS: u16 = 3;

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
    /// SETTINGS frames seen: without ACK (sent), with ACK (acknowledged).
    settings: u32,
    acks: u32,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.header.is_empty() && self.remaining == 0
    }

    /// Bytes until the next frame header starts (0 at a boundary).
    fn until_boundary(&self) -> usize {
        if self.skip > 0 {
            self.skip
        } else if !self.header.is_empty() {
            FRAME_HEADER_LEN - self.header.len()
        } else {
            self.remaining
        }
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
                    if kind == SETTINGS {
                        match flags & 1 {
                            0 => self.settings += 1,
                            _ => self.acks += 1,
                        }
                    }
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
    /// The injected frame's bytes not yet written, and whether it is the
    /// GOAWAY.
    injecting: Vec<u8>,
    injecting_goaway: bool,
    reads_stopped: bool,
    /// The stream limit hyper enforces, advertised once authenticated.
    max_streams: u32,
    /// Bytes written so far, and single bytes to overwrite at absolute
    /// offsets (the limit in hyper's first SETTINGS frame).
    written: u64,
    patches: Vec<(u64, u8)>,
    first_settings_seen: bool,
    raised: bool,
    /// The index (among the client's SETTINGS ACKs) of the ACK of our own
    /// SETTINGS frame, to remove; and the bytes read but not yet passed on.
    swallow_ack: Option<u32>,
    pending_in: Vec<u8>,
}

impl<T> Wire<T> {
    pub fn new(inner: T, ctl: Arc<ConnCtl>, max_streams: u32) -> Wire<T> {
        Wire {
            injecting_goaway: false,
            max_streams,
            written: 0,
            patches: Vec::new(),
            first_settings_seen: false,
            raised: false,
            swallow_ack: None,
            pending_in: Vec::new(),
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
            self.injecting_goaway = true;
        } else if !self.raised
            && self.injecting.is_empty()
            && self.outbound.at_boundary()
            && self.ctl.authenticated.load(Ordering::Acquire)
        {
            self.raised = true;
            // Our SETTINGS frame is acknowledged after every one hyper sent
            // before it (the client acknowledges in order).
            self.swallow_ack = Some(self.outbound.settings + 1);
            let mut frame = vec![0, 0, 6, SETTINGS, 0, 0, 0, 0, 0];
            frame.extend_from_slice(&MAX_CONCURRENT_STREAMS.to_be_bytes());
            frame.extend_from_slice(&self.max_streams.to_be_bytes());
            self.injecting = frame;
            self.injecting_goaway = false;
        }
        while !self.injecting.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.injecting))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.injecting.drain(..n);
            if self.injecting.is_empty() && self.injecting_goaway {
                self.ctl.sent.notify_one();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T> Wire<T> {
    /// At the start of hyper's first SETTINGS frame (in `buf`, at the
    /// current output position): plans the overwrite of its stream limit
    /// with 1.
    fn plan_patch(&mut self, buf: &[u8]) {
        if self.first_settings_seen || !self.outbound.at_boundary() || buf.len() < FRAME_HEADER_LEN
        {
            return;
        }
        self.first_settings_seen = true;
        let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
        if buf[3] != SETTINGS || buf.len() < FRAME_HEADER_LEN + len {
            return;
        }
        for (i, param) in buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len]
            .chunks_exact(6)
            .enumerate()
        {
            if u16::from_be_bytes([param[0], param[1]]) == MAX_CONCURRENT_STREAMS {
                let at = self.written + (FRAME_HEADER_LEN + i * 6 + 2) as u64;
                self.patches
                    .extend((0..4).map(|k| (at + k, [0, 0, 0, 1][k as usize])));
            }
        }
    }

    /// Moves what was read into `buf`, leaving out the client's ACK of
    /// our SETTINGS frame. Frame headers are only judged whole.
    fn pass_on(&mut self, buf: &mut ReadBuf<'_>) {
        let mut taken = 0;
        while taken < self.pending_in.len() && buf.remaining() > 0 {
            let rest = &self.pending_in[taken..];
            if self.swallow_ack.is_some() && self.inbound.at_boundary() {
                if rest.len() < FRAME_HEADER_LEN {
                    break;
                }
                let is_ack = rest[3] == SETTINGS && rest[4] & 1 == 1;
                if is_ack && Some(self.inbound.acks + 1) == self.swallow_ack {
                    self.swallow_ack = None;
                    taken += FRAME_HEADER_LEN; // an ACK has no payload
                    continue;
                }
                if buf.remaining() < FRAME_HEADER_LEN {
                    break;
                }
                buf.put_slice(&rest[..FRAME_HEADER_LEN]);
                self.inbound.feed(&rest[..FRAME_HEADER_LEN]);
                taken += FRAME_HEADER_LEN;
                continue;
            }
            let mut n = rest.len().min(buf.remaining());
            if self.swallow_ack.is_some() {
                n = n.min(self.inbound.until_boundary());
            }
            buf.put_slice(&rest[..n]);
            self.inbound.feed(&rest[..n]);
            taken += n;
        }
        self.pending_in.drain(..taken);
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
        let this = &mut *self;
        if this.swallow_ack.is_none() && this.pending_in.is_empty() {
            let before = buf.filled().len();
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            this.inbound.feed(&buf.filled()[before..]);
            return Poll::Ready(Ok(()));
        }
        // Waiting for the ACK to remove: read through our own buffer, and
        // never answer a read with nothing unless the peer is done.
        loop {
            let before = buf.filled().len();
            this.pass_on(buf);
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.pending_in.extend_from_slice(read.filled());
        }
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
        this.plan_patch(buf);
        let end = this.written + buf.len() as u64;
        let n = if this
            .patches
            .iter()
            .any(|(at, _)| (this.written..end).contains(at))
        {
            let mut patched = buf.to_vec();
            for (at, byte) in &this.patches {
                if (this.written..end).contains(at) {
                    patched[(at - this.written) as usize] = *byte;
                }
            }
            std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &patched))?
        } else {
            std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?
        };
        let written = this.written;
        this.patches.retain(|(at, _)| *at >= written + n as u64);
        this.written += n as u64;
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
