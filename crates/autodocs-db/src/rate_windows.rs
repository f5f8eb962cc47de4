//! The throttle and lockout counters (`RateWindows`): in the
//! `autodocs_rate_window` table on PostgreSQL, so every `serve` process
//! counts against the same limits; in process on SQLite, whose one file
//! is served by one process (and where a write per login attempt would
//! queue behind every other writer for nothing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use autodocs_domain::RepoError;
use autodocs_domain::ports::{RateWindows, RepoResult};
use autodocs_domain::rate_window::{InProcessRateWindows, RateKey, WindowHit, WindowStamp};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Text};

use crate::connection::{AnyConnection, Backend, Database};
use crate::error::repo_error;

/// The counters for `database`: shared through the database on
/// PostgreSQL, in this process on SQLite.
pub fn rate_windows(database: &Database) -> Arc<dyn RateWindows> {
    match SharedRateWindows::new(database.clone()) {
        Some(shared) => Arc::new(shared),
        None => Arc::new(InProcessRateWindows::new()),
    }
}

/// How often a process deletes the windows that ended (at most).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Counts a hit in one statement: a new window when there is none or it
/// has ended, one more hit while under the limit, and no row at all (the
/// `WHERE` of `DO UPDATE` refuses) when the window is full. The database
/// clock decides, so processes with skewed clocks agree. The row lock the
/// upsert takes makes concurrent hits on one key from any number of
/// processes count one after the other.
const HIT: &str = "\
INSERT INTO autodocs_rate_window AS w (key, window_ends, count) \
VALUES ($1, (now() AT TIME ZONE 'UTC') + $2 * INTERVAL '1 microsecond', 1) \
ON CONFLICT (key) DO UPDATE SET \
    count = CASE WHEN w.window_ends <= (now() AT TIME ZONE 'UTC') THEN 1 ELSE w.count + 1 END, \
    window_ends = CASE WHEN w.window_ends <= (now() AT TIME ZONE 'UTC') \
        THEN EXCLUDED.window_ends ELSE w.window_ends END \
WHERE w.window_ends <= (now() AT TIME ZONE 'UTC') OR w.count < $3 \
RETURNING w.count, (EXTRACT(EPOCH FROM w.window_ends) * 1000000)::BIGINT AS stamp";

/// Seconds until a full window ends (only read to word a refusal).
const REMAINING: &str = "\
SELECT GREATEST(EXTRACT(EPOCH FROM window_ends - (now() AT TIME ZONE 'UTC')), 0)::FLOAT8 \
    AS seconds \
FROM autodocs_rate_window WHERE key = $1";

/// The stamp is the window's end in microseconds, computed as in `HIT`.
const GIVE_BACK: &str = "\
UPDATE autodocs_rate_window SET count = count - 1 \
WHERE key = $1 AND count > 0 \
    AND (EXTRACT(EPOCH FROM window_ends) * 1000000)::BIGINT = $2";

const PRUNE: &str =
    "DELETE FROM autodocs_rate_window WHERE window_ends <= (now() AT TIME ZONE 'UTC')";

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Integer)]
    count: i32,
    #[diesel(sql_type = BigInt)]
    stamp: i64,
}

#[derive(QueryableByName)]
struct Remaining {
    #[diesel(sql_type = Double)]
    seconds: f64,
}

/// [`RateWindows`] in the `autodocs_rate_window` table of a PostgreSQL
/// database: one row per key (`key`, `window_ends`, `count`), each hit a
/// single atomic upsert. Rows of ended windows are deleted at most once a
/// minute per process, so the table holds about the keys hit within the
/// longest window.
pub struct SharedRateWindows {
    database: Database,
    /// When this process last pruned, in milliseconds since `started`.
    last_prune: AtomicU64,
    started: Instant,
}

impl SharedRateWindows {
    /// Counters in `database`; `None` on SQLite (see [`rate_windows`]).
    pub fn new(database: Database) -> Option<Self> {
        (database.backend() == Backend::Postgres).then(|| Self {
            database,
            last_prune: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    fn with_pg<T>(
        &self,
        work: impl FnOnce(&mut diesel::PgConnection) -> QueryResult<T>,
    ) -> RepoResult<T> {
        let mut conn = self
            .database
            .connection()
            .map_err(|error| RepoError::Unavailable(error.to_string()))?;
        let AnyConnection::Postgresql(pg) = &mut *conn else {
            return Err(RepoError::Other(
                "shared rate windows need PostgreSQL".into(),
            ));
        };
        work(pg).map_err(|error| {
            let error = repo_error(error);
            if matches!(error, RepoError::Unavailable(_)) {
                self.database.note_unavailable();
            }
            error
        })
    }

    /// Prunes when this process has not for [`PRUNE_EVERY`]; one caller
    /// wins the turn, the others go on at once. A failed prune is retried
    /// at the next turn: it only delays forgetting.
    fn prune_now_and_then(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_prune.load(Ordering::Relaxed);
        let every = u64::try_from(PRUNE_EVERY.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every {
            return;
        }
        if self
            .last_prune
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && let Err(error) = self.prune()
        {
            tracing::warn!(%error, "could not delete ended rate windows");
        }
    }
}

impl RateWindows for SharedRateWindows {
    fn hit(&self, key: &RateKey, limit: u32, window: Duration) -> RepoResult<WindowHit> {
        self.prune_now_and_then();
        let micros = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let counted = self.with_pg(|pg| {
            diesel::sql_query(HIT)
                .bind::<Text, _>(key.as_str())
                .bind::<BigInt, _>(micros)
                .bind::<Integer, _>(limit)
                .get_result::<Counted>(pg)
                .optional()
        })?;
        if let Some(counted) = counted {
            return Ok(WindowHit::Counted {
                count: u32::try_from(counted.count).unwrap_or(0),
                stamp: WindowStamp::new(counted.stamp),
            });
        }
        let remaining = self.with_pg(|pg| {
            diesel::sql_query(REMAINING)
                .bind::<Text, _>(key.as_str())
                .get_result::<Remaining>(pg)
                .optional()
        })?;
        // The row may have been pruned in between: the window ended then.
        let seconds = remaining.map_or(0.0, |remaining| remaining.seconds);
        let retry_after = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO);
        Ok(WindowHit::Refused {
            retry_after: retry_after.max(Duration::from_secs(1)),
        })
    }

    fn give_back(&self, key: &RateKey, stamp: WindowStamp) -> RepoResult<()> {
        self.with_pg(|pg| {
            diesel::sql_query(GIVE_BACK)
                .bind::<Text, _>(key.as_str())
                .bind::<BigInt, _>(stamp.get())
                .execute(pg)
        })?;
        Ok(())
    }

    fn prune(&self) -> RepoResult<u64> {
        let deleted = self.with_pg(|pg| diesel::sql_query(PRUNE).execute(pg))?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }
}
