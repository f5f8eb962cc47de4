//! Typed settings, in layers: the built-in defaults, the built-in profile
//! of `AUTODOCS_ENV` (`development`, `production`), then
//! `$AUTODOCS_CONFIG_DIR/default.toml` and `$AUTODOCS_CONFIG_DIR/$AUTODOCS_ENV.toml`
//! (`config/` of the working directory by default), then
//! `AUTODOCS__SECTION__KEY` variables (and `DATABASE_URL`). A key none of the
//! defaults knows is refused, with the nearest valid name.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The built-in defaults, so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// The built-in profiles: `AUTODOCS_ENV=production` means the same from any
/// working directory, with or without a `config/` folder beside it.
const PROFILES: &[(&str, &str)] = &[
    (
        "development",
        include_str!("../../../config/development.toml"),
    ),
    (
        "production",
        include_str!("../../../config/production.toml"),
    ),
];

/// Settings no default sets, but which may be given.
const OPTIONAL_KEYS: &[&str] = &["auth.secret_key"];

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
    #[serde(default)]
    pub log: LogSettings,
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
    /// Networks whose clients may read `GET /metrics`; everyone else gets
    /// a 404. Parsed like `trusted_proxies`.
    #[serde(deserialize_with = "trusted_proxies")]
    pub metrics_allow: autodocs_http::client::TrustedProxies,
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
    autodocs_http::client::TrustedProxies::parse(&entries).map_err(|error| {
        serde::de::Error::custom(format!("a list of networks (CIDRs) or addresses: {error}"))
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub auto_migrate: bool,
}

/// `storage.backend`: where document bytes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// A folder on this machine (`storage.media_root`).
    #[default]
    Local,
    /// An S3-compatible bucket (`storage.s3.*`), shared by every process.
    S3,
}

/// `storage.s3.*`; credentials come from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (or the instance's role), never from here.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct S3Settings {
    #[serde(default)]
    pub bucket: String,
    /// An S3-compatible service's URL (MinIO, Ceph, moto); empty for AWS.
    #[serde(default)]
    pub endpoint: String,
    /// Empty: `AWS_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: String,
    /// Keys are written under this prefix of the bucket.
    #[serde(default)]
    pub prefix: String,
}

impl S3Settings {
    /// The storage adapter's view of these settings.
    pub fn config(&self) -> autodocs_storage::s3::S3Config {
        autodocs_storage::s3::S3Config {
            bucket: self.bucket.trim().to_owned(),
            endpoint: Some(self.endpoint.trim().to_owned()).filter(|e| !e.is_empty()),
            region: self.region.trim().to_owned(),
            prefix: self.prefix.trim().to_owned(),
            credentials: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    #[serde(default)]
    pub backend: StorageBackend,
    pub media_root: PathBuf,
    #[serde(default)]
    pub s3: S3Settings,
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

/// `[log]`: how the process writes its lines.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogSettings {
    /// `text` (for people) or `json` (one object a line, stdout and stderr).
    #[serde(default)]
    pub format: crate::logging::LogFormat,
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
        let profile = PROFILES
            .iter()
            .find(|(name, _)| *name == environment)
            .map(|(_, profile)| *profile);
        let profile_file = config_dir.join(format!("{environment}.toml"));
        if profile.is_none() && !profile_file.is_file() {
            let built_in: Vec<&str> = PROFILES.iter().map(|(name, _)| *name).collect();
            bail!(
                "AUTODOCS_ENV={environment} names no profile: none is built in (built in: {}) \
                 and there is no {} (set AUTODOCS_CONFIG_DIR to the folder holding {environment}.toml)",
                built_in.join(", "),
                profile_file.display()
            );
        }
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from_str(profile.unwrap_or(""), FileFormat::Toml))
            .add_source(File::from(config_dir.join("default.toml")).required(false))
            .add_source(File::from(profile_file).required(false))
            .add_source(
                Environment::with_prefix("AUTODOCS")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("cors.allowed_origins")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("server.metrics_allow")
                    .try_parsing(true),
            );
        if let Ok(url) = std::env::var("DATABASE_URL")
            && std::env::var_os("AUTODOCS__DATABASE__URL").is_none()
            && !url.is_empty()
        {
            builder = builder.set_override("database.url", url)?;
        }
        let merged = builder.build().context("cannot read settings")?;
        refuse_unknown_keys(&merged)?;
        let mut settings: Settings = merged.try_deserialize().context("invalid settings")?;
        settings.environment = environment.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    /// Whether this is the production profile.
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
        check_database_url(&self.database.url)?;
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
        if self.storage.backend == StorageBackend::S3 {
            let s3 = &self.storage.s3;
            if s3.bucket.trim().is_empty() {
                bail!(
                    "storage.backend = \"s3\" needs storage.s3.bucket \
                     (AUTODOCS__STORAGE__S3__BUCKET)"
                );
            }
            let endpoint = s3.endpoint.trim();
            let is_url = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !(endpoint.is_empty() || is_url) {
                bail!("storage.s3.endpoint must be an http:// or https:// URL, not {endpoint:?}");
            }
            // A multipart upload is moved into place with one CopyObject,
            // which S3 allows up to 5 GiB.
            if self.uploads.max_bytes > autodocs_storage::s3::MAX_OBJECT_BYTES {
                bail!(
                    "uploads.max_bytes is {}; with storage.backend = \"s3\" it can be at most {} (5 GiB)",
                    self.uploads.max_bytes,
                    autodocs_storage::s3::MAX_OBJECT_BYTES
                );
            }
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

/// Every key of `config`, dotted (`server.bind`); lists are values.
fn flat_keys(config: &Config) -> anyhow::Result<std::collections::BTreeSet<String>> {
    fn walk(
        prefix: &str,
        table: &config::Map<String, config::Value>,
        keys: &mut std::collections::BTreeSet<String>,
    ) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match &value.kind {
                config::ValueKind::Table(fields) => walk(&key, fields, keys),
                _ => {
                    keys.insert(key);
                }
            }
        }
    }
    let table: config::Map<String, config::Value> = config
        .clone()
        .try_deserialize()
        .context("cannot read settings")?;
    let mut keys = std::collections::BTreeSet::new();
    walk("", &table, &mut keys);
    Ok(keys)
}

/// A misspelt key would otherwise be ignored and its default used in
/// silence: refuse it, naming the nearest key there is.
fn refuse_unknown_keys(merged: &Config) -> anyhow::Result<()> {
    let defaults = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .build()
        .context("the built-in defaults")?;
    let mut known = flat_keys(&defaults)?;
    known.extend(OPTIONAL_KEYS.iter().map(|key| (*key).to_owned()));
    let unknown: Vec<String> = flat_keys(merged)?
        .into_iter()
        .filter(|key| !known.contains(key))
        .collect();
    let Some(key) = unknown.first() else {
        return Ok(());
    };
    let variable = format!("AUTODOCS__{}", key.replace('.', "__").to_uppercase());
    let nearest = known
        .iter()
        .min_by_key(|candidate| edit_distance(key, candidate))
        .filter(|candidate| edit_distance(key, candidate) <= key.len().max(4) / 2);
    match nearest {
        Some(nearest) => bail!(
            "unknown setting {key} (in a config file, or as {variable}): did you mean {nearest}?"
        ),
        None => bail!(
            "unknown setting {key} (in a config file, or as {variable}); the settings are listed in README.md"
        ),
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// `database.url` must name its engine: a bare word would otherwise become
/// a SQLite file of that name in the working directory.
fn check_database_url(url: &str) -> anyhow::Result<()> {
    let hint = "use sqlite://path/to/file.sqlite3 or postgres://user@host:5432/database";
    let Some((scheme, rest)) = url.split_once(':') else {
        bail!("database.url (DATABASE_URL) {url:?} is not a database URL: {hint}");
    };
    match scheme {
        "sqlite" | "postgres" | "postgresql" if rest.trim_start_matches('/').is_empty() => {
            bail!("database.url (DATABASE_URL) {url:?} names no database: {hint}")
        }
        "sqlite" | "postgres" | "postgresql" => Ok(()),
        _ if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            bail!("database.url (DATABASE_URL) {url:?} is not a database URL: {hint}")
        }
        _ => bail!(
            "database.url (DATABASE_URL) uses {scheme}://, which AutoDocs does not support: {hint}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layered(extra: &str) -> Config {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from_str(extra, FileFormat::Toml))
            .build()
            .expect("settings")
    }

    #[test]
    fn a_misspelt_key_is_refused_with_the_nearest_name() {
        let error = refuse_unknown_keys(&layered("[server]\nbnd = \"0.0.0.0:1\"\n"))
            .expect_err("refused")
            .to_string();
        assert!(error.contains("unknown setting server.bnd"), "{error}");
        assert!(error.contains("AUTODOCS__SERVER__BND"), "{error}");
        assert!(error.contains("did you mean server.bind?"), "{error}");
        let error = refuse_unknown_keys(&layered("[uploads]\nmax_byte = 1\n"))
            .expect_err("refused")
            .to_string();
        assert!(error.contains("did you mean uploads.max_bytes?"), "{error}");
        let error = refuse_unknown_keys(&layered("[nothing]\nlike_it = 1\n"))
            .expect_err("refused")
            .to_string();
        assert!(!error.contains("did you mean"), "{error}");
    }

    #[test]
    fn every_default_optional_key_and_built_in_profile_is_known() {
        refuse_unknown_keys(&layered("[auth]\nsecret_key = \"a key\"\n")).expect("known");
        for (name, profile) in PROFILES {
            refuse_unknown_keys(&layered(profile))
                .unwrap_or_else(|error| panic!("profile {name}: {error}"));
        }
    }

    #[test]
    fn the_production_profile_listens_everywhere_and_never_migrates_by_itself() {
        let (_, production) = PROFILES
            .iter()
            .find(|(name, _)| *name == "production")
            .expect("a production profile");
        let settings = layered(production);
        assert_eq!(
            settings.get_string("server.bind").expect("bind"),
            "0.0.0.0:8000"
        );
        assert!(!settings.get_bool("database.auto_migrate").expect("flag"));
    }

    #[test]
    fn database_urls_name_their_engine() {
        for good in [
            "sqlite://autodocs.sqlite3",
            "sqlite:///var/lib/autodocs/db.sqlite3",
            "postgres://autodocs@db:5432/autodocs",
            "postgresql://autodocs@db/autodocs",
        ] {
            check_database_url(good).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
        for (bad, says) in [
            ("notaurl", "is not a database URL"),
            ("autodocs.sqlite3", "is not a database URL"),
            (
                "mysql://db/autodocs",
                "uses mysql://, which AutoDocs does not support",
            ),
            ("sqlite://", "names no database"),
            ("://x", "is not a database URL"),
        ] {
            let error = check_database_url(bad).expect_err(bad).to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("bind", "bind"), 0);
        assert_eq!(edit_distance("bnd", "bind"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
