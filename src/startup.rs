//! Builds the pool, the hasher and the router; binds the listener; runs until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::password::Hasher;
use crate::routes::{self, AppState};
use crate::telemetry;

/// Request bodies larger than this are refused with 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid argon2 parameters: {0}")]
    Argon2(argon2::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = settings.database.pool();
        // Not fatal: the pool connects on demand and the service answers 503 until the
        // database is back. Said once here so an operator sees a wrong URL at once.
        match tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query("select 1").execute(&pool),
        )
        .await
        {
            Ok(Ok(_)) => tracing::info!("database reachable"),
            Ok(Err(err)) => tracing::warn!(error = %err, "database not reachable yet"),
            Err(_) => tracing::warn!("database did not answer within 5 s"),
        }
        let hasher = Hasher::for_this_machine(settings.argon2).map_err(StartupError::Argon2)?;
        let state = AppState {
            pool,
            hasher,
            signup_roles: settings.signup_roles,
            require_email_confirmation: settings.require_email_confirmation,
        };
        let listener = TcpListener::bind(settings.bind_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.bind_addr,
                source,
            })?;
        Ok(Self {
            listener,
            router: app_router(state),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "listening");
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// The full router: routes plus body limit, request ids, tracing and panic handling.
pub fn app_router(state: AppState) -> Router {
    telemetry::layer(routes::router(state).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
