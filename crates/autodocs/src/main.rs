//! `autodocs`: the one binary — serve, migrate, createsuperuser, check,
//! dumpdata, loaddata.

/// Many blocking threads allocate at once (one per in-flight request);
/// mimalloc's per-thread heaps avoid the contention of glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod logging;
mod secret;
mod settings;
mod transfer;
mod wiring;
mod worker;

use std::io::Write;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Context, bail};
use autodocs_domain::events::DiscardEvents;
use clap::{Parser, Subcommand};

use crate::settings::Settings;

#[derive(Parser)]
#[command(name = "autodocs", version, about = "The AutoDocs API server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (and, unless `jobs.run_in_serve` is false, the background workers).
    Serve,
    /// Run background workers only.
    Worker,
    /// Apply pending database migrations.
    Migrate,
    /// List every migration, `[X]` applied or `[ ]` pending (as Django's).
    Showmigrations,
    /// Create a staff superuser (password from AUTODOCS_PASSWORD or a prompt).
    Createsuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// Validate the settings and the database connection.
    Check,
    /// See and act on the background job queue.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Write the data (users with their password hashes, profiles, missions,
    /// plan steps, documents' metadata, activities, jobs, sequences) as
    /// Django's dumpdata JSON, on stdout unless `--output` is given.
    Dumpdata {
        /// Write to this file instead (complete, or not at all).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Load a file written by `dumpdata` (`-`: stdin) into an empty, migrated
    /// database: everything, with its ids, or nothing.
    Loaddata {
        /// The file to load.
        file: std::path::PathBuf,
    },
    /// Sweep the media root now: print each file moved to quarantine and
    /// deleted, or why the sweep refused (then exit with status 1).
    Sweep {
        /// List what would be moved or deleted, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List jobs, newest first: id, kind, status, attempts, run_at, last error.
    List {
        /// Only jobs in this status: queued, running, done or dead.
        #[arg(long, value_parser = parse_job_status)]
        status: Option<autodocs_domain::jobs::JobStatus>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Make a dead (or failed, waiting for its retry) job due now, its attempts reset.
    Retry {
        /// The job's id.
        id: i64,
    },
    /// Delete finished (`done`) jobs older than `--older-than-hours`
    /// (default 0: all of them). Dead jobs are kept unless `--dead` is given;
    /// queued and running jobs are never deleted.
    Purge {
        /// Also delete dead jobs.
        #[arg(long)]
        dead: bool,
        /// Only jobs last touched more than this many hours ago.
        #[arg(long, default_value_t = 0)]
        older_than_hours: i64,
    },
}

fn parse_job_status(raw: &str) -> Result<autodocs_domain::jobs::JobStatus, String> {
    autodocs_domain::jobs::JobStatus::parse(raw)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The settings say how to log, so they are read first; if they cannot
    // be, their error is still written in the format the environment asks.
    let settings = Settings::load();
    let format = match &settings {
        Ok(settings) => settings.log.format,
        Err(_) => logging::LogFormat::from_environment(),
    };
    logging::init(format);
    match settings.and_then(|settings| run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            logging::fatal(format, &error);
            ExitCode::FAILURE
        }
    }
}

/// What a command does with the signing key.
enum KeyUse {
    /// Signs or verifies tokens, or builds the services that do: resolves
    /// the key (generating the kept one outside production if need be), so
    /// `serve`, `worker` and the CLI all use the same key.
    Resolve,
    /// Reports on the key without creating anything (`check`).
    Inspect,
    /// Never touches a token (`migrate`): no key file is created for it.
    None,
}

impl Command {
    fn key_use(&self) -> KeyUse {
        match self {
            Command::Serve | Command::Worker | Command::Createsuperuser { .. } => KeyUse::Resolve,
            Command::Jobs(_) => KeyUse::Resolve,
            Command::Check => KeyUse::Inspect,
            Command::Migrate
            | Command::Showmigrations
            | Command::Sweep { .. }
            | Command::Dumpdata { .. }
            | Command::Loaddata { .. } => KeyUse::None,
        }
    }
}

fn run(command: Command, mut settings: Settings) -> anyhow::Result<()> {
    if let KeyUse::Resolve = command.key_use() {
        settings.auth.secret_key = Some(secret::resolve(&settings)?);
    }
    match command {
        Command::Serve => serve(settings),
        Command::Worker => run_workers(settings),
        Command::Migrate => {
            let database = wiring::open_database(&settings)?;
            let applied = database.migrate()?;
            if applied.is_empty() {
                println!("No migrations to apply.");
            }
            for version in applied {
                println!("Applied migration {version}");
            }
            wiring::bind_media_root(&settings, &database);
            Ok(())
        }
        Command::Showmigrations => {
            let database = wiring::open_database(&settings)?;
            println!("autodocs ({:?})", database.backend());
            for (name, applied) in database.migration_status()? {
                println!(" [{}] {name}", if applied { "X" } else { " " });
            }
            Ok(())
        }
        Command::Createsuperuser { username, email } => {
            let password = match std::env::var("AUTODOCS_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    let password = rpassword::prompt_password("Password: ")?;
                    let again = rpassword::prompt_password("Password (again): ")?;
                    if password != again {
                        bail!("passwords do not match");
                    }
                    password
                }
            };
            let database = wiring::open_database(&settings)?;
            wiring::ensure_migrated(&settings, &database)?;
            let services = wiring::services(&settings, &database, Arc::new(DiscardEvents))?;
            let user = services
                .accounts()
                .create_superuser(&username, &email, &password)
                .map_err(|error| match error {
                    autodocs_domain::AccountError::Validation(errors) => {
                        anyhow::anyhow!("{errors}")
                    }
                    other => anyhow::anyhow!(other),
                })?;
            println!("Superuser {} created (id {}).", user.username, user.id);
            Ok(())
        }
        Command::Jobs(command) => jobs(settings, command),
        Command::Sweep { dry_run } => sweep(settings, dry_run),
        Command::Dumpdata { output } => transfer::dumpdata(&settings, output.as_deref()),
        Command::Loaddata { file } => transfer::loaddata(&settings, &file),
        Command::Check => {
            // Fails wherever `serve` would refuse the key; never writes one.
            let key = match secret::inspect(&settings)? {
                secret::KeySource::Configured => "configured (auth.secret_key)".to_owned(),
                secret::KeySource::File(path) => format!("kept in {}", path.display()),
                secret::KeySource::NotYetGenerated(path) => format!(
                    "not set; `serve` (or any command that needs one) will generate one in {}",
                    path.display()
                ),
            };
            let database = wiring::open_database(&settings)?;
            let pending = database.pending_migrations()?;
            println!("Settings OK (environment {}).", settings.environment);
            println!("Secret key: {key}.");
            println!(
                "Database {:?}: reachable, {} pending migration(s).",
                database.backend(),
                pending.len()
            );
            println!("Server: `serve` would listen on {}.", settings.server.bind);
            match wiring::Storage::open(&settings)? {
                wiring::Storage::Local(_) => {
                    let media_root = &settings.storage.media_root;
                    media_root_is_usable(media_root).with_context(|| {
                        format!(
                            "`serve` would refuse to start: the media root {} \
                             (storage.media_root) cannot be used",
                            media_root.display()
                        )
                    })?;
                    println!("Media root {}: usable.", media_root.display());
                }
                bucket @ wiring::Storage::S3(_) => {
                    bucket.ensure_usable().context(
                        "`serve` would refuse to start: the bucket (storage.s3) cannot be used",
                    )?;
                    println!("Bucket {}: usable.", bucket.describe());
                }
            }
            let migrates_itself = settings.database.auto_migrate && !settings.is_production();
            if !pending.is_empty() && !migrates_itself {
                anyhow::bail!(
                    "`serve` would refuse to start: {} migration(s) pending ({}) and this \
                     environment never migrates by itself; run `autodocs migrate` first",
                    pending.len(),
                    pending.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// Whether `serve` could make and write the media root, found without
/// leaving anything behind: the root, or the nearest folder above it that
/// exists, must be a folder that takes a new file.
fn media_root_is_usable(root: &std::path::Path) -> anyhow::Result<()> {
    let mut existing = root;
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => {
                existing = std::path::Path::new(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        bail!("{} is not a folder", existing.display());
    }
    let probe = existing.join(format!(".autodocs-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("cannot write in {}", existing.display()))?;
    std::fs::remove_file(&probe)
        .with_context(|| format!("cannot remove the probe {}", probe.display()))?;
    Ok(())
}

fn jobs(settings: Settings, command: JobsCommand) -> anyhow::Result<()> {
    let database = wiring::open_database(&settings)?;
    wiring::ensure_migrated(&settings, &database)?;
    let services = wiring::worker_services(&settings, &database)?;
    match command {
        JobsCommand::List { status, limit } => {
            let jobs = services.engine().list_jobs(status, limit)?;
            let mut out = std::io::stdout().lock();
            for job in &jobs {
                let error = job
                    .last_error
                    .as_deref()
                    .map(|error| error.replace(['\n', '\r'], " "))
                    .unwrap_or_else(|| "-".to_owned());
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}/{}\t{}\t{}",
                    job.id,
                    job.kind,
                    job.status,
                    job.attempts,
                    job.max_attempts,
                    job.run_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    error
                )?;
            }
            if jobs.is_empty() {
                eprintln!("No jobs.");
            }
            Ok(())
        }
        JobsCommand::Retry { id } => {
            match services.engine().retry_job(autodocs_domain::JobId(id)) {
                Ok(()) => {
                    println!("Job {id} is due again now.");
                    Ok(())
                }
                Err(autodocs_domain::EngineError::JobNotFound) => {
                    bail!("no dead or failed job {id}")
                }
                Err(error) => Err(error.into()),
            }
        }
        JobsCommand::Purge {
            dead,
            older_than_hours,
        } => {
            if older_than_hours < 0 {
                bail!("--older-than-hours must not be negative");
            }
            let purged = services
                .engine()
                .purge_jobs(chrono::Duration::hours(older_than_hours), dead)?;
            println!(
                "Deleted {purged} {} job(s).",
                if dead { "finished or dead" } else { "finished" }
            );
            Ok(())
        }
    }
}

/// `autodocs sweep [--dry-run]`: one sweep now, reported on stdout. A
/// refusal is printed with its reason and exits with status 1, so scripts
/// notice that nothing was swept.
fn sweep(settings: Settings, dry_run: bool) -> anyhow::Result<()> {
    let database = wiring::open_database(&settings)?;
    wiring::ensure_migrated(&settings, &database)?;
    let services = wiring::worker_services(&settings, &database)?;
    let report = if dry_run {
        services.sweep().run(true)?
    } else {
        wiring::sweep_and_log(&services)?
    };
    let (moved, deleted) = if dry_run {
        ("would move to quarantine", "would delete")
    } else {
        ("moved to quarantine", "deleted")
    };
    let mut out = std::io::stdout().lock();
    if report.temporary > 0 {
        writeln!(
            out,
            "{deleted}: {} unfinished upload(s) (.part)",
            report.temporary
        )?;
    }
    if let Some(reason) = &report.refused {
        writeln!(out, "refused: {reason}")?;
        out.flush()?;
        bail!("the sweep refused to touch stored files: {reason}");
    }
    for key in &report.quarantined {
        writeln!(out, "{moved}: documents/{key}")?;
    }
    for key in &report.purged {
        writeln!(out, "{deleted} from quarantine: documents/{key}")?;
    }
    if report.deferred > 0 {
        writeln!(
            out,
            "left for the next sweep: {} unreferenced file(s) past storage.sweep_max_files",
            report.deferred
        )?;
    }
    if report.is_empty() {
        writeln!(out, "nothing to sweep")?;
    }
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let log_format = settings.log.format;
    let database = wiring::open_database(&settings)?;
    wiring::ensure_migrated(&settings, &database)?;
    let listener = std::net::TcpListener::bind(&settings.server.bind)
        .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
    let address = listener.local_addr()?;
    let public_url = match settings.server.public_url.trim() {
        "" => format!("http://{address}"),
        configured => configured.to_owned(),
    };
    let (state, _listener) = wiring::app_state(&settings, &database, &public_url)?;
    wiring::prepare_storage(&settings, &state.services)?;
    let hub = state.hub.clone();
    let workers = if settings.jobs.run_in_serve && settings.jobs.workers > 0 {
        let worker_settings = worker::WorkerSettings::from_settings(&settings.jobs);
        Some(worker::Workers::start(
            state.services.clone(),
            worker_settings,
            &wiring::process_origin(),
        )?)
    } else {
        None
    };
    let http_settings = autodocs_http::HttpSettings {
        cors_allowed_origins: settings.cors.allowed_origins.clone(),
        workers: settings.server.workers,
        security_headers: autodocs_http::middleware::SecurityHeaders::for_public_url(&public_url),
    };
    actix_web::rt::System::new().block_on(async move {
        let server =
            autodocs_http::serve(listener, state, http_settings, autodocs_admin::configure)?;
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: closing sockets, finishing requests");
            hub.close_all();
            handle.stop(true).await;
        });
        logging::announce(
            log_format,
            &format!("autodocs listening on http://{address}"),
        )?;
        tracing::info!(%address, "serving");
        server.await?;
        if let Some(workers) = workers {
            tracing::info!("waiting for running jobs to finish");
            workers.shutdown();
        }
        Ok(())
    })
}

fn run_workers(settings: Settings) -> anyhow::Result<()> {
    let database = wiring::open_database(&settings)?;
    wiring::ensure_migrated(&settings, &database)?;
    let services = wiring::worker_services(&settings, &database)?;
    let worker_settings = worker::WorkerSettings::from_settings(&settings.jobs);
    let workers = worker::Workers::start(services, worker_settings, &wiring::process_origin())?;
    logging::announce(
        settings.log.format,
        &format!(
            "autodocs worker running {} worker(s)",
            worker_settings.count
        ),
    )?;
    actix_web::rt::System::new().block_on(shutdown_signal());
    tracing::info!("shutting down: letting running jobs finish");
    workers.shutdown();
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = actix_web::rt::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = actix_web::rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
    }
}
