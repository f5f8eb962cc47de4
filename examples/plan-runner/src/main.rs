//! Runs a mission plan from a JSON file to completion, on the in-memory
//! adapters of `autodocs-memory`: registers a user, creates the mission
//! through the domain's use cases, starts it, lets the job engine run its
//! automated steps (serving `fetch_url` downloads from memory), completes
//! its manual steps itself, and prints the outcome and the activity log.
//!
//! `cargo run -p plan-runner -- examples/plan-runner/plan.json`
//!
//! Exits 0 only if the mission completed.

use std::process::ExitCode;

use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::mission::{
    Description, MissionAction, MissionStatus, MissionType, Priority, Title,
};
use autodocs_domain::paging::PageRequest;
use autodocs_domain::plan_step::{StepAction, StepStatus};
use autodocs_domain::usecases::auth::{RegisterInput, Registration};
use autodocs_domain::usecases::missions::{CreateMission, PlannedStep};
use autodocs_domain::usecases::steps::UpdateStep;
use autodocs_domain::user::Principal;
use autodocs_domain::validation::{InvalidValue, parse_timestamp};
use autodocs_domain::{MissionId, Services};
use autodocs_memory::MemoryServices;
use serde_json::Value;

/// How many times the runner hands over to the job engine before giving up
/// (each round completes at least one step of a plan that can finish).
const MAX_ROUNDS: usize = 200;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: plan-runner <plan.json>");
        return ExitCode::from(2);
    };
    match run(&path) {
        Ok(MissionStatus::Completed) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("plan-runner: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &str) -> Result<MissionStatus, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let plan: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let command =
        mission_command(&plan).map_err(|e| format!("{path} is not a valid mission: {e}"))?;

    let memory = autodocs_memory::services();
    let services = &memory.services;
    serve_sample_files(&memory, &plan);

    let session = services
        .accounts()
        .register(
            Registration::parse(&RegisterInput {
                username: "runner".into(),
                email: "runner@example.com".into(),
                password: "violet-Harbor-1987".into(),
                first_name: "Plan".into(),
                last_name: "Runner".into(),
            })
            .map_err(|e| format!("cannot register: {e}"))?,
        )
        .map_err(|e| format!("cannot register: {e}"))?;
    let principal = Principal {
        user_id: session.user.id,
        is_staff: false,
    };
    println!(
        "registered user {:?} (id {})",
        session.user.username, session.user.id
    );

    let created = services
        .missions()
        .create(principal, command)
        .map_err(|e| format!("cannot create the mission: {e}"))?;
    let mission_id = created.mission.id;
    println!(
        "created mission {mission_id} {:?} with {} steps",
        created.mission.title.as_str(),
        created.mission.steps_total
    );
    services
        .missions()
        .act(principal, mission_id, MissionAction::Start)
        .map_err(|e| format!("cannot start the mission: {e}"))?;
    println!("started mission {mission_id}");

    let status = drive(&memory, principal, mission_id)?;
    report(services, principal, mission_id)?;
    Ok(status)
}

/// The mission of the plan file (shaped like the body of
/// `POST /api/missions/`), built from the domain's value types: each field
/// is parsed by the type that holds its rules.
fn mission_command(plan: &Value) -> Result<CreateMission, String> {
    let field = |name: &str| plan.get(name).and_then(Value::as_str);
    let refused = |name: &'static str| move |error: InvalidValue| format!("{name}: {error}");
    let title = Title::parse(field("title").unwrap_or_default()).map_err(refused("title"))?;
    let kind = MissionType::parse(field("type").unwrap_or_default()).map_err(refused("type"))?;
    let mut command = CreateMission::new(title, kind);
    if let Some(description) = field("description") {
        command = command
            .with_description(Description::parse(description).map_err(refused("description"))?);
    }
    if let Some(priority) = field("priority") {
        command = command.with_priority(Priority::parse(priority).map_err(refused("priority"))?);
    }
    if let Some(deadline) = field("deadline") {
        command = command.with_deadline(parse_timestamp(deadline).map_err(refused("deadline"))?);
    }
    let plan = match plan.get("plan_steps") {
        Some(steps) => planned_steps(steps)?,
        None => Vec::new(),
    };
    Ok(command.with_plan(plan))
}

/// A list of plan steps, `{title, description?, action?, children?}` each.
fn planned_steps(steps: &Value) -> Result<Vec<PlannedStep>, String> {
    let Some(steps) = steps.as_array() else {
        return Err("plan_steps: not a list".into());
    };
    steps
        .iter()
        .map(|step| {
            let title = step
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let refused = |name: &'static str| {
                let title = title.to_owned();
                move |error: InvalidValue| format!("step {title:?}: {name}: {error}")
            };
            let mut planned = PlannedStep::new(Title::parse(title).map_err(refused("title"))?);
            if let Some(description) = step.get("description").and_then(Value::as_str) {
                planned = planned.with_description(
                    Description::parse(description).map_err(refused("description"))?,
                );
            }
            if let Some(action) = step.get("action") {
                planned =
                    planned.with_action(StepAction::parse(action).map_err(refused("action"))?);
            }
            if let Some(children) = step.get("children") {
                planned = planned.with_children(planned_steps(children)?);
            }
            Ok(planned)
        })
        .collect()
}

/// Serves a small PDF at the URL of every `fetch_url` step of the plan.
fn serve_sample_files(memory: &MemoryServices, plan: &Value) {
    fn walk(memory: &MemoryServices, steps: &Value) {
        for step in steps.as_array().into_iter().flatten() {
            if let Some(action) = step.get("action")
                && let Ok(StepAction::FetchUrl { url }) = StepAction::parse(action)
            {
                let name = url.as_str().rsplit('/').next().unwrap_or("download.pdf");
                let pdf = format!("%PDF-1.4\n% sample served for {url}\n%%EOF\n");
                memory
                    .fetcher
                    .register(url.as_str(), pdf.into_bytes(), name);
            }
            if let Some(children) = step.get("children") {
                walk(memory, children);
            }
        }
    }
    if let Some(steps) = plan.get("plan_steps") {
        walk(memory, steps);
    }
}

/// Alternates the job engine and the user's manual work until the mission
/// ends (or nothing can move any more).
fn drive(
    memory: &MemoryServices,
    principal: Principal,
    mission_id: MissionId,
) -> Result<MissionStatus, String> {
    let services = &memory.services;
    for _ in 0..MAX_ROUNDS {
        let drained = memory
            .drain_jobs("plan-runner", 1_000)
            .map_err(|e| format!("the job engine failed: {e}"))?;
        if drained.runs > 0 {
            println!("job engine: ran {} job(s)", drained.runs);
        }
        let detail = services
            .missions()
            .get(principal, mission_id)
            .map_err(|e| format!("cannot read the mission: {e}"))?;
        if !matches!(
            detail.mission.status,
            MissionStatus::InProgress | MissionStatus::Paused
        ) {
            return Ok(detail.mission.status);
        }
        let Some(next) = detail
            .plan
            .next_runnable()
            .and_then(|id| detail.plan.find(id))
        else {
            return Ok(detail.mission.status);
        };
        let step = &next.item;
        if step.action.is_automated() {
            // An automated step the engine could not finish (it failed for good).
            println!(
                "step {:?} is {} and no job is left to run it",
                step.title.as_str(),
                step.status
            );
            return Ok(detail.mission.status);
        }
        services
            .steps()
            .update(
                principal,
                mission_id,
                step.id,
                UpdateStep::status(StepStatus::Completed),
            )
            .map_err(|e| format!("cannot complete step {:?}: {e}", step.title.as_str()))?;
        println!("completed manual step {:?}", step.title.as_str());
    }
    Err(format!("the mission did not settle in {MAX_ROUNDS} rounds"))
}

/// Prints the mission's outcome, its steps, documents and activities.
fn report(services: &Services, principal: Principal, mission_id: MissionId) -> Result<(), String> {
    let detail = services
        .missions()
        .get(principal, mission_id)
        .map_err(|e| format!("cannot read the mission: {e}"))?;
    let mission = &detail.mission;
    println!();
    println!(
        "mission {} {:?}: {} ({}% done, {}/{} steps completed)",
        mission.id,
        mission.title.as_str(),
        mission.status,
        mission.progress,
        mission.steps_completed,
        mission.steps_total
    );
    for (node, depth) in detail.plan.depth_first() {
        println!(
            "  {}- {} [{}] {}",
            "  ".repeat(depth.saturating_sub(1)),
            node.item.title.as_str(),
            node.item.action.kind(),
            node.item.status
        );
    }
    println!("documents:");
    for document in &detail.documents {
        println!(
            "  - {} ({}, {} bytes, {})",
            document.name.as_str(),
            document.content_type,
            document.size,
            document.status
        );
    }
    let activities = services
        .activities()
        .list(
            principal,
            ActivityQuery {
                page: PageRequest::new(1, PageRequest::MAX_SIZE),
                ..ActivityQuery::default()
            },
        )
        .map_err(|e| format!("cannot list the activities: {e}"))?;
    println!("activities (oldest first):");
    for activity in activities.items.iter().rev() {
        let details = if activity.details.is_empty() {
            String::new()
        } else {
            format!(" {}", Value::Object(activity.details.clone()))
        };
        println!(
            "  {} {:<18} {}{details}",
            activity.timestamp.format("%H:%M:%S"),
            activity.kind,
            activity.message
        );
    }
    Ok(())
}
