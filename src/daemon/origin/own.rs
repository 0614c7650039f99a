//! The host's own addresses, which no ban from outside may hold: a feed
//! entry or a fleet peer's ban holding one would cut the host off from
//! itself (or from its peers). Read again as they change (DHCP, a new
//! interface), by each feed refresh and by the fleet every minute.

use std::net::IpAddr;

/// The addresses of every interface (getifaddrs).
pub fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that freeifaddrs frees;
    // each node's `ifa_addr` is null or points at a sockaddr of the family
    // it names, read here only for AF_INET and AF_INET6.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut node = head;
        while !node.is_null() {
            let addr = (*node).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}
