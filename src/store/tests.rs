use super::*;

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn ban(jail: &str, net: &str, at: u64, len: u64) -> BanRecord {
    BanRecord {
        jail: jail.into(),
        net: net.parse().unwrap(),
        at: t(at),
        expires: t(at + len),
        origin: Origin::Auto,
        reason: None,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("sub/nftban.db")).unwrap();
    (dir, s)
}

#[test]
fn active_bans_survive_reopen_with_latest_expiry() {
    let (dir, mut s) = open();
    assert!(s.is_empty().unwrap());
    s.record_bans(&[
        ban("sshd", "198.51.100.1/32", 0, 100),
        ban("sshd", "198.51.100.1/32", 50, 100),
    ])
    .unwrap();
    s.record_bans(&[
        ban("asterisk", "2001:db8::/64", 0, 1000),
        ban("sshd", "198.51.100.2/32", 0, 10),
    ])
    .unwrap();
    drop(s);
    let s = Store::open(&dir.path().join("sub/nftban.db")).unwrap();
    assert!(!s.is_empty().unwrap());
    let mut active = s.active(t(20)).unwrap();
    active.sort_by(|a, b| a.jail.cmp(&b.jail));
    assert_eq!(
        active,
        vec![
            ActiveBan {
                jail: "asterisk".into(),
                net: "2001:db8::/64".parse().unwrap(),
                expires: t(1000),
                reason: None,
            },
            ActiveBan {
                jail: "sshd".into(),
                net: "198.51.100.1/32".parse().unwrap(),
                expires: t(150),
                reason: None,
            },
        ]
    );
    assert_eq!(s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap(), 2);
}

#[test]
fn unbanned_addresses_are_not_restored() {
    let (_dir, mut s) = open();
    s.record_bans(&[
        ban("sshd", "198.51.100.1/32", 0, 100),
        ban("asterisk", "198.51.100.1/32", 0, 100),
    ])
    .unwrap();
    assert_eq!(
        s.record_unban(Some("sshd"), &"198.51.100.1/32".parse().unwrap(), t(5))
            .unwrap(),
        1
    );
    assert_eq!(s.active(t(10)).unwrap().len(), 1);
    assert_eq!(
        s.record_unban(None, &"198.51.100.1/32".parse().unwrap(), t(6)).unwrap(),
        1
    );
    assert!(s.active(t(10)).unwrap().is_empty());
    // A new ban after the unban is restored again.
    s.record_bans(&[ban("sshd", "198.51.100.1/32", 7, 100)]).unwrap();
    assert_eq!(s.active(t(10)).unwrap().len(), 1);
}

#[test]
fn removed_jail_bans_are_lifted() {
    let (_dir, mut s) = open();
    s.record_bans(&[
        ban("old", "198.51.100.1/32", 0, 100),
        ban("sshd", "198.51.100.2/32", 0, 100),
    ])
    .unwrap();
    assert_eq!(s.record_jail_removed("old", t(1)).unwrap(), 1);
    let active = s.active(t(2)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].jail, "sshd");
}

#[test]
fn purge_keeps_recent_history() {
    let (_dir, mut s) = open();
    s.record_bans(&[
        ban("sshd", "198.51.100.1/32", 0, 10),
        ban("sshd", "198.51.100.2/32", 0, 10_000),
    ])
    .unwrap();
    assert_eq!(s.purge(t(1000), Duration::from_secs(100)).unwrap(), 1);
    assert_eq!(s.ban_count("sshd", &"198.51.100.1/32".parse().unwrap()).unwrap(), 0);
    assert_eq!(s.ban_count("sshd", &"198.51.100.2/32".parse().unwrap()).unwrap(), 1);
}

#[test]
fn a_newer_schema_is_refused_and_a_bad_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Store::open(&path).err().unwrap().to_string();
    assert!(err.contains("schema version 99"), "{err}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let err = Store::open(&file.join("nftban.db")).err().unwrap().to_string();
    assert!(err.contains("a-file/nftban.db"), "{err}");
}

#[test]
fn a_hundred_thousand_bans_in_one_transaction() {
    let (_dir, mut s) = open();
    let bans: Vec<BanRecord> = (0..100_000u32)
        .map(|i| BanRecord {
            jail: "sshd".into(),
            net: IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
            at: t(0),
            expires: t(3600),
            origin: Origin::Auto,
            reason: None,
        })
        .collect();
    s.record_bans(&bans).unwrap();
    assert_eq!(s.active(t(1)).unwrap().len(), 100_000);
}

#[test]
fn positions_are_saved_and_a_version_1_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A file as the first version wrote it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE bans (id INTEGER PRIMARY KEY, jail TEXT NOT NULL, net TEXT NOT NULL, banned_at INTEGER NOT NULL,
             expires_at INTEGER NOT NULL, origin TEXT NOT NULL, unbanned_at INTEGER);
             INSERT INTO bans (jail, net, banned_at, expires_at, origin) VALUES ('sshd', '198.51.100.1/32', 1, 4102444800, 'auto');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.active(t(0)).unwrap().len(), 1, "old bans kept");
    let p = Position {
        offset: 123,
        head_len: 1024,
        head_hash: u64::MAX - 5,
    };
    s.save(&[], &[("/var/log/auth.log".into(), p)], &[]).unwrap();
    s.save(
        &[],
        &[("/var/log/auth.log".into(), Position { offset: 456, ..p })],
        &[("journal:A=b".into(), "s=1;i=2".into())],
    )
    .unwrap();
    drop(s);
    let s = Store::open(&path).unwrap();
    let got = s.positions().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got["/var/log/auth.log"], Position { offset: 456, ..p });
    let v: i64 = s.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 4);
    assert_eq!(s.cursors().unwrap()["journal:A=b"], "s=1;i=2");
}

#[test]
fn an_escalated_prefix_keeps_its_reason() {
    let (_dir, mut s) = open();
    let why = "escalated: 3 addresses in 2001:db8:1:2::/64";
    s.record_bans(&[BanRecord {
        origin: Origin::Escalated,
        reason: Some(why.into()),
        ..ban("asterisk", "2001:db8:1:2::/64", 0, 100)
    }])
    .unwrap();
    let active = s.active(t(1)).unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].reason.as_deref(), Some(why));
    let origin: String = s.conn.query_row("SELECT origin FROM bans", [], |r| r.get(0)).unwrap();
    assert_eq!(origin, "escalated");
}
