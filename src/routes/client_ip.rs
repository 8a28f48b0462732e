//! Who the client is: the socket's peer address, or — only with TRUST_FORWARDED_FOR=true, for a
//! service behind a trusted proxy — the address that proxy appended to `X-Forwarded-For` (the
//! right-most entry: entries further left come from the client and can be forged).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    pub trust_forwarded_for: bool,
}

impl ClientIp {
    pub fn resolve(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(ip) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back()
        {
            return Some(ip);
        }
        peer.map(|p| p.ip())
    }
}

/// The rate limiters' key: one bucket per client IP.
impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        self.resolve(req.headers(), peer)
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
}
