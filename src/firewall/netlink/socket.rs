//! The netlink socket under [`super::Netlink`]: batch framing, acks and
//! dumps. netlink-packet-netfilter types the nf_tables messages but leaves
//! the transport to its user, so this file does what libmnl does for `nft`:
//! wrap requests in `BATCH_BEGIN`/`BATCH_END`, send a batch in one
//! `sendmsg`, ask for an ack on its last message only and read back every
//! error by sequence number, and read dumps with plain `recv` into a large
//! buffer (the kernel sizes dump chunks by the largest read it has seen).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::nftables::NfTablesMessage;
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::abi::{
    messages, Msg, NFNLGRP_NFTABLES, NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR,
};

/// Socket buffers asked for (the kernel doubles them). Big batches and
/// bursts of dump data fit without EMSGSIZE or ENOBUFS.
const SOCKET_BUFFER: i32 = 8 << 20;
/// Receive buffer for one `recv`: the kernel caps dump chunks at 32 KiB.
const RECV_BUFFER: usize = 64 << 10;
/// A read that waits longer than this means the kernel will not answer.
const RECV_TIMEOUT: Duration = Duration::from_secs(60);
/// First guess for the largest batch one `sendmsg` takes; halved on EMSGSIZE.
const MAX_BATCH: usize = 4 << 20;
/// Never split below this: one message may be up to 64 KiB.
const MIN_BATCH: usize = 128 << 10;

/// One nf_tables request of a batch, already encoded (sequence number 0),
/// with what it does in words for error messages.
pub(super) struct Op {
    bytes: Vec<u8>,
    pub(super) what: String,
}

impl Op {
    /// Encode `msg` for the inet family with the given `NLM_F_*` flags
    /// (`NLM_F_REQUEST` is always added).
    pub(super) fn new(msg: NfTablesMessage, flags: u16, what: String) -> Op {
        Op {
            bytes: encode(msg.into(), flags | NLM_F_REQUEST, NetfilterProtoFamily::Inet, 0),
            what,
        }
    }

    /// An op already encoded (sequence number 0, `NLM_F_REQUEST` set).
    pub(super) fn raw(bytes: Vec<u8>, what: String) -> Op {
        Op { bytes, what }
    }

    /// The encoded message.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Size on the wire.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// How a request failed. Callers match on the errno (ENOENT is often no
/// error for them) before turning it into the firewall's [`Error`].
///
/// [`Error`]: crate::firewall::Error
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// The kernel answered with an error to the request described by `what`.
    #[error("kernel refused to {what}: {}", io::Error::from_raw_os_error(*errno))]
    Kernel { what: String, errno: i32 },
    /// The socket failed (send, receive, or a garbled answer).
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub(super) type Result<T> = std::result::Result<T, Failure>;

/// A NETLINK_NETFILTER socket with its sequence counter and read buffer.
pub(super) struct NfSocket {
    sock: Socket,
    seq: u32,
    rbuf: Vec<u8>,
    max_batch: usize,
    /// Batches the kernel applied since open (for the restore log line).
    pub(super) batches: u64,
}

impl NfSocket {
    /// Open and bind the socket and size its buffers.
    pub(super) fn open() -> io::Result<NfSocket> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // Errors do not echo the request back (a failed 64 KiB message
        // would otherwise come back whole).
        sock.set_cap_ack(true)?;
        // Without CAP_NET_ADMIN the buffers stay at the sysctl cap, and
        // batches are split to fit (see `transact`).
        raise_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, SOCKET_BUFFER)?;
        raise_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, SOCKET_BUFFER)?;
        set_recv_timeout(&sock, RECV_TIMEOUT)?;
        Ok(NfSocket {
            sock,
            seq: 0,
            rbuf: vec![0; RECV_BUFFER],
            max_batch: MAX_BATCH,
            batches: 0,
        })
    }

    /// The netlink port the kernel bound this socket to: events of the
    /// changes it requests carry it.
    pub(super) fn port(&self) -> io::Result<u32> {
        let mut addr = netlink_sys::SocketAddr::new(0, 0);
        self.sock.get_address(&mut addr)?;
        Ok(addr.port_number())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    /// Ask nf_tables for its generation id: fails if nf_tables is missing
    /// or the process lacks CAP_NET_ADMIN, which `open` wants to know early.
    pub(super) fn probe(&mut self) -> Result<()> {
        let msg = NfTablesMessage::Other {
            message_type: NFT_MSG_GETGEN,
            attributes: vec![],
        };
        let seq = self.next_seq();
        let mut bytes = encode(msg.into(), NLM_F_REQUEST | NLM_F_ACK, NetfilterProtoFamily::Unspec, 0);
        set_seq(&mut bytes, seq);
        self.send(&bytes)?;
        let what = "read the nf_tables generation";
        let mut answered = false;
        let mut failed = None;
        while !answered {
            self.read(|m| {
                if m.seq != seq {
                    return;
                }
                if m.kind == NLMSG_ERROR {
                    answered = true;
                    if let Some(errno) = m.errno().filter(|&e| e != 0) {
                        failed = Some(errno);
                    }
                }
            })?;
        }
        match failed {
            Some(errno) => Err(Failure::Kernel {
                what: what.into(),
                errno,
            }),
            None => Ok(()),
        }
    }

    /// Send `ops` as batches and wait for the kernel's verdict. Ops go into
    /// as few batches as the send buffer takes: in one atomic batch when
    /// they are small, else in several, each atomic (for `add` and
    /// `delete`, which are idempotent). Returns the first error the kernel
    /// reported.
    pub(super) fn transact(&mut self, ops: &[Op]) -> Result<()> {
        let mut start = 0;
        while start < ops.len() {
            let mut end = start;
            let mut size = 0;
            while end < ops.len() && (end == start || size + ops[end].len() <= self.max_batch) {
                size += ops[end].len();
                end += 1;
            }
            match self.batch(&ops[start..end]) {
                Err(Failure::Io(e))
                    if e.raw_os_error() == Some(libc::EMSGSIZE) && end - start > 1 && self.max_batch > MIN_BATCH =>
                {
                    // Nothing was sent: retry the same ops in smaller batches.
                    self.max_batch = (self.max_batch / 2).max(MIN_BATCH);
                }
                Err(e) => return Err(e),
                Ok(()) => start = end,
            }
        }
        Ok(())
    }

    /// One batch: BATCH_BEGIN, `ops`, BATCH_END in one `sendmsg`, applied
    /// by the kernel all or nothing. An ack is asked for on the last op
    /// only; errors come back for any op.
    pub(super) fn batch(&mut self, ops: &[Op]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let control = |m: ControlMessage| {
            encode(
                m.into(),
                NLM_F_REQUEST,
                NetfilterProtoFamily::Unspec,
                NFNL_SUBSYS_NFTABLES,
            )
        };
        let mut begin = control(ControlMessage::BatchBegin);
        let mut end = control(ControlMessage::BatchEnd);
        let size = begin.len() + end.len() + ops.iter().map(Op::len).sum::<usize>();
        let mut buf = Vec::with_capacity(size);

        let begin_seq = self.next_seq();
        set_seq(&mut begin, begin_seq);
        buf.extend_from_slice(&begin);
        let mut last_seq = begin_seq;
        for (i, op) in ops.iter().enumerate() {
            last_seq = self.next_seq();
            let at = buf.len();
            buf.extend_from_slice(&op.bytes);
            set_seq(&mut buf[at..], last_seq);
            if i + 1 == ops.len() {
                let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]) | NLM_F_ACK;
                buf[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
            }
        }
        let end_seq = self.next_seq();
        set_seq(&mut end, end_seq);
        buf.extend_from_slice(&end);

        self.send(&buf)?;

        // The kernel answers after the whole batch: an error for each failed
        // message, then the ack of the last one. An error on BATCH_BEGIN
        // (no nf_tables, no permission, out of memory) means nothing else
        // comes.
        let mut first_error: Option<(u32, i32)> = None;
        let mut done = false;
        while !done {
            self.read(|m| {
                if m.kind != NLMSG_ERROR || !seq_in(m.seq, begin_seq, end_seq) {
                    return;
                }
                let errno = m.errno().unwrap_or(libc::EBADMSG);
                if errno != 0 && first_error.is_none() {
                    first_error = Some((m.seq, errno));
                }
                if m.seq == last_seq || m.seq == begin_seq || m.seq == end_seq {
                    done = true;
                }
            })?;
        }
        match first_error {
            None => {
                self.batches += 1;
                Ok(())
            }
            Some((seq, errno)) => {
                let what = if seq == begin_seq || seq == end_seq {
                    let n = ops.len();
                    format!(
                        "apply a batch of {n} nf_tables request{}",
                        if n == 1 { "" } else { "s" }
                    )
                } else {
                    ops[seq.wrapping_sub(begin_seq) as usize - 1].what.clone()
                };
                Err(Failure::Kernel { what, errno })
            }
        }
    }

    /// Run a dump request and hand each answer's attributes (after the
    /// nfgenmsg header) to `each`. Returns `Ok(false)` if the kernel flagged
    /// the dump as interrupted by a concurrent change: the caller starts
    /// over.
    pub(super) fn dump(&mut self, msg: NfTablesMessage, what: &str, each: impl FnMut(&[u8])) -> Result<bool> {
        self.request(msg, NLM_F_DUMP, what, each)
    }

    /// Get one object (a request with an ack: its answer, then the ack).
    pub(super) fn get(&mut self, msg: NfTablesMessage, what: &str, each: impl FnMut(&[u8])) -> Result<()> {
        self.request(msg, NLM_F_ACK, what, each).map(|_| ())
    }

    /// Send one request outside a batch and read its answers up to
    /// NLMSG_DONE or the ack (an NLMSG_ERROR, 0 for success).
    fn request(&mut self, msg: NfTablesMessage, flags: u16, what: &str, each: impl FnMut(&[u8])) -> Result<bool> {
        let bytes = encode(msg.into(), NLM_F_REQUEST | flags, NetfilterProtoFamily::Inet, 0);
        self.request_bytes(bytes, what, each)
    }

    /// Dump with a message of another netfilter subsystem (conntrack) for
    /// one protocol family; as [`NfSocket::dump`] otherwise.
    pub(super) fn dump_other(
        &mut self,
        msg: NetfilterMessageInner,
        family: NetfilterProtoFamily,
        what: &str,
        each: impl FnMut(&[u8]),
    ) -> Result<bool> {
        let bytes = encode(msg, NLM_F_REQUEST | NLM_F_DUMP, family, 0);
        self.request_bytes(bytes, what, each)
    }

    /// Send messages of a subsystem that has no batches (conntrack) in one
    /// datagram, each with an ack, and return the errno of each (0 for
    /// success), in order. The kernel handles them one by one.
    pub(super) fn each_acked(&mut self, msgs: &[(NetfilterMessageInner, NetfilterProtoFamily)]) -> Result<Vec<i32>> {
        let mut out = vec![0; msgs.len()];
        let mut start = 0;
        while start < msgs.len() {
            let mut buf = Vec::new();
            let first = self.seq.wrapping_add(1);
            let mut end = start;
            while end < msgs.len() && buf.len() < MIN_BATCH {
                let (msg, family) = &msgs[end];
                let mut bytes = encode(msg.clone(), NLM_F_REQUEST | NLM_F_ACK, *family, 0);
                set_seq(&mut bytes, self.next_seq());
                buf.extend_from_slice(&bytes);
                end += 1;
            }
            let last = self.seq;
            self.send(&buf)?;
            let mut acked = 0;
            while acked < end - start {
                self.read(|m| {
                    if m.kind == NLMSG_ERROR && seq_in(m.seq, first, last) {
                        out[start + m.seq.wrapping_sub(first) as usize] = m.errno().unwrap_or(libc::EBADMSG);
                        acked += 1;
                    }
                })?;
            }
            start = end;
        }
        Ok(out)
    }

    /// Send one encoded request (sequence number set here) and read its
    /// answers up to NLMSG_DONE or the ack. `Ok(false)` if a dump was
    /// interrupted by a concurrent change.
    fn request_bytes(&mut self, mut bytes: Vec<u8>, what: &str, mut each: impl FnMut(&[u8])) -> Result<bool> {
        let seq = self.next_seq();
        set_seq(&mut bytes, seq);
        self.send(&bytes)?;
        let mut done = false;
        let mut intact = true;
        let mut failed = None;
        while !done {
            self.read(|m| {
                if m.seq != seq || done {
                    return;
                }
                if m.flags & NLM_F_DUMP_INTR != 0 {
                    intact = false;
                }
                match m.kind {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        done = true;
                        if let Some(errno) = m.errno().filter(|&e| e != 0) {
                            failed = Some(errno);
                        }
                    }
                    _ if m.payload.len() >= 4 => each(&m.payload[4..]),
                    _ => {}
                }
            })?;
        }
        match failed {
            Some(errno) => Err(Failure::Kernel {
                what: what.into(),
                errno,
            }),
            None => Ok(intact),
        }
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(buf, 0) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => return Err(io::Error::other(format!("netlink sent {n} of {} bytes", buf.len()))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Read one datagram and hand each netlink message in it to `each`.
    fn read(&mut self, mut each: impl FnMut(Msg<'_>)) -> io::Result<()> {
        let n = loop {
            let mut slice = &mut self.rbuf[..];
            match self.sock.recv(&mut slice, libc::MSG_TRUNC) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no answer from nf_tables (netlink read timed out)",
                    ))
                }
                Err(e) => return Err(e),
            }
        };
        if n > self.rbuf.len() {
            return Err(io::Error::other(format!(
                "netlink message of {n} bytes truncated to {}",
                self.rbuf.len()
            )));
        }
        for m in messages(&self.rbuf[..n]) {
            each(m?);
        }
        Ok(())
    }
}

#[cfg(test)]
impl NfSocket {
    /// Shrink the send buffer, as the sysctl cap would for a process that
    /// cannot use SO_SNDBUFFORCE.
    pub(super) fn set_send_buffer(&self, bytes: i32) -> io::Result<()> {
        setsockopt(&self.sock, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)
    }

    /// The current guess for the largest batch.
    pub(super) fn max_batch(&self) -> usize {
        self.max_batch
    }
}

/// Is `seq` within `first..=last`, allowing for wrap-around?
fn seq_in(seq: u32, first: u32, last: u32) -> bool {
    seq.wrapping_sub(first) <= last.wrapping_sub(first)
}

/// Encode one netfilter message with sequence number 0.
fn encode(inner: NetfilterMessageInner, flags: u16, family: NetfilterProtoFamily, res_id: u16) -> Vec<u8> {
    let nf = NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner);
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(nf));
    msg.finalize();
    let mut bytes = vec![0; msg.buffer_len()];
    msg.serialize(&mut bytes);
    bytes
}

fn set_seq(msg: &mut [u8], seq: u32) {
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
}

/// A NETLINK_NETFILTER socket in the multicast group of nf_tables events
/// (NFNLGRP_NFTABLES): the kernel sends it an event for every change of
/// every table in the network namespace. Its receive buffer is raised to
/// `buffer` bytes, since a big transaction sends one event per element and
/// what does not fit is lost (ENOBUFS); a read waits at most `timeout`,
/// then fails with `WouldBlock`.
pub fn event_socket(buffer: i32, timeout: Duration) -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    raise_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer)?;
    set_recv_timeout(&sock, timeout)?;
    sock.add_membership(NFNLGRP_NFTABLES)?;
    Ok(sock)
}

/// Raise a socket buffer to `bytes` (the kernel doubles it): the FORCE
/// variant passes the sysctl cap (net.core.rmem_max, wmem_max) but needs
/// CAP_NET_ADMIN; without it, the plain option takes what the cap allows.
fn raise_buffer(sock: &Socket, force: libc::c_int, plain: libc::c_int, bytes: i32) -> io::Result<()> {
    if setsockopt(sock, libc::SOL_SOCKET, force, bytes).is_err() {
        setsockopt(sock, libc::SOL_SOCKET, plain, bytes)?;
    }
    Ok(())
}

/// Make a `recv` that waits longer than `timeout` fail with `WouldBlock`.
fn set_recv_timeout(sock: &Socket, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv)
}

/// `setsockopt(2)` for the options netlink-sys does not wrap: the send
/// buffer, the *FORCE variants of both buffers, the receive timeout, a
/// socket filter, and group membership on a duplicated descriptor.
pub(super) fn setsockopt<T>(sock: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: T) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, a live, initialised
    // `T` that outlives the call; the kernel only reads `size_of::<T>()`
    // bytes from it, and the fd is owned by `sock`. The option types used
    // (c_int, timeval, sock_fprog) are the ones the kernel expects for
    // these options.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sequence_window_wraps() {
        assert!(seq_in(5, 3, 9));
        assert!(!seq_in(2, 3, 9));
        assert!(seq_in(1, u32::MAX - 1, 3));
        assert!(!seq_in(4, u32::MAX - 1, 3));
    }

    #[test]
    fn splits_datagram_into_messages() {
        let mut a = encode(
            ControlMessage::BatchBegin.into(),
            NLM_F_REQUEST,
            NetfilterProtoFamily::Unspec,
            NFNL_SUBSYS_NFTABLES,
        );
        set_seq(&mut a, 7);
        let mut buf = a.clone();
        set_seq(&mut a, 8);
        buf.extend_from_slice(&a);
        let seqs: Vec<u32> = messages(&buf).map(|m| m.unwrap().seq).collect();
        assert_eq!(seqs, [7, 8]);
        assert!(messages(&buf[..20]).count() == 1);
        assert!(messages(&[0u8; 16]).next().unwrap().is_err());
    }
}
