//! Allowlist and blocklist: parsing operator input (addresses and CIDRs), and reading and
//! writing the LPM tries of both families.

use std::{net::IpAddr, time::Duration};

use aya::maps::{Array, MapData, lpm_trie::Key};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use shield_common::{
    lists::{ListEntry, Origin},
    maps::Trie,
};
use thiserror::Error;

use crate::{
    clock,
    prefilter::Prefilter,
    program::{HostsV4, HostsV6, ListV4, ListV6},
};

/// Which list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Allow,
    Block,
}

impl ListKind {
    pub const fn noun(self) -> &'static str {
        match self {
            ListKind::Allow => "allowlist",
            ListKind::Block => "blocklist",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ListError {
    #[error(
        "'{input}' is not an IPv4 or IPv6 address or CIDR (examples: 198.18.0.7, 198.18.0.0/24, 2001:db8::/48)"
    )]
    NotAnAddress { input: String },
    #[error("'{input}' has host bits set; did you mean {network}?")]
    HostBitsSet { input: String, network: IpNet },
    #[error("the {list} is full ({used}/{capacity}); delete entries or wait for expiries")]
    Full { list: &'static str, used: usize, capacity: u32 },
    #[error("{net} is not in the {list}")]
    NotListed { net: IpNet, list: &'static str },
    #[error("writing {net} to the {list} failed: {reason}")]
    Kernel { net: IpNet, list: &'static str, reason: String },
}

/// Parse an address (taken as a /32 or /128) or a CIDR. Host bits must be zero, so a typo
/// like 198.18.0.7/16 is caught rather than silently widened.
pub fn parse_net(input: &str) -> Result<IpNet, ListError> {
    let trimmed = input.trim();
    if let Ok(addr) = trimmed.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet =
        trimmed.parse().map_err(|_| ListError::NotAnAddress { input: input.to_owned() })?;
    if net.addr() != net.network() {
        return Err(ListError::HostBitsSet { input: input.to_owned(), network: net.trunc() });
    }
    Ok(net)
}

/// One entry as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedNet {
    pub net: IpNet,
    /// Seconds left, or none for a permanent entry.
    pub expires_in_secs: Option<u64>,
    pub origin: String,
    pub created_at_unix: u64,
    /// Why the entry exists (from the state file), if anyone said.
    pub reason: Option<String>,
}

/// The maps of one list: exact addresses in hash maps, shorter prefixes in LPM tries (the
/// program consults a trie only while its `TRIES_IN_USE` flag is set, and a list only for
/// sources whose prefilter bit is set).
pub struct List<'a> {
    pub kind: ListKind,
    pub v4: &'a mut ListV4,
    pub v6: &'a mut ListV6,
    pub hosts_v4: &'a mut HostsV4,
    pub hosts_v6: &'a mut HostsV6,
    pub tries_in_use: &'a mut Array<MapData, u32>,
    pub prefilter: &'a Prefilter,
    /// This list's (IPv4, IPv6) tries, as `TRIES_IN_USE` indices.
    pub tries: (Trie, Trie),
    pub v4_capacity: u32,
    pub v6_capacity: u32,
}

impl List<'_> {
    /// Add or replace an entry expiring after `ttl`, created now.
    pub fn insert(
        &mut self,
        net: IpNet,
        ttl: Option<Duration>,
        origin: Origin,
    ) -> Result<(), ListError> {
        self.insert_entry(net, entry(ttl, origin, clock::unix_now()))
    }

    /// Entries per family: (IPv4, IPv6).
    pub fn counts(&self) -> (usize, usize) {
        (
            self.v4.keys().count() + self.hosts_v4.keys().count(),
            self.v6.keys().count() + self.hosts_v6.keys().count(),
        )
    }

    /// Add or replace an entry as given.
    pub fn insert_entry(&mut self, net: IpNet, entry: ListEntry) -> Result<(), ListError> {
        let list = self.kind.noun();
        self.prefilter.mark(self.kind, net);
        let result = match net {
            IpNet::V4(n) if n.prefix_len() == 32 => {
                self.hosts_v4.insert(n.addr().octets(), entry, 0)
            }
            IpNet::V6(n) if n.prefix_len() == 128 => {
                self.hosts_v6.insert(n.addr().octets(), entry, 0)
            }
            IpNet::V4(n) => {
                let trie = self.tries.0;
                self.mark_in_use(trie).and_then(|()| self.v4.insert(&key_v4(n), entry, 0))
            }
            IpNet::V6(n) => {
                let trie = self.tries.1;
                self.mark_in_use(trie).and_then(|()| self.v6.insert(&key_v6(n), entry, 0))
            }
        };
        result.map_err(|e| {
            if is_full(&e) {
                let (v4, v6) = self.counts();
                let (used, capacity) = match net {
                    IpNet::V4(_) => (v4, self.v4_capacity),
                    IpNet::V6(_) => (v6, self.v6_capacity),
                };
                ListError::Full { list, used, capacity }
            } else {
                ListError::Kernel { net, list, reason: e.to_string() }
            }
        })
    }

    /// Add or replace many entries with the same value: exact addresses in batches (one system
    /// call per few thousand), prefixes one by one. On error some may have been written; the
    /// caller undoes them.
    pub fn insert_many(&mut self, nets: &[IpNet], entry: ListEntry) -> Result<(), ListError> {
        let list = self.kind.noun();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            self.prefilter.mark(self.kind, *net);
            match net {
                IpNet::V4(n) if n.prefix_len() == 32 => v4.push(n.addr().octets()),
                IpNet::V6(n) if n.prefix_len() == 128 => v6.push(n.addr().octets()),
                _ => self.insert_entry(*net, entry)?,
            }
        }
        let batch_err = |e: std::io::Error, first: Option<IpNet>| match e.raw_os_error() {
            Some(libc::E2BIG) | Some(libc::ENOSPC) | Some(libc::ENOMEM) => {
                ListError::Full { list, used: 0, capacity: 0 }
            }
            _ => ListError::Kernel {
                net: first.unwrap_or_default(),
                list,
                reason: format!("batched map update failed: {e}"),
            },
        };
        crate::batch::update(&*self.hosts_v4, &v4, &vec![entry; v4.len()]).map_err(|e| {
            batch_err(e, v4.first().map(|a| IpNet::from(std::net::IpAddr::from(*a))))
        })?;
        crate::batch::update(&*self.hosts_v6, &v6, &vec![entry; v6.len()]).map_err(|e| {
            batch_err(e, v6.first().map(|a| IpNet::from(std::net::IpAddr::from(*a))))
        })?;
        Ok(())
    }

    /// Set a trie's in-use flag before the first entry goes in, so the program never skips a
    /// trie that holds something.
    fn mark_in_use(&mut self, trie: Trie) -> Result<(), aya::maps::MapError> {
        self.tries_in_use.set(trie as u32, 1, 0)
    }

    /// Clear the in-use flags of tries that are empty (the program then skips their lookups).
    pub fn refresh_in_use(&mut self) {
        let v4_used = self.v4.keys().next().is_some();
        let v6_used = self.v6.keys().next().is_some();
        let _ = self.tries_in_use.set(self.tries.0 as u32, u32::from(v4_used), 0);
        let _ = self.tries_in_use.set(self.tries.1 as u32, u32::from(v6_used), 0);
    }

    /// The entry for exactly `net`, if any (one lookup, no walk).
    pub fn get(&self, net: IpNet) -> Option<ListEntry> {
        match net {
            IpNet::V4(n) if n.prefix_len() == 32 => self.hosts_v4.get(&n.addr().octets(), 0).ok(),
            IpNet::V6(n) if n.prefix_len() == 128 => self.hosts_v6.get(&n.addr().octets(), 0).ok(),
            // An LPM lookup returns the longest match; keep it only if it is this prefix.
            IpNet::V4(n) => self.v4.get(&key_v4(n), 0).ok().filter(|_| {
                self.v4.keys().flatten().any(|k| {
                    k.prefix_len() == u32::from(n.prefix_len()) && k.data() == n.network().octets()
                })
            }),
            IpNet::V6(n) => self.v6.get(&key_v6(n), 0).ok().filter(|_| {
                self.v6.keys().flatten().any(|k| {
                    k.prefix_len() == u32::from(n.prefix_len()) && k.data() == n.network().octets()
                })
            }),
        }
    }

    /// Delete an exact entry.
    pub fn remove(&mut self, net: IpNet) -> Result<(), ListError> {
        let list = self.kind.noun();
        self.prefilter.note_removed();
        let result = match net {
            IpNet::V4(n) if n.prefix_len() == 32 => self.hosts_v4.remove(&n.addr().octets()),
            IpNet::V6(n) if n.prefix_len() == 128 => self.hosts_v6.remove(&n.addr().octets()),
            IpNet::V4(n) => self.v4.remove(&key_v4(n)),
            IpNet::V6(n) => self.v6.remove(&key_v6(n)),
        };
        result.map_err(|e| match e {
            aya::maps::MapError::KeyNotFound => ListError::NotListed { net, list },
            aya::maps::MapError::SyscallError(ref s)
                if s.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                ListError::NotListed { net, list }
            }
            other => ListError::Kernel { net, list, reason: other.to_string() },
        })
    }

    /// Every entry's network, both families, unsorted (keys only: cheaper than `entries`).
    pub fn nets(&self) -> Vec<IpNet> {
        let v4 = self.v4.keys().flatten().filter_map(|k| {
            Ipv4Net::new(k.data().into(), k.prefix_len() as u8).ok().map(IpNet::V4)
        });
        let hosts_v4 = self
            .hosts_v4
            .keys()
            .flatten()
            .map(|a| IpNet::V4(Ipv4Net::from(std::net::Ipv4Addr::from(a))));
        let v6 = self.v6.keys().flatten().filter_map(|k| {
            Ipv6Net::new(k.data().into(), k.prefix_len() as u8).ok().map(IpNet::V6)
        });
        let hosts_v6 = self
            .hosts_v6
            .keys()
            .flatten()
            .map(|a| IpNet::V6(Ipv6Net::from(std::net::Ipv6Addr::from(a))));
        v4.chain(hosts_v4).chain(v6).chain(hosts_v6).collect()
    }

    /// Every entry, both families, sorted.
    pub fn entries(&self) -> Vec<(IpNet, ListEntry)> {
        let mut out = Vec::new();
        for (key, entry) in self.v4.iter().flatten() {
            if let Ok(n) = Ipv4Net::new(key.data().into(), key.prefix_len() as u8) {
                out.push((IpNet::V4(n), entry));
            }
        }
        for (addr, entry) in self.hosts_v4.iter().flatten() {
            out.push((IpNet::V4(Ipv4Net::from(std::net::Ipv4Addr::from(addr))), entry));
        }
        for (key, entry) in self.v6.iter().flatten() {
            if let Ok(n) = Ipv6Net::new(key.data().into(), key.prefix_len() as u8) {
                out.push((IpNet::V6(n), entry));
            }
        }
        for (addr, entry) in self.hosts_v6.iter().flatten() {
            out.push((IpNet::V6(Ipv6Net::from(std::net::Ipv6Addr::from(addr))), entry));
        }
        out.sort_by_key(|(net, _)| *net);
        out
    }

    /// Entries as operators see them, expired ones left out.
    pub fn listed(&self) -> Vec<ListedNet> {
        let now = clock::monotonic_ns();
        self.entries()
            .into_iter()
            .filter(|(_, e)| e.active_at(now))
            .map(|(net, e)| ListedNet {
                net,
                expires_in_secs: clock::remaining(e.expires_at_ns).map(|d| d.as_secs()),
                origin: Origin::from_u32(e.origin).map_or("unknown", Origin::name).to_owned(),
                created_at_unix: e.created_at_unix,
                reason: None,
            })
            .collect()
    }

    /// Delete expired entries; returns how many.
    pub fn remove_expired(&mut self) -> usize {
        let now = clock::monotonic_ns();
        let expired: Vec<IpNet> =
            self.entries().into_iter().filter(|(_, e)| !e.active_at(now)).map(|(n, _)| n).collect();
        expired.into_iter().filter(|net| self.remove(*net).is_ok()).count()
    }
}

/// A list entry expiring after `ttl` (none: never).
pub fn entry(ttl: Option<Duration>, origin: Origin, created_at_unix: u64) -> ListEntry {
    ListEntry {
        expires_at_ns: clock::expiry_after(ttl),
        created_at_unix,
        origin: origin as u32,
        _reserved: 0,
    }
}

fn key_v4(net: Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

fn key_v6(net: Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

fn is_full(e: &aya::maps::MapError) -> bool {
    matches!(e, aya::maps::MapError::SyscallError(s)
        if matches!(s.io_error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::E2BIG) | Some(libc::ENOMEM)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_become_host_routes() {
        assert_eq!(parse_net("198.18.0.7").unwrap().to_string(), "198.18.0.7/32");
        assert_eq!(parse_net(" 2001:db8::1 ").unwrap().to_string(), "2001:db8::1/128");
    }

    #[test]
    fn cidrs_parse() {
        assert_eq!(parse_net("198.18.0.0/15").unwrap().prefix_len(), 15);
        assert_eq!(parse_net("2001:db8::/32").unwrap().prefix_len(), 32);
    }

    #[test]
    fn host_bits_are_refused_with_a_suggestion() {
        let err = parse_net("198.18.0.7/16").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'198.18.0.7/16' has host bits set; did you mean 198.18.0.0/16?"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "198.18.0",
            "198.18.0.256",
            "198.18.0.0/33",
            "2001:db8::/129",
            "example.com",
            "1.2.3.4/-1",
        ] {
            assert!(matches!(parse_net(bad), Err(ListError::NotAnAddress { .. })), "{bad}");
        }
    }
}
