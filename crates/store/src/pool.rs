//! A bounded pool of database connections (PostgreSQL's and MySQL's), shared by the backends
//! that talk to a server.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::StoreError;

/// A bounded pool of connections, opened on demand. Hand-written (40 lines) rather than r2d2:
/// r2d2 pings on every check-out and runs three threads of its own, where a connection here
/// only needs to be dropped when its server went away.
pub(crate) struct Pool<C> {
    state: Mutex<(Vec<C>, usize)>,
    freed: Condvar,
    max: usize,
}

/// How long a transaction waits for a free connection before the store answers "busy".
const POOL_WAIT: Duration = Duration::from_secs(30);

impl<C> Pool<C> {
    pub(crate) fn new(max: usize) -> Self {
        Pool {
            state: Mutex::new((Vec::new(), 0)),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<C>, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(
        &self,
        connect: impl FnOnce() -> Result<C, StoreError>,
    ) -> Result<Pooled<'_, C>, StoreError> {
        let mut st = self.lock();
        loop {
            if let Some(c) = st.0.pop() {
                return Ok(Pooled::new(self, c));
            }
            if st.1 < self.max {
                st.1 += 1;
                drop(st);
                return match connect() {
                    Ok(c) => Ok(Pooled::new(self, c)),
                    Err(e) => {
                        self.lock().1 -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let (s, timeout) = self
                .freed
                .wait_timeout(st, POOL_WAIT)
                .unwrap_or_else(|p| p.into_inner());
            st = s;
            if timeout.timed_out() && st.0.is_empty() && st.1 >= self.max {
                return Err(StoreError::Unavailable(format!(
                    "all {} database connections stayed busy for {}s",
                    self.max,
                    POOL_WAIT.as_secs()
                )));
            }
        }
    }

    pub(crate) fn clear(&self) {
        let mut st = self.lock();
        let n = st.0.len();
        st.0.clear();
        st.1 -= n;
    }
}

/// A connection taken from the pool; back into it on drop, or closed if `broken`.
pub(crate) struct Pooled<'a, C> {
    pool: &'a Pool<C>,
    conn: Option<C>,
    pub(crate) broken: bool,
}

impl<'a, C> Pooled<'a, C> {
    fn new(pool: &'a Pool<C>, c: C) -> Self {
        Pooled {
            pool,
            conn: Some(c),
            broken: false,
        }
    }

    pub(crate) fn conn(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until drop")
    }
}

impl<C> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        match self.conn.take() {
            Some(c) if !self.broken => st.0.push(c),
            _ => st.1 -= 1,
        }
        drop(st);
        self.pool.freed.notify_one();
    }
}
