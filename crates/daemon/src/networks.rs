//! `admin-networks`: which client addresses may send the commands that
//! change the cluster or destroy data (docs/security.md).
//!
//! The value is a comma- or space-separated list of CIDR prefixes
//! (`127.0.0.0/8, ::1/128, 10.0.0.0/8`); a bare address is a /32 (/128);
//! `any` (the default) is every address. An IPv4-mapped IPv6 peer
//! (`::ffff:10.1.2.3`) is matched as its IPv4 address.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::ConfigError;

/// The `admin-networks` option, the same in both daemons' tables.
pub const ADMIN_NETWORKS: crate::OptSpec = crate::OptSpec::new(
    "admin-networks",
    crate::OptKind::Str,
    Some("any"),
    true,
    "[flare-rs] networks (CIDR list, or any) allowed to send the commands that change the cluster or destroy data",
);

/// `cluster-secret-file`: a file holding the cluster's shared secret (at
/// least 16 bytes); when set, index and nodes authenticate each other
/// (docs/security.md). Read at start-up.
pub const CLUSTER_SECRET_FILE: crate::OptSpec = crate::OptSpec::new(
    "cluster-secret-file",
    crate::OptKind::Str,
    Some(""),
    false,
    "[flare-rs] file with the cluster's shared secret: index and nodes authenticate each other (empty: off)",
);

/// `cluster-secret-required`: with a secret, refuse unauthenticated peers
/// (false during a rolling upgrade).
pub const CLUSTER_SECRET_REQUIRED: crate::OptSpec = crate::OptSpec::new(
    "cluster-secret-required",
    crate::OptKind::Bool,
    Some("true"),
    true,
    "[flare-rs] with cluster-secret-file: refuse cluster commands from unauthenticated peers (false while upgrading)",
);

/// A set of networks, or every address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Networks {
    /// `None`: any address.
    nets: Option<Vec<IpNet>>,
}

impl Default for Networks {
    fn default() -> Self {
        Networks::any()
    }
}

impl Networks {
    /// Every address.
    pub fn any() -> Self {
        Networks { nets: None }
    }

    /// The `admin-networks` value of `settings`.
    pub fn admin(settings: &crate::Settings) -> Result<Self, ConfigError> {
        Networks::parse(
            ADMIN_NETWORKS.name,
            settings.str(ADMIN_NETWORKS.name).unwrap_or("any"),
        )
    }

    /// Parse the value of option `option`.
    pub fn parse(option: &str, value: &str) -> Result<Self, ConfigError> {
        let words: Vec<&str> = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() || words == ["any"] {
            return Ok(Networks::any());
        }
        let invalid = |w: &str| ConfigError::InvalidValue {
            option: option.to_string(),
            value: format!(
                "{value} (not a network: {w}; write CIDR prefixes like 10.0.0.0/8, or any)"
            ),
        };
        let nets = words
            .iter()
            .map(|w| {
                IpNet::from_str(w)
                    .or_else(|_| IpAddr::from_str(w).map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| invalid(w))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Networks { nets: Some(nets) })
    }

    /// Is `ip` in one of the networks?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match &self.nets {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }

    /// Is the peer `host:port` (as connections record it) in the networks?
    /// A peer that is not an IP address (a unix socket) is local: allowed.
    pub fn allows_peer(&self, peer: &str) -> bool {
        match peer.parse::<std::net::SocketAddr>() {
            Ok(a) => self.contains(a.ip()),
            Err(_) => true,
        }
    }
}

impl std::fmt::Display for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.nets {
            None => f.write_str("any"),
            Some(nets) => {
                let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let n = Networks::parse("admin-networks", "127.0.0.0/8, ::1/128 10.1.2.3").expect("ok");
        assert!(n.contains("127.0.0.1".parse().expect("ip")));
        assert!(n.contains("127.9.9.9".parse().expect("ip")));
        assert!(n.contains("::1".parse().expect("ip")));
        assert!(n.contains("10.1.2.3".parse().expect("ip")));
        assert!(n.contains("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!n.contains("10.1.2.4".parse().expect("ip")));
        assert!(!n.contains("192.168.0.1".parse().expect("ip")));
        assert!(n.allows_peer("127.0.0.1:5000"));
        assert!(!n.allows_peer("192.168.0.1:5000"));
        assert!(n.allows_peer("unix"));
        assert_eq!(n.to_string(), "127.0.0.0/8,::1/128,10.1.2.3/32");
        // host bits are dropped
        let n = Networks::parse("x", "10.1.2.3/8").expect("ok");
        assert_eq!(n.to_string(), "10.0.0.0/8");
        for any in ["", "any", " any "] {
            let n = Networks::parse("x", any).expect("any");
            assert_eq!(n, Networks::any());
            assert!(n.contains("8.8.8.8".parse().expect("ip")));
        }
        let e = Networks::parse("admin-networks", "10.0.0.0/8,bogus").expect_err("bad");
        assert!(e.to_string().contains("bogus"), "{e}");
        assert!(Networks::parse("x", "10.0.0.0/33").is_err());
    }
}
