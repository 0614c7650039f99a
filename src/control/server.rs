//! The daemon's end of the control socket.
//!
//! Each connection carries one request line and gets one response line.
//! Requests are handed to the engine through `handle`, so all state changes
//! happen on the engine's thread, in order.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Request, Response};

/// Why the control socket cannot be bound. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A daemon answers on the path already.
    #[error("another nftban is already running on {}", .path.display())]
    InUse { path: PathBuf },
    /// Something other than a socket is at the path: it is never removed,
    /// since a typo in `socket:` must not delete a file.
    #[error(
        "{} is {what}, not a socket: nftban only replaces a socket left by a daemon that died; move it away or set `socket:` to another path",
        .path.display()
    )]
    NotASocket { path: PathBuf, what: &'static str },
    /// The folder for the socket cannot be created.
    #[error("cannot create the folder {}", .path.display())]
    Folder { path: PathBuf, source: std::io::Error },
    /// What is at the path cannot be looked at.
    #[error("cannot look at {}", .path.display())]
    Inspect { path: PathBuf, source: std::io::Error },
    /// A dead daemon's socket cannot be removed.
    #[error("cannot remove the socket {} left by a daemon that died", .path.display())]
    RemoveStale { path: PathBuf, source: std::io::Error },
    /// bind(2) or chmod(2) failed.
    #[error("cannot bind {} with mode 0600", .path.display())]
    Bind { path: PathBuf, source: std::io::Error },
}

/// What a file type is, in words, for [`BindError::NotASocket`].
fn file_kind(t: std::fs::FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "not a socket"
    }
}

/// A bound control socket; the file is removed on drop.
pub struct Server {
    pub listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Bind `path` with mode 0600. A socket left by a dead daemon is
    /// replaced; a live daemon on the same path is an error, and so is
    /// anything at the path that is not a socket (it is left alone).
    pub fn bind(path: &Path) -> Result<Server, BindError> {
        let at = |path: &Path| path.to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| BindError::Folder { path: at(dir), source })?;
        }
        // lstat, not stat: a symbolic link is not followed, nor removed.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(BindError::InUse { path: at(path) });
                }
                std::fs::remove_file(path).map_err(|source| BindError::RemoveStale { path: at(path), source })?;
            }
            Ok(meta) => {
                return Err(BindError::NotASocket {
                    path: at(path),
                    what: file_kind(meta.file_type()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BindError::Inspect { path: at(path), source }),
        }
        let bind_err = |source| BindError::Bind { path: at(path), source };
        // Bind with a tight umask so the socket is never briefly open to all.
        // SAFETY: umask only changes this process's file-creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        unsafe { libc::umask(old) };
        let listener = bound.map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
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

    /// `socket:` naming a file that is not a socket (a typo for the config
    /// file, a directory, a fifo) is an error naming the path and what it
    /// is; the file stays. Only a dead daemon's socket is ever removed.
    #[test]
    fn bind_refuses_to_remove_what_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nftban.yaml");
        std::fs::write(&file, "precious").unwrap();
        let err = Server::bind(&file).err().expect("a regular file is not a socket");
        let msg = err.to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("a regular file"), "{msg}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");

        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let err = Server::bind(&sub).err().expect("a directory is not a socket");
        assert!(err.to_string().contains("a directory"), "{err}");
        assert!(sub.is_dir());

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = Server::bind(&fifo).err().expect("a fifo is not a socket");
        assert!(err.to_string().contains("a fifo"), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = Server::bind(&link).err().expect("a symbolic link is not a socket");
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
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
