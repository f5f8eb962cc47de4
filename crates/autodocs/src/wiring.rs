//! Picks the adapters from the settings and plugs them into the ports.

use std::sync::Arc;

use anyhow::{Context, bail};
use autodocs_db::{Database, DieselUnitOfWork, PoolSettings};
use autodocs_domain::Services;
use autodocs_domain::ports::Clock;
use autodocs_http::auth::{DjangoPasswordHasher, JwtTokenService};
use autodocs_http::{AppState, HealthCheck};
use chrono::{DateTime, SubsecRound, Utc};

use crate::settings::Settings;

/// The system clock, at the microsecond precision both databases keep.
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

struct DatabaseHealth(Database);

impl HealthCheck for DatabaseHealth {
    fn database_ok(&self) -> bool {
        self.0.ping()
    }
}

pub fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let pool = PoolSettings {
        max_connections: settings.database.max_connections,
        ..PoolSettings::default()
    };
    Database::connect(&settings.database.url, &pool).context("cannot open the database")
}

/// Applies pending migrations where allowed; elsewhere refuses to run on an
/// outdated schema rather than migrate silently.
pub fn ensure_migrated(settings: &Settings, database: &Database) -> anyhow::Result<()> {
    if settings.database.auto_migrate && !settings.is_production() {
        for version in database.migrate()? {
            tracing::info!(%version, "applied migration");
        }
        return Ok(());
    }
    let pending = database.pending_migrations()?;
    if !pending.is_empty() {
        bail!(
            "{} migration(s) pending ({}); run `autodocs migrate` first",
            pending.len(),
            pending.join(", ")
        );
    }
    Ok(())
}

pub fn services(settings: &Settings, database: &Database) -> Services {
    let auth = &settings.auth;
    Services {
        uow: Arc::new(DieselUnitOfWork::new(database.clone())),
        hasher: Arc::new(DjangoPasswordHasher::new(auth.password_iterations)),
        tokens: Arc::new(JwtTokenService::new(
            auth.secret_key.as_bytes(),
            chrono::Duration::seconds(auth.access_token_lifetime_seconds),
            chrono::Duration::seconds(auth.refresh_token_lifetime_seconds),
        )),
        clock: Arc::new(SystemClock),
    }
}

pub fn app_state(settings: &Settings, database: &Database) -> AppState {
    AppState {
        services: services(settings, database),
        health: Arc::new(DatabaseHealth(database.clone())),
    }
}
