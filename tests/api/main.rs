//! Black-box API tests: the real `autodocs` binary on a random port, spoken to
//! over HTTP as the frontend would (see `/work/shared/API.md`).
//!
//! Every test body runs against SQLite and, when `TEST_DATABASE_URL` points at
//! a PostgreSQL server, against a fresh PostgreSQL database too.

#[macro_use]
mod harness;

mod activities;
mod admin;
mod apidocs;
mod auth;
mod conformance;
mod conformance_selftest;
mod documents;
mod download_links;
mod fairness;
mod hostile;
mod identity;
mod jobs;
mod metrics;
mod missions;
mod ops;
mod outage;
mod proxies;
mod realtime;
mod s3;
mod secrets;
mod security_headers;
mod settle;
mod steps;
mod sweep;
mod timestamps;
mod transfer;
mod users;
