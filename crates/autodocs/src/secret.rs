//! The JWT signing key: configured, or (outside production only) generated
//! once and kept in `auth.secret_key_file` so every local process and every
//! restart signs with the same key. No key ever ships in the repository: a
//! published key would let anyone forge a token for any user.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::settings::Settings;

/// The shortest key accepted: production's rule, and the kept file's.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// Random bytes in a generated key (written as twice as many hex digits).
const GENERATED_KEY_BYTES: usize = 32;

/// Where the signing key of this process comes from.
pub enum KeySource {
    /// `auth.secret_key` is set.
    Configured,
    /// The key kept in this file (outside production).
    File(PathBuf),
    /// No key yet: the first process that needs one will create this file.
    NotYetGenerated(PathBuf),
}

/// The key every process signing or verifying tokens must use: the
/// configured one, else (never in production, which `Settings::validate`
/// refuses without a key) the one kept in `auth.secret_key_file`, generated
/// now if there is none. Says on stderr (the log) where it came from, never
/// the key itself.
pub fn resolve(settings: &Settings) -> anyhow::Result<String> {
    if let Some(key) = settings.auth.configured_secret_key() {
        return Ok(key.to_owned());
    }
    if settings.is_production() {
        // Settings::validate already refused this; kept so that a change
        // there cannot make production fall back to a generated key.
        bail!("refusing to start: AUTODOCS_ENV=production needs auth.secret_key");
    }
    let path = &settings.auth.secret_key_file;
    if let Some(key) = read_key_file(path)? {
        tracing::info!(path = %path.display(), "using the secret key kept in the key file (auth.secret_key is not set)");
        return Ok(key);
    }
    let (key, created) = create_key_file(path)?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "auth.secret_key is not set: generated a random secret key and kept it in the key file \
             (mode 0600); set AUTODOCS__AUTH__SECRET_KEY in production"
        );
    } else {
        tracing::info!(path = %path.display(), "using the secret key another process just generated");
    }
    Ok(key)
}

/// Like [`resolve`] but never writes anything (for `autodocs check`): a key
/// file that exists is judged as `serve` would judge it.
pub fn inspect(settings: &Settings) -> anyhow::Result<KeySource> {
    if settings.auth.configured_secret_key().is_some() {
        return Ok(KeySource::Configured);
    }
    if settings.is_production() {
        bail!("refusing to start: AUTODOCS_ENV=production needs auth.secret_key");
    }
    let path = settings.auth.secret_key_file.clone();
    Ok(match read_key_file(&path)? {
        Some(_) => KeySource::File(path),
        None => KeySource::NotYetGenerated(path),
    })
}

/// The key kept in `path`, `None` when there is no such file. A file that
/// others may read, or too short a key, is refused rather than used: a key
/// anyone on the machine can read signs tokens for anyone.
fn read_key_file(path: &Path) -> anyhow::Result<Option<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the secret key file {}", path.display()));
        }
    };
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot read the secret key file {}", path.display()))?;
    if !metadata.is_file() {
        bail!(
            "the secret key file {} is not a regular file",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "the secret key file {} can be read by other users (mode {mode:04o}); \
                 run `chmod 600 {}` or delete it to have a new key generated",
                path.display(),
                path.display()
            );
        }
    }
    let mut raw = String::new();
    file.read_to_string(&mut raw).with_context(|| {
        format!(
            "cannot read the secret key file {} (it must be text)",
            path.display()
        )
    })?;
    // An editor's trailing newline is not part of the key.
    let key = raw.trim();
    if key.len() < MIN_SECRET_KEY_BYTES {
        let what = if key.is_empty() {
            "is empty".to_owned()
        } else {
            format!("holds a key shorter than {MIN_SECRET_KEY_BYTES} bytes")
        };
        bail!(
            "the secret key file {} {what}; delete it to have a new key generated",
            path.display()
        );
    }
    Ok(Some(key.to_owned()))
}

/// Generates a key and publishes it at `path` atomically: the key is
/// written whole to a private temporary file beside it, then hard-linked to
/// `path`, which fails if the name exists. Of several processes starting at
/// once exactly one link succeeds, and every other process reads the
/// winner's complete file. Returns the key and whether this process made it.
fn create_key_file(path: &Path) -> anyhow::Result<(String, bool)> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let key = generate_key()?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret_key".to_owned());
    let temporary = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        unique_suffix()
    ));
    let written = write_private(&temporary, &key);
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok((key, true)),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            let key = read_key_file(path)?.with_context(|| {
                format!("the secret key file {} vanished while read", path.display())
            })?;
            Ok((key, false))
        }
        Err(error) => Err(error).with_context(|| {
            format!(
                "cannot create the secret key file {} (set auth.secret_key, or \
                 auth.secret_key_file to a writable place)",
                path.display()
            )
        }),
    }
}

/// `GENERATED_KEY_BYTES` bytes from the operating system's CSPRNG, in hex.
fn generate_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; GENERATED_KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("cannot get random bytes for a secret key: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A random key for a process that signs nothing others must verify. Falls
/// back to the standard library's per-process random hash keys should the
/// CSPRNG fail, so it is never a constant.
pub fn throwaway_key() -> Vec<u8> {
    let mut bytes = vec![0u8; GENERATED_KEY_BYTES];
    if getrandom::fill(&mut bytes).is_err() {
        use std::hash::{BuildHasher, Hasher};
        bytes = (0..4)
            .flat_map(|round: u64| {
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u64(round);
                hasher.write_u128(unique_suffix());
                hasher.finish().to_le_bytes()
            })
            .collect();
    }
    bytes
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))
}

/// Writes `key` to a new file only its owner may read (0600 from the start,
/// never briefly wider).
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
