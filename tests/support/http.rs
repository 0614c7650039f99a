//! An HTTP bed for the feed tests: Python's `http.server` in a hub
//! namespace of its own, serving a temp folder, reachable only from the
//! namespaces joined to it, each on its own /24 (10.78.N.1 the hub,
//! 10.78.N.2 the test's namespace, interface `web0`). One server shared by
//! the tests of a binary ([`shared_web`], stopped at exit); each test
//! serves its lists from a folder of its own.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use super::{in_netns, wait_for, Need, NetNs};

pub const PYTHON3: Need = Need {
    program: "python3",
    package: "python3",
};

const PORT: u16 = 8080;

/// The server, its folder and namespace.
pub struct WebBed {
    pub hub: NetNs,
    pub dir: PathBuf,
    child: Mutex<Option<Child>>,
    links: AtomicU32,
}

impl WebBed {
    fn start() -> WebBed {
        let hub = NetNs::create("web").unwrap();
        let dir = tempfile::Builder::new().prefix("nftban-web").tempdir().unwrap().keep();
        let child = hub
            .command("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                &PORT.to_string(),
                "--directory",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let addr: SocketAddr = ([127, 0, 0, 1], PORT).into();
        wait_for("the HTTP server to listen", || {
            in_netns(&hub, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
            })
        });
        WebBed {
            hub,
            dir,
            child: Mutex::new(Some(child)),
            links: AtomicU32::new(0),
        }
    }

    /// Join `ns` to the hub; returns the URL of the folder `folder` (made)
    /// as `ns` reaches it.
    pub fn link(&self, ns: &NetNs, folder: &str) -> String {
        let n = self.links.fetch_add(1, Ordering::Relaxed) + 1;
        NetNs::link_named(
            &self.hub,
            &format!("w{n}"),
            &format!("10.78.{n}.1/24"),
            ns,
            "web0",
            &format!("10.78.{n}.2/24"),
        )
        .unwrap();
        std::fs::create_dir_all(self.dir.join(folder)).unwrap();
        format!("http://10.78.{n}.1:{PORT}/{folder}")
    }

    /// Write a served file (`folder/name`) with a modification time a
    /// whole second after the last one: the server's `Last-Modified` has
    /// whole seconds, and a list rewritten within one would be answered
    /// 304 to the daemon's `If-Modified-Since`.
    pub fn write(&self, path: &str, text: &str) {
        static CLOCK: Mutex<Option<SystemTime>> = Mutex::new(None);
        let file = self.dir.join(path);
        std::fs::write(&file, text).unwrap();
        let mut clock = CLOCK.lock().unwrap();
        let t = clock
            .map_or_else(SystemTime::now, |t| t + Duration::from_secs(1))
            .max(SystemTime::now());
        *clock = Some(t);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// The path of a served file.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

static SHARED: OnceLock<&'static WebBed> = OnceLock::new();

extern "C" fn stop_shared_at_exit() {
    if let Some(bed) = SHARED.get() {
        bed.stop();
        let _ = Command::new("ip")
            .args(["netns", "del", &bed.hub.name])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&bed.dir);
    }
}

/// The server shared by the tests of this binary, started on first use.
pub fn shared_web() -> &'static WebBed {
    SHARED.get_or_init(|| {
        let bed: &'static WebBed = Box::leak(Box::new(WebBed::start()));
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_shared_at_exit) };
        bed
    })
}
