//! `atomic-signup healthcheck`: `GET /healthz` of the service on `BIND_ADDR`, for a container's
//! HEALTHCHECK (no curl in the image, and no port written into the Dockerfile).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Where a client on this host reaches a service listening on `bind`: an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn target(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// `Ok` when `GET /healthz` on `bind` answers 200 within [`TIMEOUT`]; else why not.
pub async fn run(bind: SocketAddr) -> Result<(), String> {
    let url = format!("http://{}/healthz", target(bind));
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("{url} answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_reached_on_loopback() {
        let at = |s: &str| target(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8000"), "127.0.0.1:8000");
        assert_eq!(at("[::]:9000"), "[::1]:9000");
        assert_eq!(at("10.1.2.3:8080"), "10.1.2.3:8080");
    }
}
