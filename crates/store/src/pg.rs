//! PostgreSQL over `tokio-postgres`, driven synchronously.
//!
//! Each connection's I/O task runs on a small runtime owned by the store (one thread,
//! `rocta-db`); a transaction sends its statements from the calling thread and waits for the
//! answers with `futures_executor::block_on`, so the store keeps one synchronous transaction
//! API on every backend. The caller is kept off the async runtime's worker threads by
//! `Store::write`/`read` (`block_in_place`), see ARCHITECTURE.md.

use std::time::Duration;

use futures_executor::block_on;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use crate::pool::Pool;
use crate::sql::{numbered, Row, StatementCache, Value};
use crate::StoreError;

/// One connection with its prepared statements.
pub(crate) struct PgConn {
    client: Client,
    stmts: StatementCache<Statement>,
}

/// A transaction on a `PgConn` (begun and ended by `PgDb::run`).
pub(crate) struct PgTx<'a> {
    conn: &'a mut PgConn,
    /// The `BEGIN` not sent yet: it goes out with the transaction's first statement, in one
    /// round trip (tokio-postgres pipelines requests polled together).
    begin: Option<&'static str>,
}

/// Statements with more parameters than this are multi-row statements whose text varies with
/// the row count: prepared for one use (closed when dropped) rather than kept per connection,
/// where each row count would pin one more server-side statement.
const CACHED_MAX_PARAMS: usize = 64;

impl PgTx<'_> {
    fn stmt(&mut self, sql: &str, params: usize) -> Result<Statement, StoreError> {
        if let Some(s) = self.conn.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = block_on(self.conn.client.prepare(&numbered(sql)))?;
        if params <= CACHED_MAX_PARAMS {
            self.conn.stmts.insert(sql.to_string(), s.clone());
        }
        Ok(s)
    }

    pub(crate) fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        let st = self.stmt(sql, args.len())?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let client = &self.conn.client;
        after_begin(client, self.begin.take(), client.execute(&st, &params))
    }

    /// Sends every statement (after the pending `BEGIN`, if any) before awaiting the answers:
    /// tokio-postgres pipelines requests polled together.
    pub(crate) fn exec_batch(
        &mut self,
        stmts: &[(String, Vec<Value>)],
    ) -> Result<Vec<u64>, StoreError> {
        let prepared = stmts
            .iter()
            .map(|(sql, a)| self.stmt(sql, a.len()))
            .collect::<Result<Vec<_>, _>>()?;
        let client = &self.conn.client;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = stmts
            .iter()
            .map(|(_, a)| a.iter().map(|v| v as _).collect())
            .collect();
        let ops = futures_util::future::join_all(
            prepared
                .iter()
                .zip(&params)
                .map(|(st, p)| client.execute(st, p)),
        );
        let counts = after_begin(client, self.begin.take(), async {
            let mut out = Vec::with_capacity(stmts.len());
            for r in ops.await {
                out.push(r?);
            }
            Ok::<_, tokio_postgres::Error>(out)
        })?;
        Ok(counts)
    }

    pub(crate) fn rows(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let st = self.stmt(sql, args.len())?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let client = &self.conn.client;
        let rows = after_begin(client, self.begin.take(), client.query(&st, &params))?;
        rows.iter().map(from_pg).collect()
    }
}

/// Runs `op` after `begin`, if given, both sent before waiting for either.
fn after_begin<T>(
    client: &Client,
    begin: Option<&'static str>,
    op: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match begin {
        None => Ok(block_on(op)?),
        Some(begin) => {
            let (b, r) = block_on(futures_util::future::join(client.batch_execute(begin), op));
            b?;
            Ok(r?)
        }
    }
}

fn from_pg(r: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match *c.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Int(n.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Int(n.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|b| Value::Int(b.into())),
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A PostgreSQL database: its connection settings, the runtime driving connection I/O and a
/// bounded pool of connections.
pub(crate) struct PgDb {
    rt: Option<tokio::runtime::Runtime>,
    config: tokio_postgres::Config,
    pool: Pool<PgConn>,
}

impl PgDb {
    pub(crate) fn new(config: tokio_postgres::Config, max: usize) -> Result<PgDb, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rocta-db")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the database runtime: {e}"))
            })?;
        Ok(PgDb {
            rt: Some(rt),
            config,
            pool: Pool::new(max),
        })
    }

    fn connect(&self) -> Result<PgConn, StoreError> {
        let rt = self.rt.as_ref().expect("runtime lives until drop");
        let mut config = self.config.clone();
        config.connect_timeout(Duration::from_secs(5));
        let task = rt.spawn(async move {
            let (client, conn) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "postgresql connection ended");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = block_on(task)
            .map_err(|e| StoreError::Unavailable(format!("postgresql connect task: {e}")))?
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to postgresql: {e}")))?;
        Ok(PgConn {
            client,
            stmts: StatementCache::new(),
        })
    }

    /// Runs `f` in a transaction: `REPEATABLE READ READ ONLY` for reads (one snapshot),
    /// `READ COMMITTED` for writes (conditional updates and row locks see the latest rows).
    pub(crate) fn run<T, E: From<StoreError>>(
        &self,
        mode: crate::Mode,
        f: impl FnOnce(&crate::Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut guard = self.pool.get(|| self.connect())?;
        // A connection the server closed (restart, `pg_terminate_backend`) is replaced.
        while guard.conn().client.is_closed() {
            guard.broken = true;
            drop(guard);
            guard = self.pool.get(|| self.connect())?;
        }
        if mode == crate::Mode::Single {
            // Statements outside a transaction leave the connection as they found it; a
            // panic in `f` still drops it (`broken` is cleared only after `f` returned).
            guard.broken = true;
            let session = crate::sql::Session::Postgres(PgTx {
                conn: guard.conn(),
                begin: None,
            });
            let out = f(&crate::Tx::single(session, crate::Dialect::Postgres));
            guard.broken = guard.conn().client.is_closed();
            return out;
        }
        // Until the transaction ended, the connection is not fit for another (a panic in `f`
        // drops it instead of returning it mid-transaction).
        guard.broken = true;
        let begin = if mode == crate::Mode::Write {
            "BEGIN"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        let conn = guard.conn();
        let tx = crate::Tx::new(
            crate::sql::Session::Postgres(PgTx {
                conn,
                begin: Some(begin),
            }),
            crate::Dialect::Postgres,
        );
        let out = f(&tx);
        let begun = match tx.session.into_inner() {
            crate::sql::Session::Postgres(t) => t.begin.is_none(),
            _ => true,
        };
        if !begun {
            // No statement ran: no transaction was opened.
            guard.broken = false;
            return out;
        }
        let conn = guard.conn();
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match block_on(conn.client.batch_execute(end)) {
            Ok(()) => {
                guard.broken = false;
                out
            }
            Err(e) => {
                guard.broken = conn_lost(&e);
                match out {
                    Ok(_) => Err(StoreError::from(e).into()),
                    Err(first) => Err(first),
                }
            }
        }
    }
}

/// The channel `Tx::job_post` notifies on PostgreSQL (delivered when its transaction commits).
pub(crate) const JOBS_CHANNEL: &str = "rocta_jobs";

impl PgDb {
    /// Keeps a connection of its own `LISTEN`ing on the jobs channel and wakes `wake` at each
    /// notification (and once per (re)connection, for jobs posted while it was away).
    /// `listening` says whether the subscription is up; on a lost connection it reconnects with
    /// backoff, and says so in the log once per outage.
    pub(crate) fn listen_jobs(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
        listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        use std::sync::atomic::Ordering;
        let rt = self.rt.as_ref().expect("runtime lives until drop");
        let config = self.config.clone();
        rt.spawn(async move {
            let mut backoff = Duration::from_millis(250);
            let mut warned = false;
            loop {
                match listen_once(&config, &wake, &listening).await {
                    Ok(()) => backoff = Duration::from_millis(250),
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "job wake-ups: PostgreSQL LISTEN lost; polling until it is back");
                            warned = true;
                        }
                    }
                }
                listening.store(false, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                if listening.load(Ordering::Relaxed) {
                    warned = false;
                }
            }
        });
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    wake: &tokio::sync::Notify,
    listening: &std::sync::atomic::AtomicBool,
) -> Result<(), tokio_postgres::Error> {
    use std::sync::atomic::Ordering;
    use tokio_postgres::AsyncMessage;
    let mut config = config.clone();
    config.connect_timeout(Duration::from_secs(5));
    config.keepalives_idle(Duration::from_secs(10));
    let (client, mut conn) = config.connect(NoTls).await?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let subscribe = async {
        client
            .batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))
            .await?;
        let _ = ready_tx.send(());
        // Keep the client (and with it the connection) until the connection ends.
        std::future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    let drive = async {
        let mut ready = Some(ready_rx);
        loop {
            if let Some(r) = ready.as_mut() {
                if r.try_recv().is_ok() {
                    ready = None;
                    listening.store(true, Ordering::Relaxed);
                    tracing::info!("job wake-ups: PostgreSQL LISTEN {JOBS_CHANNEL}");
                    wake.notify_one();
                }
            }
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    };
    tokio::select! {
        r = subscribe => r,
        r = drive => r,
    }
}

fn conn_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.code().is_none()
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Connections first (their tasks end when their clients drop), then the runtime,
        // without blocking: the store may be dropped on an async thread.
        self.pool.clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
