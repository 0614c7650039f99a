//! The walking skeleton end to end, against the real kernel: attack lines
//! in a log watched by `nftban run`, the attacker's address in the kernel
//! set with a timeout, its packets dropped over a veth pair, and passing
//! again after `nftban unban`.

use std::net::SocketAddr;

use nftban::netns::udp_echo;

use crate::support::*;

#[test]
fn attack_lines_become_a_kernel_ban_that_drops_packets() {
    kernel_test!();
    let (pbx, attacker) = pbx_and_attacker("e2e");
    pbx.ip(&["addr", "add", "2001:db8::1/64", "dev", "veth0", "nodad"])
        .unwrap();
    attacker
        .ip(&["addr", "add", "2001:db8::66/64", "dev", "veth1", "nodad"])
        .unwrap();
    let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    udp_echo(&pbx, v4).unwrap();
    udp_echo(&pbx, v6).unwrap();
    wait_passes(&attacker, v4);
    wait_passes(&attacker, v6);

    let s = Setup::asterisk("");
    let mut daemon = Daemon::start(&pbx, &s);

    // Hostile input first: invalid UTF-8 and a line one byte over the
    // 1 MiB limit (skipped). The daemon goes on.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&s.log).unwrap();
        f.write_all(b"garbage \xff\xfe\xfd line\n").unwrap();
        f.write_all(&vec![b'A'; (1 << 20) + 1]).unwrap();
        f.write_all(b"\n").unwrap();
    }
    let a = failed_registration("192.0.2.66");
    let few = failed_registration("192.0.2.77");
    let ignored = failed_registration("192.0.2.99");
    let a6 = failed_registration("[2001:db8::66]");
    s.append(&[&a, &few, &ignored, &a, &few, &ignored, &ignored, &a6, &a6, &a6, &a]);

    let st = s.wait_jail("asterisk", "192.0.2.66 and 2001:db8::66 banned", |st| {
        let ips = banned_ips(st);
        ips.contains(&"192.0.2.66") && ips.contains(&"2001:db8::66")
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

    assert_eq!(st.currently_banned, 2);
    assert_eq!(st.total_banned, 2);
    assert_eq!(
        st.total_failed, 8,
        "3 + 3 from the banned, 2 below maxretry, none from ignoreip"
    );
    assert_eq!(st.currently_failed, 1, "192.0.2.77 has failures but no ban");
    assert!(st.banned.iter().all(|b| b.expires_in <= 3600), "{:?}", st.banned);
    assert!(!banned_ips(&st).contains(&"192.0.2.77"));
    assert!(!banned_ips(&st).contains(&"192.0.2.99"));

    // status JSON: the contract's field names (docs/cli.md), as a script
    // reads them.
    let raw = s.status_json(&["status", "asterisk"]);
    assert_eq!(raw["name"], "asterisk");
    assert_eq!(raw["files"][0], s.log.to_str().unwrap());
    assert_eq!(raw["currently_banned"], 2);
    assert_eq!(raw["total_banned"], 2);
    assert_eq!(raw["bans_by_origin"], serde_json::json!({"auto": 2}), "{raw}");
    assert_eq!(raw["total_failed"], 8);
    assert_eq!(raw["currently_failed"], 1);
    let banned = raw["banned"].as_array().unwrap();
    assert_eq!(banned.len(), 2, "{raw}");
    for b in banned {
        assert!(
            ["192.0.2.66", "2001:db8::66"].contains(&b["ip"].as_str().unwrap()),
            "{raw}"
        );
        assert!(b["expires_in"].as_u64().unwrap() <= 3600, "{raw}");
    }
    let all = s.status_json(&["status"]);
    assert_eq!(all["jails"][0]["name"], "asterisk");
    assert_eq!(all["jails"][0]["total_failed"], 8);
    assert_eq!(all["jails"][1]["name"], "manual");
    assert_eq!(all["kernel_errors"], 0);
    assert_eq!(all["history_errors"], 0);

    // The kernel: elements with their own timeout, nothing for the others.
    let v4_elems = set_elements(&pbx, "asterisk_v4");
    assert_eq!(v4_elems, vec![("192.0.2.66".to_string(), Some(3600))], "{v4_elems:?}");
    let v6_elems = set_elements(&pbx, "asterisk_v6");
    assert_eq!(v6_elems, vec![("2001:db8::66".to_string(), Some(3600))], "{v6_elems:?}");

    // Packets: dropped while banned.
    assert!(!passes(&attacker, v4), "IPv4 packets pass although banned");
    assert!(!passes(&attacker, v6), "IPv6 packets pass although banned");

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
    // Bans of the jail's own rules only: no line by origin.
    assert!(!text.contains("by origin"), "{text}");

    let o = s.cli(&["status"]);
    let text = stdout(&o);
    assert!(text.contains("Jail list:   asterisk, manual"), "{text}");
    assert!(
        text.contains("asterisk: 1 currently failed, 2 banned now, 2 banned in total"),
        "{text}"
    );

    // Unban: packets pass again; the address is gone from the kernel.
    let o = s.cli_ok(&["unban", "192.0.2.66"]);
    assert!(stdout(&o).contains("unbanned 192.0.2.66 from jail asterisk"));
    assert!(set_elements(&pbx, "asterisk_v4").is_empty());
    assert!(passes(&attacker, v4), "packets still dropped after unban");
    assert!(!passes(&attacker, v6), "the IPv6 ban must stay");
    let o = s.cli(&["unban", "192.0.2.66"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("192.0.2.66 is not banned in any jail"));
    assert!(daemon.stop(), "daemon did not exit cleanly on SIGTERM");
}
