//! Builds the pool, the hasher and the router; binds the listener; runs until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::captcha::CaptchaVerifier;
use crate::config::{CorsOrigins, Hook, Settings};
use crate::domain::SignupRules;
use crate::gotrue::GoTrueClient;
use crate::hooks::HookTarget;
use crate::idempotency::Idempotency;
use crate::outbox::Worker;
use crate::outbox::hook::HookWorker;
use crate::password::Hasher;
use crate::routes::login::FailedLoginTimes;
use crate::routes::{self, AppState, RateLimitTables};
use crate::server::{self, ConnectionLimits};
use crate::signup::{SignupPolicy, SignupService};
use crate::store;
use crate::telemetry;

/// Request bodies larger than this are refused with 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Hasher(#[from] crate::password::HasherError),
    #[error(
        "the database is not ready for atomic-signup; missing: {}. Run `atomic-signup migrate` \
         (and check that DATABASE_URL points at the Supabase database)",
        .0.join("; ")
    )]
    SchemaMissing(Vec<String>),
    #[error(
        "SIGNUP_ROLES names {} that the database does not allow (atomic_signup.signup_roles): \
         run `atomic-signup migrate` with this SIGNUP_ROLES, then start the service again",
        .0.join(", ")
    )]
    RolesNotInDatabase(Vec<String>),
    #[error(
        "the profile schema (PROFILE_SCHEMA_PATH, PROFILE_TABLE) does not fit the database: {}",
        .0.join("; ")
    )]
    ProfileMismatch(Vec<String>),
    #[error("cannot write the OpenAPI document: {0}")]
    OpenApi(serde_json::Error),
    #[error("cannot build the GoTrue HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The periodic purge of expired Idempotency-Keys.
struct Purge {
    pool: store::Database,
    interval: Duration,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The metrics listener and its router (METRICS_BIND_ADDR), when metrics are on.
    metrics: Option<(TcpListener, Router)>,
    rate_limits: RateLimitTables,
    worker: Option<Worker>,
    /// The after_user_created hook's worker, when that hook is enabled.
    hook_worker: Option<HookWorker>,
    purge: Purge,
    settings: Arc<Settings>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        if settings.cors.origins == CorsOrigins::Any {
            tracing::warn!(
                "CORS_ALLOWED_ORIGINS=*: a page on any origin may call the API; list your \
                 frontends' origins instead"
            );
        }
        let pool = store::Database::new(&settings.database);
        check_database(&pool, &settings.signup).await?;
        let hasher = Hasher::for_this_machine(settings.argon2, settings.hash_queue_per_core)?;
        let gotrue = settings
            .gotrue
            .as_ref()
            .map(GoTrueClient::new)
            .transpose()
            .map_err(StartupError::HttpClient)?;
        let outbox_wake = Arc::new(Notify::new());
        let worker = outbox_worker(&settings, &pool, gotrue.as_ref(), &outbox_wake);
        let hook_wake = Arc::new(Notify::new());
        let hook_worker = hook_target(settings.hooks.after_user_created.as_ref())?.map(|hook| {
            HookWorker::new(pool.clone(), hook, settings.outbox, Arc::clone(&hook_wake))
        });
        let client_ip = routes::ClientIp {
            trust_forwarded_for: settings.trust_forwarded_for,
        };
        let purge = Purge {
            pool: pool.clone(),
            interval: settings.idempotency.purge_interval,
        };
        let failed_logins = Arc::new(FailedLoginTimes::measure(&hasher).await);
        let after_user_created = hook_worker.is_some().then_some(hook_wake);
        let signup = signup_service(&settings, &pool, hasher, outbox_wake, after_user_created)?;
        let openapi =
            routes::openapi::document(&settings.signup.profile).map_err(StartupError::OpenApi)?;
        let settings = Arc::new(settings);
        let state = AppState {
            settings: Arc::clone(&settings),
            db: pool.clone(),
            signup: Arc::new(signup),
            gotrue,
            metrics: crate::observe::install(),
            openapi: Arc::new(openapi),
            client_ip,
            failed_logins,
            readiness: Arc::default(),
        };
        let listener = bind(settings.bind_addr).await?;
        let metrics = match settings.metrics_bind_addr {
            Some(addr) => Some((bind(addr).await?, routes::metrics_router(state.clone()))),
            None => None,
        };
        let (router, rate_limits) = app_router(state);
        Ok(Self {
            listener,
            router,
            metrics,
            rate_limits,
            worker,
            hook_worker,
            purge,
            settings,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics listener's address; `None` when metrics are off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves (and runs the outbox worker) until `shutdown` completes; then lets in-flight
    /// requests finish and stops the worker after the delivery under way.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop_worker = CancellationToken::new();
        let worker = self
            .worker
            .map(|w| tokio::spawn(w.run(stop_worker.clone())));
        let hook_worker = self
            .hook_worker
            .map(|w| tokio::spawn(w.run(stop_worker.clone())));
        let purge = tokio::spawn(crate::idempotency::purge_expired_keys(
            self.purge.pool,
            self.purge.interval,
            stop_worker.clone(),
        ));
        let prune = (!self.rate_limits.is_empty()).then(|| {
            tokio::spawn(prune_rate_limits(
                self.rate_limits,
                self.settings.rate_limit_prune_interval,
                stop_worker.clone(),
            ))
        });
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "listening");
        }
        let signalled = CancellationToken::new();
        let on_signal = signalled.clone();
        let limits = ConnectionLimits {
            header_read_timeout: self.settings.http_header_read_timeout,
            max_connections: self.settings.http_max_connections,
            max_connections_per_ip: self.settings.http_max_connections_per_ip,
        };
        if let Some((listener, router)) = self.metrics {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics listening");
            }
            let stop = signalled.clone();
            tokio::spawn(async move {
                server::serve(listener, router, limits, stop.cancelled_owned()).await;
            });
        }
        let serve = server::serve(self.listener, self.router, limits, async move {
            shutdown.await;
            on_signal.cancel();
        });
        // In-flight requests finish (a signup commits or rolls back) within SHUTDOWN_TIMEOUT_S;
        // after that the process stops waiting for them.
        let timeout = self.settings.shutdown_timeout;
        let deadline = async {
            signalled.cancelled().await;
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            () = serve => {},
            () = deadline => {
                tracing::warn!(?timeout, "in-flight requests did not finish in time; stopping anyway");
            }
        };
        stop_worker.cancel();
        if let Some(handle) = worker
            && tokio::time::timeout(timeout, handle).await.is_err()
        {
            tracing::warn!("the outbox worker did not stop in time");
        }
        if let Some(handle) = hook_worker
            && tokio::time::timeout(timeout, handle).await.is_err()
        {
            tracing::warn!("the after_user_created hook worker did not stop in time");
        }
        if tokio::time::timeout(timeout, purge).await.is_err() {
            tracing::warn!("the idempotency key purge did not stop in time");
        }
        if let Some(prune) = prune {
            let _ = tokio::time::timeout(timeout, prune).await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The confirmation-mail worker. Mails go out through GoTrue: without it, rows wait in the outbox
/// until a service with GoTrue configured runs.
fn outbox_worker(
    settings: &Settings,
    pool: &store::Database,
    gotrue: Option<&GoTrueClient>,
    wake: &Arc<Notify>,
) -> Option<Worker> {
    match gotrue {
        Some(client) => Some(Worker::new(
            pool.clone(),
            client.clone(),
            settings.outbox,
            Arc::clone(wake),
        )),
        None => {
            if settings.require_email_confirmation {
                tracing::warn!(
                    "GoTrue is not configured (SUPABASE_URL / SUPABASE_ANON_KEY): login is off \
                     and confirmation emails wait in the outbox"
                );
            }
            None
        }
    }
}

/// The signup service and what it needs from the settings.
fn signup_service(
    settings: &Settings,
    pool: &store::Database,
    hasher: Hasher,
    outbox_wake: Arc<Notify>,
    after_user_created: Option<Arc<Notify>>,
) -> Result<SignupService, StartupError> {
    let captcha = settings
        .captcha
        .clone()
        .map(CaptchaVerifier::new)
        .transpose()
        .map_err(StartupError::HttpClient)?;
    // A claimed key stays locked longer than any request can run.
    let idempotency = Idempotency {
        secret: settings.idempotency.secret.clone(),
        lease: settings.request_timeout
            + settings.database.statement_timeout
            + Duration::from_secs(1),
    };
    Ok(SignupService {
        db: pool.clone(),
        hasher,
        captcha,
        idempotency,
        outbox_wake,
        after_user_created,
        rules: settings.signup.clone(),
        policy: SignupPolicy {
            disabled: settings.disable_signup,
            require_email_confirmation: settings.require_email_confirmation,
            conceal_existing_emails: settings.conceal_existing_emails,
            conceal_min_duration: settings.conceal_min_duration,
        },
        before_user_created: hook_target(settings.hooks.before_user_created.as_ref())?,
    })
}

/// A configured hook, ready to call.
fn hook_target(hook: Option<&Hook>) -> Result<Option<HookTarget>, StartupError> {
    hook.map(HookTarget::new)
        .transpose()
        .map_err(StartupError::HttpClient)
}

/// Refuses to start when the schema is incomplete. An unreachable database is not fatal: the
/// pool connects on demand, the service answers 503 until the database is back (and the check is
/// skipped; said once here so an operator sees a wrong URL at once).
async fn check_database(pool: &store::Database, rules: &SignupRules) -> Result<(), StartupError> {
    match tokio::time::timeout(Duration::from_secs(5), database_state(pool, rules)).await {
        Ok(Ok(DatabaseState::Ready)) => {
            tracing::info!(
                "database reachable; schema, migrations, signup roles and profile fields in place"
            );
            Ok(())
        }
        Ok(Ok(DatabaseState::SchemaMissing(missing))) => Err(StartupError::SchemaMissing(missing)),
        Ok(Ok(DatabaseState::RolesMissing(roles))) => Err(StartupError::RolesNotInDatabase(roles)),
        Ok(Ok(DatabaseState::ProfileMismatch(problems))) => {
            Err(StartupError::ProfileMismatch(problems))
        }
        Ok(Err(err @ store::StoreError::AuthenticationFailed(_))) => {
            tracing::error!(error = %err, "check the user and password of DATABASE_URL; schema not checked");
            Ok(())
        }
        Ok(Err(err @ store::StoreError::Unavailable(_))) => {
            tracing::warn!(error = %err, "database not reachable yet; schema not checked");
            Ok(())
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "the schema check could not run; schema not checked");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("database did not answer within 5 s; schema not checked");
            Ok(())
        }
    }
}

/// What the startup check found in the database.
enum DatabaseState {
    Ready,
    /// Tables, functions or migrations missing.
    SchemaMissing(Vec<String>),
    /// SIGNUP_ROLES names roles that `atomic_signup.signup_roles` does not hold.
    RolesMissing(Vec<String>),
    /// PROFILE_SCHEMA_PATH does not fit `public.profiles` or `atomic_signup.profile_columns`.
    ProfileMismatch(Vec<String>),
}

async fn database_state(
    pool: &store::Database,
    rules: &SignupRules,
) -> Result<DatabaseState, store::StoreError> {
    let missing = store::schema_check::missing_schema(pool).await?;
    if !missing.is_empty() {
        return Ok(DatabaseState::SchemaMissing(missing));
    }
    let roles = store::signup_roles::missing(pool, rules.roles.names()).await?;
    if !roles.is_empty() {
        return Ok(DatabaseState::RolesMissing(roles));
    }
    let problems =
        store::profile_columns::check(pool, &rules.profile_table, &rules.profile).await?;
    Ok(if problems.is_empty() {
        DatabaseState::Ready
    } else {
        DatabaseState::ProfileMismatch(problems)
    })
}

/// The full router: routes plus body limit, request ids, tracing and panic handling, and CORS
/// around all of it; and the rate limiters' tables.
pub fn app_router(state: AppState) -> (Router, RateLimitTables) {
    let cors = routes::cors::layer(&state.settings.cors);
    let (router, tables) = routes::router(state);
    let router = telemetry::layer(router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)));
    let router = match cors {
        Some(cors) => router.layer(cors).layer(axum::middleware::from_fn(
            routes::cors::preflight_no_content,
        )),
        None => router,
    };
    // Outermost: it sees every answer, including CORS's and the rate limiter's.
    let router = router.layer(axum::middleware::from_fn(
        routes::unread_body::close_if_body_unread,
    ));
    (router, tables)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// Every `interval`, the rate limiters forget the clients whose bucket is full again.
async fn prune_rate_limits(tables: RateLimitTables, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => tables.prune(),
            () = stop.cancelled() => return,
        }
    }
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
