//! Generic entity queries: every entity table has the same shape (see the crate doc).

use rocta_model::time::Timestamp;
use rocta_model::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sql::{args, Row, Value, ROWS_PER_STATEMENT};
use crate::{StoreError, Tx};

/// The entity tables, all of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    LoadBalancers,
    Listeners,
    Pools,
    Members,
    HealthMonitors,
    L7Policies,
    L7Rules,
    Amphorae,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::LoadBalancers,
        Table::Listeners,
        Table::Pools,
        Table::Members,
        Table::HealthMonitors,
        Table::L7Policies,
        Table::L7Rules,
        Table::Amphorae,
    ];

    /// The children of a load balancer.
    pub const CHILDREN: [Table; 6] = [
        Table::Listeners,
        Table::Pools,
        Table::Members,
        Table::HealthMonitors,
        Table::L7Policies,
        Table::L7Rules,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::LoadBalancers => "load_balancers",
            Table::Listeners => "listeners",
            Table::Pools => "pools",
            Table::Members => "members",
            Table::HealthMonitors => "health_monitors",
            Table::L7Policies => "l7policies",
            Table::L7Rules => "l7rules",
            Table::Amphorae => "amphorae",
        }
    }

    /// The document keys whose values live in columns (put back on read).
    fn status_keys(self) -> (&'static str, Option<&'static str>) {
        match self {
            Table::Amphorae => ("status", None),
            _ => ("provisioning_status", Some("operating_status")),
        }
    }
}

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
    const TABLE: Table;
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
    ($ty:ty, $table:expr, |$s:ident| parent = $parent:expr, |$m:ident, $c:ident| $set:block) => {
        impl Entity for $ty {
            const TABLE: Table = $table;
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
    const TABLE: Table = Table::LoadBalancers;
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

lb_child_entity!(
    Listener,
    Table::Listeners,
    |s| parent = s.lb_id,
    |_m, _c| {}
);
lb_child_entity!(Pool, Table::Pools, |s| parent = s.lb_id, |_m, _c| {});
lb_child_entity!(Member, Table::Members, |s| parent = s.pool_id, |m, c| {
    m.pool_id = c.parent_id;
});
lb_child_entity!(
    HealthMonitor,
    Table::HealthMonitors,
    |s| parent = s.pool_id,
    |m, c| {
        m.pool_id = c.parent_id;
    }
);
lb_child_entity!(
    L7Policy,
    Table::L7Policies,
    |s| parent = s.listener_id,
    |_m, _c| {}
);
lb_child_entity!(
    L7Rule,
    Table::L7Rules,
    |s| parent = s.l7policy_id,
    |m, c| {
        m.l7policy_id = c.parent_id;
    }
);

impl Entity for Amphora {
    const TABLE: Table = Table::Amphorae;
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

pub(crate) fn parse_ts(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|s| Timestamp::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok())
}

const SELECT: &str =
    "SELECT id, lb_id, parent_id, provisioning_status, operating_status, updated_at, body";

/// `?, ?, ?` for `n` values.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The document of an entity without the values that live in columns.
fn encode<E: Entity>(e: &E) -> Result<String, StoreError> {
    let enc = |err| StoreError::Encode(E::TABLE.name(), err);
    let mut v = serde_json::to_value(e).map_err(enc)?;
    if let Some(m) = v.as_object_mut() {
        let (p, o) = E::TABLE.status_keys();
        m.remove(p);
        if let Some(o) = o {
            m.remove(o);
        }
        m.remove("updated_at");
    }
    serde_json::to_string(&v).map_err(enc)
}

/// A stored document with its column values put back in (as the first keys), in the wire form
/// (`updated_at` in Octavia's format). `None` if the document is not a JSON object.
fn with_cols(
    t: Table,
    body: &str,
    prov: &str,
    op: &str,
    updated_at: Option<&str>,
) -> Option<String> {
    let rest = body.trim_start().strip_prefix('{')?;
    let (pk, ok) = t.status_keys();
    let mut out = String::with_capacity(body.len() + 112);
    out.push('{');
    let mut key = |k: &str, v: Option<&str>| {
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        match v {
            Some(v) => push_json_str(&mut out, v),
            None => out.push_str("null"),
        }
        out.push(',');
    };
    key(pk, Some(prov));
    if let Some(ok) = ok {
        key(ok, Some(op));
    }
    key("updated_at", updated_at.and_then(wire_ts));
    if rest.trim_start().starts_with('}') {
        out.pop();
    }
    out.push_str(rest);
    Some(out)
}

/// A stored timestamp (`%Y-%m-%dT%H:%M:%S.ffffff`) in Octavia's wire form (whole seconds): its
/// first 19 characters, checked.
fn wire_ts(s: &str) -> Option<&str> {
    let w = s.get(..19)?;
    let b = w.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    (b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && digits.iter().all(|&i| b[i].is_ascii_digit()))
    .then_some(w)
}

/// `s` as a JSON string (statuses are plain words; anything else is escaped).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_-:. ".contains(&c))
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

fn decode<E: Entity>(row: &Row) -> Result<E, StoreError> {
    let id = row.text(0)?;
    let corrupt = |source| StoreError::Corrupt {
        table: E::TABLE.name(),
        id: id.clone(),
        source,
    };
    let (prov, op, updated) = (row.text(3)?, row.text(4)?, row.opt_text(5)?);
    let body = row.text(6)?;
    let doc = with_cols(E::TABLE, &body, &prov, &op, updated.as_deref())
        .ok_or_else(|| corrupt(serde::de::Error::custom("not a JSON object")))?;
    let mut e: E = serde_json::from_str(&doc).map_err(corrupt)?;
    e.set_cols(Cols {
        lb_id: row.id(1)?,
        parent_id: row.id(2)?,
        provisioning_status: prov,
        operating_status: op,
        updated_at: parse_ts(updated.as_deref()),
    });
    Ok(e)
}

impl Tx<'_> {
    /// One entity by id (whatever its status).
    pub fn get<E: Entity>(&self, id: Id) -> Result<Option<E>, StoreError> {
        let sql = format!("{SELECT} FROM {} WHERE id = ?", E::TABLE.name());
        self.row(&sql, args![id])?.map(|r| decode(&r)).transpose()
    }

    /// Entities matching `f`, in creation order.
    pub fn list<E: Entity>(&self, f: &Filter<'_>) -> Result<Vec<E>, StoreError> {
        let (cond, a) = where_clause(f);
        let sql = format!("{SELECT} FROM {}{cond} ORDER BY seq", E::TABLE.name());
        self.rows(&sql, &a)?.iter().map(decode).collect()
    }

    /// Entities whose id (`by_lb`: whose load balancer's id) is one of `ids`, in creation order
    /// per [`ROWS_PER_STATEMENT`] ids.
    pub fn list_in<E: Entity>(&self, by_lb: bool, ids: &[Id]) -> Result<Vec<E>, StoreError> {
        let col = if by_lb { "lb_id" } else { "id" };
        let mut out = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "{SELECT} FROM {} WHERE {col} IN ({}) ORDER BY seq",
                E::TABLE.name(),
                marks(chunk.len())
            );
            let a: Vec<Value> = chunk.iter().map(Value::from).collect();
            for r in self.rows(&sql, &a)? {
                out.push(decode(&r)?);
            }
        }
        Ok(out)
    }

    /// The load balancer `lb_id` (whatever its status) and every object under it, each kind
    /// in creation order: one statement over the seven tables.
    pub fn lb_tree(&self, lb_id: Id) -> Result<LbTree, StoreError> {
        let tree = [Table::LoadBalancers].into_iter().chain(Table::CHILDREN);
        let sql = tree
            .enumerate()
            .map(|(k, t)| format!("{SELECT}, {k} AS k, seq FROM {} WHERE lb_id = ?", t.name()))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let a = vec![Value::from(lb_id); 1 + Table::CHILDREN.len()];
        let mut t = LbTree::default();
        for r in sorted(self.rows(&sql, &a)?, 7)? {
            match r.int(7)? {
                0 => t.loadbalancer = Some(decode(&r)?),
                1 => t.listeners.push(decode(&r)?),
                2 => t.pools.push(decode(&r)?),
                3 => t.members.push(decode(&r)?),
                4 => t.health_monitors.push(decode(&r)?),
                5 => t.l7policies.push(decode(&r)?),
                _ => t.l7rules.push(decode(&r)?),
            }
        }
        Ok(t)
    }

    /// `(parent_id, id)` of the rows of `table` matching `f`, in creation order: child links
    /// without decoding documents.
    pub fn links(&self, table: Table, f: &Filter<'_>) -> Result<Vec<(Id, Id)>, StoreError> {
        let (cond, a) = where_clause(f);
        let sql = format!(
            "SELECT parent_id, id FROM {}{cond} ORDER BY seq",
            table.name()
        );
        self.rows(&sql, &a)?
            .iter()
            .map(|r| Ok((r.id(0)?, r.id(1)?)))
            .collect()
    }

    /// Rows of `E` matching `f`.
    pub fn count<E: Entity>(&self, f: &Filter<'_>) -> Result<i64, StoreError> {
        let (cond, a) = where_clause(f);
        let sql = format!("SELECT COUNT(*) FROM {}{cond}", E::TABLE.name());
        match self.row(&sql, &a)? {
            Some(r) => r.int(0),
            None => Ok(0),
        }
    }

    pub fn insert<E: Entity>(&self, e: &E) -> Result<(), StoreError> {
        let c = e.cols();
        let body = encode(e)?;
        let sql = format!(
            "INSERT INTO {} (id, project_id, lb_id, parent_id, provisioning_status, \
             operating_status, created_at, updated_at, body) VALUES ({})",
            E::TABLE.name(),
            marks(9)
        );
        self.exec(
            &sql,
            args![
                e.id(),
                e.project(),
                c.lb_id,
                c.parent_id,
                c.provisioning_status,
                c.operating_status,
                fmt_ts(&e.created()),
                c.updated_at.as_ref().map(fmt_ts),
                body
            ],
        )?;
        Ok(())
    }

    /// Rewrites the whole entity (document and columns).
    pub fn update<E: Entity>(&self, e: &E) -> Result<bool, StoreError> {
        let c = e.cols();
        let body = encode(e)?;
        let sql = format!(
            "UPDATE {} SET lb_id = ?, parent_id = ?, provisioning_status = ?, \
             operating_status = ?, updated_at = ?, body = ? WHERE id = ?",
            E::TABLE.name()
        );
        let n = self.exec(
            &sql,
            args![
                c.lb_id,
                c.parent_id,
                c.provisioning_status,
                c.operating_status,
                c.updated_at.as_ref().map(fmt_ts),
                body,
                e.id()
            ],
        )?;
        Ok(n == 1)
    }

    /// `(id, project_id, parent_id, document)` of the rows of `E` matching `f`, statuses
    /// spliced into the stored document as the API shows them (no decoding of the document).
    pub fn list_raw<E: Entity>(&self, f: &Filter<'_>) -> Result<Vec<RawRow>, StoreError> {
        Ok(self.list_raw_linked::<E>(f, &[])?.0)
    }

    /// [`Tx::list_raw`] and, in the same statement, the `(parent_id, id)` links of the rows of
    /// each `(table, filter)` of `children`, each in creation order.
    pub fn list_raw_linked<E: Entity>(
        &self,
        f: &Filter<'_>,
        children: &[(Table, &Filter<'_>)],
    ) -> Result<(Vec<RawRow>, Vec<Links>), StoreError> {
        let (cond, mut a) = where_clause(f);
        let mut sql = format!(
            "SELECT 0 AS k, seq, id, project_id, parent_id, provisioning_status, \
             operating_status, updated_at, body FROM {}{cond}",
            E::TABLE.name()
        );
        for (k, (table, cf)) in children.iter().enumerate() {
            let (cond, ca) = where_clause(cf);
            sql.push_str(&format!(
                " UNION ALL SELECT {}, seq, id, NULL, parent_id, NULL, NULL, NULL, NULL FROM {}{cond}",
                k + 1,
                table.name()
            ));
            a.extend(ca);
        }
        let mut docs = Vec::new();
        let mut links = vec![Vec::new(); children.len()];
        for r in sorted(self.rows(&sql, &a)?, 0)? {
            match usize::try_from(r.int(0)?).unwrap_or(0) {
                0 => docs.push(raw_row(E::TABLE, &r)?),
                k => {
                    if let Some(l) = links.get_mut(k - 1) {
                        l.push((r.id(4)?, r.id(2)?));
                    }
                }
            }
        }
        Ok((docs, links))
    }

    /// Deletes rows of `table` by id.
    pub fn delete(&self, table: Table, ids: &[Id]) -> Result<usize, StoreError> {
        let sql = format!("DELETE FROM {} WHERE id = ?", table.name());
        let mut n = 0;
        for id in ids {
            n += self.exec(&sql, args![id])? as usize;
        }
        Ok(n)
    }

    /// Deletes every row of `table` belonging to a load balancer.
    pub fn delete_by_lb(&self, table: Table, lb_id: Id) -> Result<usize, StoreError> {
        let sql = format!("DELETE FROM {} WHERE lb_id = ?", table.name());
        Ok(self.exec(&sql, args![lb_id])? as usize)
    }

    /// Whether a row with this id exists in `table`.
    pub fn exists(&self, table: Table, id: Id) -> Result<bool, StoreError> {
        let sql = format!("SELECT 1 FROM {} WHERE id = ?", table.name());
        Ok(self.row(&sql, args![id])?.is_some())
    }
}

/// `rows` ordered by their kind (column `k`) and creation order (column `k + 1`): done here
/// rather than by an `ORDER BY` over a `UNION ALL`, for which MySQL/MariaDB build a temporary
/// table per query.
fn sorted(rows: Vec<Row>, k: usize) -> Result<Vec<Row>, StoreError> {
    let mut keyed = rows
        .into_iter()
        .map(|r| Ok(((r.int(k)?, r.int(k + 1)?), r)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    keyed.sort_unstable_by_key(|(key, _)| *key);
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

/// `(parent_id, id)` pairs: which object hangs under which.
pub type Links = Vec<(Id, Id)>;

/// `(id, project_id, parent_id, document)`: a row as the API shows it, undecoded.
pub type RawRow = (Id, String, Id, String);

/// A [`RawRow`] from `k, seq, id, project_id, parent_id, provisioning_status,
/// operating_status, updated_at, body`.
fn raw_row(table: Table, r: &Row) -> Result<RawRow, StoreError> {
    let (prov, op, updated, body) = (r.text(5)?, r.text(6)?, r.opt_text(7)?, r.text(8)?);
    let doc = with_cols(table, &body, &prov, &op, updated.as_deref()).ok_or_else(|| {
        StoreError::Corrupt {
            table: table.name(),
            id: r.text(2).unwrap_or_default(),
            source: serde::de::Error::custom("not a JSON object"),
        }
    })?;
    Ok((r.id(2)?, r.text(3)?, r.id(4)?, doc))
}

fn where_clause(f: &Filter<'_>) -> (String, Vec<Value>) {
    let mut conds = Vec::new();
    let mut a = Vec::new();
    if let Some(p) = f.project {
        a.push(p.into());
        conds.push("project_id = ?");
    }
    if let Some(l) = f.lb_id {
        a.push(l.into());
        conds.push("lb_id = ?");
    }
    if let Some(p) = f.parent_id {
        a.push(p.into());
        conds.push("parent_id = ?");
    }
    if f.live_only {
        conds.push("provisioning_status <> 'DELETED'");
    }
    if conds.is_empty() {
        (String::new(), a)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_go_back_into_the_document() {
        let d = with_cols(
            Table::Pools,
            r#"{"id":"x"}"#,
            "ACTIVE",
            "ONLINE",
            Some("2026-12-01T20:49:54.696452"),
        )
        .unwrap();
        assert_eq!(
            d,
            r#"{"provisioning_status":"ACTIVE","operating_status":"ONLINE","updated_at":"2026-12-01T20:49:54","id":"x"}"#
        );
        let d = with_cols(Table::Amphorae, "{}", "READY", "", None).unwrap();
        assert_eq!(d, r#"{"status":"READY","updated_at":null}"#);
        let v: serde_json::Value = serde_json::from_str(
            &with_cols(Table::Pools, "{ }", "a\"b", "c", Some("junk")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (v["provisioning_status"].as_str(), v["updated_at"].is_null()),
            (Some("a\"b"), true)
        );
        assert!(with_cols(Table::Pools, "[]", "A", "B", None).is_none());
    }
}
