//! Deleting nftban's whole table: what `nftban teardown` (and so the Debian
//! package's removal) does, over the same netlink socket as everything else,
//! so no `nft` process is needed.

use super::messages;
use super::socket::Failure;
use super::{error, Netlink};
use crate::firewall::Result;

impl Netlink {
    /// Delete table inet `table` with its sets (every ban), chains and
    /// rules, in one request. `Ok(false)` when there is no such table.
    pub fn remove_table(&mut self, table: &str) -> Result<bool> {
        match self.sock.batch(&[messages::del_table(table)]) {
            Ok(()) => Ok(true),
            Err(Failure::Kernel {
                errno: libc::ENOENT, ..
            }) => Ok(false),
            Err(f) => Err(error(f)),
        }
    }
}
