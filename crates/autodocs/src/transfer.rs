//! `autodocs dumpdata` and `autodocs loaddata`: moving a deployment's data
//! between databases (the SQL is in `autodocs_db::transfer`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use autodocs_db::{Database, DieselUnitOfWork, DumpSummary};
use autodocs_domain::usecases::sweep::{self, MediaRootBinding};

use crate::settings::Settings;
use crate::wiring;

/// Buffer between the database and the file: large writes, few calls.
const BUFFER_BYTES: usize = 256 * 1024;

/// `autodocs dumpdata [--output FILE]`: the JSON on stdout, or written to
/// `FILE` through a temporary file renamed into place once complete, so a
/// failed dump never leaves a plausible-looking file behind.
pub fn dumpdata(settings: &Settings, output: Option<&Path>) -> anyhow::Result<()> {
    let database = wiring::open_database(settings)?;
    refuse_pending_migrations(
        &database,
        "dumpdata reads the current schema and never changes the database it reads",
    )?;
    let summary = match output {
        None => {
            let mut out = BufWriter::with_capacity(BUFFER_BYTES, std::io::stdout().lock());
            let summary = database.dump(&mut out)?;
            out.flush().context("cannot write the dump")?;
            summary
        }
        Some(path) => dump_to_file(&database, path)?,
    };
    let models: Vec<String> = summary
        .models
        .iter()
        .map(|(model, count)| format!("{model} {count}"))
        .collect();
    eprintln!(
        "Dumped {} object(s): {}.",
        summary.objects(),
        models.join(", ")
    );
    Ok(())
}

/// dumpdata never migrates (it never writes to the database it reads);
/// loaddata migrates only where `serve` would (`database.auto_migrate`,
/// never in production), and otherwise loads only into the schema
/// `autodocs migrate` made, never into a half-made one.
fn refuse_pending_migrations(database: &Database, why: &str) -> anyhow::Result<()> {
    let pending = database.pending_migrations()?;
    if !pending.is_empty() {
        bail!(
            "{} migration(s) pending ({}); {why}: run `autodocs migrate` first",
            pending.len(),
            pending.join(", ")
        );
    }
    Ok(())
}

fn dump_to_file(database: &Database, path: &Path) -> anyhow::Result<DumpSummary> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, file);
    let written = database
        .dump(&mut out)
        .map_err(anyhow::Error::from)
        .and_then(|summary| {
            let file = out.into_inner().map_err(|error| error.into_error())?;
            file.sync_all()?;
            Ok(summary)
        })
        .and_then(|summary| {
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot rename the dump to {}", path.display()))?;
            Ok(summary)
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// `autodocs loaddata FILE` (`-` reads stdin): everything or nothing, into
/// an empty, migrated database.
pub fn loaddata(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let database = wiring::open_database(settings)?;
    if settings.database.auto_migrate && !settings.is_production() {
        // As `serve` would here: a new development database is made first.
        for version in database.migrate()? {
            tracing::info!(%version, "applied migration");
        }
    } else {
        refuse_pending_migrations(&database, "loaddata loads only into a migrated database")?;
    }
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(|| format!("cannot open {}", file.display()))?)
    };
    let summary = database
        .load(BufReader::with_capacity(BUFFER_BYTES, input))
        .with_context(|| format!("cannot load {}; nothing was loaded", file.display()))?;
    for conflict in &summary.identity_conflicts {
        tracing::warn!(
            user_id = conflict.user_id,
            field = conflict.field,
            "{conflict}"
        );
    }
    println!(
        "Installed {} object(s) from {}.",
        summary.objects,
        file.display()
    );
    check_media_root(settings, &database);
    Ok(())
}

/// The documents' files are not in the dump: says whether the storage
/// holds them for this database, and marks it when it is unmarked and
/// holds some of them (as `migrate` would).
fn check_media_root(settings: &Settings, database: &Database) {
    let storage = match wiring::Storage::open(settings) {
        Ok(storage) => storage,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "could not check the storage");
            return;
        }
    };
    let root = storage.describe();
    let uow = DieselUnitOfWork::new(database.clone());
    match sweep::bind_media_root(&uow, &*storage.port()) {
        Ok(MediaRootBinding::Bound(_) | MediaRootBinding::AlreadyBound(_)) => {}
        Ok(MediaRootBinding::OtherDatabase { marker, database }) => eprintln!(
            "Note: the media root {root} is marked for another database ({marker}), most \
             likely the one this data came from. Once that deployment is retired, write \
             {database} into its {} marker so the storage sweep runs here (see \
             docs/operations.md).",
            autodocs_storage::MARKER_FILE
        ),
        Ok(MediaRootBinding::ForeignFiles) => eprintln!(
            "Note: the media root {root} has no marker and holds files none of the loaded \
             documents reference; the storage sweep refuses to run there until it is \
             marked (see docs/operations.md)."
        ),
        Ok(MediaRootBinding::NoDatabaseIdentity) => {}
        Err(error) => tracing::warn!(media_root = %root, %error, "could not check the storage"),
    }
}
