//! rocta's domain model: the one set of entities shared by every layer.
//!
//! Entities serialize with Octavia's v2 API field names, so the API layer only adds the few
//! wire-only fields (`tenant_id`, child id lists) around them and the store can keep each entity
//! as one JSON document beside its indexed columns. Fields that live in the store's columns
//! (parent ids, the insertion sequence) are `#[serde(skip)]` and filled in by the store.
//!
//! Layout:
//! - `enums`: Octavia's string enums (protocols, algorithms, statuses, ...).
//! - `entities`: load balancer, listener, pool, member, health monitor, L7 policy and rule,
//!   amphora, quota, statistics.
//! - `rules`: Octavia's compatibility rules (listener/pool protocol matrix, health-monitor types).
//! - `time`: the timestamp format Octavia renders (ISO-8601, seconds, no zone).

pub mod entities;
pub mod enums;
pub mod jobs;
pub mod rules;
pub mod time;

pub use entities::*;
pub use enums::*;
pub use jobs::*;

/// Ids are random UUIDs (v4), rendered in the hyphenated lower-case form.
pub type Id = uuid::Uuid;

/// A new random id.
pub fn new_id() -> Id {
    uuid::Uuid::new_v4()
}
