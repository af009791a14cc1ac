//! Generic entity queries: every entity table has the same shape (see the crate doc).

use rocta_model::time::{self, Timestamp};
use rocta_model::*;
use rusqlite::{params, OptionalExtension, ToSql};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{StoreError, Tx};

/// The column values of an entity row besides its document.
#[derive(Debug, Clone)]
pub struct Cols {
    pub lb_id: Id,
    pub parent_id: Id,
    pub provisioning_status: String,
    pub operating_status: String,
    pub updated_at: Option<Timestamp>,
}

/// An entity kept in an entity table.
pub trait Entity: Serialize + DeserializeOwned {
    const TABLE: &'static str;
    fn id(&self) -> Id;
    fn project(&self) -> &str;
    fn created(&self) -> Timestamp;
    fn cols(&self) -> Cols;
    /// Applies the column values read back (statuses, `updated_at`, skipped parent ids).
    fn set_cols(&mut self, c: Cols);
}

fn parse_prov(s: &str) -> ProvisioningStatus {
    ProvisioningStatus::parse(s).unwrap_or(ProvisioningStatus::Error)
}

fn parse_op(s: &str) -> OperatingStatus {
    OperatingStatus::parse(s).unwrap_or(OperatingStatus::Offline)
}

macro_rules! lb_child_entity {
    ($ty:ty, $table:literal, |$s:ident| parent = $parent:expr, |$m:ident, $c:ident| $set:block) => {
        impl Entity for $ty {
            const TABLE: &'static str = $table;
            fn id(&self) -> Id {
                self.id
            }
            fn project(&self) -> &str {
                &self.project_id
            }
            fn created(&self) -> Timestamp {
                self.created_at
            }
            fn cols(&self) -> Cols {
                let $s = self;
                Cols {
                    lb_id: $s.lb_id,
                    parent_id: $parent,
                    provisioning_status: $s.provisioning_status.as_str().to_string(),
                    operating_status: $s.operating_status.as_str().to_string(),
                    updated_at: $s.updated_at,
                }
            }
            fn set_cols(&mut self, $c: Cols) {
                let $m = self;
                $m.lb_id = $c.lb_id;
                $m.provisioning_status = parse_prov(&$c.provisioning_status);
                $m.operating_status = parse_op(&$c.operating_status);
                $m.updated_at = $c.updated_at;
                $set
            }
        }
    };
}

impl Entity for LoadBalancer {
    const TABLE: &'static str = "load_balancers";
    fn id(&self) -> Id {
        self.id
    }
    fn project(&self) -> &str {
        &self.project_id
    }
    fn created(&self) -> Timestamp {
        self.created_at
    }
    fn cols(&self) -> Cols {
        Cols {
            lb_id: self.id,
            parent_id: self.id,
            provisioning_status: self.provisioning_status.as_str().into(),
            operating_status: self.operating_status.as_str().into(),
            updated_at: self.updated_at,
        }
    }
    fn set_cols(&mut self, c: Cols) {
        self.provisioning_status = parse_prov(&c.provisioning_status);
        self.operating_status = parse_op(&c.operating_status);
        self.updated_at = c.updated_at;
    }
}

lb_child_entity!(Listener, "listeners", |s| parent = s.lb_id, |_m, _c| {});
lb_child_entity!(Pool, "pools", |s| parent = s.lb_id, |_m, _c| {});
lb_child_entity!(Member, "members", |s| parent = s.pool_id, |m, c| {
    m.pool_id = c.parent_id;
});
lb_child_entity!(
    HealthMonitor,
    "health_monitors",
    |s| parent = s.pool_id,
    |m, c| {
        m.pool_id = c.parent_id;
    }
);
lb_child_entity!(
    L7Policy,
    "l7policies",
    |s| parent = s.listener_id,
    |_m, _c| {}
);
lb_child_entity!(L7Rule, "l7rules", |s| parent = s.l7policy_id, |m, c| {
    m.l7policy_id = c.parent_id;
});

impl Entity for Amphora {
    const TABLE: &'static str = "amphorae";
    fn id(&self) -> Id {
        self.id
    }
    fn project(&self) -> &str {
        ""
    }
    fn created(&self) -> Timestamp {
        self.created_at
    }
    fn cols(&self) -> Cols {
        let lb = self.loadbalancer_id.unwrap_or(Id::nil());
        Cols {
            lb_id: lb,
            parent_id: lb,
            provisioning_status: self.status.as_str().into(),
            operating_status: String::new(),
            updated_at: self.updated_at,
        }
    }
    fn set_cols(&mut self, c: Cols) {
        self.status = AmphoraStatus::parse(&c.provisioning_status).unwrap_or(AmphoraStatus::Error);
        self.updated_at = c.updated_at;
    }
}

/// Row selection for `list`; all set conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub project: Option<&'a str>,
    pub lb_id: Option<Id>,
    pub parent_id: Option<Id>,
    /// Leave out rows whose provisioning status is `DELETED` (load balancers, amphorae).
    pub live_only: bool,
}

pub(crate) fn fmt_ts(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn parse_ts(s: Option<String>) -> Option<Timestamp> {
    s.and_then(|s| Timestamp::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f").ok())
}

fn uuid_col(s: &str) -> Id {
    Id::parse_str(s).unwrap_or(Id::nil())
}

const SELECT: &str =
    "SELECT id, lb_id, parent_id, provisioning_status, operating_status, updated_at, body";

fn decode<E: Entity>(row: &rusqlite::Row<'_>) -> Result<E, StoreError> {
    let id: String = row.get(0)?;
    let body: String = row.get(6)?;
    let mut e: E = serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
        table: E::TABLE,
        id,
        source,
    })?;
    e.set_cols(Cols {
        lb_id: uuid_col(&row.get::<_, String>(1)?),
        parent_id: uuid_col(&row.get::<_, String>(2)?),
        provisioning_status: row.get(3)?,
        operating_status: row.get(4)?,
        updated_at: parse_ts(row.get(5)?),
    });
    Ok(e)
}

impl Tx<'_> {
    /// One entity by id (whatever its status).
    pub fn get<E: Entity>(&self, id: Id) -> Result<Option<E>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("{SELECT} FROM {} WHERE id = ?1", E::TABLE))?;
        let mut rows = st.query(params![id.to_string()])?;
        match rows.next()? {
            Some(r) => Ok(Some(decode(r)?)),
            None => Ok(None),
        }
    }

    /// Entities matching `f`, in creation order.
    pub fn list<E: Entity>(&self, f: &Filter<'_>) -> Result<Vec<E>, StoreError> {
        let (cond, args) = where_clause(f);
        let mut st = self
            .conn
            .prepare_cached(&format!("{SELECT} FROM {}{cond} ORDER BY seq", E::TABLE))?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
        let mut rows = st.query(refs.as_slice())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(decode(r)?);
        }
        Ok(out)
    }

    /// `(parent_id, id)` of the rows of `table` matching `f`, in creation order: child links
    /// without decoding documents.
    pub fn links(&self, table: &str, f: &Filter<'_>) -> Result<Vec<(Id, Id)>, StoreError> {
        let (cond, args) = where_clause(f);
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT parent_id, id FROM {table}{cond} ORDER BY seq"
        ))?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
        let rows = st.query_map(refs.as_slice(), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (p, i) = r?;
            out.push((uuid_col(&p), uuid_col(&i)));
        }
        Ok(out)
    }

    /// Rows of `E` matching `f`.
    pub fn count<E: Entity>(&self, f: &Filter<'_>) -> Result<i64, StoreError> {
        let (cond, args) = where_clause(f);
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM {}{cond}", E::TABLE))?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
        Ok(st.query_row(refs.as_slice(), |r| r.get(0))?)
    }

    pub fn insert<E: Entity>(&self, e: &E) -> Result<(), StoreError> {
        let c = e.cols();
        let body = serde_json::to_string(e).map_err(|err| StoreError::Encode(E::TABLE, err))?;
        let mut st = self.conn.prepare_cached(&format!(
            "INSERT INTO {} (id, project_id, lb_id, parent_id, provisioning_status, \
             operating_status, created_at, updated_at, body) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            E::TABLE
        ))?;
        st.execute(params![
            e.id().to_string(),
            e.project(),
            c.lb_id.to_string(),
            c.parent_id.to_string(),
            c.provisioning_status,
            c.operating_status,
            fmt_ts(&e.created()),
            c.updated_at.as_ref().map(fmt_ts),
            body
        ])?;
        Ok(())
    }

    /// Rewrites the whole entity (document and columns).
    pub fn update<E: Entity>(&self, e: &E) -> Result<bool, StoreError> {
        let c = e.cols();
        let body = serde_json::to_string(e).map_err(|err| StoreError::Encode(E::TABLE, err))?;
        let mut st = self.conn.prepare_cached(&format!(
            "UPDATE {} SET lb_id=?2, parent_id=?3, provisioning_status=?4, operating_status=?5, \
             updated_at=?6, body=?7 WHERE id=?1",
            E::TABLE
        ))?;
        let n = st.execute(params![
            e.id().to_string(),
            c.lb_id.to_string(),
            c.parent_id.to_string(),
            c.provisioning_status,
            c.operating_status,
            c.updated_at.as_ref().map(fmt_ts),
            body
        ])?;
        Ok(n == 1)
    }

    /// Sets the provisioning and/or operating status of rows of `table` (by id), bumping
    /// `updated_at`. Returns the rows changed.
    pub fn set_status(
        &self,
        table: &str,
        ids: &[Id],
        prov: Option<&str>,
        op: Option<&str>,
    ) -> Result<usize, StoreError> {
        let now = time::now();
        let mut st = self.conn.prepare_cached(&format!(
            "UPDATE {table} SET provisioning_status = COALESCE(?2, provisioning_status), \
             operating_status = COALESCE(?3, operating_status), updated_at = ?4, \
             body = json_set(body, '$.{}', COALESCE(?2, provisioning_status), \
                 '$.operating_status', COALESCE(?3, operating_status), '$.updated_at', ?5) \
             WHERE id = ?1",
            if table == "amphorae" {
                "status"
            } else {
                "provisioning_status"
            }
        ))?;
        let mut n = 0;
        for id in ids {
            n += st.execute(params![
                id.to_string(),
                prov,
                op,
                fmt_ts(&now),
                time::render(&now)
            ])?;
        }
        Ok(n)
    }

    /// Moves rows `ids` of `table` to provisioning status `to`, each only if its status is one
    /// of `from` (a transition as a conditional `UPDATE`: a step that runs again, or late, never
    /// overwrites a status someone else set since). Returns the rows changed.
    pub fn transition(
        &self,
        table: &str,
        ids: &[Id],
        from: &[&str],
        to: &str,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for id in ids {
            for f in from {
                n += self.move_status(table, "id", *id, f, to)?;
            }
        }
        Ok(n)
    }

    /// Sets the provisioning status of every row of `table` in `lb_id` whose status is `from`.
    pub fn set_status_where(
        &self,
        table: &str,
        lb_id: Id,
        from: &str,
        to: &str,
    ) -> Result<usize, StoreError> {
        self.move_status(table, "lb_id", lb_id, from, to)
    }

    /// `provisioning_status` from `from` to `to` where `column` (`id` or `lb_id`) is `key`.
    fn move_status(
        &self,
        table: &str,
        column: &str,
        key: Id,
        from: &str,
        to: &str,
    ) -> Result<usize, StoreError> {
        let now = time::now();
        let mut st = self.conn.prepare_cached(&format!(
            "UPDATE {table} SET provisioning_status = ?3, updated_at = ?4, \
             body = json_set(body, '$.provisioning_status', ?3, '$.updated_at', ?5) \
             WHERE {column} = ?1 AND provisioning_status = ?2"
        ))?;
        Ok(st.execute(params![
            key.to_string(),
            from,
            to,
            fmt_ts(&now),
            time::render(&now)
        ])?)
    }

    /// The stored documents of `table` matching `f`, as `(id, project_id, parent_id, body)`,
    /// in creation order: the wire representation without decoding (documents are kept in step
    /// with the status columns).
    pub fn list_raw(
        &self,
        table: &str,
        f: &Filter<'_>,
    ) -> Result<Vec<(Id, String, Id, String)>, StoreError> {
        let (cond, args) = where_clause(f);
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT id, project_id, parent_id, body FROM {table}{cond} ORDER BY seq"
        ))?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
        let mut rows = st.query(refs.as_slice())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push((
                uuid_col(&r.get::<_, String>(0)?),
                r.get(1)?,
                uuid_col(&r.get::<_, String>(2)?),
                r.get(3)?,
            ));
        }
        Ok(out)
    }

    /// Deletes rows of `table` by id.
    pub fn delete(&self, table: &str, ids: &[Id]) -> Result<usize, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("DELETE FROM {table} WHERE id = ?1"))?;
        let mut n = 0;
        for id in ids {
            n += st.execute(params![id.to_string()])?;
        }
        Ok(n)
    }

    /// Deletes every row of `table` belonging to a load balancer.
    pub fn delete_by_lb(&self, table: &str, lb_id: Id) -> Result<usize, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("DELETE FROM {table} WHERE lb_id = ?1"))?;
        Ok(st.execute(params![lb_id.to_string()])?)
    }

    /// Whether a row with this id exists in `table`.
    pub fn exists(&self, table: &str, id: Id) -> Result<bool, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT 1 FROM {table} WHERE id = ?1"))?;
        Ok(st
            .query_row(params![id.to_string()], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

fn where_clause(f: &Filter<'_>) -> (String, Vec<String>) {
    let mut conds = Vec::new();
    let mut args = Vec::new();
    if let Some(p) = f.project {
        args.push(p.to_string());
        conds.push(format!("project_id = ?{}", args.len()));
    }
    if let Some(l) = f.lb_id {
        args.push(l.to_string());
        conds.push(format!("lb_id = ?{}", args.len()));
    }
    if let Some(p) = f.parent_id {
        args.push(p.to_string());
        conds.push(format!("parent_id = ?{}", args.len()));
    }
    if f.live_only {
        conds.push("provisioning_status != 'DELETED'".to_string());
    }
    if conds.is_empty() {
        (String::new(), args)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), args)
    }
}
