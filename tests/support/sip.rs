//! A SIP test bed: one real Kamailio per test binary, started on first use
//! in a namespace of its own with a config the test writes (a registrar
//! with one account, `alice`, authentication required, UDP 5060 on every
//! address), logging with the JSON log engine to a file nftban reads, and
//! including deploy/examples/kamailio-nftban.cfg, so the example is what
//! is tested. Clients (SIPp, sipvicious) run in namespaces of their own,
//! each joined to Kamailio's by a veth pair on its own /30.
//!
//! Kamailio is stopped when the test binary exits (an exit handler, and
//! the kernel's parent-death signal if the binary is killed); its
//! namespace is deleted then. Tests take the bed one at a time
//! ([`sip_bed`]): nftban's table lives in Kamailio's namespace, and each
//! lease deletes it when it ends, so bans never outlive a test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{in_netns, run, stderr, stdout, wait_for, Need, NetNs};

pub const KAMAILIO: Need = Need {
    program: "kamailio",
    package: "kamailio",
};
pub const SIPP: Need = Need {
    program: "sipp",
    package: "sip-tester",
};
pub const SVMAP: Need = Need {
    program: "svmap",
    package: "sipvicious",
};

/// The one account: user and password.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-nftban";

/// Kamailio in its namespace.
pub struct Kamailio {
    pub ns: NetNs,
    /// Its folder: config, control socket, logs.
    pub dir: PathBuf,
    /// Its log (stderr, JSON log engine): what nftban reads.
    pub log: PathBuf,
    ctl: PathBuf,
    pid: u32,
    links: AtomicU32,
}

/// A client namespace joined to Kamailio's.
pub struct Client {
    pub ns: NetNs,
    /// The client's address.
    pub addr: String,
    /// Kamailio's address on this link.
    pub server: String,
}

/// The bed for one test: Kamailio, and the right to run nftban in its
/// namespace. Dropping it deletes nftban's table there.
pub struct Lease {
    pub k: &'static Kamailio,
    _only: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Lease {
    type Target = Kamailio;
    fn deref(&self) -> &Kamailio {
        self.k
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = run(self.k.ns.command("nft").args(["delete", "table", "inet", "nftban"]));
    }
}

/// Kamailio, started on first use, for one test at a time.
pub fn sip_bed() -> Lease {
    static ONE: Mutex<()> = Mutex::new(());
    let only = ONE.lock().unwrap_or_else(|e| e.into_inner());
    Lease {
        k: kamailio(),
        _only: only,
    }
}

static BED: OnceLock<Kamailio> = OnceLock::new();

fn kamailio() -> &'static Kamailio {
    BED.get_or_init(Kamailio::start)
}

/// The config the bed runs: the registrar, the example snippet included.
pub fn kamailio_cfg(ctl: &Path) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/kamailio-nftban.cfg");
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:0.0.0.0:5060
listen=tcp:0.0.0.0:5060
dns=no
rev_dns=no
auto_aliases=no
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "sanity.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "htable.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("usrloc", "db_mode", 0)
modparam("sanity", "autodrop", 0)
# Requests that reached Kamailio, per source address.
modparam("htable", "htable", "src=>size=8;")

include_file "{example}"

request_route {{
	if ($sht(src=>$si) == $null) {{ $sht(src=>$si) = 1; }} else {{ $var(n) = $shtinc(src=>$si); }}
	route(NFTBAN_SCANNER);
	if (!sanity_check("17895", "7")) {{
		xlog("Malformed SIP request from $si:$sp\n");
		exit;
	}}
	if (is_method("REGISTER")) {{
		pv_www_authenticate("$td", "{PASSWORD}", "0");
		$var(nftban_auth) = $rc;
		# pv_www_authenticate checks the password only.
		if ($var(nftban_auth) == 1 && $au != "{USER}") {{ $var(nftban_auth) = -3; }}
		if ($var(nftban_auth) == 1) {{
			save("location");
			exit;
		}}
		route(NFTBAN_AUTH);
		www_challenge("$td", "1");
		exit;
	}}
	sl_send_reply("404", "Not here");
}}
"#,
        ctl = ctl.display(),
        example = example.display(),
    )
}

/// Stop Kamailio and delete its namespace and folder, at exit.
extern "C" fn stop_at_exit() {
    let Some(k) = BED.get() else { return };
    // SAFETY: kill(2) on Kamailio's main process, which this binary started
    // and nothing else reaps.
    unsafe { libc::kill(k.pid as i32, libc::SIGTERM) };
    for _ in 0..40 {
        if !Path::new(&format!("/proc/{}", k.pid)).exists() || is_zombie(k.pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = Command::new("ip")
        .args(["netns", "del", &k.ns.name])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&k.dir);
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

impl Kamailio {
    fn start() -> Kamailio {
        let dir = tempfile::Builder::new()
            .prefix("nftban-kamailio")
            .tempdir()
            .unwrap()
            .keep();
        let ctl = dir.join("kamailio.ctl");
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, kamailio_cfg(&ctl)).unwrap();
        let o = run(Command::new("kamailio").arg("-c").arg("-f").arg(&cfg));
        assert!(
            o.status.success(),
            "kamailio -c refuses the test config:\n{}",
            stderr(&o)
        );

        let ns = NetNs::create("sip").unwrap();
        let log = dir.join("kamailio.log");
        let mut cmd = ns.command("kamailio");
        cmd.arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "--log-engine=json", "-m", "64", "-M", "8", "-Y"])
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("kamailio.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        // SAFETY: prctl in the child before exec; async-signal-safe.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        // Spawned from a thread that lives as long as the binary: the
        // parent-death signal follows the thread that forked, not the
        // process.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = cmd.spawn();
            tx.send(child.map(|c| c.id())).unwrap();
            loop {
                std::thread::park();
            }
        });
        let pid = rx.recv().unwrap().expect("spawn kamailio");
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_at_exit) };
        let k = Kamailio {
            ns,
            dir,
            log,
            ctl,
            pid,
            links: AtomicU32::new(0),
        };
        wait_for("Kamailio to answer on its control socket", || {
            k.kamcmd_ok(&["core.version"]).map(|_| ())
        });
        k
    }

    /// `kamcmd -s unix:CTL ARGS`: its output, or `None` if it failed.
    fn kamcmd_ok(&self, args: &[&str]) -> Option<String> {
        let o = run(Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl.display()))
            .args(args));
        o.status.success().then(|| stdout(&o))
    }

    /// Requests that reached Kamailio's script from `addr` (its htable).
    pub fn requests_from(&self, addr: &str) -> u64 {
        let Some(out) = self.kamcmd_ok(&["htable.get", "src", addr]) else {
            return 0; // no such key: none yet
        };
        out.lines()
            .find_map(|l| l.trim().strip_prefix("value:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("kamcmd htable.get: {out}"))
    }

    /// Kamailio's own count of received requests (`core:rcv_requests`).
    pub fn rcv_requests(&self) -> u64 {
        let out = self
            .kamcmd_ok(&["stats.get_statistics", "rcv_requests"])
            .expect("kamcmd stats.get_statistics");
        out.split('=')
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("kamcmd stats.get_statistics: {out}"))
    }

    /// What Kamailio logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new client namespace on a veth pair of its own:
    /// 198.51.100.(4n+1)/30 is Kamailio, .(4n+2) the client.
    pub fn client(&self, tag: &str) -> Client {
        let n = self.links.fetch_add(1, Ordering::Relaxed);
        assert!(n < 63, "out of client links");
        let ns = NetNs::create(tag).unwrap();
        let server = format!("198.51.100.{}", 4 * n + 1);
        let addr = format!("198.51.100.{}", 4 * n + 2);
        NetNs::link_named(
            &self.ns,
            &format!("c{n}"),
            &format!("{server}/30"),
            &ns,
            "veth0",
            &format!("{addr}/30"),
        )
        .unwrap();
        let client = Client { ns, addr, server };
        // A fresh veth loses the very first packets.
        wait_for(&format!("Kamailio to answer {}", client.addr), || {
            client.options().then_some(())
        });
        client
    }
}

impl Client {
    /// One SIP OPTIONS from the client to Kamailio; true if it answered
    /// (within 1 s).
    pub fn options(&self) -> bool {
        in_netns(&self.ns, || {
            let sock = std::net::UdpSocket::bind((self.addr.as_str(), 0)).unwrap();
            let port = sock.local_addr().unwrap().port();
            sock.set_read_timeout(Some(std::time::Duration::from_secs(1))).unwrap();
            let msg = format!(
                "OPTIONS sip:{s} SIP/2.0\r\nVia: SIP/2.0/UDP {a}:{port};branch=z9hG4bK{port}\r\nFrom: <sip:probe@{a}>;tag={port}\r\nTo: <sip:{s}>\r\nCall-ID: probe{port}@{a}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: nftban-test\r\nContent-Length: 0\r\n\r\n",
                s = self.server,
                a = self.addr,
            );
            sock.send_to(msg.as_bytes(), (self.server.as_str(), 5060)).unwrap();
            let mut buf = [0u8; 2048];
            sock.recv_from(&mut buf)
                .is_ok_and(|(n, _)| buf[..n].starts_with(b"SIP/2.0 "))
        })
    }
    /// A command inside the client's namespace, in `dir`, under
    /// `timeout SECS` so that it cannot hang a test.
    pub fn bounded(&self, secs: u32, dir: &Path, program: &str) -> Command {
        let mut c = self.ns.command("timeout");
        c.args(["-k", "5", &secs.to_string(), program]).current_dir(dir);
        c
    }

    /// A SIPp REGISTER scenario for `alice` with `password`: 401, then
    /// the request with credentials, which must get `expect` (200 for the
    /// right password, 401 again for a wrong one). One call, two requests.
    pub fn register_scenario(dir: &Path, password: &str, expect: u16) -> PathBuf {
        let request = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:[remote_ip] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:{USER}@[remote_ip]>;tag=[call_number]\nTo: <sip:{USER}@[remote_ip]>\nCall-ID: [call_id]\nCSeq: {cseq} REGISTER\nContact: <sip:{USER}@[local_ip]:[local_port]>\n{auth}Max-Forwards: 70\nExpires: 60\nUser-Agent: nftban-test\nContent-Length: 0\n\n"
            )
        };
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"register\">\n<send retrans=\"500\"><![CDATA[\n{}]]></send>\n<recv response=\"401\" auth=\"true\"/>\n<send retrans=\"500\"><![CDATA[\n{}]]></send>\n<recv response=\"{expect}\"/>\n</scenario>\n",
            request(1, ""),
            request(2, &format!("[authentication username={USER} password={password}]\n")),
        );
        let path = dir.join(format!("register-{expect}-{}.xml", password.len()));
        std::fs::write(&path, xml).unwrap();
        path
    }

    /// A send-only SIPp scenario: one OPTIONS per call, no answer awaited
    /// (so `-m COUNT` is exactly COUNT packets): a flood.
    pub fn options_scenario(dir: &Path) -> PathBuf {
        let xml = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"options flood\">\n<send><![CDATA[\nOPTIONS sip:[remote_ip] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:flood@[local_ip]>;tag=[call_number]\nTo: <sip:[remote_ip]>\nCall-ID: [call_id]\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nUser-Agent: nftban-test\nContent-Length: 0\n\n]]></send>\n</scenario>\n";
        let path = dir.join("options-flood.xml");
        std::fs::write(&path, xml).unwrap();
        path
    }

    /// SIPp from this client: `calls` calls of `scenario` at
    /// `rate` per second from local port `port`, each answer awaited at
    /// most 2 s, the whole run at most `secs`. True if every call went as
    /// the scenario says.
    pub fn sipp(&self, dir: &Path, scenario: &Path, port: u16, calls: u32, rate: u32, secs: u32) -> bool {
        self.sipp_with(dir, scenario, port, calls, rate, secs, &[])
    }

    /// [`Client::sipp`] with more SIPp arguments (`-t t1`: over one TCP
    /// connection).
    #[allow(clippy::too_many_arguments)]
    pub fn sipp_with(
        &self,
        dir: &Path,
        scenario: &Path,
        port: u16,
        calls: u32,
        rate: u32,
        secs: u32,
        extra: &[&str],
    ) -> bool {
        let o = run(self
            .bounded(secs + 10, dir, "sipp")
            .arg(format!("{}:5060", self.server))
            .arg("-sf")
            .arg(scenario)
            .args(["-i", &self.addr, "-p", &port.to_string()])
            .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
            .args(["-nostdin", "-recv_timeout", "2000", "-timeout", &format!("{secs}s")])
            .args(extra)
            .stdout(Stdio::null()));
        if !o.status.success() {
            eprintln!(
                "sipp from {} exited with {}: {}",
                self.addr,
                o.status,
                stderr(&o).trim()
            );
        }
        o.status.success()
    }
}
