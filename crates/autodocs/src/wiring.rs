//! Picks the adapters from the settings and plugs them into the ports.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use autodocs_db::{
    Backend, Database, DieselUnitOfWork, PgListener, PgNotifyPublisher, PoolSettings,
};
use autodocs_domain::events::{DiscardEvents, EventPublisher};
use autodocs_domain::ports::{Clock, FileStorage, RateWindows};
use autodocs_domain::usecases::steps::MaxSteps;
use autodocs_domain::usecases::sweep::{
    self, MediaRootBinding, SweepPolicy, SweepRefusal, SweepReport,
};
use autodocs_domain::usecases::{Limits, Ports, Services};
use autodocs_fetch::{FetchSettings, HttpFetcher};
use autodocs_http::auth::{BoundedHasher, DjangoPasswordHasher, HashQueue, JwtTokenService};
use autodocs_http::hub::{EventHub, SocketPolicy};
use autodocs_http::lane::DatabaseLane;
use autodocs_http::links::LinkSigner;
use autodocs_http::state::Fairness;
use autodocs_http::throttle::{ConcurrencyCap, FailureWindow, Throttle};
use autodocs_http::{AppState, HealthCheck};
use autodocs_storage::LocalStorage;
use autodocs_storage::s3::S3Storage;
use chrono::{DateTime, SubsecRound, Utc};

use crate::settings::{Settings, StorageBackend};

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

    fn pool_use(&self) -> Option<autodocs_http::state::PoolUse> {
        let (in_use, idle) = self.0.pool_use();
        Some(autodocs_http::state::PoolUse { in_use, idle })
    }
}

pub fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let pool = PoolSettings {
        max_connections: settings.database.max_connections,
        ..PoolSettings::default()
    };
    // The error already says it could not connect, and why.
    Ok(Database::connect(&settings.database.url, &pool)?)
}

/// Applies pending migrations where allowed; elsewhere refuses to run on an
/// outdated schema rather than migrate silently.
pub fn ensure_migrated(settings: &Settings, database: &Database) -> anyhow::Result<()> {
    if settings.database.auto_migrate && !settings.is_production() {
        for version in database.migrate()? {
            tracing::info!(%version, "applied migration");
        }
        bind_media_root(settings, database);
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

pub fn services(
    settings: &Settings,
    database: &Database,
    events: Arc<dyn EventPublisher>,
) -> anyhow::Result<Services> {
    services_with_hashing(settings, database, events, hash_queue(settings))
}

/// Where document bytes live, as `storage.backend` says. Nothing is sent
/// to a bucket here ([`prepare_storage`] probes it).
pub enum Storage {
    /// The folder `storage.media_root`.
    Local(LocalStorage),
    /// The bucket of `storage.s3`.
    S3(S3Storage),
}

impl Storage {
    pub fn open(settings: &Settings) -> anyhow::Result<Self> {
        Ok(match settings.storage.backend {
            StorageBackend::Local => {
                Self::Local(LocalStorage::new(settings.storage.media_root.clone()))
            }
            StorageBackend::S3 => Self::S3(
                S3Storage::connect(&settings.storage.s3.config())
                    .context("cannot use the S3 storage (storage.s3)")?,
            ),
        })
    }

    /// The port the use cases are given.
    pub fn port(self) -> Arc<dyn FileStorage> {
        match self {
            Self::Local(local) => Arc::new(local),
            Self::S3(s3) => Arc::new(s3),
        }
    }

    fn as_port(&self) -> &dyn FileStorage {
        match self {
            Self::Local(local) => local,
            Self::S3(s3) => s3,
        }
    }

    /// Where the bytes are, for messages (`media` or `s3://bucket/prefix`).
    pub fn describe(&self) -> String {
        match self {
            Self::Local(local) => local.root().display().to_string(),
            Self::S3(s3) => s3.description().to_owned(),
        }
    }

    /// Fails unless the storage can be written: the media folders are
    /// made and probed, or a probe object is written to and deleted from
    /// the bucket.
    pub fn ensure_usable(&self) -> anyhow::Result<()> {
        match self {
            Self::Local(local) => local
                .prepare()
                .with_context(|| format!("cannot use the media root {}", self.describe())),
            Self::S3(s3) => s3
                .probe()
                .with_context(|| format!("cannot use the bucket {}", self.describe())),
        }
    }
}

/// The password hashing threads and their bounded queue.
fn hash_queue(settings: &Settings) -> Arc<HashQueue> {
    Arc::new(HashQueue::new(
        DjangoPasswordHasher::new(settings.auth.password_iterations),
        HashQueue::threads_for_this_machine(),
        settings.auth.hash_queue,
    ))
}

fn services_with_hashing(
    settings: &Settings,
    database: &Database,
    events: Arc<dyn EventPublisher>,
    hashing: Arc<HashQueue>,
) -> anyhow::Result<Services> {
    let auth = &settings.auth;
    let ports = Ports {
        events,
        uow: Arc::new(DieselUnitOfWork::new(database.clone())),
        hasher: Arc::new(BoundedHasher::new(hashing)),
        tokens: Arc::new(JwtTokenService::new(
            &signing_key(settings),
            chrono::Duration::seconds(auth.access_token_lifetime_seconds),
            chrono::Duration::seconds(auth.refresh_token_lifetime_seconds),
        )),
        clock: Arc::new(SystemClock),
        storage: Storage::open(settings)?.port(),
        fetcher: Arc::new(HttpFetcher::new(FetchSettings {
            allow_private_networks: settings.jobs.allow_private_networks,
            min_bytes_per_second: settings.jobs.fetch_min_bytes_per_second,
            min_rate_grace: std::time::Duration::from_secs(
                settings.jobs.fetch_min_rate_grace_seconds,
            ),
            ..FetchSettings::default()
        })),
    };
    let limits = Limits {
        max_upload_bytes: settings.uploads.max_bytes,
        max_steps: MaxSteps::new(settings.missions.max_steps).unwrap_or_default(),
        sweep: sweep_policy(settings),
    };
    Ok(Services::new(ports, limits))
}

/// The key resolved by `main` (configured or kept in the key file). A
/// command that never signs nor verifies anything skips resolving it and gets
/// a throwaway random key: never a known or empty one.
fn signing_key(settings: &Settings) -> Vec<u8> {
    match settings.auth.configured_secret_key() {
        Some(key) => key.as_bytes().to_vec(),
        None => crate::secret::throwaway_key(),
    }
}

/// The sweep's limits from the settings.
fn sweep_policy(settings: &Settings) -> SweepPolicy {
    SweepPolicy {
        temporary_age: SweepPolicy::temporary_age_for(Duration::from_secs(
            settings.server.body_timeout_seconds,
        )),
        quarantine_for: chrono::Duration::days(i64::from(settings.storage.quarantine_days)),
        max_moves: settings.storage.sweep_max_files,
        ..SweepPolicy::default()
    }
}

/// Ties the media root to the database just migrated (see
/// `autodocs_domain::usecases::sweep::bind_media_root`), logging what it
/// found. Never fails the migration: a media root it cannot bind only
/// keeps the sweep from running, which the sweep then says.
pub fn bind_media_root(settings: &Settings, database: &Database) {
    let storage = match Storage::open(settings) {
        Ok(storage) => storage,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "could not mark the storage as this database's");
            return;
        }
    };
    let root = storage.describe();
    let uow = DieselUnitOfWork::new(database.clone());
    match sweep::bind_media_root(&uow, storage.as_port()) {
        Ok(MediaRootBinding::Bound(identity)) => tracing::info!(
            media_root = %root,
            database = %identity,
            "marked the media root as this database's"
        ),
        Ok(MediaRootBinding::AlreadyBound(_)) => {}
        Ok(MediaRootBinding::OtherDatabase { marker, database }) => tracing::warn!(
            media_root = %root,
            marker = %marker,
            database = %database,
            "the media root is marked for another database; leaving its marker alone \
             (the storage sweep will refuse to run: check DATABASE_URL and storage.media_root)"
        ),
        Ok(MediaRootBinding::ForeignFiles) => tracing::warn!(
            media_root = %root,
            "the media root holds stored files this database does not reference and has \
             no marker; not marking it (the storage sweep will refuse to run: check \
             DATABASE_URL and storage.media_root, see docs/operations.md)"
        ),
        Ok(MediaRootBinding::NoDatabaseIdentity) => {
            tracing::warn!("the database has no identity row; the media root was not marked")
        }
        Err(error) => tracing::warn!(
            media_root = %root,
            %error,
            "could not mark the media root as this database's"
        ),
    }
}

/// Runs a sweep and logs what it did, or why it refused (at WARN, once a
/// sweep, unless the database simply has no documents yet).
pub fn sweep_and_log(services: &Services) -> Result<SweepReport, autodocs_domain::RepoError> {
    let report = services.sweep().run(false)?;
    match &report.refused {
        // A new or emptied deployment: nothing to prove garbage, nothing wrong.
        Some(reason @ SweepRefusal::NoDocuments) => {
            tracing::info!(%reason, "not sweeping stored files");
        }
        Some(reason) => tracing::warn!(%reason, "refusing to sweep stored files"),
        None => {}
    }
    if !report.is_empty() || report.deferred > 0 {
        tracing::info!(
            temporary_deleted = report.temporary,
            quarantined = report.quarantined.len(),
            deferred = report.deferred,
            purged_from_quarantine = report.purged.len(),
            "swept the media root"
        );
    }
    Ok(report)
}

/// Creates the media directories (failing early if they cannot be
/// written), then sweeps what interrupted uploads and deletes left behind.
pub fn prepare_storage(settings: &Settings, services: &Services) -> anyhow::Result<()> {
    Storage::open(settings)?.ensure_usable()?;
    if let Err(error) = sweep_and_log(services) {
        tracing::warn!(%error, "could not sweep the media root");
    }
    Ok(())
}

/// The HTTP state, and on PostgreSQL the listener that brings other
/// processes' events to this one's sockets (keep it alive while serving).
pub fn app_state(
    settings: &Settings,
    database: &Database,
    public_url: &str,
) -> anyhow::Result<(AppState, Option<PgListener>)> {
    let hub = EventHub::with_policy(
        public_url,
        SocketPolicy {
            max_sockets_per_user: settings.realtime.max_sockets_per_user,
            allowed_origins: settings.cors.allowed_origins.clone(),
            ping_interval: std::time::Duration::from_secs(settings.realtime.ping_interval_seconds),
            peer_timeout: std::time::Duration::from_secs(settings.realtime.peer_timeout_seconds),
        },
    );
    let local: Arc<dyn EventPublisher> = hub.clone();
    let (events, origin): (Arc<dyn EventPublisher>, Option<String>) = match database.backend() {
        Backend::Sqlite => (local, None),
        Backend::Postgres => {
            let origin = process_origin();
            (
                Arc::new(PgNotifyPublisher::new(
                    local,
                    database.clone(),
                    origin.clone(),
                )),
                Some(origin),
            )
        }
    };
    let hashing = hash_queue(settings);
    let services = services_with_hashing(settings, database, events, Arc::clone(&hashing))?;
    let listener = match origin {
        Some(origin) => {
            let loader = services.clone();
            let hub = hub.clone();
            let deliver = Arc::new(move |reference| match loader.load_event(reference) {
                Ok(Some(event)) => hub.publish(vec![event]),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not load an announced event"),
            });
            Some(
                PgListener::spawn(settings.database.url.clone(), origin, deliver)
                    .context("cannot start the event listener")?,
            )
        }
        None => None,
    };
    // Shared by every process on PostgreSQL, so N processes do not
    // multiply a limit; in this process on SQLite.
    let windows = autodocs_db::rate_windows(database);
    let throttle = Throttle::new(
        settings
            .throttle
            .enabled
            .then_some(settings.throttle.auth_per_minute),
        Arc::clone(&windows),
    );
    let lane = DatabaseLane::start(database_threads(settings, database))
        .context("cannot start the database threads")?;
    let state = AppState {
        services,
        health: Arc::new(DatabaseHealth(database.clone())),
        throttle: Arc::new(throttle),
        hub,
        lane,
        fairness: Arc::new(fairness(settings, hashing, windows)),
        client: Arc::new(settings.client_policy()?),
        links: Arc::new(LinkSigner::new(
            &signing_key(settings),
            settings.uploads.link_seconds,
        )?),
        metrics_allow: Arc::new(settings.server.metrics_allow.clone()),
    };
    Ok((state, listener))
}

/// The limits that keep one client from starving the others.
fn fairness(
    settings: &Settings,
    hashing: Arc<HashQueue>,
    windows: Arc<dyn RateWindows>,
) -> Fairness {
    let throttle = &settings.throttle;
    let window = Duration::from_secs(throttle.login_failure_window_seconds);
    let enabled = throttle.enabled;
    Fairness {
        body_timeout: Duration::from_secs(settings.server.body_timeout_seconds),
        uploads: ConcurrencyCap::new(settings.uploads.max_concurrent_per_user),
        hashing,
        hashing_per_address: enabled.then(|| ConcurrencyCap::new(throttle.hashes_per_address)),
        login_failures: FailureWindow::new(
            "login",
            enabled.then_some(throttle.login_failures_per_account),
            window,
            Arc::clone(&windows),
        ),
        password_failures: FailureWindow::new(
            "password",
            enabled.then_some(throttle.password_change_failures_per_user),
            window,
            windows,
        ),
    }
}

/// How many threads run the short database calls of requests. SQLite
/// answers from memory, so a thread per core (and one to spare for a
/// writer waiting on the lock) keeps the cores busy without switching
/// between dozens of threads; a PostgreSQL call waits on the network, so
/// there every pooled connection gets its thread.
fn database_threads(settings: &Settings, database: &Database) -> usize {
    if settings.server.database_threads > 0 {
        return settings.server.database_threads;
    }
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let pool = usize::try_from(settings.database.max_connections).unwrap_or(usize::MAX);
    match database.backend() {
        Backend::Sqlite => (cores + 1).min(pool),
        Backend::Postgres => pool,
    }
    .max(1)
}

/// Services for a worker-only process: its events reach the `serve`
/// processes through PostgreSQL; on SQLite there is no one to tell.
pub fn worker_services(settings: &Settings, database: &Database) -> anyhow::Result<Services> {
    let events: Arc<dyn EventPublisher> = match database.backend() {
        Backend::Sqlite => Arc::new(DiscardEvents),
        Backend::Postgres => Arc::new(PgNotifyPublisher::new(
            Arc::new(DiscardEvents),
            database.clone(),
            process_origin(),
        )),
    };
    services(settings, database, events)
}

/// A name for this process among those sharing the database.
pub fn process_origin() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}
