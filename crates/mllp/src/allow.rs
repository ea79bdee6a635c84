//! IP allow-lists for listeners.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A set of networks allowed to connect. An empty list allows everyone.
///
/// ```
/// use mllp::AllowList;
/// let allow = AllowList::parse(["10.20.0.0/16", "127.0.0.1", "::1"]).unwrap();
/// assert!(allow.allows("10.20.3.4".parse().unwrap()));
/// assert!(allow.allows("::ffff:127.0.0.1".parse().unwrap()));
/// assert!(!allow.allows("10.21.0.1".parse().unwrap()));
/// assert!(AllowList::any().allows("192.0.2.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

/// An allow-list entry that is neither a CIDR network nor an IP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allow-list entry {entry:?}: expected an IP address or a CIDR network such as 10.20.0.0/16"
)]
pub struct AllowListError {
    /// The offending entry, as given.
    pub entry: String,
}

impl AllowList {
    /// Allow every address.
    pub fn any() -> Self {
        Self::default()
    }

    /// Parse CIDR networks (`10.20.0.0/16`, `fd00::/8`) and bare addresses
    /// (`127.0.0.1` = `/32`, `::1` = `/128`). Surrounding whitespace is ignored.
    pub fn parse<I, S>(entries: I) -> Result<Self, AllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for entry in entries {
            let raw = entry.as_ref();
            let text = raw.trim();
            let net = if text.contains('/') {
                IpNet::from_str(text).ok()
            } else {
                IpAddr::from_str(text).ok().map(IpNet::from)
            };
            match net {
                // `trunc` so that `10.20.1.1/16` means the network a reader expects.
                Some(net) => nets.push(net.trunc()),
                None => {
                    return Err(AllowListError {
                        entry: raw.to_owned(),
                    });
                }
            }
        }
        Ok(Self { nets })
    }

    /// Whether the list has no entries (and so allows everyone).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The networks in the list.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `addr` may connect. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as
    /// seen on dual-stack sockets) are checked as the IPv4 address they carry.
    pub fn allows(&self, addr: IpAddr) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let canonical = match addr {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.nets
            .iter()
            .any(|net| net.contains(&canonical) || net.contains(&addr))
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;

    /// Comma- or whitespace-separated entries.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|e| !e.is_empty()),
        )
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nets.is_empty() {
            return f.write_str("any");
        }
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_allows_all() {
        let a = AllowList::parse(Vec::<String>::new()).unwrap();
        assert!(a.is_empty());
        assert!(a.allows(ip("8.8.8.8")));
        assert!(a.allows(ip("::1")));
    }

    #[test]
    fn cidr_and_bare() {
        let a = AllowList::parse(["10.20.0.0/16", " 127.0.0.1 ", "fd00::/8", "::1"]).unwrap();
        assert!(a.allows(ip("10.20.255.1")));
        assert!(!a.allows(ip("10.21.0.1")));
        assert!(a.allows(ip("127.0.0.1")));
        assert!(!a.allows(ip("127.0.0.2")));
        assert!(a.allows(ip("fd12::5")));
        assert!(a.allows(ip("::1")));
        assert!(!a.allows(ip("::2")));
        assert!(!a.allows(ip("fe80::1")));
    }

    #[test]
    fn host_bits_are_ignored() {
        let a = AllowList::parse(["10.20.1.1/16"]).unwrap();
        assert!(a.allows(ip("10.20.200.1")));
        assert_eq!(a.to_string(), "10.20.0.0/16");
    }

    #[test]
    fn ipv4_mapped() {
        let a = AllowList::parse(["10.0.0.0/8"]).unwrap();
        assert!(a.allows(ip("::ffff:10.1.2.3")));
        assert!(!a.allows(ip("::ffff:11.1.2.3")));
        let a = AllowList::parse(["::ffff:10.0.0.0/104"]).unwrap();
        assert!(a.allows(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn errors_name_the_entry() {
        let e = AllowList::parse(["10.0.0.0/8", "10.0.0.300/8"]).unwrap_err();
        assert_eq!(e.entry, "10.0.0.300/8");
        assert!(e.to_string().contains("10.0.0.300/8"));
        assert_eq!(AllowList::parse(["bogus"]).unwrap_err().entry, "bogus");
        assert!(AllowList::parse(["10.0.0.0/33"]).is_err());
        assert!(AllowList::parse([""]).is_err());
    }

    #[test]
    fn from_str_list() {
        let a: AllowList = "10.0.0.0/8, 192.168.1.5".parse().unwrap();
        assert_eq!(a.networks().len(), 2);
        assert_eq!(a.to_string(), "10.0.0.0/8, 192.168.1.5/32");
    }
}
