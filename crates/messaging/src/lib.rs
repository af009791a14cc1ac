//! Job wake-ups over RabbitMQ, configured by Octavia's `transport_url`.
//!
//! The job row in the store is the truth; a message only says "a job was posted, look now".
//! The API announces each job it commits (`Publisher::announce`, never blocking the request):
//! a background task publishes it with publisher confirms to one queue. Each worker consumes
//! that queue with manual acks (`spawn_consumer`): a delivery wakes the worker, which claims
//! from the store as it always does, then acks. A message lost (broker down, no worker) costs
//! only latency: the worker's periodic sweep finds the job; a message duplicated costs one
//! extra claim attempt. Messages are transient and expire after a minute, so a queue without
//! consumers never grows without bound; a queue unused for 30 minutes is removed.
//!
//! RabbitMQ unreachable: the API keeps accepting changes (announcements are dropped), workers
//! poll; both say so once in the log and reconnect with backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::{mpsc, Notify};

/// A malformed `transport_url`.
#[derive(Debug, thiserror::Error)]
#[error("invalid transport_url {url:?}: {reason}")]
pub struct UrlError {
    url: String,
    reason: String,
}

/// Where the bus is: one AMQP URI per host of the `transport_url`, tried in order.
#[derive(Debug, Clone)]
pub struct Bus {
    uris: Vec<String>,
    queue: String,
}

/// How long a wake-up waits in the queue before RabbitMQ drops it (the sweep finds its job).
const MESSAGE_TTL_MS: i64 = 60_000;
/// How long a queue without consumers lives on.
const QUEUE_EXPIRES_MS: i64 = 30 * 60_000;
/// Announcements waiting for the publisher; beyond that they are dropped (the sweep finds them).
const PENDING: usize = 1024;

impl Bus {
    /// Parses oslo.messaging's `rabbit://USER:PASS@HOST:PORT[,USER:PASS@HOST:PORT…]/VHOST`
    /// (also `amqp://`); `queue` is the queue's name.
    pub fn parse(url: &str, queue: &str) -> Result<Bus, UrlError> {
        let bad = |reason: &str| UrlError {
            url: redact(url),
            reason: reason.into(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected rabbit://USER:PASS@HOST:5672/VHOST"))?;
        if !matches!(scheme, "rabbit" | "amqp") {
            return Err(bad("only rabbit:// (RabbitMQ) is supported"));
        }
        let (hosts, vhost) = match rest.split_once('/') {
            Some((h, v)) => (h, v.split('?').next().unwrap_or_default()),
            None => (rest, ""),
        };
        // oslo.messaging: an empty path is the default virtual host "/".
        let vhost = if vhost.is_empty() { "%2f" } else { vhost };
        let uris: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.trim().is_empty())
            .map(|h| format!("amqp://{}/{vhost}", h.trim()))
            .collect();
        if uris.is_empty() {
            return Err(bad("no host"));
        }
        for u in &uris {
            u.parse::<lapin::uri::AMQPUri>().map_err(|e| bad(&e))?;
        }
        if queue.is_empty() {
            return Err(bad("[oslo_messaging] topic is empty"));
        }
        Ok(Bus {
            uris,
            queue: queue.into(),
        })
    }

    /// The hosts without passwords, for logs.
    pub fn display(&self) -> String {
        self.uris
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connects to the first host that answers and declares the queue on a new channel.
    async fn open(&self) -> Result<(Connection, lapin::Channel), String> {
        let mut last = String::from("no host");
        for uri in &self.uris {
            let props = ConnectionProperties::default().with_connection_name("rocta".into());
            let conn =
                match tokio::time::timeout(Duration::from_secs(5), Connection::connect(uri, props))
                    .await
                {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        last = format!("{}: {e}", redact(uri));
                        continue;
                    }
                    Err(_) => {
                        last = format!("{}: no answer within 5 s", redact(uri));
                        continue;
                    }
                };
            let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(MESSAGE_TTL_MS),
            );
            // A queue nobody has used for that long goes away (a worker declares it again).
            args.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
            ch.queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions::default(),
                args,
            )
            .await
            .map_err(|e| e.to_string())?;
            return Ok((conn, ch));
        }
        Err(last)
    }
}

/// `amqp://user:secret@host` as `amqp://user:***@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let hosts: Vec<String> = rest
        .split(',')
        .map(|h| match h.split_once('@') {
            Some((cred, host)) if cred.contains(':') => {
                format!("{}:***@{host}", cred.split(':').next().unwrap_or_default())
            }
            _ => h.to_string(),
        })
        .collect();
    format!("{scheme}://{}", hosts.join(","))
}

/// Reconnection backoff: 0.25 s doubling to 30 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(250))
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(250);
    }
}

/// The API's side: announces posted jobs without ever waiting for the bus.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<()>,
    up: Arc<AtomicBool>,
}

impl Publisher {
    /// Starts the publishing task on the current runtime; it ends when every clone is dropped.
    pub fn spawn(bus: Bus) -> Publisher {
        let (tx, rx) = mpsc::channel(PENDING);
        let up = Arc::new(AtomicBool::new(false));
        tokio::spawn(publish_loop(bus, rx, up.clone()));
        Publisher { tx, up }
    }

    /// One job was committed: wake a worker somewhere. Dropped when the bus is down or behind.
    pub fn announce(&self) {
        let _ = self.tx.try_send(());
    }

    /// Whether the publisher is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

async fn publish_loop(bus: Bus, mut rx: mpsc::Receiver<()>, up: Arc<AtomicBool>) {
    let mut backoff = Backoff::new();
    let mut warned = false;
    loop {
        let (conn, ch) = match bus.open().await {
            Ok(c) => c,
            Err(e) => {
                if !warned {
                    tracing::warn!(bus = %bus.display(), error = %e, "RabbitMQ unreachable: job announcements dropped (workers poll) until it is back");
                    warned = true;
                }
                // Announcements made meanwhile are stale: the sweep finds their jobs.
                while rx.try_recv().is_ok() {}
                backoff.wait().await;
                continue;
            }
        };
        if let Err(e) = ch.confirm_select(ConfirmSelectOptions::default()).await {
            tracing::warn!(error = %e, "RabbitMQ: confirm_select failed");
            backoff.wait().await;
            continue;
        }
        tracing::info!(bus = %bus.display(), queue = %bus.queue, "job announcements over RabbitMQ");
        up.store(true, Ordering::Relaxed);
        backoff.reset();
        loop {
            let Some(()) = rx.recv().await else {
                let _ = conn.close(200, "bye".into()).await;
                return;
            };
            let published = ch
                .basic_publish(
                    "".into(),
                    bus.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    b"job",
                    BasicProperties::default(),
                )
                .await;
            let confirmed = match published {
                Ok(confirm) => confirm.await.map(|c| c.is_ack()),
                Err(e) => Err(e),
            };
            match confirmed {
                Ok(true) => {}
                Ok(false) => tracing::warn!("RabbitMQ refused a job announcement (nack)"),
                Err(e) => {
                    tracing::warn!(error = %e, "RabbitMQ connection lost: reconnecting; workers poll meanwhile");
                    warned = true;
                    break;
                }
            }
        }
        up.store(false, Ordering::Relaxed);
        backoff.wait().await;
    }
}

/// The worker's side: each delivery wakes `wake` and is then acked. `up` says whether the
/// consumer is connected (the worker polls often while it is not).
pub fn spawn_consumer(bus: Bus, wake: Arc<Notify>, prefetch: u16) -> Arc<AtomicBool> {
    let up = Arc::new(AtomicBool::new(false));
    tokio::spawn(consume_loop(bus, wake, prefetch.max(1), up.clone()));
    up
}

async fn consume_loop(bus: Bus, wake: Arc<Notify>, prefetch: u16, up: Arc<AtomicBool>) {
    let mut backoff = Backoff::new();
    let mut warned = false;
    loop {
        let consumer = async {
            let (conn, ch) = bus.open().await?;
            ch.basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            let c = ch
                .basic_consume(
                    bus.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, ch, c))
        }
        .await;
        let (_conn, _ch, mut deliveries) = match consumer {
            Ok(c) => c,
            Err(e) => {
                if !warned {
                    tracing::warn!(bus = %bus.display(), error = %e, "RabbitMQ unreachable: polling for jobs until it is back");
                    warned = true;
                }
                backoff.wait().await;
                continue;
            }
        };
        tracing::info!(bus = %bus.display(), queue = %bus.queue, "job wake-ups over RabbitMQ");
        up.store(true, Ordering::Relaxed);
        warned = false;
        backoff.reset();
        // Jobs announced while this worker was away are found by its claim now.
        wake.notify_one();
        while let Some(d) = deliveries.next().await {
            match d {
                Ok(d) => {
                    wake.notify_one();
                    if let Err(e) = d.ack(BasicAckOptions::default()).await {
                        tracing::warn!(error = %e, "RabbitMQ: ack failed");
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "RabbitMQ connection lost: polling for jobs while reconnecting");
                    warned = true;
                    break;
                }
            }
        }
        up.store(false, Ordering::Relaxed);
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_urls_as_oslo_writes_them() {
        let b = Bus::parse("rabbit://guest:guest@127.0.0.1:5672/", "q").unwrap();
        assert_eq!(b.uris, vec!["amqp://guest:guest@127.0.0.1:5672/%2f"]);
        let b = Bus::parse("rabbit://u:p@h1:5672,u:p@h2:5672/octavia", "q").unwrap();
        assert_eq!(
            b.uris,
            vec!["amqp://u:p@h1:5672/octavia", "amqp://u:p@h2:5672/octavia"]
        );
        assert_eq!(
            b.display(),
            "amqp://u:***@h1:5672/octavia,amqp://u:***@h2:5672/octavia"
        );
        assert!(Bus::parse("kafka://h:9092/", "q").is_err());
        assert!(Bus::parse("rabbit:///", "q").is_err());
        let e = Bus::parse("redis://u:secret@h/", "q")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
