//! What the process writes: logs on stderr, and the few lines a supervisor
//! waits for on stdout (`autodocs listening on …`). With `log.format =
//! "json"` every one of them is one JSON object, for a log collector.

use std::io::Write;

use serde::Deserialize;

/// `log.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for a person (colours only at a terminal).
    #[default]
    Text,
    /// One JSON object a line: timestamp, level, message, target and the
    /// fields of every open span (the request id among them).
    Json,
}

impl LogFormat {
    /// The format when the settings could not be read (so their error is
    /// written as the operator asked): `AUTODOCS__LOG__FORMAT` alone.
    pub fn from_environment() -> Self {
        match std::env::var("AUTODOCS__LOG__FORMAT") {
            Ok(format) if format.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs the log subscriber: `RUST_LOG` filters (default `info`), to stderr.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            // Colour codes only for a person at a terminal, never in a file
            // or a log collector.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// A line on stdout that supervisors and tests wait for (`autodocs
/// listening on http://…`): as it is, or as a JSON object with `message`.
pub fn announce(format: LogFormat, message: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match format {
        LogFormat::Text => writeln!(stdout, "{message}")?,
        LogFormat::Json => {
            let line = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "message": message,
                "target": "autodocs",
            });
            writeln!(stdout, "{line}")?;
        }
    }
    stdout.flush()
}

/// The error a command ends with, on stderr: `autodocs: …` on one line, or
/// a JSON object at level ERROR.
pub fn fatal(format: LogFormat, error: &anyhow::Error) {
    match format {
        LogFormat::Text => eprintln!("autodocs: {error:#}"),
        LogFormat::Json => {
            let line = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "ERROR",
                "message": format!("autodocs: {error:#}"),
                "target": "autodocs",
            });
            eprintln!("{line}");
        }
    }
}
