//! Elements added to nf_tables sets, as the kernel announces them, each with
//! the time the kernel queued its event: for measuring how long a ban takes
//! from a log line to the kernel (bench/daemon.sh), whoever adds it, nftban
//! over netlink or fail2ban with `nft add element`; both produce the same
//! NEWSETELEM event per element.
//!
//! The socket is an nf_tables event socket like the self-healing monitor's
//! ([`event_socket`]) that also asks for SO_TIMESTAMPNS, so each datagram
//! carries the kernel's wall-clock time of queueing: a reader thread that
//! runs late does not make bans look slower. While such a socket listens the
//! kernel builds one event per element added, which makes big batches slower
//! (docs/performance.md, section "Restore with and without a listener").
//!
//! A module of the benchmark, not of the library: nftban itself never needs
//! to know what was added (it adds it). It uses the library's public event
//! socket and netlink attribute walker (`nftban::firewall::netlink::abi`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netlink_sys::Socket;
use nftban::firewall::netlink::abi::{
    attrs, be_u32, c_string, messages, nft_msg_type, NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_SET_ELEM_FLAGS,
    NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_TABLE,
    NFT_MSG_NEWSETELEM, NFT_SET_ELEM_INTERVAL_END,
};
use nftban::firewall::netlink::event_socket;

/// Big enough for a million events queued (about 100 bytes each, doubled
/// by the kernel's accounting), so a restore is not lost to ENOBUFS.
const SOCKET_BUFFER: i32 = 256 << 20;
const READ_BUFFER: usize = 256 << 10;

/// One element added to a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub table: String,
    pub set: String,
    /// The element's key; for an interval set, the start of the range (its
    /// end element is not reported).
    pub addr: IpAddr,
    /// When the kernel queued the event (CLOCK_REALTIME).
    pub at: SystemTime,
}

/// A socket that receives NEWSETELEM events of the current network namespace.
pub struct AddedElements {
    sock: Socket,
    buf: Vec<u8>,
}

impl AddedElements {
    /// Subscribe; `timeout` bounds each [`AddedElements::read`].
    pub fn open(timeout: Duration) -> io::Result<AddedElements> {
        let sock = event_socket(SOCKET_BUFFER, timeout)?;
        let on: libc::c_int = 1;
        // SAFETY: the pointer and length describe `on`, a live c_int, the
        // type SO_TIMESTAMPNS takes; the descriptor is owned by `sock`.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(AddedElements {
            sock,
            buf: vec![0; READ_BUFFER],
        })
    }

    /// Wait for the next datagram and append its added elements to `out`.
    /// `Ok(false)` when the timeout passed without one. ENOBUFS (events
    /// lost) is returned as an error: a measurement cannot go on.
    pub fn read(&mut self, out: &mut Vec<Added>) -> io::Result<bool> {
        let (n, at) = loop {
            match recv_timestamped(self.sock.as_raw_fd(), &mut self.buf) {
                Ok(r) => break r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        };
        let at = at.unwrap_or_else(SystemTime::now);
        for m in messages(&self.buf[..n.min(self.buf.len())]) {
            let Ok(m) = m else { break };
            if m.kind != nft_msg_type(NFT_MSG_NEWSETELEM) || m.payload.len() < 4 {
                continue;
            }
            decode(&m.payload[4..], at, out);
        }
        Ok(true)
    }
}

/// The elements of one NEWSETELEM message.
fn decode(body: &[u8], at: SystemTime, out: &mut Vec<Added>) {
    let (mut table, mut set, mut list) = (String::new(), String::new(), &[][..]);
    for (t, v) in attrs(body) {
        match t {
            NFTA_SET_ELEM_LIST_TABLE => table = c_string(v),
            NFTA_SET_ELEM_LIST_SET => set = c_string(v),
            NFTA_SET_ELEM_LIST_ELEMENTS => list = v,
            _ => {}
        }
    }
    for (t, elem) in attrs(list) {
        if t != NFTA_LIST_ELEM {
            continue;
        }
        let mut addr = None;
        let mut end = false;
        for (t, v) in attrs(elem) {
            match t {
                NFTA_SET_ELEM_KEY => {
                    addr = attrs(v).find(|(t, _)| *t == NFTA_DATA_VALUE).and_then(|(_, d)| ip(d));
                }
                NFTA_SET_ELEM_FLAGS => end = be_u32(v).is_some_and(|f| f & NFT_SET_ELEM_INTERVAL_END != 0),
                _ => {}
            }
        }
        if let (Some(addr), false) = (addr, end) {
            out.push(Added {
                table: table.clone(),
                set: set.clone(),
                addr,
                at,
            });
        }
    }
}

fn ip(d: &[u8]) -> Option<IpAddr> {
    match d.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3]))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(d).ok()?))),
        _ => None,
    }
}

/// recvmsg with the SCM_TIMESTAMPNS control message: bytes read and the
/// kernel's time stamp of the datagram.
fn recv_timestamped(fd: libc::c_int, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (describing `buf`) and `control`, all
    // live and writable for the duration of the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // bounded by msg_controllen; SCM_TIMESTAMPNS data is a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, at))
}

#[cfg(test)]
mod unit {
    use super::*;
    use nftban::firewall::netlink::abi::{attr, nested};

    fn element(key: &[u8], flags: Option<u32>) -> Vec<u8> {
        let mut e = nested(NFTA_SET_ELEM_KEY, &attr(NFTA_DATA_VALUE, key));
        if let Some(f) = flags {
            e.extend(attr(NFTA_SET_ELEM_FLAGS, &f.to_be_bytes()));
        }
        nested(NFTA_LIST_ELEM, &e)
    }

    #[test]
    fn decodes_addresses_and_skips_interval_ends() {
        let mut list = element(&[192, 0, 2, 7], None);
        list.extend(element(&[192, 0, 2, 8], Some(NFT_SET_ELEM_INTERVAL_END)));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        list.extend(element(&v6, Some(0)));
        let mut body = attr(NFTA_SET_ELEM_LIST_TABLE, b"nftban\0");
        body.extend(attr(NFTA_SET_ELEM_LIST_SET, b"sshd_v4\0"));
        body.extend(nested(NFTA_SET_ELEM_LIST_ELEMENTS, &list));
        let mut out = Vec::new();
        decode(&body, UNIX_EPOCH, &mut out);
        let addrs: Vec<String> = out.iter().map(|a| a.addr.to_string()).collect();
        assert_eq!(addrs, ["192.0.2.7", "2001:db8::1"]);
        assert!(out.iter().all(|a| a.table == "nftban" && a.set == "sshd_v4"));
    }
}
