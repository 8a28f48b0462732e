//! A TCP proxy for fault tests, put between the service and Postgres: it can cut every live
//! connection at once, and be re-pointed at another address (a restarted container).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

struct Shared {
    target: Mutex<SocketAddr>,
    /// One task per proxied connection pair; aborting it drops both sockets.
    pairs: Mutex<Vec<AbortHandle>>,
    accepted: AtomicU64,
    cut: AtomicU64,
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Live connection pairs cut by [`Proxy::cut_all`].
    pub cut: u64,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            pairs: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let acceptor = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            addr,
            shared,
            acceptor,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// New connections go to `target` from now on (live ones are left alone).
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Cuts every live connection pair at once: both sockets are reset, whatever is in flight
    /// is lost. Returns how many pairs were cut.
    pub fn cut_all(&self) -> u64 {
        let pairs = std::mem::take(&mut *self.shared.pairs.lock().unwrap());
        let mut cut = 0;
        for pair in pairs {
            if !pair.is_finished() {
                pair.abort();
                cut += 1;
            }
        }
        self.shared.cut.fetch_add(cut, Ordering::Relaxed);
        cut
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            cut: self.shared.cut.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for pair in self.shared.pairs.lock().unwrap().drain(..) {
            pair.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors, say: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let target = *shared.target.lock().unwrap();
        let mut pairs = shared.pairs.lock().unwrap();
        pairs.retain(|pair| !pair.is_finished());
        pairs.push(tokio::spawn(pipe(client, target)).abort_handle());
    }
}

/// Copies both ways until either side closes. When the task ends or is aborted, both sockets
/// are dropped with SO_LINGER 0: a reset, as from a broken network path. A target that does not
/// accept the connection means the client's connection is reset at once.
async fn pipe(mut client: TcpStream, target: SocketAddr) {
    let _ = client.set_zero_linger();
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = server.set_zero_linger();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
