//! MySQL/MariaDB over the synchronous `mysql` crate, on the store's own pool (`pool.rs`).
//!
//! Not the crate's pool: it pings every connection it hands out, one round trip more for each
//! transaction (for a one-statement read, twice the round trips). Here a connection is pinged
//! only after it sat idle for [`IDLE_PING`], and one that fails its `BEGIN` for want of a
//! server is dropped and another taken.

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use crate::pool::Pool;
use crate::sql::Session;
use crate::{Dialect, Mode, StoreError, Tx};

/// A connection and when it was last used.
pub(crate) struct MyConn {
    conn: mysql::Conn,
    used: Instant,
}

/// A MySQL/MariaDB database: connection options and a bounded pool.
pub(crate) struct MyDb {
    opts: mysql::Opts,
    pool: Pool<MyConn>,
}

/// A connection idle for longer is pinged before use: the server may have closed it
/// (`wait_timeout`, a restart).
const IDLE_PING: Duration = Duration::from_secs(30);

/// Connections tried before giving up on a server that closes them. A connection found closed
/// drops every idle one with it (closed together, by a restart, as a rule).
const TRIES: usize = 3;

impl MyDb {
    pub(crate) fn new(opts: mysql::Opts, max: usize) -> MyDb {
        MyDb {
            opts,
            pool: Pool::new(max),
        }
    }

    fn connect(&self) -> Result<MyConn, StoreError> {
        Ok(MyConn {
            conn: mysql::Conn::new(self.opts.clone())?,
            used: Instant::now(),
        })
    }

    /// One statement outside a transaction (`Store::read_single`); run again on another
    /// connection if it failed on one the server had closed (nothing was changed by it).
    pub(crate) fn run_single<T, E: From<StoreError>>(
        &self,
        f: impl Fn(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut lost = false;
        let out = self.run(Mode::Single, |tx| {
            let out = f(tx);
            lost = out.is_err() && tx.connection_lost();
            out
        });
        if lost {
            return self.run(Mode::Single, f);
        }
        out
    }

    /// Runs `f` as `mode` says. Transactions are begun and ended here rather than by the driver
    /// so that a read begins in one round trip. Sessions run `READ COMMITTED` (set at connect:
    /// a write's conditional updates, locks and counts see what others committed, as on
    /// PostgreSQL); a read asks for one `REPEATABLE READ` snapshot.
    pub(crate) fn run<T, E: From<StoreError>>(
        &self,
        mode: Mode,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let begin = match mode {
            Mode::Write => Some("START TRANSACTION"),
            Mode::Read => Some(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
                 START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
            ),
            Mode::Single => None,
        };
        let mut tries = 0;
        let mut guard = loop {
            tries += 1;
            let mut g = self.pool.get(|| self.connect())?;
            // Until the transaction ended, the connection is not fit for another (a panic in
            // `f` drops it instead of returning it mid-transaction).
            g.broken = true;
            let c = g.conn();
            if c.used.elapsed() > IDLE_PING && c.conn.ping().is_err() && tries < TRIES {
                self.pool.clear();
                continue;
            }
            match begin.map(|b| c.conn.query_drop(b)) {
                Some(Err(e)) if e.is_connectivity_error() && tries < TRIES => {
                    self.pool.clear();
                    continue;
                }
                Some(Err(e)) => return Err(StoreError::from(e).into()),
                _ => break g,
            }
        };
        let c = guard.conn();
        c.used = Instant::now();
        let out = match begin {
            None => f(&Tx::single(Session::Mysql(&mut c.conn), Dialect::Mysql)),
            Some(_) => f(&Tx::new(Session::Mysql(&mut c.conn), Dialect::Mysql)),
        };
        let c = guard.conn();
        if begin.is_none() {
            // No transaction to end; a statement that failed may have found the server gone.
            guard.broken = out.is_err() && c.conn.ping().is_err();
            if guard.broken {
                self.pool.clear();
            }
            return out;
        }
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        match c.conn.query_drop(end) {
            Ok(()) => {
                guard.broken = false;
                out
            }
            Err(e) => match out {
                Ok(_) => Err(StoreError::from(e).into()),
                Err(first) => Err(first),
            },
        }
    }
}
