//! The system settles (issue 11): after any request an idle server spends
//! next to no CPU and its job table stops growing. A started mission with
//! nothing automated to run waits `in_progress` without queuing work; many
//! edits of a running mission coalesce into one queued run; maintenance jobs
//! run once per period across processes; finished jobs are purged after
//! `jobs.retain_finished_hours`; operators see and act on jobs with
//! `autodocs jobs list|retry|purge`.
//!
//! Bounds are generous: "barely moves" is under 5% of one core.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, TestApp, describe, server_cpu_share};
use crate::jobs::{
    act_ok, await_status, count, detail, job_table, mission_jobs, mission_with_steps, step_status,
    wait,
};

backend_tests!(a_started_mission_without_automated_work_queues_nothing_and_idles,);

backend_custom_tests!(
    many_edits_of_a_running_mission_coalesce_into_one_run,
    maintenance_runs_once_per_period_across_processes,
    finished_jobs_are_purged_after_retention_dead_ones_kept,
    operators_list_retry_and_purge_jobs,
);

const DEADLINE: Duration = Duration::from_secs(30);

/// `autodocs jobs list` lines (id, kind, status, attempts, run_at, error).
async fn jobs_list(app: &TestApp, args: &[&str]) -> Vec<String> {
    let mut all = vec!["jobs", "list"];
    all.extend_from_slice(args);
    let out = app.cli(&all, &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// No steps, and only manual steps: started, both wait `in_progress`, no
/// mission run is queued, the job table stops growing and the server's CPU
/// time barely moves. Adding an automated step wakes the engine again.
async fn a_started_mission_without_automated_work_queues_nothing_and_idles(app: TestApp) {
    let anna = app.register("anna").await;
    let (empty, _) = mission_with_steps(&app, &anna, "No steps", &[]).await;
    let manual = json!({"kind": "manual"});
    let (manual_only, manual_steps) =
        mission_with_steps(&app, &anna, "Manual", &[manual.clone(), manual]).await;
    act_ok(&app, &anna, empty, "start", "in_progress").await;
    act_ok(&app, &anna, manual_only, "start", "in_progress").await;

    // Let start-up work (maintenance jobs) finish, then watch.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let jobs_before = count(&app, "");
    let share = server_cpu_share(&app, Duration::from_secs(3)).await;
    let jobs_after = count(&app, "");
    assert!(
        share < 0.05,
        "an idle server used {:.1}% of a core over 3 s\n{}",
        share * 100.0,
        job_table(&app)
    );
    assert_eq!(
        jobs_before,
        jobs_after,
        "the job table kept growing\n{}",
        job_table(&app)
    );
    for mission in [empty, manual_only] {
        assert_eq!(
            mission_jobs(&app, mission),
            0,
            "mission {mission} has nothing automated: no run queued\n{}",
            job_table(&app)
        );
        assert_eq!(detail(&app, &anna, mission).await["status"], "in_progress");
    }
    let listed = jobs_list(&app, &[]).await;
    assert!(
        !listed.iter().any(|line| line.contains("advance_mission")),
        "`autodocs jobs list` shows no mission run: {listed:#?}"
    );

    // An automated step added to the empty mission runs and completes it.
    let r = app
        .post_json(
            &format!("/api/missions/{empty}/steps/"),
            &json!({"title": "timer", "action": wait(1)}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    await_status(&app, &anna, empty, "completed", DEADLINE).await;
    // The manual mission completes when the user does its steps; nothing queued.
    for step in &manual_steps {
        let r = app
            .patch_json(
                &format!("/api/missions/{manual_only}/steps/{step}/"),
                &json!({"status": "completed"}),
                Some(&anna.access),
            )
            .await;
        r.assert_status(200);
    }
    let d = detail(&app, &anna, manual_only).await;
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(mission_jobs(&app, manual_only), 0, "\n{}", job_table(&app));
}

/// Fifty edits of a started mission never pile up runs: they coalesce into
/// the one run already waiting in the queue. Once its timer is done and a
/// manual step is next, fifty more edits queue nothing at all.
async fn many_edits_of_a_running_mission_coalesce_into_one_run(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let anna = app.register("anna").await;
    let (mission, steps) =
        mission_with_steps(&app, &anna, "Edited", &[wait(1), json!({"kind": "manual"})]).await;
    act_ok(&app, &anna, mission, "start", "in_progress").await;
    let edit_all = |round: u32| {
        let app = &app;
        let anna = &anna;
        let step = steps[1];
        async move {
            for i in 0..50 {
                let r = app
                    .patch_json(
                        &format!("/api/missions/{mission}/steps/{step}/"),
                        &json!({"title": format!("renamed {round}.{i}")}),
                        Some(&anna.access),
                    )
                    .await;
                r.assert_status(200);
            }
        }
    };
    edit_all(1).await;
    assert_eq!(
        mission_jobs(&app, mission),
        1,
        "50 edits coalesced into the queued run\n{}",
        job_table(&app)
    );
    let _worker = app.spawn_worker(&[("AUTODOCS__JOBS__WORKERS", "2")]).await;
    let until = Instant::now() + DEADLINE;
    while step_status(&detail(&app, &anna, mission).await, steps[0]) != "completed" {
        assert!(
            Instant::now() < until,
            "the timer never ran\n{}",
            job_table(&app)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    edit_all(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mission_jobs(&app, mission),
        1,
        "one run did the timer; edits with only a manual step left queue nothing\n{}",
        job_table(&app)
    );
    assert_eq!(
        count(
            &app,
            &format!("WHERE mission_id = {mission} AND status <> 'done'")
        ),
        0,
        "\n{}",
        job_table(&app)
    );
    let d = detail(&app, &anna, mission).await;
    assert_eq!(d["status"], "in_progress", "waits for the user: {d}");
}

/// `serve` and two `worker` processes all schedule the maintenance jobs:
/// each kind exists once per 5-minute period (a test may straddle two
/// periods, never more), its key kept after it finished.
async fn maintenance_runs_once_per_period_across_processes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let env = [("AUTODOCS__JOBS__WORKERS", "1")];
    let first = app.spawn_worker(&env).await;
    // Let the first processes' maintenance jobs finish before the next
    // process schedules: a key dropped on finish would let it run again.
    wait_for_no_queued(&app).await;
    let second = app.spawn_worker(&env).await;
    wait_for_no_queued(&app).await;
    drop((first, second));
    for kind in [
        "purge_refresh_tokens",
        "sweep_files",
        "flag_overdue_missions",
        "purge_finished_jobs",
    ] {
        let total = count(&app, &format!("WHERE kind = '{kind}'"));
        let periods = count(
            &app,
            &format!("WHERE kind = '{kind}' AND unique_key IS NOT NULL"),
        );
        assert!(
            (1..=2).contains(&total) && total == periods,
            "{kind}: {total} jobs for {periods} keyed periods\n{}",
            job_table(&app)
        );
        let distinct: i64 = app
            .db
            .query_value(&format!(
                "SELECT CAST(count(DISTINCT unique_key) AS TEXT) AS value FROM jobs_job WHERE kind = '{kind}'"
            ))
            .and_then(|v| v.trim().parse().ok())
            .expect("a count");
        assert_eq!(
            distinct,
            total,
            "{kind}: once per period\n{}",
            job_table(&app)
        );
        assert_eq!(
            count(&app, &format!("WHERE kind = '{kind}' AND status <> 'done'")),
            0,
            "{kind} ran\n{}",
            job_table(&app)
        );
    }
}

async fn wait_for_no_queued(app: &TestApp) {
    let until = Instant::now() + DEADLINE;
    // The newest process schedules at start; give it a moment to do so.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while count(app, "WHERE status IN ('queued', 'running')") > 0 {
        assert!(Instant::now() < until, "jobs never ran\n{}", job_table(app));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SQL for "`hours` ago" on each database, as stored (UTC, no zone).
fn hours_ago(backend: Backend, hours: i64) -> String {
    match backend {
        Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{hours} hours')"),
        Backend::Postgres => {
            format!("((now() AT TIME ZONE 'UTC') - interval '{hours} hours')")
        }
    }
}

fn insert_job(app: &TestApp, kind: &str, status: &str, touched_hours_ago: i64) -> i64 {
    let at = hours_ago(app.backend, touched_hours_ago);
    app.db.exec(&format!(
        "INSERT INTO jobs_job (kind, payload, status, attempts, max_attempts, run_at, last_error, created_at, updated_at) \
         VALUES ('{kind}', '{{}}', '{status}', 1, 1, {at}, 'boom', {at}, {at})"
    ));
    app.db
        .query_value("SELECT CAST(max(id) AS TEXT) AS value FROM jobs_job")
        .and_then(|v| v.trim().parse().ok())
        .expect("the new job's id")
}

fn exists(app: &TestApp, id: i64) -> bool {
    count(app, &format!("WHERE id = {id}")) == 1
}

/// The periodic purge deletes finished jobs older than
/// `jobs.retain_finished_hours` (24, then 2), keeps younger ones, and keeps
/// dead jobs whatever their age.
async fn finished_jobs_are_purged_after_retention_dead_ones_kept(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let old_done = insert_job(&app, "legacy", "done", 25);
    let younger = insert_job(&app, "legacy", "done", 23);
    let three_hours = insert_job(&app, "legacy", "done", 3);
    let old_dead = insert_job(&app, "legacy", "dead", 100);
    let worker = app.spawn_worker(&[]).await;
    wait_for_no_queued(&app).await;
    assert!(
        !exists(&app, old_done),
        "25 h old: purged\n{}",
        job_table(&app)
    );
    assert!(exists(&app, younger), "23 h old: kept\n{}", job_table(&app));
    assert!(
        exists(&app, three_hours),
        "3 h old: kept\n{}",
        job_table(&app)
    );
    assert!(exists(&app, old_dead), "dead: kept\n{}", job_table(&app));
    drop(worker);

    // A shorter retention, in the next period (a fresh scheduler's key is
    // per period, so clear this period's purge job to let it run again).
    app.db
        .exec("DELETE FROM jobs_job WHERE kind = 'purge_finished_jobs'");
    let _worker = app
        .spawn_worker(&[("AUTODOCS__JOBS__RETAIN_FINISHED_HOURS", "2")])
        .await;
    wait_for_no_queued(&app).await;
    assert!(
        !exists(&app, younger),
        "23 h > 2 h: purged\n{}",
        job_table(&app)
    );
    assert!(
        !exists(&app, three_hours),
        "3 h > 2 h: purged\n{}",
        job_table(&app)
    );
    assert!(exists(&app, old_dead), "dead: kept\n{}", job_table(&app));

    // 0 is refused: the setting must keep a period's finished jobs.
    let out = app
        .cli(
            &["check"],
            &[("AUTODOCS__JOBS__RETAIN_FINISHED_HOURS", "0")],
        )
        .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("jobs.retain_finished_hours"),
        "{}",
        describe(&out)
    );
}

/// `jobs list` prints one line per job (id, kind, status, attempts,
/// run_at, last error), `--status dead` filters; `jobs retry ID` makes a
/// dead job due again with attempts reset (and refuses a job that is not
/// dead or failed); `jobs purge` deletes finished jobs but not dead ones,
/// `--dead` those too.
async fn operators_list_retry_and_purge_jobs(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__JOBS__RUN_IN_SERVE", "false")]).await;
    let dead = insert_job(&app, "no_such_kind", "dead", 0);
    let done = insert_job(&app, "no_such_kind", "done", 0);

    let all = jobs_list(&app, &[]).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let line: Vec<&str> = all[0].split('\t').collect();
    assert_eq!(
        line.len(),
        6,
        "id, kind, status, attempts, run_at, error: {all:#?}"
    );
    assert_eq!(line[0], done.to_string(), "newest first: {all:#?}");
    let dead_line = jobs_list(&app, &["--status", "dead"]).await;
    assert_eq!(dead_line.len(), 1, "{dead_line:#?}");
    let fields: Vec<&str> = dead_line[0].split('\t').collect();
    assert_eq!(fields[0], dead.to_string());
    assert_eq!(fields[1], "no_such_kind");
    assert_eq!(fields[2], "dead");
    assert_eq!(fields[3], "1/1");
    assert!(fields[4].ends_with('Z'), "run_at in RFC 3339: {fields:?}");
    assert_eq!(fields[5], "boom");

    let out = app
        .cli(&["jobs", "list", "--status", "sleeping"], &[])
        .await;
    assert!(!out.status.success(), "{}", describe(&out));

    let out = app.cli(&["jobs", "retry", &dead.to_string()], &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let state = app
        .db
        .query_value(&format!(
            "SELECT status || '|' || CAST(attempts AS TEXT) AS value FROM jobs_job WHERE id = {dead}"
        ))
        .unwrap_or_default();
    assert_eq!(state, "queued|0", "\n{}", job_table(&app));
    for id in [done, 999_999] {
        let out = app.cli(&["jobs", "retry", &id.to_string()], &[]).await;
        assert!(!out.status.success(), "retry {id}: {}", describe(&out));
    }

    // A worker runs the retried job: an unknown kind is dead again at once.
    let worker = app.spawn_worker(&[]).await;
    let until = Instant::now() + DEADLINE;
    while count(&app, &format!("WHERE id = {dead} AND status = 'dead'")) == 0 {
        assert!(Instant::now() < until, "not retried\n{}", job_table(&app));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_no_queued(&app).await;
    drop(worker);
    assert!(
        count(&app, "WHERE status = 'done'") >= 1,
        "\n{}",
        job_table(&app)
    );

    let out = app.cli(&["jobs", "purge"], &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        count(&app, "WHERE status = 'done'"),
        0,
        "\n{}",
        job_table(&app)
    );
    assert!(
        exists(&app, dead),
        "purge keeps dead jobs\n{}",
        job_table(&app)
    );
    let out = app.cli(&["jobs", "purge", "--dead"], &[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        !exists(&app, dead),
        "--dead deletes them\n{}",
        job_table(&app)
    );
    let help = app.cli(&["jobs", "purge", "--help"], &[]).await;
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(
        help.contains("Dead jobs are kept unless `--dead`"),
        "purge says what it deletes: {help}"
    );
}
