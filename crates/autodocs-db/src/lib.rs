//! The diesel adapter: one code path for SQLite (the embedded default) and
//! PostgreSQL, implementing the domain's repository ports.
#![warn(missing_docs)]

mod access_cache;
mod connection;
mod error;
mod identity;
mod notify;
mod rate_windows;
mod repos;
#[allow(missing_docs)]
pub mod schema;
mod time;
mod transfer;
mod uow;

pub use connection::{AnyConnection, Backend, Database, DatabaseError, PoolSettings};
pub use identity::IdentityConflict;
pub use notify::{CHANNEL as EVENT_CHANNEL, PgListener, PgNotifyPublisher};
pub use rate_windows::{SharedRateWindows, rate_windows};
pub use transfer::{DumpSummary, LoadSummary, TransferError};
pub use uow::DieselUnitOfWork;
