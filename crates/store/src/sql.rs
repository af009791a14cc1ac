//! The one SQL surface every backend offers: a transaction that executes statements with
//! positional `?` parameters and returns rows of plain values. Queries are written once, in the
//! subset of SQL that SQLite, PostgreSQL and MySQL/MariaDB share; the few places where the
//! dialects differ (upserts, row locks, casts) ask `Dialect` for their fragment.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use rocta_model::Id;

use crate::StoreError;

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
            Dialect::Mysql => "mysql",
        }
    }

    /// `INSERT … VALUES (…)` that updates the row instead when `key` already exists. `set`
    /// holds `column = expression` pairs where `{new}.c` is the value offered for column `c`
    /// and `{old}.c` the stored one.
    pub(crate) fn upsert(self, table: &str, cols: &[&str], key: &[&str], set: &[&str]) -> String {
        self.upsert_rows(table, cols, key, set, 1)
    }

    /// [`Dialect::upsert`] of `rows` rows in one statement (no two with the same key).
    pub(crate) fn upsert_rows(
        self,
        table: &str,
        cols: &[&str],
        key: &[&str],
        set: &[&str],
        rows: usize,
    ) -> String {
        let head = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            cols.join(", "),
            value_rows(cols.len(), rows)
        );
        let set = |new: &dyn Fn(&str) -> String| -> String {
            set.iter()
                .map(|s| {
                    let mut s = s.replace("{old}", table);
                    while let Some(i) = s.find("{new}.") {
                        let rest = &s[i + 6..];
                        let end = rest
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(rest.len());
                        s = format!("{}{}{}", &s[..i], new(&rest[..end]), &rest[end..]);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                set(&|c| format!("excluded.{c}"))
            ),
            Dialect::Mysql => format!(
                "{head} ON DUPLICATE KEY UPDATE {}",
                set(&|c| format!("VALUES({c})"))
            ),
        }
    }

    /// `INSERT … VALUES (…), …` of `rows` rows, each doing nothing when its `key` already
    /// exists (not counted in the rows changed).
    pub(crate) fn insert_ignore_rows(
        self,
        table: &str,
        cols: &[&str],
        key: &[&str],
        rows: usize,
    ) -> String {
        let marks = value_rows(cols.len(), rows);
        let cols = cols.join(", ");
        match self {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO {table} ({cols}) VALUES {marks}"),
            Dialect::Postgres => format!(
                "INSERT INTO {table} ({cols}) VALUES {marks} ON CONFLICT ({}) DO NOTHING",
                key.join(", ")
            ),
            Dialect::Mysql => format!("INSERT IGNORE INTO {table} ({cols}) VALUES {marks}"),
        }
    }

    /// The sum of an integer column as a 64-bit integer (0 over no rows).
    pub(crate) fn sum_int(self, col: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST(COALESCE(SUM({col}), 0) AS BIGINT)"),
            _ => format!("COALESCE(SUM({col}), 0)"),
        }
    }

    /// The text of member `key` of an entity row's document (`key` is rocta's own, never a
    /// client's).
    pub(crate) fn json_text(self, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract(body, '$.{key}')"),
            Dialect::Postgres => format!("CAST(body AS json)->>'{key}'"),
            Dialect::Mysql => format!("JSON_UNQUOTE(JSON_EXTRACT(body, '$.{key}'))"),
        }
    }

    /// True for an entity row whose document says `"admin_state_up": false`.
    pub(crate) fn admin_disabled(self) -> &'static str {
        match self {
            Dialect::Sqlite => "json_type(body, '$.admin_state_up') = 'false'",
            Dialect::Postgres => "CAST(body AS json)->>'admin_state_up' = 'false'",
            Dialect::Mysql => "JSON_UNQUOTE(JSON_EXTRACT(body, '$.admin_state_up')) = 'false'",
        }
    }

    /// What ends a `SELECT` whose rows this transaction will change, waiting for others that
    /// hold them (so concurrent writers of one row take turns).
    pub(crate) fn lock_wait(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        }
    }

    /// What ends a `SELECT` that claims rows other transactions must not claim too.
    pub(crate) fn lock_rows(self) -> &'static str {
        match self {
            // One writer at a time: the transaction itself is the lock.
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// `(?, ?), (?, ?)`: `rows` rows of `cols` placeholders.
fn value_rows(cols: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows.max(1)].join(", ")
}

/// Rows per multi-row statement: well under every backend's parameter limit (SQLite 32,766,
/// PostgreSQL and MySQL 65,535) for the widest row written this way.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Id> for Value {
    fn from(v: Id) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<&Id> for Value {
    fn from(v: &Id) -> Self {
        Value::Text(v.to_string())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters: `args![a, b]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::sql::Value::from($v)),*][..] };
}
pub(crate) use args;

/// One result row.
#[derive(Debug)]
pub struct Row(pub(crate) Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Decode(format!("no column {i}")))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Int(n) => Ok(Some(n.to_string())),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Decode(format!("column {i} is NULL")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            // MySQL answers sums as decimals.
            Value::Text(s) => s
                .split('.')
                .next()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| StoreError::Decode(format!("column {i}: {s:?} is no integer"))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Decode(format!("column {i} is NULL")))
    }

    /// A UUID column; a value that is no UUID reads as the nil id.
    pub fn id(&self, i: usize) -> Result<Id, StoreError> {
        Ok(Id::parse_str(&self.text(i)?).unwrap_or(Id::nil()))
    }
}

/// A transaction open on one backend's connection.
pub(crate) enum Session<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(crate::pg::PgTx<'a>),
    Mysql(&'a mut mysql::Conn),
}

/// Queries inside one transaction (see `Store::read` and `Store::write`).
pub struct Tx<'a> {
    pub(crate) session: RefCell<Session<'a>>,
    pub(crate) dialect: Dialect,
    /// Outside a transaction (`Store::read_single`): whether its one statement ran.
    single: Option<Cell<bool>>,
    /// A statement failed for want of a connection.
    lost: Cell<bool>,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(session: Session<'a>, dialect: Dialect) -> Self {
        Tx {
            session: RefCell::new(session),
            dialect,
            single: None,
            lost: Cell::new(false),
        }
    }

    /// A session for one statement outside a transaction.
    pub(crate) fn single(session: Session<'a>, dialect: Dialect) -> Self {
        Tx {
            single: Some(Cell::new(false)),
            ..Tx::new(session, dialect)
        }
    }

    /// Whether a statement of this session failed because its server connection was lost
    /// (MySQL: the server closed it).
    pub(crate) fn connection_lost(&self) -> bool {
        self.lost.get()
    }

    /// Refuses a second statement where only one may run.
    fn statement(&self) -> Result<(), StoreError> {
        match &self.single {
            Some(ran) if ran.replace(true) => Err(StoreError::Decode(
                "a second statement in a one-statement read".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The backend's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Executes a statement; returns the rows it changed (matched, for an `UPDATE`).
    pub(crate) fn exec(&self, sql: &str, args: &[Value]) -> Result<u64, StoreError> {
        self.statement()?;
        match &mut *self.session.borrow_mut() {
            Session::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(args.iter()))? as u64)
            }
            Session::Postgres(t) => t.exec(sql, args),
            Session::Mysql(t) => {
                use mysql::prelude::Queryable;
                let r = if args.is_empty() {
                    // Text protocol: DDL and session statements need no prepared statement.
                    t.query_drop(sql)
                } else {
                    t.exec_drop(sql, my_params(args))
                };
                r.map_err(|e| self.my_error(e))?;
                Ok(t.affected_rows())
            }
        }
    }

    /// Executes statements whose row counts are only read afterwards: on PostgreSQL all are
    /// sent before the first answer is awaited (one round trip), elsewhere one after another.
    pub(crate) fn exec_batch(
        &self,
        stmts: &[(String, Vec<Value>)],
    ) -> Result<Vec<u64>, StoreError> {
        if let Session::Postgres(t) = &mut *self.session.borrow_mut() {
            self.statement()?;
            if stmts.len() > 1 {
                self.statement()?;
            }
            return t.exec_batch(stmts);
        }
        stmts.iter().map(|(sql, a)| self.exec(sql, a)).collect()
    }

    /// Runs a query and returns its rows.
    pub(crate) fn rows(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.statement()?;
        match &mut *self.session.borrow_mut() {
            Session::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut v = Vec::with_capacity(n);
                    for i in 0..n {
                        v.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(n) => Value::Int(n),
                            rusqlite::types::ValueRef::Real(f) => Value::Int(f as i64),
                            rusqlite::types::ValueRef::Text(t)
                            | rusqlite::types::ValueRef::Blob(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                        });
                    }
                    out.push(Row(v));
                }
                Ok(out)
            }
            Session::Postgres(t) => t.rows(sql, args),
            Session::Mysql(t) => {
                use mysql::prelude::Queryable;
                let rows: Vec<mysql::Row> =
                    t.exec(sql, my_params(args)).map_err(|e| self.my_error(e))?;
                Ok(rows
                    .into_iter()
                    .map(|r| Row(r.unwrap().into_iter().map(from_my).collect()))
                    .collect())
            }
        }
    }

    /// Notes a MySQL error that means the connection is gone.
    fn my_error(&self, e: mysql::Error) -> StoreError {
        if e.is_connectivity_error() {
            self.lost.set(true);
        }
        e.into()
    }

    /// The first row of a query, if any.
    pub(crate) fn row(&self, sql: &str, args: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn my_params(args: &[Value]) -> mysql::Params {
    if args.is_empty() {
        return mysql::Params::Empty;
    }
    mysql::Params::Positional(
        args.iter()
            .map(|a| match a {
                Value::Null => mysql::Value::NULL,
                Value::Int(n) => mysql::Value::Int(*n),
                Value::Text(s) => mysql::Value::Bytes(s.as_bytes().to_vec()),
            })
            .collect(),
    )
}

fn from_my(v: mysql::Value) -> Value {
    match v {
        mysql::Value::NULL => Value::Null,
        mysql::Value::Int(n) => Value::Int(n),
        mysql::Value::UInt(n) => Value::Int(n as i64),
        mysql::Value::Bytes(b) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
        mysql::Value::Float(f) => Value::Int(f as i64),
        mysql::Value::Double(f) => Value::Int(f as i64),
        other => Value::Text(other.as_sql(true)),
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, …` (the queries hold no `?` inside literals).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Statements prepared on one connection, by their SQL.
pub(crate) type StatementCache<S> = HashMap<String, S>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("UPDATE t SET a = ? WHERE b = ? AND c = 'x'"),
            "UPDATE t SET a = $1 WHERE b = $2 AND c = 'x'"
        );
    }

    #[test]
    fn upserts_per_dialect() {
        let set = ["n = {old}.n + {new}.n", "m = {new}.m"];
        assert_eq!(
            Dialect::Postgres.upsert("t", &["k", "n", "m"], &["k"], &set),
            "INSERT INTO t (k, n, m) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET \
             n = t.n + excluded.n, m = excluded.m"
        );
        assert_eq!(
            Dialect::Mysql.upsert("t", &["k", "n", "m"], &["k"], &set),
            "INSERT INTO t (k, n, m) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE \
             n = t.n + VALUES(n), m = VALUES(m)"
        );
    }
}
