//! Private network namespaces for `nftban demo` and the kernel tests.
//!
//! Namespaces are made with `ip netns add` under a unique name and always
//! deleted on drop, which also removes their interfaces and nftables
//! tables: nothing touches the host's own network or ruleset. A thread can
//! enter one with [`NetNs::enter`] (setns), so a test can open sockets in
//! it without spawning a process.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why a namespace could not be made, entered or used.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// `ip` cannot be run at all.
    #[error("cannot run `ip` (install iproute2): {0}")]
    NoIp(std::io::Error),
    /// `ip` ran and said no.
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    /// The thread cannot move into the namespace.
    #[error("setns into {name}: {error}")]
    Enter { name: String, error: std::io::Error },
    /// A socket inside the namespace failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A helper thread died.
    #[error("a namespace helper thread died")]
    Thread,
}

type Result<T> = std::result::Result<T, NetNsError>;

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(NetNsError::NoIp)?;
    if !out.status.success() {
        return Err(NetNsError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl NetNs {
    /// Create `nftban-<tag>-<pid>-<n>` with its loopback up.
    pub fn create(tag: &str) -> Result<NetNs> {
        let name = format!(
            "nftban-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Run `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Move the calling thread into the namespace (for sockets opened
    /// afterwards on this thread). Use on a thread of its own.
    pub fn enter(&self) -> Result<()> {
        let enter = |error| NetNsError::Enter {
            name: self.name.clone(),
            error,
        };
        let f = File::open(format!("/run/netns/{}", self.name)).map_err(enter)?;
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(enter(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Join two namespaces with a veth pair and give each end an address
    /// (with prefix length, e.g. `192.0.2.1/24`).
    pub fn link(a: &NetNs, a_addr: &str, b: &NetNs, b_addr: &str) -> Result<()> {
        NetNs::link_named(a, "veth0", a_addr, b, "veth1", b_addr)
    }

    /// [`NetNs::link`] with interface names of one's choice, for a
    /// namespace that gets several links (a router).
    pub fn link_named(a: &NetNs, a_dev: &str, a_addr: &str, b: &NetNs, b_dev: &str, b_addr: &str) -> Result<()> {
        a.ip(&[
            "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", &b.name,
        ])?;
        a.ip(&["addr", "add", a_addr, "dev", a_dev])?;
        b.ip(&["addr", "add", b_addr, "dev", b_dev])?;
        for (ns, dev, addr) in [(a, a_dev, a_addr), (b, b_dev, b_addr)] {
            if addr.contains(':') {
                // No duplicate address detection: the address is usable at once.
                ns.ip(&["addr", "change", addr, "dev", dev, "nodad"]).ok();
            }
            ns.ip(&["link", "set", dev, "up"])?;
        }
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Whether this process may create namespaces and talk to nf_tables.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Send one UDP datagram from the namespace `from` to `to` and wait up to
/// `wait` for the echo (see [`udp_echo`]). True if the echo came back.
pub fn udp_probe(from: &NetNs, to: std::net::SocketAddr, wait: std::time::Duration) -> Result<bool> {
    let name = from.name.clone();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<bool> {
            NetNs { name: name.clone() }.enter_no_drop()?;
            let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let sock = std::net::UdpSocket::bind(bind)?;
            sock.set_read_timeout(Some(wait))?;
            sock.send_to(b"OPTIONS sip:probe@nftban SIP/2.0\r\n\r\n", to)?;
            let mut buf = [0u8; 512];
            Ok(sock.recv_from(&mut buf).is_ok())
        })
        .join()
        .map_err(|_| NetNsError::Thread)?
    })
}

/// Start a UDP echo server on `addr` inside `ns`, on a thread of its own
/// that lives as long as the process.
pub fn udp_echo(ns: &NetNs, addr: std::net::SocketAddr) -> Result<()> {
    let name = ns.name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sock = (|| -> Result<std::net::UdpSocket> {
            NetNs { name }.enter_no_drop()?;
            Ok(std::net::UdpSocket::bind(addr)?)
        })();
        match sock {
            Ok(sock) => {
                let _ = tx.send(Ok(()));
                let mut buf = [0u8; 2048];
                while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], peer);
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv().map_err(|_| NetNsError::Thread)?
}

impl NetNs {
    /// `enter` for a handle that must not delete the namespace when dropped.
    fn enter_no_drop(self) -> Result<()> {
        let r = self.enter();
        std::mem::forget(self);
        r
    }
}
