//! redbrick-relay turns RedBrick AI project webhooks into Slack and Teams messages.
//!
//! # Layout
//!
//! One event travels one way through these modules:
//!
//! - [`server`]: HTTP in: path, method, content type and size checks; JSON answers.
//! - [`event`]: the RedBrick envelope parsed, validated and normalised.
//! - [`rules`]: which rules an event matches (indexed by event type and project).
//! - [`tasks`]: what the relay remembers of each task (name, stages), for the rules and
//!   templates of later events.
//! - [`render`]: Handlebars with per-destination escaping and helpers.
//! - [`route`]: rules and templates applied to one event: ready-to-send messages.
//! - [`outbox`]: the durable store: deliveries committed before RedBrick hears 200.
//! - [`rollup`]: events of grouped rules held, then sent as one message per window.
//! - [`reminders`]: messages about tasks waiting too long in a stage.
//! - [`digests`]: scheduled summaries of where tasks wait and what changed.
//! - [`deliver`]: one worker per destination, sending in order.
//! - [`quiet`]: quiet hours: when a destination's messages are held, and which to merge.
//! - [`destination`]: Slack, Teams and console bodies, and what their answers mean.
//!
//! Beside the flow: [`config`] (the checked `relay.toml`), [`links`] (URLs into the
//! RedBrick app), [`people`] (e-mails to chat identities, for mentions), [`cli`] and
//! [`commands`] (the command line), [`logging`], and [`relay`], which assembles outbox,
//! workers and server in the order they start and stop.
//!
//! At the edge, for operators: [`metrics`] (counters the flow updates), [`admin`] (the
//! health and metrics listener that reads them), [`reload`] (a new config swapped in on
//! SIGHUP) and [`systemd`] (readiness, status and watchdog notifications). The flow never
//! calls the edge; `serve` wires them together.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod destination;
pub mod digests;
pub mod event;
pub mod links;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod people;
pub mod quiet;
pub mod relay;
pub mod reload;
pub mod reminders;
pub mod render;
pub mod rollup;
pub mod route;
pub mod rules;
pub mod server;
pub mod systemd;
pub mod tasks;
