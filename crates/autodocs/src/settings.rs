//! Typed settings: `config/default.toml`, then `config/$AUTODOCS_ENV.toml`,
//! then `AUTODOCS__SECTION__KEY` variables (and `DATABASE_URL`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The built-in defaults, so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub uploads: UploadSettings,
    pub auth: AuthSettings,
    pub throttle: ThrottleSettings,
    pub jobs: JobSettings,
    pub cors: CorsSettings,
    #[serde(default)]
    pub realtime: RealtimeSettings,
    #[serde(default)]
    pub missions: MissionSettings,
    #[serde(skip)]
    pub environment: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    /// Scheme and host clients reach the server at: the base of every
    /// absolute URL, whatever the request's headers; empty: from the request
    /// (frames, made outside one: `http://<bind address>`).
    #[serde(default)]
    pub public_url: String,
    pub workers: usize,
    /// Threads running the database calls of requests; 0: chosen by backend.
    #[serde(default)]
    pub database_threads: usize,
    /// A request body that sends nothing for this long is cut (408).
    #[serde(default = "default_body_timeout_seconds")]
    pub body_timeout_seconds: u64,
    /// Networks whose connections may speak for the client through
    /// `X-Forwarded-*` / `Forwarded` (host, scheme, client address); parsed
    /// on load, so a bad entry stops `serve` and fails `check`.
    #[serde(default, deserialize_with = "trusted_proxies")]
    pub trusted_proxies: autodocs_http::client::TrustedProxies,
}

fn default_body_timeout_seconds() -> u64 {
    30
}

/// `server.trusted_proxies` from a list (TOML, or the environment variable
/// split on commas) or from one string (`"10.0.0.0/8, ::1"`).
fn trusted_proxies<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<autodocs_http::client::TrustedProxies, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entries {
        One(String),
        Many(Vec<String>),
    }
    let entries = match Entries::deserialize(deserializer)? {
        Entries::One(entry) => vec![entry],
        Entries::Many(entries) => entries,
    };
    autodocs_http::client::TrustedProxies::parse(&entries)
        .map_err(|error| serde::de::Error::custom(format!("server.trusted_proxies: {error}")))
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub auto_migrate: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub media_root: PathBuf,
    /// Unreferenced files the sweep moved to quarantine are deleted after
    /// this many days (restorable until then).
    #[serde(default = "default_quarantine_days")]
    pub quarantine_days: u32,
    /// The most unreferenced files one sweep moves to quarantine.
    #[serde(default = "default_sweep_max_files")]
    pub sweep_max_files: u64,
}

fn default_quarantine_days() -> u32 {
    7
}

fn default_sweep_max_files() -> u64 {
    100
}

#[derive(Debug, Clone, Deserialize)]
pub struct UploadSettings {
    pub max_bytes: u64,
    /// Uploads one user may have in progress at once (429 past it).
    #[serde(default = "default_max_concurrent_uploads")]
    pub max_concurrent_per_user: usize,
    /// How long a signed download link (`POST .../download-link/`) works.
    #[serde(default = "default_link_seconds")]
    pub link_seconds: u64,
}

fn default_link_seconds() -> u64 {
    300
}

fn default_max_concurrent_uploads() -> usize {
    4
}

#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// The JWT signing key; unset or empty: not configured (production then
    /// refuses to start; elsewhere the key file below is used).
    #[serde(default)]
    pub secret_key: Option<String>,
    /// Where a generated key is kept outside production (relative to the
    /// working directory), so local processes and restarts agree.
    #[serde(default = "default_secret_key_file")]
    pub secret_key_file: PathBuf,
    pub access_token_lifetime_seconds: i64,
    pub refresh_token_lifetime_seconds: i64,
    pub password_iterations: u32,
    /// Password hashes waiting or running at once (503 past it).
    #[serde(default = "default_hash_queue")]
    pub hash_queue: usize,
}

fn default_hash_queue() -> usize {
    64
}

fn default_secret_key_file() -> PathBuf {
    PathBuf::from(".autodocs/secret_key")
}

impl AuthSettings {
    /// The key set in the settings, if any (an empty value counts as unset).
    pub fn configured_secret_key(&self) -> Option<&str> {
        self.secret_key.as_deref().filter(|key| !key.is_empty())
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret_key", &"<redacted>")
            .field("secret_key_file", &self.secret_key_file)
            .field(
                "access_token_lifetime_seconds",
                &self.access_token_lifetime_seconds,
            )
            .field(
                "refresh_token_lifetime_seconds",
                &self.refresh_token_lifetime_seconds,
            )
            .field("password_iterations", &self.password_iterations)
            .field("hash_queue", &self.hash_queue)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ThrottleSettings {
    pub enabled: bool,
    pub auth_per_minute: u32,
    /// Failed logins per account per window (429 past it, from any address).
    #[serde(default = "default_login_failures_per_account")]
    pub login_failures_per_account: u32,
    /// The window of `login_failures_per_account` and
    /// `password_change_failures_per_user`.
    #[serde(default = "default_login_failure_window_seconds")]
    pub login_failure_window_seconds: u64,
    /// Password changes with a wrong `old_password` per user per window.
    #[serde(default = "default_password_change_failures_per_user")]
    pub password_change_failures_per_user: u32,
    /// Password hashes one client address may have waiting or running at
    /// once on register, login and token.
    #[serde(default = "default_hashes_per_address")]
    pub hashes_per_address: usize,
}

fn default_login_failures_per_account() -> u32 {
    10
}

fn default_login_failure_window_seconds() -> u64 {
    900
}

fn default_password_change_failures_per_user() -> u32 {
    10
}

fn default_hashes_per_address() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    pub allow_private_networks: bool,
    pub run_in_serve: bool,
    pub workers: usize,
    pub lease_seconds: i64,
    pub poll_interval_ms: u64,
    /// Finished jobs are deleted after this many hours (dead ones are kept).
    pub retain_finished_hours: i64,
    /// A `fetch_url` download slower than this (bytes per second, averaged
    /// from its start) is aborted once the grace period is over.
    pub fetch_min_bytes_per_second: u64,
    /// How long a download may run before its rate is judged.
    pub fetch_min_rate_grace_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RealtimeSettings {
    /// WebSockets one user may hold open at once (per process); one more
    /// is refused with 429 before the upgrade.
    pub max_sockets_per_user: usize,
    /// How often an idle socket is pinged.
    pub ping_interval_seconds: u64,
    /// A socket whose peer sent nothing (not even a pong) for this long is dropped.
    pub peer_timeout_seconds: u64,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            max_sockets_per_user: 20,
            ping_interval_seconds: 20,
            peer_timeout_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MissionSettings {
    /// The most plan steps one mission may hold.
    pub max_steps: u32,
}

impl Default for MissionSettings {
    fn default() -> Self {
        Self {
            max_steps: autodocs_domain::usecases::steps::MaxSteps::DEFAULT.get(),
        }
    }
}

impl Settings {
    /// Loads the layered settings for `AUTODOCS_ENV` (default `development`).
    pub fn load() -> anyhow::Result<Self> {
        let environment =
            std::env::var("AUTODOCS_ENV").unwrap_or_else(|_| "development".to_owned());
        let config_dir = std::env::var_os("AUTODOCS_CONFIG_DIR")
            .map_or_else(|| PathBuf::from("config"), PathBuf::from);
        Self::load_from(&config_dir, &environment)
    }

    fn load_from(config_dir: &Path, environment: &str) -> anyhow::Result<Self> {
        if !environment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!(
                "AUTODOCS_ENV must be a plain name such as development or production, not {environment:?}"
            );
        }
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(config_dir.join("default.toml")).required(false))
            .add_source(File::from(config_dir.join(format!("{environment}.toml"))).required(false))
            .add_source(
                Environment::with_prefix("AUTODOCS")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("cors.allowed_origins")
                    .with_list_parse_key("server.trusted_proxies")
                    .try_parsing(true),
            );
        if let Ok(url) = std::env::var("DATABASE_URL")
            && std::env::var_os("AUTODOCS__DATABASE__URL").is_none()
            && !url.is_empty()
        {
            builder = builder.set_override("database.url", url)?;
        }
        let mut settings: Settings = builder
            .build()
            .context("cannot read settings")?
            .try_deserialize()
            .context("invalid settings")?;
        settings.environment = environment.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }

    /// Where absolute URLs point and whose forwarded headers are believed.
    pub fn client_policy(&self) -> anyhow::Result<autodocs_http::client::ClientPolicy> {
        Ok(autodocs_http::client::ClientPolicy::new(
            &self.server.public_url,
            self.server.trusted_proxies.clone(),
        )?)
    }

    /// Refuses settings that would run insecurely or not at all.
    fn validate(&self) -> anyhow::Result<()> {
        // Production never generates a key nor reads a kept one: a key is
        // part of its configuration, long enough not to be guessed.
        if self.is_production() {
            match self.auth.configured_secret_key() {
                None => bail!(
                    "refusing to start: AUTODOCS_ENV=production needs a secret key; set \
                     AUTODOCS__AUTH__SECRET_KEY to at least {} random bytes \
                     (e.g. `openssl rand -hex 32`)",
                    crate::secret::MIN_SECRET_KEY_BYTES
                ),
                Some(key) if key.len() < crate::secret::MIN_SECRET_KEY_BYTES => bail!(
                    "refusing to start: the secret key (auth.secret_key) is {} bytes long; \
                     production needs at least {}",
                    key.len(),
                    crate::secret::MIN_SECRET_KEY_BYTES
                ),
                Some(_) => {}
            }
        }
        if self.auth.access_token_lifetime_seconds <= 0
            || self.auth.refresh_token_lifetime_seconds <= 0
        {
            bail!("token lifetimes must be positive");
        }
        if self.auth.password_iterations == 0 {
            bail!("auth.password_iterations must be positive");
        }
        if self.storage.quarantine_days == 0 {
            bail!("storage.quarantine_days must be at least 1");
        }
        if self.jobs.lease_seconds <= 0 || self.jobs.poll_interval_ms == 0 {
            bail!("jobs.lease_seconds and jobs.poll_interval_ms must be positive");
        }
        // A maintenance job's key dedupes its 5-minute period only while the
        // finished job is kept.
        if self.jobs.retain_finished_hours < 1 {
            bail!("jobs.retain_finished_hours must be at least 1");
        }
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be positive");
        }
        if self.missions.max_steps == 0 {
            bail!("missions.max_steps must be positive");
        }
        if self.uploads.max_bytes == 0 {
            bail!("uploads.max_bytes must be positive");
        }
        if self.realtime.max_sockets_per_user == 0 {
            bail!("realtime.max_sockets_per_user must be positive");
        }
        if self.realtime.ping_interval_seconds == 0
            || self.realtime.peer_timeout_seconds < self.realtime.ping_interval_seconds
        {
            bail!(
                "realtime.ping_interval_seconds must be positive and at most realtime.peer_timeout_seconds"
            );
        }
        self.client_policy()?;
        if self.server.body_timeout_seconds == 0 {
            bail!("server.body_timeout_seconds must be positive");
        }
        autodocs_http::links::check_lifetime(self.uploads.link_seconds)?;
        if self.uploads.max_concurrent_per_user == 0 {
            bail!("uploads.max_concurrent_per_user must be positive");
        }
        if self.auth.hash_queue == 0 {
            bail!("auth.hash_queue must be positive");
        }
        if self.throttle.login_failure_window_seconds == 0
            || self.throttle.login_failures_per_account == 0
            || self.throttle.password_change_failures_per_user == 0
            || self.throttle.hashes_per_address == 0
        {
            bail!(
                "throttle.login_failures_per_account, login_failure_window_seconds, \
                 password_change_failures_per_user and hashes_per_address must be positive"
            );
        }
        self.server
            .bind
            .parse::<std::net::SocketAddr>()
            .with_context(|| {
                format!(
                    "server.bind {:?} is not an address such as 127.0.0.1:8000",
                    self.server.bind
                )
            })?;
        Ok(())
    }
}
