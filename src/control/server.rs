//! The daemon's end of the control socket.
//!
//! Each connection carries one request line and gets one response line.
//! Requests are handed to the engine through `handle`, so all state changes
//! happen on the engine's thread, in order.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Request, Response};

/// A bound control socket; the file is removed on drop.
pub struct Server {
    pub listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Bind `path` with mode 0600. A leftover socket from a dead daemon is
    /// replaced; a live daemon on the same path is an error.
    pub fn bind(path: &Path) -> std::io::Result<Server> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another nftban is already running on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // Bind with a tight umask so the socket is never briefly open to all.
        // SAFETY: umask only changes this process's file-creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        unsafe { libc::umask(old) };
        let listener = bound?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// A second handle on the socket, for the thread that serves it.
    pub fn listener(&self) -> std::io::Result<UnixListener> {
        self.listener.try_clone()
    }
}

/// Serve connections forever; `handle` answers each request. `answering`
/// is true from a request's arrival until its answer is written, so that
/// a reload restarts the process only after its "ok" has left (else the
/// client would see the connection close without an answer).
pub fn serve(listener: UnixListener, answering: Arc<AtomicBool>, handle: impl Fn(Request) -> Response) {
    {
        for conn in listener.incoming() {
            match conn {
                Ok(stream) => {
                    answering.store(true, Ordering::SeqCst);
                    let r = serve_one(stream, &handle);
                    answering.store(false, Ordering::SeqCst);
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "control connection failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, handle: &impl Fn(Request) -> Response) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    // Bound the request: a ban list of 100k addresses fits easily.
    (&mut reader).take(64 << 20).read_line(&mut line)?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handle(req),
        Err(e) => Response::err(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    let mut stream = stream;
    stream.write_all(&out)
}

use std::io::Read as _;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn binds_0600_replaces_stale_and_refuses_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/nftban.sock");
        let first = Server::bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let err = Server::bind(&path).err().expect("a live daemon holds the socket");
        assert!(err.to_string().contains("already running"), "{err}");
        // A dead daemon's socket file is replaced.
        std::mem::forget(first);
        let stale = UnixListener::bind(dir.path().join("x.sock")).unwrap();
        drop(stale);
        let _again = Server::bind(&dir.path().join("x.sock")).unwrap();
    }

    #[test]
    fn one_request_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = Server::bind(&path).unwrap();
        let listener = server.listener().unwrap();
        std::thread::spawn(move || {
            serve(listener, Default::default(), |req| match req {
                Request::Status { jail } => Response::ok(jail),
                _ => Response::err("no"),
            })
        });
        let r = crate::control::client::call(
            &path,
            &Request::Status {
                jail: Some("sshd".into()),
            },
        )
        .unwrap();
        assert!(r.ok);
        assert_eq!(r.data, serde_json::json!("sshd"));
        let r = crate::control::client::call(
            &path,
            &Request::Unban {
                addrs: vec![],
                jail: None,
            },
        )
        .unwrap();
        assert_eq!(r.error.as_deref(), Some("no"));
    }
}
