//! Who the client is: the socket's peer address, or — only with TRUST_FORWARDED_FOR=true, for a
//! service behind a trusted proxy — the address that proxy appended to `X-Forwarded-For` (the
//! right-most entry: entries further left come from the client and can be forged).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    pub trust_forwarded_for: bool,
}

impl ClientIp {
    /// The client's address: with TRUST_FORWARDED_FOR, the right-most `X-Forwarded-For` entry
    /// (the one the trusted proxy appended; `ip`, `ip:port` or `[v6]:port`); otherwise, or when
    /// that entry does not parse, the socket's peer. Never an earlier entry: those come from the
    /// client.
    pub fn resolve(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(ip) = right_most_forwarded_for(headers)
        {
            return Some(ip);
        }
        peer.map(|p| p.ip())
    }
}

fn right_most_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })
}

/// The rate limiters' bucket of an address: IPv4 as is; IPv6 by its /64 (one host usually holds
/// a whole /64), IPv4-mapped IPv6 as the IPv4 address.
pub fn rate_limit_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// The rate limiters' key: one bucket per client IPv4 address or IPv6 /64.
impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        self.resolve(req.headers(), peer)
            .map(rate_limit_bucket)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_only_when_trusted_and_the_right_most_entry() {
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 5000)));
        let h = headers(&["1.1.1.1, 2.2.2.2", "3.3.3.3"]);
        let untrusted = ClientIp {
            trust_forwarded_for: false,
        };
        let trusted = ClientIp {
            trust_forwarded_for: true,
        };
        assert_eq!(
            untrusted.resolve(&h, peer),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(trusted.resolve(&h, peer), Some("3.3.3.3".parse().unwrap()));
        assert_eq!(
            trusted.resolve(&headers(&["garbage"]), peer),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(trusted.resolve(&HeaderMap::new(), None), None);
    }

    #[test]
    fn only_the_right_most_entry_counts_in_every_form() {
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 5000)));
        let trusted = ClientIp {
            trust_forwarded_for: true,
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let cases = [
            ("172.16.0.1, 203.0.113.9:51234", ip("203.0.113.9")),
            ("172.16.0.1, [2001:db8::1]:443", ip("2001:db8::1")),
            ("172.16.0.1, [2001:db8::1]", ip("2001:db8::1")),
            ("172.16.0.1, 2001:db8::2", ip("2001:db8::2")),
            // Unparsable right-most entry: the peer, never the (forgeable) earlier entry.
            ("172.16.0.1, garbage", ip("10.0.0.1")),
            ("172.16.0.1,", ip("10.0.0.1")),
            ("172.16.0.1, 203.0.113.9:notaport", ip("10.0.0.1")),
        ];
        for (xff, want) in cases {
            assert_eq!(trusted.resolve(&headers(&[xff]), peer), want, "{xff}");
        }
        // Several headers: the last one's right-most entry.
        assert_eq!(
            trusted.resolve(&headers(&["1.1.1.1", "2.2.2.2, bad"]), peer),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let b = |s: &str| rate_limit_bucket(s.parse().unwrap()).to_string();
        assert_eq!(b("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(b("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::");
        assert_ne!(b("2001:db8:1:3::1"), "2001:db8:1:2::");
        assert_eq!(b("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(b("192.0.2.7"), "192.0.2.7");
    }
}
