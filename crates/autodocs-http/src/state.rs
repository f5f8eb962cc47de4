//! What every handler can reach.

use std::sync::Arc;

use autodocs_domain::Services;

/// Checks that the database answers, for `/api/health/`.
pub trait HealthCheck: Send + Sync {
    /// Whether the database answers a trivial query (blocking).
    fn database_ok(&self) -> bool;
}

/// Shared application state.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub services: Services,
    /// The database probe.
    pub health: Arc<dyn HealthCheck>,
    /// Rate limits of the anonymous auth endpoints.
    pub throttle: Arc<crate::throttle::Throttle>,
    /// The sockets of this process.
    pub hub: Arc<crate::hub::EventHub>,
    /// The threads that run short database use cases.
    pub lane: crate::lane::DatabaseLane,
}
