//! Events between processes over PostgreSQL `LISTEN/NOTIFY`.
//!
//! A process delivers its own events locally at once and announces them on
//! a channel as small references (`a:12`, `m:3`), never whole payloads, so
//! NOTIFY's 8000-byte limit cannot bite. Every other process listening on
//! the same database loads the referenced rows and delivers them to its own
//! sockets. No infrastructure beyond the database is needed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use autodocs_domain::events::{Event, EventPublisher, EventRef};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::connection::{AnyConnection, Database};

/// The channel events are announced on.
pub const CHANNEL: &str = "autodocs_events";
/// Stay well under PostgreSQL's 8000-byte payload limit.
const MAX_PAYLOAD: usize = 7000;
/// How often the listener polls its connection for notifications.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How often the listener checks its connection is alive.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Publishes locally, then announces on PostgreSQL for the other processes.
pub struct PgNotifyPublisher {
    local: Arc<dyn EventPublisher>,
    database: Database,
    origin: String,
}

impl PgNotifyPublisher {
    /// A publisher for a PostgreSQL `database`; `origin` identifies this
    /// process so that its listener skips its own announcements.
    pub fn new(local: Arc<dyn EventPublisher>, database: Database, origin: String) -> Self {
        Self {
            local,
            database,
            origin,
        }
    }

    fn announce(&self, references: &[EventRef]) -> Result<(), String> {
        let mut conn = self
            .database
            .connection()
            .map_err(|error| error.to_string())?;
        let AnyConnection::Postgresql(pg) = &mut *conn else {
            return Ok(());
        };
        for payload in payloads(&self.origin, references) {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(CHANNEL)
                .bind::<Text, _>(payload)
                .execute(pg)
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }
}

/// `origin|ref,ref,...` payloads, each under the size limit.
fn payloads(origin: &str, references: &[EventRef]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for reference in references {
        let encoded = reference.encode();
        if !current.is_empty() && current.len() + encoded.len() + 1 > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(origin);
            current.push('|');
        } else {
            current.push(',');
        }
        current.push_str(&encoded);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// Splits a payload into its origin and references.
fn parse_payload(payload: &str) -> Option<(&str, Vec<EventRef>)> {
    let (origin, references) = payload.split_once('|')?;
    Some((
        origin,
        references.split(',').filter_map(EventRef::decode).collect(),
    ))
}

impl EventPublisher for PgNotifyPublisher {
    fn publish(&self, events: Vec<Event>) {
        let references: Vec<EventRef> = events
            .iter()
            .map(|event| event.payload.reference())
            .collect();
        self.local.publish(events);
        if let Err(error) = self.announce(&references) {
            tracing::warn!(%error, "could not announce events to other processes");
        }
    }
}

/// The listening side: a dedicated connection on its own thread.
pub struct PgListener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PgListener {
    /// Listens on `url` and hands every reference announced by another
    /// process to `deliver`. Reconnects with backoff if the connection drops.
    pub fn spawn(
        url: String,
        origin: String,
        deliver: Arc<dyn Fn(EventRef) + Send + Sync>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pg-listener".into())
            .spawn(move || listen(&url, &origin, &*deliver, &stopping))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for PgListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn listen(url: &str, origin: &str, deliver: &(dyn Fn(EventRef) + Send + Sync), stop: &AtomicBool) {
    let url = crate::connection::connection_url(url);
    let mut backoff = MIN_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        match listen_once(&url, origin, deliver, stop, &mut backoff) {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "event listener lost its connection; reconnecting");
                sleep_unless_stopped(stop, backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The first wait before reconnecting the listener, doubled on each failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Sleeps `duration` in short slices, so shutting down is not delayed by a backoff.
fn sleep_unless_stopped(stop: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn listen_once(
    url: &str,
    origin: &str,
    deliver: &(dyn Fn(EventRef) + Send + Sync),
    stop: &AtomicBool,
    backoff: &mut Duration,
) -> Result<(), diesel::result::Error> {
    let mut conn = diesel::PgConnection::establish(url)
        .map_err(|error| diesel::result::Error::QueryBuilderError(Box::new(error)))?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    // Listening again: the next loss starts over from a short wait.
    if *backoff != MIN_BACKOFF {
        tracing::info!("event listener reconnected");
    }
    *backoff = MIN_BACKOFF;
    let mut last_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut received = false;
        for notification in conn.notifications_iter() {
            let notification = notification?;
            received = true;
            let Some((sender, references)) = parse_payload(&notification.payload) else {
                continue;
            };
            if sender == origin {
                continue;
            }
            references.into_iter().for_each(deliver);
        }
        if last_check.elapsed() > KEEPALIVE {
            conn.batch_execute("SELECT 1")?;
            last_check = Instant::now();
        }
        if !received {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_small_and_round_trip() {
        let references: Vec<EventRef> = (0..5000)
            .map(|id| EventRef::Activity(autodocs_domain::ActivityId(id)))
            .collect();
        let announced = payloads("origin-1", &references);
        assert!(announced.len() > 1);
        let mut decoded = Vec::new();
        for payload in &announced {
            assert!(payload.len() <= MAX_PAYLOAD);
            let (origin, refs) = parse_payload(payload).expect("well formed");
            assert_eq!(origin, "origin-1");
            decoded.extend(refs);
        }
        assert_eq!(decoded, references);
        assert!(payloads("o", &[]).is_empty());
    }
}
