//! `send-test`: one sample message to one destination, and the platform's answer, so
//! that a new webhook URL can be checked in seconds.
//!
//! The message is what `serve` would send for a sample `TASK_ENTERED_STAGE` event with
//! the default template (the one in `templates_dir` if it overrides the shipped one),
//! rendered and wrapped by the same code. It bypasses the rules and the outbox, and is
//! tried once: no retry, no rate limit. The webhook URL is never printed.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::SendTestArgs;
use crate::config::{sample_event, shipped_template, Config};
use crate::deliver::http_client;
use crate::destination::Outcome;
use crate::event::EventKind;
use crate::render::Renderer;
use crate::route::{render_one, Message};

/// The rule name templates see (`{{rule}}`) in a test message.
const RULE: &str = "send-test";

/// Exits 0 when the platform took the message, 1 when it did not, 2 for a config problem.
pub fn run(path: &Path, args: &SendTestArgs) -> ExitCode {
    let config = match super::load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(target) = config.targets.get(&args.destination) else {
        let defined: Vec<&str> = config.targets.keys().map(String::as_str).collect();
        eprintln!(
            "error: no destination `{}` in `{}` (defined: {})",
            args.destination,
            path.display(),
            defined.join(", ")
        );
        return ExitCode::from(2);
    };
    let message = match sample_message(&config, &args.destination) {
        Ok(message) => message,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts on any supported platform");
    let destination = &target.destination;
    let (outcome, answer) =
        runtime.block_on(destination.send_and_answer(&http_client(), &message.body));
    if let Some(answer) = answer {
        println!("{} answered {}", destination.host(), answer.status);
        println!("{}", answer.body.trim_end());
    }
    report(&args.destination, &outcome)
}

/// The default template for a sample event, in the destination's markup and body.
fn sample_message(config: &Config, destination: &str) -> Result<Message, String> {
    let kind = EventKind::TaskEnteredStage;
    let template = kind.default_template();
    let event = sample_event(kind);
    let shipped;
    let renderer = if config.renderer.has(template) {
        &config.renderer
    } else {
        // No rule uses the default template, so the config did not compile it.
        let mut renderer = Renderer::new();
        let text = shipped_template(template).expect("every event type has a shipped template");
        renderer
            .add(template, text)
            .map_err(|err| format!("shipped template `{template}` does not compile: {err}"))?;
        shipped = renderer;
        &shipped
    };
    render_one(config, renderer, template, &event, RULE, destination).map_err(|e| e.to_string())
}

fn report(destination: &str, outcome: &Outcome) -> ExitCode {
    match outcome {
        Outcome::Sent => {
            println!("sent: `{destination}` took the test message");
            ExitCode::SUCCESS
        }
        Outcome::Retry { reason, .. } => {
            eprintln!("error: not sent to `{destination}` (the relay would retry): {reason}");
            ExitCode::FAILURE
        }
        Outcome::Permanent { reason } => {
            eprintln!("error: `{destination}` refused the test message for good: {reason}");
            ExitCode::FAILURE
        }
    }
}
