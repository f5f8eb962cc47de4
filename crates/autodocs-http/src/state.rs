//! What every handler can reach.

use std::sync::Arc;

use autodocs_domain::Services;

/// Checks that the database answers, for `/api/health/`.
pub trait HealthCheck: Send + Sync {
    /// Whether the database answers a trivial query (blocking).
    fn database_ok(&self) -> bool;
    /// How the database pool is used now, for the metrics (`None`: no pool).
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }
}

/// Connections of a database pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Lent out to a caller.
    pub in_use: u32,
    /// Open and waiting.
    pub idle: u32,
}

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub services: Services,
    /// The database probe.
    pub health: Arc<dyn HealthCheck>,
    /// Rate limits of the anonymous auth endpoints (shared by every
    /// process on PostgreSQL).
    pub throttle: Arc<crate::throttle::Throttle>,
    /// The sockets of this process.
    pub hub: Arc<crate::hub::EventHub>,
    /// The threads that run short database use cases.
    pub lane: crate::lane::DatabaseLane,
    /// The limits that keep one client from starving the others.
    pub fairness: Arc<Fairness>,
    /// The public base URL and the client address of each request
    /// (`server.public_url`, `server.trusted_proxies`).
    pub client: Arc<crate::client::ClientPolicy>,
    /// Makes and checks signed download links (`uploads.link_seconds`).
    pub links: Arc<crate::links::LinkSigner>,
    /// Who may read `GET /metrics` (`server.metrics_allow`).
    pub metrics_allow: Arc<crate::client::TrustedProxies>,
}

/// The limits that keep one client from starving the others: stalled
/// bodies are cut, uploads per user are capped, password hashing has its
/// own bounded queue, and failed logins and password changes are counted
/// per account.
pub struct Fairness {
    /// A request body that sends nothing for this long is cut (408).
    pub body_timeout: std::time::Duration,
    /// Uploads in progress per user.
    pub uploads: crate::throttle::ConcurrencyCap<autodocs_domain::user::UserId>,
    /// The password hashing threads and their bounded queue.
    pub hashing: Arc<crate::auth::HashQueue>,
    /// Hashes waiting or running per client address on the anonymous auth
    /// endpoints, so one address cannot fill the queue everyone shares;
    /// `None` when throttling is off.
    pub hashing_per_address: Option<crate::throttle::ConcurrencyCap<std::net::IpAddr>>,
    /// Failed logins per account (shared by every process on PostgreSQL).
    pub login_failures: crate::throttle::FailureWindow,
    /// Failed password changes (wrong `old_password`) per user (shared by
    /// every process on PostgreSQL).
    pub password_failures: crate::throttle::FailureWindow,
}
