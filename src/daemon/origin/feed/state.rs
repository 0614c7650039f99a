//! A feed's last good list on disk (`<state>/feeds/NAME`, beside the ban
//! history), so a restart puts the list back before, or without, a fetch:
//! the entries as the feed gave them (before the filter, so a changed
//! `ignoreip` applies at the next start), and for APIBAN its cursor and
//! when each address was last listed. Written to a temporary file, synced
//! and renamed over the old one: a crash leaves the old list or the new
//! one, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ipnet::IpNet;

use crate::address::show;

/// What a feed keeps across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Entries, each with when it was last listed (Unix seconds; APIBAN
    /// ages its entries out by it, other formats list the whole list at
    /// each refresh).
    pub entries: BTreeMap<IpNet, u64>,
    /// APIBAN's `ID` cursor.
    pub cursor: Option<String>,
    /// The source the list came from (`status`'s text of it): a list
    /// kept from another source (the feed's `url` changed) does not
    /// count as fetched, and the new source is fetched at once. `None`
    /// in a file of an older nftban.
    pub source: Option<String>,
}

const HEADER: &str = "# nftban feed list: the last good list of the feed, read at start";

/// Write `saved` to `path` atomically (folder made, mode 0700; file 0600).
pub fn write(path: &Path, saved: &Saved) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mut text = String::with_capacity(saved.entries.len() * 24 + 128);
    text.push_str(HEADER);
    text.push('\n');
    if let Some(c) = &saved.cursor {
        text.push_str(&format!("#cursor {c}\n"));
    }
    if let Some(source) = &saved.source {
        text.push_str(&format!("#source {source}\n"));
    }
    for (net, at) in &saved.entries {
        text.push_str(&format!("{} {at}\n", show(net)));
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Read what [`write`] wrote; `Ok(None)` when there is no file yet. A
/// damaged file is an error naming its line.
pub fn read(path: &Path) -> Result<Option<Saved>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut saved = Saved::default();
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = line.strip_prefix("#cursor ") {
            saved.cursor = Some(c.trim().to_string());
            continue;
        }
        if let Some(source) = line.strip_prefix("#source ") {
            saved.source = Some(source.trim().to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = || format!("{}: line {}: `{line}` is damaged", path.display(), i + 1);
        let (net, at) = line.split_once(' ').ok_or_else(bad)?;
        let net = crate::address::parse_net(net).map_err(|_| bad())?;
        let at: u64 = at.trim().parse().map_err(|_| bad())?;
        saved.entries.insert(net, at);
    }
    Ok(Some(saved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_read_back_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feeds/apiban");
        assert_eq!(read(&path).unwrap(), None);
        let mut saved = Saved {
            entries: BTreeMap::new(),
            cursor: Some("1701890000".into()),
            source: Some("https://apiban.org/api/<key>/banned".into()),
        };
        saved.entries.insert("192.0.2.1/32".parse().unwrap(), 1_700_000_000);
        saved.entries.insert("2001:db8::/32".parse().unwrap(), 1_700_000_001);
        write(&path, &saved).unwrap();
        assert_eq!(read(&path).unwrap(), Some(saved.clone()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        saved.entries.clear();
        saved.cursor = None;
        saved.source = None;
        write(&path, &saved).unwrap();
        assert_eq!(read(&path).unwrap(), Some(saved));
        // No temporary file left beside it.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_damaged_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, "# header\n192.0.2.1 5\nrubbish\n").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("line 3: `rubbish`"), "{e}");
    }
}
