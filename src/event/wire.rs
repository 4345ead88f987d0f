//! The envelope as it arrives, read leniently into the few fields an event can carry.
//!
//! Every field the relay reads is kept with the kind of JSON value it was (see [`Shape`]
//! and [`Text`]), so that validation, in the parent module, can name a wrong field
//! precisely; a value of the wrong kind is never an error here. Everything else in the body
//! is skipped as it is read, never built, which a tree of `serde_json::Value` would do: a
//! third of the relay's work per webhook went into building and dropping that tree.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A value expected to be an object or an array: absent, of another kind, or read.
#[derive(Debug, Default)]
pub(super) enum Shape<T> {
    #[default]
    Missing,
    Wrong,
    Is(T),
}

/// A value expected to be a string: absent, `null`, another kind, or the string.
#[derive(Debug, Default)]
pub(super) enum Text {
    #[default]
    Missing,
    Null,
    Other,
    Is(String),
}

/// The envelope's fields that matter: `payload` and the `events` count.
#[derive(Debug, Default)]
pub(super) struct Envelope {
    pub payload: Shape<Vec<Shape<Item>>>,
    /// Any JSON value, kept to report a count that disagrees with the payload.
    pub events: Option<Value>,
}

/// One element of `payload`.
#[derive(Debug, Default)]
pub(super) struct Item {
    pub event: Text,
    pub id: Text,
    /// Any JSON value: numbers and strings are both read as times.
    pub timestamp: Option<Value>,
    pub data: Shape<Data>,
}

/// An element's `data`.
#[derive(Debug, Default)]
pub(super) struct Data {
    pub org_id: Text,
    pub project_id: Text,
    pub task_id: Text,
    pub task_name: Text,
    pub stage_name: Text,
    pub updated_by: Text,
}

impl Data {
    /// The field RedBrick names `name`, for checking the required ones by name.
    pub fn field(&self, name: &str) -> &Text {
        match name {
            "orgId" => &self.org_id,
            "projectId" => &self.project_id,
            "taskId" => &self.task_id,
            "taskName" => &self.task_name,
            "stageName" => &self.stage_name,
            "updatedBy" => &self.updated_by,
            _ => &Text::Missing,
        }
    }
}

/// Something read from a JSON object or array; any other value has the wrong shape.
trait Readable: Sized {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        skip_map(map).map(|()| None)
    }

    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        skip_seq(seq).map(|()| None)
    }
}

impl Readable for Envelope {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut envelope = Envelope::default();
        // A key given twice counts as its last value, as in any JSON object.
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                "payload" => envelope.payload = map.next_value()?,
                "events" => envelope.events = Some(map.next_value()?),
                _ => skip_value(&mut map)?,
            }
        }
        Ok(Some(envelope))
    }
}

impl Readable for Vec<Shape<Item>> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

impl Readable for Item {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut item = Item::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                "event" => item.event = map.next_value()?,
                "id" => item.id = map.next_value()?,
                "timestamp" => item.timestamp = Some(map.next_value()?),
                "data" => item.data = map.next_value()?,
                _ => skip_value(&mut map)?,
            }
        }
        Ok(Some(item))
    }
}

impl Readable for Data {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut data = Data::default();
        while let Some(key) = map.next_key::<Key>()? {
            let field = match key.0 {
                "orgId" => &mut data.org_id,
                "projectId" => &mut data.project_id,
                "taskId" => &mut data.task_id,
                "taskName" => &mut data.task_name,
                "stageName" => &mut data.stage_name,
                "updatedBy" => &mut data.updated_by,
                _ => {
                    skip_value(&mut map)?;
                    continue;
                }
            };
            *field = map.next_value()?;
        }
        Ok(Some(data))
    }
}

impl<'de, T: Readable> Deserialize<'de> for Shape<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Readable> Visitor<'de> for ShapeVisitor<T> {
    type Value = Shape<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shape<T>, A::Error> {
        Ok(T::from_map(map)?.map_or(Shape::Wrong, Shape::Is))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape<T>, A::Error> {
        Ok(T::from_seq(seq)?.map_or(Shape::Wrong, Shape::Is))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape<T>, E> {
        Ok(Shape::Wrong)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape<T>, E> {
        Ok(Shape::Wrong)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape<T>, E> {
        Ok(Shape::Wrong)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape<T>, E> {
        Ok(Shape::Wrong)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape<T>, E> {
        Ok(Shape::Wrong)
    }

    fn visit_unit<E>(self) -> Result<Shape<T>, E> {
        Ok(Shape::Wrong)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, text: &str) -> Result<Text, E> {
        Ok(Text::Is(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<Text, E> {
        Ok(Text::Is(text))
    }

    fn visit_unit<E>(self) -> Result<Text, E> {
        Ok(Text::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
        skip_map(map).map(|()| Text::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text, A::Error> {
        skip_seq(seq).map(|()| Text::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
        Ok(Text::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Text, E> {
        Ok(Text::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Text, E> {
        Ok(Text::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Text, E> {
        Ok(Text::Other)
    }
}

/// Every key the relay reads, at any depth.
const KEYS: [&str; 12] = [
    "payload",
    "events",
    "event",
    "id",
    "timestamp",
    "data",
    "orgId",
    "projectId",
    "taskId",
    "taskName",
    "stageName",
    "updatedBy",
];

/// An object's key: one of [`KEYS`], or `""` for any other, which is skipped unread.
struct Key(&'static str);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(Key(KEYS
            .into_iter()
            .find(|known| *known == key)
            .unwrap_or("")))
    }
}

fn skip_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}
