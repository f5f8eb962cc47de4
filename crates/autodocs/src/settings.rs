//! Typed settings: `config/default.toml`, then `config/$AUTODOCS_ENV.toml`,
//! then `AUTODOCS__SECTION__KEY` variables (and `DATABASE_URL`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The built-in defaults, so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// The development secret shipped in `config/default.toml`.
pub const DEVELOPMENT_SECRET_KEY: &str =
    "django-insecure-dev-only-change-me-autodocs-development-key";

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
    #[serde(skip)]
    pub environment: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    /// Scheme and host clients reach the server at, for absolute URLs made
    /// outside a request (WebSocket frames); empty: `http://<bind address>`.
    #[serde(default)]
    pub public_url: String,
    pub workers: usize,
    /// Threads running the database calls of requests; 0: chosen by backend.
    #[serde(default)]
    pub database_threads: usize,
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
}

#[derive(Debug, Clone, Deserialize)]
pub struct UploadSettings {
    pub max_bytes: u64,
}

#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    pub secret_key: String,
    pub access_token_lifetime_seconds: i64,
    pub refresh_token_lifetime_seconds: i64,
    pub password_iterations: u32,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret_key", &"<redacted>")
            .field(
                "access_token_lifetime_seconds",
                &self.access_token_lifetime_seconds,
            )
            .field(
                "refresh_token_lifetime_seconds",
                &self.refresh_token_lifetime_seconds,
            )
            .field("password_iterations", &self.password_iterations)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ThrottleSettings {
    pub enabled: bool,
    pub auth_per_minute: u32,
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

    /// Refuses settings that would run insecurely or not at all.
    fn validate(&self) -> anyhow::Result<()> {
        if self.is_production() {
            if self.auth.secret_key == DEVELOPMENT_SECRET_KEY {
                bail!(
                    "refusing to start: AUTODOCS_ENV=production with the development secret key; \
                     set AUTODOCS__AUTH__SECRET_KEY to a long random value"
                );
            }
            if self.auth.secret_key.len() < 32 {
                bail!(
                    "refusing to start: the secret key must be at least 32 characters in production"
                );
            }
        }
        if self.auth.secret_key.is_empty() {
            bail!("auth.secret_key must not be empty");
        }
        if self.auth.access_token_lifetime_seconds <= 0
            || self.auth.refresh_token_lifetime_seconds <= 0
        {
            bail!("token lifetimes must be positive");
        }
        if self.auth.password_iterations == 0 {
            bail!("auth.password_iterations must be positive");
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
        if self.uploads.max_bytes == 0 {
            bail!("uploads.max_bytes must be positive");
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
