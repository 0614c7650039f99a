//! The walking skeleton end to end, against the real kernel: attack lines
//! in a log watched by `nftban run`, the attacker's address in the kernel
//! set with a timeout, its packets dropped over a veth pair, and passing
//! again after `nftban unban`.

use std::net::SocketAddr;
use std::time::Duration;

use nftban::netns::{udp_echo, udp_probe};

use crate::support::*;

fn registration(addr: &str) -> String {
    format!("{} NOTICE[31015]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:100@192.0.2.1>' failed for '{addr}:5060' - Wrong password", asterisk_now())
}

fn banned_ips(status: &serde_json::Value) -> Vec<String> {
    status["banned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ip"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn attack_lines_become_a_kernel_ban_that_drops_packets() {
    kernel_test!();
    let pbx = NetNs::create("e2e-pbx").unwrap();
    let attacker = NetNs::create("e2e-atk").unwrap();
    NetNs::link(&pbx, "192.0.2.1/24", &attacker, "192.0.2.66/24").unwrap();
    pbx.ip(&["addr", "add", "2001:db8::1/64", "dev", "veth0", "nodad"])
        .unwrap();
    attacker
        .ip(&["addr", "add", "2001:db8::66/64", "dev", "veth1", "nodad"])
        .unwrap();
    let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    udp_echo(&pbx, v4).unwrap();
    udp_echo(&pbx, v6).unwrap();
    let wait = Duration::from_millis(800);
    // A fresh veth can lose the very first packets: wait until traffic flows.
    wait_for("the veth pair to carry packets", || {
        udp_probe(&attacker, v4, wait).unwrap().then_some(())
    });
    wait_for("IPv6 on the veth pair", || {
        udp_probe(&attacker, v6, wait).unwrap().then_some(())
    });

    let s = Setup::asterisk("");
    let mut daemon = Daemon::start(&pbx, &s);

    // Hostile input first: invalid UTF-8 and a 1 MB line. The daemon goes on.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&s.log).unwrap();
        f.write_all(b"garbage \xff\xfe\xfd line\n").unwrap();
        f.write_all(&vec![b'A'; 1 << 20]).unwrap();
        f.write_all(b"\n").unwrap();
    }
    let a = registration("192.0.2.66");
    let few = registration("192.0.2.77");
    let ignored = registration("192.0.2.99");
    let a6 = registration("[2001:db8::66]");
    s.append(&[&a, &few, &ignored, &a, &few, &ignored, &ignored, &a6, &a6, &a6, &a]);

    let st = wait_for("192.0.2.66 and 2001:db8::66 banned", || {
        s.status("asterisk").filter(|st| {
            let ips = banned_ips(st);
            ips.contains(&"192.0.2.66".to_string()) && ips.contains(&"2001:db8::66".to_string())
        })
    });
    assert!(daemon.is_running(), "daemon died:\n{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains("not valid UTF-8"),
        "no message about invalid UTF-8:\n{log}"
    );
    assert!(
        log.contains("line longer than"),
        "no message about the long line:\n{log}"
    );

    // status JSON: the contract's fields.
    assert_eq!(st["name"], "asterisk");
    assert_eq!(st["files"][0], s.log.to_str().unwrap());
    assert_eq!(st["currently_banned"], 2);
    assert_eq!(st["total_banned"], 2);
    assert_eq!(
        st["total_failed"], 8,
        "3 + 3 from the banned, 2 below maxretry, none from ignoreip"
    );
    assert_eq!(st["currently_failed"], 1, "192.0.2.77 has failures but no ban");
    assert!(st["banned"][0]["expires_in"].as_u64().unwrap() <= 3600);
    assert!(!banned_ips(&st).contains(&"192.0.2.77".to_string()));
    assert!(!banned_ips(&st).contains(&"192.0.2.99".to_string()));

    // The kernel: elements with their own timeout, nothing for the others.
    let v4_elems = set_elements(&pbx, "asterisk_v4");
    assert_eq!(v4_elems, vec![("192.0.2.66".to_string(), Some(3600))], "{v4_elems:?}");
    let v6_elems = set_elements(&pbx, "asterisk_v6");
    assert_eq!(v6_elems, vec![("2001:db8::66".to_string(), Some(3600))], "{v6_elems:?}");

    // Packets: dropped while banned.
    assert!(
        !udp_probe(&attacker, v4, wait).unwrap(),
        "IPv4 packets pass although banned"
    );
    assert!(
        !udp_probe(&attacker, v6, wait).unwrap(),
        "IPv6 packets pass although banned"
    );

    // Human status shows the same figures (seed FAQ row 6).
    let o = s.cli(&["status", "asterisk"]);
    let text = stdout(&o);
    for want in [
        "Currently failed: 1",
        "Total failed:     8",
        "Currently banned: 2",
        "Total banned:     2",
        "192.0.2.66 (",
        "File list:",
    ] {
        assert!(text.contains(want), "status lacks `{want}`:\n{text}");
    }

    let o = s.cli(&["status"]);
    let text = stdout(&o);
    assert!(text.contains("Jail list:   asterisk, manual"), "{text}");
    assert!(
        text.contains("asterisk: 1 currently failed, 2 banned now, 2 banned in total"),
        "{text}"
    );

    // Unban: packets pass again; the address is gone from the kernel.
    let o = s.cli(&["unban", "192.0.2.66"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("unbanned 192.0.2.66 from jail asterisk"));
    assert!(set_elements(&pbx, "asterisk_v4").is_empty());
    assert!(
        udp_probe(&attacker, v4, wait).unwrap(),
        "packets still dropped after unban"
    );
    assert!(!udp_probe(&attacker, v6, wait).unwrap(), "the IPv6 ban must stay");
    let o = s.cli(&["unban", "192.0.2.66"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("192.0.2.66 is not banned in any jail"));
    assert!(daemon.stop(), "daemon did not exit cleanly on SIGTERM");
}
