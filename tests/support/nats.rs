//! A NATS JetStream test bed: Debian's `nats-server` (one, or a cluster of
//! three) in a hub namespace of its own, reachable only from the nodes'
//! namespaces, each joined to the hub by a veth pair on its own /24
//! (10.77.N.1 the hub, 10.77.N.2 the node). Stores in a temp folder.
//!
//! One single server is shared by the tests of a binary ([`shared_nats`],
//! stopped at exit); each test gives its stream and subject prefix their
//! own names. Tests that stop or kill servers make their own bed
//! ([`NatsBed::single`], [`NatsBed::cluster`]), stopped on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{in_netns, wait_for, Need, NetNs};

/// By its path: the guard runs a program by name with `-V`, which
/// nats-server takes for `--trace` and starts a server.
pub const NATS_SERVER: Need = Need {
    program: "/usr/sbin/nats-server",
    package: "nats-server",
};

/// One server of a bed: how to start it again, and its process.
struct Server {
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

/// nats-server(s) in the hub namespace.
pub struct NatsBed {
    pub hub: NetNs,
    pub dir: PathBuf,
    servers: Mutex<Vec<Server>>,
    links: AtomicU32,
}

impl NatsBed {
    /// One server, client port 4222.
    pub fn single() -> NatsBed {
        NatsBed::start(1)
    }

    /// Three servers of one cluster (`nftban`), client ports 4222-4224.
    pub fn cluster() -> NatsBed {
        NatsBed::start(3)
    }

    fn start(n: u16) -> NatsBed {
        let hub = NetNs::create("nats").unwrap();
        let dir = tempfile::Builder::new().prefix("nftban-nats").tempdir().unwrap().keep();
        let mut servers = Vec::new();
        for i in 0..n {
            let port = 4222 + i;
            let store = dir.join(format!("store{i}"));
            let mut args: Vec<String> = vec![
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
                "-a".into(),
                "0.0.0.0".into(),
                "-p".into(),
                port.to_string(),
            ];
            if n > 1 {
                let routes: Vec<String> = (0..n)
                    .filter(|k| *k != i)
                    .map(|k| format!("nats://127.0.0.1:{}", 6222 + k))
                    .collect();
                args.extend([
                    "--server_name".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "nftban".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", 6222 + i),
                    "--routes".into(),
                    routes.join(","),
                ]);
            }
            servers.push(Server {
                args,
                port,
                child: None,
            });
        }
        let bed = NatsBed {
            hub,
            dir,
            servers: Mutex::new(servers),
            links: AtomicU32::new(0),
        };
        for i in 0..usize::from(n) {
            bed.start_server(i);
        }
        bed
    }

    /// Start server `i` (again, on its same store) and wait until it takes
    /// connections.
    pub fn start_server(&self, i: usize) {
        let mut servers = self.servers.lock().unwrap();
        let s = &mut servers[i];
        assert!(s.child.is_none(), "server {i} runs already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("server{i}.log")))
            .unwrap();
        let mut cmd = self.hub.command("nats-server");
        cmd.args(&s.args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl in the child before exec; async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        s.child = Some(cmd.spawn().expect("spawn nats-server"));
        let addr: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
        drop(servers);
        wait_for(&format!("nats-server {i} to listen"), || {
            in_netns(&self.hub, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            })
            .then_some(())
        });
    }

    /// Stop server `i` (SIGTERM, or SIGKILL as a crash) and wait for it.
    pub fn stop_server(&self, i: usize, kill: bool) {
        let mut servers = self.servers.lock().unwrap();
        if let Some(mut child) = servers[i].child.take() {
            let sig = if kill { libc::SIGKILL } else { libc::SIGTERM };
            // SAFETY: kill(2) on our own child, not yet waited for.
            unsafe { libc::kill(child.id() as i32, sig) };
            let _ = child.wait();
        }
    }

    /// Join `node` to the hub: the servers' URLs as `node` reaches them,
    /// for `fleet.servers`.
    pub fn link(&self, node: &NetNs) -> Vec<String> {
        let n = self.links.fetch_add(1, Ordering::Relaxed) + 1;
        NetNs::link_named(
            &self.hub,
            &format!("h{n}"),
            &format!("10.77.{n}.1/24"),
            node,
            "nats0",
            &format!("10.77.{n}.2/24"),
        )
        .unwrap();
        let servers = self.servers.lock().unwrap();
        servers
            .iter()
            .map(|s| format!("nats://10.77.{n}.1:{}", s.port))
            .collect()
    }

    /// The servers' URLs from inside the hub (for the tests' own client).
    pub fn local_urls(&self) -> Vec<String> {
        let servers = self.servers.lock().unwrap();
        servers.iter().map(|s| format!("nats://127.0.0.1:{}", s.port)).collect()
    }

    /// Run `f` with a NATS client inside the hub (on a tokio runtime of
    /// its own): to read the stream, or to publish as a forged peer.
    pub fn with_client<T: Send>(&self, f: impl AsyncFnOnce(async_nats::Client) -> T + Send) -> T {
        let urls = self.local_urls();
        in_netns(&self.hub, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let addrs: Vec<async_nats::ServerAddr> = urls.iter().map(|u| u.parse().unwrap()).collect();
                let client = async_nats::connect(addrs).await.expect("connect to nats-server");
                f(client).await
            })
        })
    }
}

impl Drop for NatsBed {
    fn drop(&mut self) {
        let n = self.servers.lock().map(|s| s.len()).unwrap_or(0);
        for i in 0..n {
            self.stop_server(i, false);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SHARED: OnceLock<&'static NatsBed> = OnceLock::new();

/// Stop the shared server and delete its namespace and folder, at exit.
extern "C" fn stop_shared_at_exit() {
    if let Some(bed) = SHARED.get() {
        bed.stop_server(0, false);
        let _ = Command::new("ip")
            .args(["netns", "del", &bed.hub.name])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&bed.dir);
    }
}

/// The single server shared by the tests of this binary, started on first
/// use (from a thread that lives as long as the binary: the parent-death
/// signal follows the thread that forked).
pub fn shared_nats() -> &'static NatsBed {
    SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let bed: &'static NatsBed = Box::leak(Box::new(NatsBed::single()));
            tx.send(bed).unwrap();
            loop {
                std::thread::park();
            }
        });
        let bed = rx.recv().expect("the shared nats-server");
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_shared_at_exit) };
        bed
    })
}
