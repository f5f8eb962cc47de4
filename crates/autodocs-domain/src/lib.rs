//! The AutoDocs domain: missions broken into plan steps that gather and
//! verify documents, with every change written to an activity log.
//!
//! This crate is pure: state machines, value types parsed at the edge, the
//! use cases, and the ports (traits) they need. It does no I/O; the diesel
//! adapter, the HTTP layer and the binary provide the implementations.
//! Other Rust services can depend on it alone.
#![warn(missing_docs)]

pub mod activity;
pub mod activity_log;
pub mod document;
pub mod error;
pub mod events;
pub mod ids;
pub mod instance;
pub mod jobs;
pub mod mission;
pub mod paging;
pub mod password_policy;
pub mod plan_step;
pub mod ports;
pub mod usecases;
pub mod user;
pub mod validation;

pub use error::{Error, RepoError, Result};
pub use ids::{ActivityId, DocumentId, JobId, MissionId, StepId, UserId};
pub use usecases::{Limits, Ports, Services};
