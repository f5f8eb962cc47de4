//! The use cases: each one validates its input, runs its change in one unit
//! of work together with the activity it records, and returns domain values.

use std::sync::Arc;

use crate::ports::{Clock, PasswordHasher, TokenService, UnitOfWork};

pub mod activities;
pub mod auth;
pub mod missions;
pub mod steps;
pub mod users;

/// The ports every use case draws on, wired once by the binary.
#[derive(Clone)]
pub struct Services {
    /// Transactions over the repositories.
    pub uow: Arc<dyn UnitOfWork>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token signing and checking.
    pub tokens: Arc<dyn TokenService>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

#[cfg(test)]
pub(crate) mod testing;
