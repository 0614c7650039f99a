//! Watching nf_tables for other tools' changes to nftban's table, so the
//! daemon can heal: a firewall reload's `nft flush ruleset` must not
//! silently lift every ban (docs/firewall.md, "Self-healing: watching other
//! tools"). The netlink firewall's [`crate::firewall::Firewall::watch`]
//! hands a [`Monitor`] out as the [`Watcher`] and pauses it during its own
//! big batches ([`Pauser`]).
//!
//! A NETLINK_NETFILTER socket joins the multicast group NFNLGRP_NFTABLES:
//! the kernel then sends an event for every change of every table, and ends
//! each transaction with NEWGEN, which names the process that made it.
//! [`Monitor::wait`] collects the deletions that concern nftban's table
//! (the table, its chains, rules, sets, set elements; family inet only)
//! and reports them when the NEWGEN of their transaction arrives, unless
//! the process is nftban itself: its own changes (setup flushing its chain,
//! unbans deleting elements, the healing itself) never trigger healing.
//!
//! A big transaction (`nft flush set` of a million elements sends one event
//! per element) can overflow even a large receive buffer: the kernel drops
//! events and `recv` fails with ENOBUFS. Then [`Notice::Lost`] tells the
//! caller to check the table itself, cheaply (see `Firewall::missing`).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_sys::Socket;

use super::abi::{
    attrs, be_u32, c_string, messages, NFNLGRP_NFTABLES, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NFTA_CHAIN_NAME,
    NFTA_CHAIN_TABLE, NFTA_GEN_PROC_NAME, NFTA_GEN_PROC_PID, NFTA_RULE_CHAIN, NFTA_RULE_TABLE, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_NAME, NFTA_SET_TABLE, NFTA_TABLE_NAME, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE,
    NFT_MSG_DELSET, NFT_MSG_DELSETELEM, NFT_MSG_DELTABLE, NFT_MSG_DESTROYCHAIN, NFT_MSG_DESTROYRULE,
    NFT_MSG_DESTROYSET, NFT_MSG_DESTROYSETELEM, NFT_MSG_DESTROYTABLE, NFT_MSG_NEWGEN,
};
use super::socket::{event_socket, setsockopt};
/// What the monitor reports; it moved to [`crate::firewall`] with the
/// [`Watcher`] trait, and is named here too while the daemon still opens
/// the monitor itself.
pub use crate::firewall::Notice;
use crate::firewall::Watcher;

/// The table's name in the events of every kind the monitor reads, and the
/// deleted object's in rule, set and element events: the same attribute
/// numbers in each kind's own enum, which is what lets one walk read them.
/// A chain's name is not among them (its attribute 2 is the handle).
const ATTR_TABLE: u16 = NFTA_TABLE_NAME;
const ATTR_OBJECT: u16 = NFTA_SET_NAME;
const _: () = assert!(
    NFTA_CHAIN_TABLE == ATTR_TABLE
        && NFTA_RULE_TABLE == ATTR_TABLE
        && NFTA_SET_TABLE == ATTR_TABLE
        && NFTA_SET_ELEM_LIST_TABLE == ATTR_TABLE
        && NFTA_RULE_CHAIN == ATTR_OBJECT
        && NFTA_SET_ELEM_LIST_SET == ATTR_OBJECT
);

/// Receive buffer asked for (SO_RCVBUFFORCE; the kernel doubles it). Each
/// event costs about 1 KiB of buffer: about 60,000 events fit.
const SOCKET_BUFFER: i32 = 32 << 20;
/// One `recv`: the kernel puts one event per datagram, but be generous.
const READ_BUFFER: usize = 64 << 10;
/// Wake up this often even without events, so the thread can stop.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Leaves and rejoins the monitor's multicast group from another thread
/// (the same socket, through a duplicated descriptor). While no socket is in
/// the group the kernel builds no events at all; with one, it builds an
/// event per element added, which slows nftban's own big batches (a million
/// bans at start or after healing) markedly (docs/performance.md, section
/// "Restore with and without a listener"). Changes made while paused are
/// not reported: check the table after resuming.
#[derive(Debug)]
pub struct Pauser {
    fd: std::os::fd::OwnedFd,
}

impl Pauser {
    /// Stop receiving events.
    pub fn pause(&self) -> io::Result<()> {
        membership(&self.fd, libc::NETLINK_DROP_MEMBERSHIP)
    }

    /// Receive events again.
    pub fn resume(&self) -> io::Result<()> {
        membership(&self.fd, libc::NETLINK_ADD_MEMBERSHIP)
    }
}

fn membership(fd: &impl AsRawFd, op: libc::c_int) -> io::Result<()> {
    setsockopt(fd, libc::SOL_NETLINK, op, NFNLGRP_NFTABLES as libc::c_int)
}

/// A socket subscribed to nf_tables events, watching one table.
pub struct Monitor {
    sock: Socket,
    table: String,
    buf: Vec<u8>,
    /// Deletions seen since the last NEWGEN, by kind and object.
    pending: BTreeMap<(u8, String), usize>,
    /// Event messages read since open (what the port filter saves).
    pub(crate) received: u64,
}

impl Monitor {
    /// Subscribe to nf_tables events for `table inet <table>`.
    pub fn open(table: &str) -> io::Result<Monitor> {
        let sock = event_socket(SOCKET_BUFFER, READ_TIMEOUT)?;
        Ok(Monitor {
            sock,
            table: table.to_string(),
            buf: vec![0; READ_BUFFER],
            pending: BTreeMap::new(),
            received: 0,
        })
    }

    /// Have the kernel drop, before they reach this socket, the events of
    /// changes requested through netlink port `port` (nftban's own
    /// firewall socket). The kernel names the requester's port in every
    /// event message's `nlmsg_pid`, so a classic BPF filter of four
    /// instructions can tell them apart. Without it each ban woke this
    /// thread twice (the element, then the end of its transaction) only to
    /// find that nftban made it. Events of nftban's other sockets still
    /// arrive and are recognised by process id as before.
    pub fn ignore_port(&self, port: u32) -> io::Result<()> {
        // `ld [12]` loads nlmsg_pid in network byte order: compare with
        // the port's bytes as the kernel stores them (host order).
        let want = u32::from_be_bytes(port.to_ne_bytes());
        let program = [
            // A = nlmsg_pid
            libc::sock_filter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 12,
            },
            // if A == port goto drop else goto keep
            libc::sock_filter {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: want,
            },
            // drop: return 0 bytes
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
            // keep: return the whole message
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: u32::MAX,
            },
        ];
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // The kernel copies the program during the call.
        setsockopt(&self.sock, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, prog)
    }

    /// A handle that pauses and resumes this monitor from another thread.
    pub fn pauser(&self) -> io::Result<Pauser> {
        // SAFETY: dup of a descriptor this monitor owns and keeps open; the
        // new descriptor is owned by the returned OwnedFd.
        let fd = unsafe { libc::dup(self.sock.as_raw_fd()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Pauser {
            fd: unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) },
        })
    }

    /// Wait for the next change by another process to the table, or for
    /// lost events. `Ok(None)` when a second passed without either.
    pub fn wait(&mut self) -> io::Result<Option<Notice>> {
        loop {
            let n = {
                let mut slice = &mut self.buf[..];
                match self.sock.recv(&mut slice, 0) {
                    Ok(n) => n.min(self.buf.len()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        self.pending.clear();
                        return Ok(Some(Notice::Lost));
                    }
                    Err(e) => return Err(e),
                }
            };
            let mut notice = None;
            let buf = std::mem::take(&mut self.buf);
            for m in messages(&buf[..n]) {
                let Ok(m) = m else { break };
                self.received += 1;
                if m.kind >> 8 != NFNL_SUBSYS_NFTABLES || m.payload.len() < 4 {
                    continue;
                }
                let kind = (m.kind & 0xff) as u8;
                let body = &m.payload[4..];
                if kind == NFT_MSG_NEWGEN {
                    if let Some(n) = self.end_of_transaction(body) {
                        notice = Some(n);
                    }
                } else if m.payload[0] == NFPROTO_INET {
                    self.note(kind, body);
                }
            }
            self.buf = buf;
            if notice.is_some() {
                return Ok(notice);
            }
        }
    }

    /// Remember a deletion in our table.
    fn note(&mut self, kind: u8, body: &[u8]) {
        let kind = match kind {
            NFT_MSG_DESTROYTABLE => NFT_MSG_DELTABLE,
            NFT_MSG_DESTROYCHAIN => NFT_MSG_DELCHAIN,
            NFT_MSG_DESTROYRULE => NFT_MSG_DELRULE,
            NFT_MSG_DESTROYSET => NFT_MSG_DELSET,
            NFT_MSG_DESTROYSETELEM => NFT_MSG_DELSETELEM,
            k => k,
        };
        if ![
            NFT_MSG_DELTABLE,
            NFT_MSG_DELCHAIN,
            NFT_MSG_DELRULE,
            NFT_MSG_DELSET,
            NFT_MSG_DELSETELEM,
        ]
        .contains(&kind)
        {
            return;
        }
        let mut table = None;
        let mut object = String::new();
        for (t, v) in attrs(body) {
            match t {
                ATTR_TABLE => table = Some(c_string(v)),
                NFTA_CHAIN_NAME if kind == NFT_MSG_DELCHAIN => object = c_string(v),
                ATTR_OBJECT if kind != NFT_MSG_DELTABLE && kind != NFT_MSG_DELCHAIN => object = c_string(v),
                _ => {}
            }
        }
        if table.as_deref() == Some(self.table.as_str()) {
            *self.pending.entry((kind, object)).or_default() += 1;
        }
    }

    /// NEWGEN ends a transaction: report what it deleted in our table,
    /// unless nftban made it.
    fn end_of_transaction(&mut self, body: &[u8]) -> Option<Notice> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return None;
        }
        let mut pid = 0;
        let mut process = String::new();
        for (t, v) in attrs(body) {
            match t {
                NFTA_GEN_PROC_PID => pid = be_u32(v).unwrap_or(0),
                NFTA_GEN_PROC_NAME => process = c_string(v),
                _ => {}
            }
        }
        if is_own(pid) {
            return None;
        }
        Some(Notice::Changed {
            what: describe(&self.table, &pending),
            pid,
            process,
        })
    }
}

/// The monitor as the firewall hands it out from [`crate::firewall::Firewall::watch`].
impl Watcher for Monitor {
    fn wait(&mut self) -> crate::firewall::Result<Option<Notice>> {
        Monitor::wait(self).map_err(crate::firewall::Error::Io)
    }
}

/// Is `pid` (a thread id: the kernel reports the task that committed) a
/// thread of this process?
fn is_own(pid: u32) -> bool {
    pid != 0 && (pid == std::process::id() || std::path::Path::new(&format!("/proc/self/task/{pid}")).exists())
}

/// Deletions in words, the table first.
fn describe(table: &str, pending: &BTreeMap<(u8, String), usize>) -> Vec<String> {
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    pending
        .iter()
        .map(|((kind, object), &n)| match *kind {
            NFT_MSG_DELTABLE => format!("table inet {table} deleted"),
            NFT_MSG_DELCHAIN => format!("chain {object} deleted"),
            NFT_MSG_DELRULE => format!("{} deleted from chain {object}", plural(n, "rule", "rules")),
            NFT_MSG_DELSET => format!("set {object} deleted"),
            _ => format!("{} deleted from set {object}", plural(n, "element", "elements")),
        })
        .collect()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn describes_deletions_in_words() {
        let mut p = BTreeMap::new();
        p.insert((NFT_MSG_DELTABLE, String::new()), 1);
        p.insert((NFT_MSG_DELRULE, "input".to_string()), 4);
        p.insert((NFT_MSG_DELSETELEM, "sshd_v4".to_string()), 1);
        assert_eq!(
            describe("nftban", &p),
            [
                "table inet nftban deleted",
                "4 rules deleted from chain input",
                "1 element deleted from set sshd_v4"
            ]
        );
    }

    #[test]
    fn own_threads_are_recognised() {
        assert!(is_own(std::process::id()));
        assert!(!is_own(0));
        assert!(!is_own(u32::MAX));
    }
}
