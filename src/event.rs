//! The RedBrick webhook envelope: parsing, validation and normalisation.
//!
//! A request body becomes a [`Batch`] of typed [`Event`]s, or a precise [`EventError`]
//! naming the element and field that was wrong. Unknown event types are not errors: they
//! are set aside as [`Skipped`] so that the rest of the batch still goes through. This
//! module knows nothing of rules, templates or HTTP.

mod wire;

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use wire::{Envelope, Item, Shape, Text};

/// Integers at or above this are taken as milliseconds, below it as seconds.
const MILLIS_THRESHOLD: i64 = 1_000_000_000_000;

/// The event types RedBrick documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A data point was uploaded and became a task.
    TaskCreated,
    /// A task moved into a workflow stage.
    TaskEnteredStage,
    /// A task was deleted.
    TaskDeleted,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 3] = [
        EventKind::TaskCreated,
        EventKind::TaskEnteredStage,
        EventKind::TaskDeleted,
    ];

    /// The name RedBrick sends, for example `TASK_CREATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "TASK_CREATED",
            EventKind::TaskEnteredStage => "TASK_ENTERED_STAGE",
            EventKind::TaskDeleted => "TASK_DELETED",
        }
    }

    /// Parses the name RedBrick sends; `None` for a type this relay does not know.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The name of the shipped default template for this kind.
    pub fn default_template(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "task-created",
            EventKind::TaskEnteredStage => "task-entered-stage",
            EventKind::TaskDeleted => "task-deleted",
        }
    }

    fn required_fields(self) -> &'static [&'static str] {
        match self {
            EventKind::TaskEnteredStage => &["orgId", "projectId", "taskId", "stageName"],
            EventKind::TaskCreated | EventKind::TaskDeleted => &["orgId", "projectId", "taskId"],
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validated RedBrick event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its type.
    pub kind: EventKind,
    /// RedBrick's id for the event, the key for recognising repeats.
    pub id: String,
    /// The timestamp exactly as sent (number or string), `null` when absent.
    pub timestamp: Value,
    /// When the event happened; the time of receipt when the timestamp is missing or
    /// unreadable, since an event is never dropped over its timestamp, and when it is later
    /// than the receipt, since an event cannot have happened after it arrived.
    pub time: DateTime<Utc>,
    /// Organisation id.
    pub org_id: String,
    /// Project id.
    pub project_id: String,
    /// Task id.
    pub task_id: String,
    /// Task name; only `TASK_CREATED` and `TASK_DELETED` carry one.
    pub task_name: Option<String>,
    /// Stage name; only `TASK_ENTERED_STAGE` carries one.
    pub stage: Option<String>,
    /// Who caused the event, usually an e-mail address.
    pub updated_by: Option<String>,
}

/// An element of `payload` that was not processed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its position in `payload`.
    pub index: usize,
    /// The event type it announced.
    pub event: String,
}

/// Everything a valid envelope carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The events of known types, in payload order.
    pub events: Vec<Event>,
    /// Elements of unknown types, set aside.
    pub skipped: Vec<Skipped>,
    /// The envelope's `events` value, when it is not the payload's length (a different
    /// number, or not a count at all): a warning, never a reason to refuse the batch.
    pub count_mismatch: Option<Value>,
    /// Elements whose timestamp could not be read, so the time of receipt stands in.
    pub unreadable_timestamps: Vec<usize>,
    /// Ids of the events whose timestamp was later than the time of receipt, which stands
    /// in for it: one event dated in the future would otherwise make every real event of
    /// its task look older.
    pub future_timestamps: Vec<String>,
}

/// Why a body is not a valid RedBrick envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON at all.
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but a field is missing or of the wrong type.
    #[error("`{path}` {problem}")]
    Field {
        /// Where, for example `payload[2].data.taskId`.
        path: String,
        /// What was wrong, for example `is missing`.
        problem: String,
    },
}

impl EventError {
    fn field(path: impl Into<String>, problem: impl Into<String>) -> EventError {
        EventError::Field {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Parses and validates a request body; `now`, the time of receipt, stands in for
/// unreadable timestamps and for those later than it.
pub fn parse_body(body: &[u8], now: DateTime<Utc>) -> Result<Batch, EventError> {
    // Checked whole, first: fields the relay skips are never decoded, so invalid UTF-8
    // in them would otherwise pass as JSON.
    let text = std::str::from_utf8(body)
        .map_err(|err| EventError::Json(format!("invalid UTF-8 at byte {}", err.valid_up_to())))?;
    let envelope: Shape<Envelope> =
        serde_json::from_str(text).map_err(|err| EventError::Json(err.to_string()))?;
    validate(envelope, now)
}

/// Validates an already parsed envelope.
pub fn parse_envelope(value: &Value, now: DateTime<Utc>) -> Result<Batch, EventError> {
    let envelope =
        Shape::<Envelope>::deserialize(value).map_err(|err| EventError::Json(err.to_string()))?;
    validate(envelope, now)
}

fn validate(envelope: Shape<Envelope>, now: DateTime<Utc>) -> Result<Batch, EventError> {
    let Shape::Is(envelope) = envelope else {
        return Err(EventError::field("(body)", "must be a JSON object"));
    };
    let payload = match envelope.payload {
        Shape::Is(items) => items,
        Shape::Wrong => return Err(EventError::field("payload", "must be an array")),
        Shape::Missing => return Err(EventError::field("payload", "is missing")),
    };

    let mut batch = Batch {
        events: Vec::with_capacity(payload.len()),
        skipped: Vec::new(),
        count_mismatch: count_mismatch(envelope.events, payload.len()),
        unreadable_timestamps: Vec::new(),
        future_timestamps: Vec::new(),
    };
    for (index, item) in payload.into_iter().enumerate() {
        parse_item(index, item, now, &mut batch)?;
    }
    Ok(batch)
}

fn count_mismatch(events: Option<Value>, len: usize) -> Option<Value> {
    match events {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64() == Some(len as u64) => None,
        other => other,
    }
}

fn parse_item(
    index: usize,
    item: Shape<Item>,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> Result<(), EventError> {
    let at = |field: &str| format!("payload[{index}].{field}");
    let Shape::Is(item) = item else {
        return Err(EventError::field(
            format!("payload[{index}]"),
            "must be an object",
        ));
    };
    let name = required_str(item.event, "event", &at)?;
    let Some(kind) = EventKind::parse(&name) else {
        batch.skipped.push(Skipped { index, event: name });
        return Ok(());
    };

    let id = required_str(item.id, "id", &at)?;
    let timestamp = item.timestamp.unwrap_or(Value::Null);
    let time = match timestamp_to_time(&timestamp) {
        Some(time) if time > now => {
            batch.future_timestamps.push(id.clone());
            now
        }
        Some(time) => time,
        None => {
            batch.unreadable_timestamps.push(index);
            now
        }
    };
    let data = match item.data {
        Shape::Is(data) => data,
        Shape::Wrong => return Err(EventError::field(at("data"), "must be an object")),
        Shape::Missing => return Err(EventError::field(at("data"), "is missing")),
    };
    let data_at = |field: &str| at(&format!("data.{field}"));
    for field in kind.required_fields() {
        check_required(data.field(field), field, &data_at)?;
    }

    let text = |value: Text, field: &str| optional_str(value, field, &data_at);
    batch.events.push(Event {
        kind,
        id,
        timestamp,
        time,
        org_id: text(data.org_id, "orgId")?.unwrap_or_default(),
        project_id: text(data.project_id, "projectId")?.unwrap_or_default(),
        task_id: text(data.task_id, "taskId")?.unwrap_or_default(),
        task_name: text(data.task_name, "taskName")?,
        stage: text(data.stage_name, "stageName")?,
        updated_by: text(data.updated_by, "updatedBy")?,
    });
    Ok(())
}

/// `value` as a string that must be there and not be empty.
fn required_str(
    value: Text,
    field: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<String, EventError> {
    match value {
        Text::Is(text) if !text.is_empty() => Ok(text),
        other => Err(not_given(&other, field, at)),
    }
}

fn check_required(
    value: &Text,
    field: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<(), EventError> {
    match value {
        Text::Is(text) if !text.is_empty() => Ok(()),
        other => Err(not_given(other, field, at)),
    }
}

/// Why `value` is not a required string.
fn not_given(value: &Text, field: &str, at: &dyn Fn(&str) -> String) -> EventError {
    let problem = match value {
        Text::Is(_) => "must not be empty",
        Text::Null | Text::Other => "must be a string",
        Text::Missing => "is missing",
    };
    EventError::field(at(field), problem)
}

fn optional_str(
    value: Text,
    field: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<String>, EventError> {
    match value {
        Text::Is(text) => Ok(Some(text)),
        Text::Null | Text::Missing => Ok(None),
        Text::Other => Err(EventError::field(at(field), "must be a string")),
    }
}

/// Reads a RedBrick timestamp: an integer in seconds or milliseconds, or an RFC 3339
/// string (also accepted as a string of digits).
pub fn timestamp_to_time(timestamp: &Value) -> Option<DateTime<Utc>> {
    match timestamp {
        Value::Number(n) => match n.as_i64() {
            Some(whole) => epoch_to_time(whole),
            None => n.as_f64().and_then(|f| epoch_to_time(f as i64)),
        },
        Value::String(text) => match text.trim().parse::<i64>() {
            Ok(whole) => epoch_to_time(whole),
            Err(_) => DateTime::parse_from_rfc3339(text.trim())
                .ok()
                .map(|time| time.with_timezone(&Utc)),
        },
        _ => None,
    }
}

fn epoch_to_time(value: i64) -> Option<DateTime<Utc>> {
    if value.abs() >= MILLIS_THRESHOLD {
        Utc.timestamp_millis_opt(value).single()
    } else {
        Utc.timestamp_opt(value, 0).single()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap()
    }

    fn stage_event(timestamp: Value) -> Value {
        json!({
            "event": "TASK_ENTERED_STAGE", "id": "e1", "timestamp": timestamp,
            "data": {"orgId": "o", "projectId": "p", "taskId": "t", "stageName": "Review_1",
                     "updatedBy": "a@example.com"}
        })
    }

    #[test]
    fn seconds_and_milliseconds_give_the_same_time() {
        let seconds = timestamp_to_time(&json!(1_717_171_717));
        let millis = timestamp_to_time(&json!(1_717_171_717_000_i64));

        assert_eq!(seconds, millis);
        assert_eq!(seconds.unwrap().to_rfc3339(), "2024-05-31T16:08:37+00:00");
    }

    #[test]
    fn rfc3339_strings_are_read() {
        let time = timestamp_to_time(&json!("2024-05-31T18:08:37+02:00")).unwrap();

        assert_eq!(time.timestamp(), 1_717_171_717);
    }

    #[test]
    fn unreadable_timestamp_keeps_the_event_with_the_receipt_time() {
        let body = json!({"version": "v1.0", "events": 1, "payload": [stage_event(json!("soon"))]});

        let batch = parse_envelope(&body, now()).unwrap();

        assert_eq!(batch.events[0].time, now());
        assert_eq!(batch.events[0].timestamp, json!("soon"));
        assert_eq!(batch.unreadable_timestamps, vec![0]);
    }

    #[test]
    fn a_timestamp_later_than_receipt_gives_the_time_of_receipt() {
        let future = json!("2999-01-01T00:00:00Z");
        let body = json!({"payload": [stage_event(future.clone()), stage_event(json!(1))]});

        let batch = parse_envelope(&body, now()).unwrap();

        assert_eq!(batch.events[0].time, now());
        assert_eq!(
            batch.events[0].timestamp, future,
            "the timestamp stays as sent"
        );
        assert_eq!(batch.events[1].time.timestamp(), 1, "a past time is kept");
        assert_eq!(batch.future_timestamps, vec!["e1".to_owned()]);
        assert!(batch.unreadable_timestamps.is_empty());
    }

    #[test]
    fn unknown_types_are_skipped_and_the_rest_kept() {
        let body = json!({"events": 2, "payload": [
            {"event": "TASK_ARCHIVED", "id": "x"}, stage_event(json!(1))
        ]});

        let batch = parse_envelope(&body, now()).unwrap();

        assert_eq!(batch.events.len(), 1);
        assert_eq!(
            batch.skipped,
            vec![Skipped {
                index: 0,
                event: "TASK_ARCHIVED".into()
            }]
        );
        assert_eq!(batch.count_mismatch, None);
    }

    #[test]
    fn a_count_that_disagrees_is_reported_not_refused() {
        let body = json!({"events": 5, "payload": [stage_event(json!(1))]});

        let batch = parse_envelope(&body, now()).unwrap();

        assert_eq!(batch.count_mismatch, Some(json!(5)));
    }

    #[test]
    fn a_count_that_is_not_a_number_is_reported_not_refused() {
        for count in [json!("1"), json!(-1), json!(1.5), json!({})] {
            let body = json!({"events": count, "payload": [stage_event(json!(1))]});

            let batch = parse_envelope(&body, now()).unwrap();

            assert_eq!(batch.events.len(), 1, "for `events: {count}`");
            assert_eq!(batch.count_mismatch, Some(count));
        }
    }

    #[test]
    fn missing_fields_are_named_with_their_element() {
        let mut second = stage_event(json!(1));
        second["data"].as_object_mut().unwrap().remove("stageName");
        let body = json!({"payload": [stage_event(json!(1)), second]});

        let err = parse_envelope(&body, now()).unwrap_err();

        assert_eq!(err.to_string(), "`payload[1].data.stageName` is missing");
    }

    #[test]
    fn fields_the_relay_does_not_read_may_hold_anything() {
        let body = br#"{"version": "v1.0", "extra": {"deep": [[[{"x": [1e300, null]}]]]},
            "payload": [{"event": "TASK_DELETED", "id": "e1", "timestamp": 1, "data":
                {"orgId": "o", "projectId": "p", "taskId": "t", "labels": [{"a": 1}],
                 "taskName": "CT_1", "priority": 3.5}, "meta": "\u00e9"}]}"#;

        let batch = parse_body(body, now()).unwrap();

        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].task_name.as_deref(), Some("CT_1"));
    }

    #[test]
    fn keys_are_read_unescaped_and_the_last_of_a_repeated_key_counts() {
        let body = br#"{"payload": 1, "pay\u006coad": [{"event": "TASK\u005fDELETED",
            "id": "e1", "id": "e2", "data": {"orgId": "o", "projectId": "p",
            "taskId": "t", "taskId": "u"}}]}"#;

        let batch = parse_body(body, now()).unwrap();

        let event = &batch.events[0];
        assert_eq!(
            (event.kind, event.id.as_str()),
            (EventKind::TaskDeleted, "e2")
        );
        assert_eq!(event.task_id, "u");
    }

    #[test]
    fn invalid_utf8_is_refused_even_where_nothing_is_read() {
        let mut body = br#"{"payload": [], "note": "caf"#.to_vec();
        body.extend_from_slice(b"\xe9\"}");

        let err = parse_body(&body, now()).unwrap_err();

        assert_eq!(
            err.to_string(),
            "body is not valid JSON: invalid UTF-8 at byte 28"
        );
    }

    #[test]
    fn wrong_kinds_are_named_wherever_a_string_or_object_is_expected() {
        let event = |data: Value| {
            json!({"payload": [
                {"event": "TASK_CREATED", "id": "e", "timestamp": 1, "data": data}
            ]})
        };
        let cases = [
            (
                json!({"payload": [{"event": 7}]}),
                "`payload[0].event` must be a string",
            ),
            (
                json!({"payload": [{"event": null}]}),
                "`payload[0].event` must be a string",
            ),
            (
                json!({"payload": [{"event": ""}]}),
                "`payload[0].event` must not be empty",
            ),
            (
                json!({"payload": [{"event": "TASK_CREATED", "id": ["e"]}]}),
                "`payload[0].id` must be a string",
            ),
            (event(json!("o")), "`payload[0].data` must be an object"),
            (
                event(json!({"orgId": {}})),
                "`payload[0].data.orgId` must be a string",
            ),
            (
                event(json!({"orgId": "o", "projectId": "p", "taskId": "t", "updatedBy": 1})),
                "`payload[0].data.updatedBy` must be a string",
            ),
        ];

        for (body, expected) in cases {
            let from_bytes = parse_body(body.to_string().as_bytes(), now()).unwrap_err();
            let from_value = parse_envelope(&body, now()).unwrap_err();
            assert_eq!(from_bytes.to_string(), expected, "for body {body}");
            assert_eq!(from_value, from_bytes, "for body {body}");
        }
    }

    #[test]
    fn envelope_shape_errors_are_precise() {
        let cases = [
            (json!(null), "`(body)` must be a JSON object"),
            (json!([]), "`(body)` must be a JSON object"),
            (json!({}), "`payload` is missing"),
            (json!({"payload": {}}), "`payload` must be an array"),
            (json!({"payload": [1]}), "`payload[0]` must be an object"),
            (
                json!({"payload": [{"event": "TASK_CREATED", "id": "e", "timestamp": 1}]}),
                "`payload[0].data` is missing",
            ),
        ];

        for (body, expected) in cases {
            let err = parse_envelope(&body, now()).unwrap_err();
            assert_eq!(err.to_string(), expected, "for body {body}");
        }
    }
}
