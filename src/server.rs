//! The HTTP/1.1 accept loop (hyper, as `axum::serve` uses it, plus what `axum::serve` does not
//! offer):
//! - a header-read timeout (`HTTP_HEADER_READ_TIMEOUT_S`): a connection that does not deliver a
//!   whole request head in time — trickling bytes, sending nothing, or idling between keep-alive
//!   requests — is closed;
//! - a bound on open connections (`HTTP_MAX_CONNECTIONS`): beyond it, new connections wait in the
//!   kernel's backlog instead of taking file descriptors;
//! - a bound on open connections per client address (`HTTP_MAX_CONNECTIONS_PER_IP`; an IPv6
//!   client by its /64): a connection beyond it is closed as soon as it is accepted, before any
//!   byte is read, so one client cannot hold every connection;
//! - graceful shutdown: after `shutdown`, no new connections; open ones finish their request.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must arrive within this (also the keep-alive idle limit).
    pub header_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections per client address at most (0 = no bound).
    pub max_connections_per_ip: usize,
}

/// Open connections per client address (IPv4, or IPv6 /64). An entry exists only while its
/// client has a connection open, so the table is never larger than the open connections.
#[derive(Clone, Default)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection of a client: counted until dropped.
struct ClientSlot {
    table: PerClient,
    client: IpAddr,
}

impl PerClient {
    /// A slot for `peer`, unless it already holds `max` connections.
    fn take(&self, peer: IpAddr, max: usize) -> Option<ClientSlot> {
        let client = crate::routes::client_ip::rate_limit_bucket(peer);
        let mut table = self.lock();
        let open = table.entry(client).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(ClientSlot {
            table: self.clone(),
            client,
        })
    }

    /// The table, also after a panic elsewhere left its lock poisoned (the counts stay right:
    /// no code that can panic runs while it is held).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        if let Some(open) = table.get_mut(&self.client) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                table.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for open connections to
/// finish their request. The handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::default();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = if limits.max_connections_per_ip == 0 {
            None
        } else {
            match per_client.take(peer.ip(), limits.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    // Closed unread; the permit goes back with it.
                    metrics::counter!(crate::observe::CONNECTIONS_REFUSED).increment(1);
                    tracing::debug!(
                        "connection closed: its client holds HTTP_MAX_CONNECTIONS_PER_IP"
                    );
                    continue;
                }
            }
        };
        // Answers go out at once (no Nagle delay on small responses).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
        let tower_service = match make_service.call(peer).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
            tower_service.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), hyper_service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
