//! One conformance suite for the ports of `autodocs-domain`, written once
//! and run against every adapter (the in-memory one, the diesel one on
//! SQLite and on PostgreSQL).
//!
//! Each test is a plain function in [`tests`] taking a `&dyn UnitOfWork`
//! over a fresh, empty database; [`port_conformance!`] expands to one
//! `#[test]` per function, each building its own [`Fixture`]:
//!
//! ```ignore
//! autodocs_conformance::port_conformance!(|| {
//!     autodocs_conformance::Fixture::new(autodocs_memory::MemoryUnitOfWork::new())
//! });
//! ```
//!
//! The closure may also return `Option<Fixture>`: `None` skips the test
//! (a backend that is not configured, e.g. no `TEST_DATABASE_URL`).
//!
//! The throttle and lockout counters ([`RateWindows`]) are a port of their
//! own, outside any transaction: [`rate_windows_conformance!`] runs the
//! functions of [`rate_windows`] the same way on a [`WindowsFixture`].
#![warn(missing_docs)]

use std::any::Any;
use std::sync::Arc;

use autodocs_domain::ports::{RateWindows, UnitOfWork};

pub mod rate_windows;
pub mod tests;

mod support;

/// A fresh database for one test, and whatever must outlive its unit of
/// work (a temporary directory, a guard that drops a test database).
pub struct Fixture {
    // Dropped in this order: the unit of work (and its pool) first.
    uow: Box<dyn UnitOfWork>,
    _guard: Option<Box<dyn Any>>,
}

impl Fixture {
    /// A fixture that owns only its unit of work.
    pub fn new(uow: impl UnitOfWork + 'static) -> Self {
        Self {
            uow: Box::new(uow),
            _guard: None,
        }
    }

    /// A fixture whose `guard` is dropped after the unit of work.
    pub fn with_guard(uow: impl UnitOfWork + 'static, guard: impl Any) -> Self {
        Self {
            uow: Box::new(uow),
            _guard: Some(Box::new(guard)),
        }
    }

    /// The unit of work over the fresh database.
    pub fn uow(&self) -> &dyn UnitOfWork {
        &*self.uow
    }
}

/// Runs one test of the suite on a fixture from `make` (skipped, with a
/// note on stderr, when `make` gives none).
pub fn run<F: Into<Option<Fixture>>>(
    name: &str,
    make: impl FnOnce() -> F,
    test: fn(&dyn UnitOfWork),
) {
    match make().into() {
        Some(fixture) => {
            test(fixture.uow());
            drop(fixture);
        }
        None => eprintln!("skipped {name}: this backend is not configured"),
    }
}

/// Fresh, empty counters for one test of [`rate_windows`], and whatever
/// must outlive them.
pub struct WindowsFixture {
    // Dropped in this order: the counters (and their pool) first.
    windows: Arc<dyn RateWindows>,
    _guard: Option<Box<dyn Any>>,
}

impl WindowsFixture {
    /// A fixture that owns only its counters.
    pub fn new(windows: impl RateWindows + 'static) -> Self {
        Self {
            windows: Arc::new(windows),
            _guard: None,
        }
    }

    /// A fixture whose `guard` is dropped after the counters.
    pub fn with_guard(windows: Arc<dyn RateWindows>, guard: impl Any) -> Self {
        Self {
            windows,
            _guard: Some(Box::new(guard)),
        }
    }
}

/// Runs one test of [`rate_windows`] on a fixture from `make` (skipped,
/// with a note on stderr, when `make` gives none).
pub fn run_windows<F: Into<Option<WindowsFixture>>>(
    name: &str,
    make: impl FnOnce() -> F,
    test: fn(&dyn RateWindows),
) {
    match make().into() {
        Some(fixture) => {
            test(&*fixture.windows);
            drop(fixture);
        }
        None => eprintln!("skipped {name}: this backend is not configured"),
    }
}

/// Expands to one `#[test]` per behaviour of [`rate_windows`], each on
/// fresh counters from the given closure (`|| -> WindowsFixture` or
/// `|| -> Option<WindowsFixture>`).
#[macro_export]
macro_rules! rate_windows_conformance {
    ($make:expr $(,)?) => {
        $crate::__rate_windows_tests!(
            $make;
            rate_windows_count_up_to_the_limit_then_refuse,
            rate_windows_give_back_in_the_same_window_only,
            rate_windows_start_afresh_once_ended,
            rate_windows_prune_forgets_only_ended_windows,
            rate_windows_count_concurrent_hits_once_each,
        );
    };
}

/// The `#[test]` wrappers of [`rate_windows_conformance!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __rate_windows_tests {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run_windows(stringify!($name), $make, $crate::rate_windows::$name);
            }
        )*
    };
}

/// Expands to one `#[test]` per behaviour of the suite, each running the
/// function of the same name in [`tests`] on a fresh fixture from the
/// given closure (`|| -> Fixture` or `|| -> Option<Fixture>`).
#[macro_export]
macro_rules! port_conformance {
    ($make:expr $(,)?) => {
        $crate::__conformance_tests!(
            $make;
            users_create_and_find_round_trip,
            users_refuse_a_second_account_with_the_same_username_key,
            users_refuse_a_second_account_with_the_same_email_key,
            users_find_credentials_prefers_the_email_owner,
            users_exists_checks_fold_case_and_except_one_user,
            users_replace_password_hash_is_conditional,
            users_update_account_is_partial_and_refuses_a_taken_email,
            users_list_searches_filters_and_pages,
            users_profile_is_saved_whole,
            users_list_puts_never_logged_in_last,
            users_delete_cascades_to_everything_they_own,
            refresh_tokens_revoke_only_once,
            refresh_tokens_revoke_all_and_purge_expired,
            steps_name_their_mission,
            admin_sessions_are_found_while_live_and_unique,
            steps_search_across_missions,
            users_usernames_are_read_in_one_batch,
            admin_sessions_close_purge_and_cascade,
            activities_list_newest_first,
            activities_list_filters_and_find_respects_owner,
            missions_find_respects_owner,
            missions_list_filters_by_status_kind_and_priority,
            missions_list_searches_title_and_description,
            missions_list_pages_and_counts,
            missions_list_orders_with_ties_broken_by_id,
            missions_list_puts_missing_deadlines_last_ascending,
            missions_transition_is_conditional,
            missions_carry_step_and_document_counts,
            missions_overdue_are_flagged_once,
            missions_delete_spares_the_protected_status_and_cascades,
            steps_list_by_order_then_id,
            steps_delete_removes_the_subtree,
            steps_next_order_appends,
            steps_start_pending_is_conditional,
            steps_skip_open_skips_only_open_steps,
            steps_update_applies_only_the_changes,
            documents_find_respects_owner,
            documents_delete_keeps_its_activities_detached,
            documents_list_filters_orders_and_pages,
            documents_storage_keys_are_unique,
            documents_verification_is_stored,
            jobs_unique_key_refuses_a_second_live_job,
            jobs_claim_takes_due_jobs_in_order,
            jobs_claim_skips_leased_jobs,
            jobs_expired_lease_can_be_reclaimed,
            jobs_claim_spares_busy_users,
            jobs_take_step_allows_one_holder,
            jobs_next_due_sees_queued_runs_and_leases,
            jobs_requeue_bury_and_retry,
            jobs_reschedule_coalesces_with_a_waiting_job,
            jobs_list_count_and_purge,
            jobs_search_pages_and_delete_finished,
            transaction_rolls_back_every_repository_on_error,
            transaction_that_panics_rolls_back,
            transactions_from_many_threads_all_commit,
            recorded_transaction_returns_the_activities_of_a_commit,
            instance_has_an_identity,
        );
    };
}

/// The `#[test]` wrappers of [`port_conformance!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run(stringify!($name), $make, $crate::tests::$name);
            }
        )*
    };
}
