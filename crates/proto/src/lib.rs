//! Wire contracts shared by the amphora agent and the control plane.
//!
//! Layout: `heartbeat` — Octavia's heartbeat datagram (message v3, zlib level 9, HMAC-SHA256
//! over the compressed bytes appended as 64 hex characters), byte-for-byte compatible with
//! Octavia's amphora sender; `logs` — where an agent ships its logs (its configuration's
//! `[log_shipping]`); `agent_conf` — Octavia's `amphora-agent.conf` (config drive and
//! `PUT /1.0/config`).

pub mod agent_conf;
pub mod heartbeat;
pub mod logs;
