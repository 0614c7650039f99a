//! The control socket, the metrics endpoint and the shipped unit, as users
//! meet them: a `socket:` path that names another file, many clients at
//! once, requests that are not the protocol, the families the unit allows.

use crate::support::*;

/// `socket:` naming the config file itself (a typo) stops the daemon with
/// an error naming the path and what it is; the file is not deleted.
#[test]
fn run_refuses_a_socket_path_that_is_not_a_socket() {
    kernel_test!();
    let ns = NetNs::create("ctl-sockpath").unwrap();
    let s = Setup::asterisk("");
    let config = s.config.display().to_string();
    s.top(&format!("socket: {config}"));
    let before = std::fs::read_to_string(&s.config).unwrap();
    let mut d = Daemon::spawn(&ns, &s, |_| {});
    let status = wait_for("the daemon to exit", || d.child.try_wait().unwrap());
    assert_eq!(status.code(), Some(2), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains(&format!("{config} is a regular file, not a socket")),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&s.config).unwrap(),
        before,
        "the config was touched"
    );
}
