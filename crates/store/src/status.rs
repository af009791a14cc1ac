//! Status moves: typed, conditional `UPDATE`s of provisioning (and operating) statuses, one
//! at a time or sent together (`Tx::transitions`).

use rocta_model::time;
use rocta_model::*;

use crate::entity::{fmt_ts, marks, Table};
use crate::sql::Value;
use crate::{Dialect, StoreError, Tx};

impl Tx<'_> {
    /// Sets the provisioning and/or operating status of rows of `table` (by id), whatever they
    /// were, bumping `updated_at`. Returns the rows changed. The API uses it on rows it just
    /// locked; the worker and the health manager use `transition`.
    pub fn set_status(
        &self,
        table: Table,
        ids: &[Id],
        prov: Option<ProvisioningStatus>,
        op: Option<OperatingStatus>,
    ) -> Result<usize, StoreError> {
        let now = fmt_ts(&time::now());
        let mut n = 0;
        for id in ids {
            let (sql, a) = match (prov, op) {
                (None, None) => return Ok(0),
                (Some(p), None) => (
                    "provisioning_status = ?",
                    vec![Value::from(p.as_str()), now.clone().into(), id.into()],
                ),
                (None, Some(o)) => (
                    "operating_status = ?",
                    vec![o.as_str().into(), now.clone().into(), id.into()],
                ),
                (Some(p), Some(o)) => (
                    "provisioning_status = ?, operating_status = ?",
                    vec![
                        p.as_str().into(),
                        o.as_str().into(),
                        now.clone().into(),
                        id.into(),
                    ],
                ),
            };
            let sql = format!(
                "UPDATE {} SET {sql}, updated_at = ? WHERE id = ?",
                table.name()
            );
            n += self.exec(&sql, &a)? as usize;
        }
        Ok(n)
    }

    /// Moves rows `ids` of `table` to provisioning status `to`, each only if its status is one
    /// of `from` (a transition as a conditional `UPDATE`: a step that runs again, or late, never
    /// overwrites a status someone else set since). Returns the rows changed.
    pub fn transition(
        &self,
        table: Table,
        ids: &[Id],
        from: &[ProvisioningStatus],
        to: ProvisioningStatus,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for id in ids {
            n += self.move_status(table, "id", *id, from, to.as_str(), None)?;
        }
        Ok(n)
    }

    /// `transition` of every row of `table` in load balancer `lb_id`.
    pub fn transition_lb(
        &self,
        table: Table,
        lb_id: Id,
        from: &[ProvisioningStatus],
        to: ProvisioningStatus,
    ) -> Result<usize, StoreError> {
        self.move_status(table, "lb_id", lb_id, from, to.as_str(), None)
    }

    /// Moves amphora `id` to `to` if its status is one of `from`; `false` if it was not.
    pub fn amphora_transition(
        &self,
        id: Id,
        from: &[AmphoraStatus],
        to: AmphoraStatus,
    ) -> Result<bool, StoreError> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        Ok(self.move_status_str(Table::Amphorae, "id", id, &from, to.as_str(), None)? == 1)
    }

    fn move_status(
        &self,
        table: Table,
        column: &str,
        key: Id,
        from: &[ProvisioningStatus],
        to: &str,
        op: Option<OperatingStatus>,
    ) -> Result<usize, StoreError> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        self.move_status_str(table, column, key, &from, to, op)
    }

    /// `provisioning_status` from one of `from` to `to` where `column` (`id` or `lb_id`) is
    /// `key`, in one conditional `UPDATE`.
    fn move_status_str(
        &self,
        table: Table,
        column: &str,
        key: Id,
        from: &[&str],
        to: &str,
        op: Option<OperatingStatus>,
    ) -> Result<usize, StoreError> {
        if from.is_empty() {
            return Ok(0);
        }
        let (sql, a) = move_sql(
            self.dialect,
            table,
            column,
            key,
            from,
            to,
            op.map(|o| (o, false)),
        );
        Ok(self.exec(&sql, &a)? as usize)
    }

    /// Several status moves of one load balancer's objects, sent together (one round trip on
    /// PostgreSQL); the rows each changed, in order.
    pub fn transitions(&self, moves: &[Move<'_>]) -> Result<Vec<usize>, StoreError> {
        let stmts: Vec<(String, Vec<Value>)> = moves
            .iter()
            .map(|m| {
                let from: Vec<&str> = m.from.iter().map(|s| s.as_str()).collect();
                let column = if m.by_lb { "lb_id" } else { "id" };
                let op = m.op.map(|o| (o, m.offline_if_disabled));
                move_sql(
                    self.dialect,
                    m.table,
                    column,
                    m.key,
                    &from,
                    m.to.as_str(),
                    op,
                )
            })
            .collect();
        Ok(self
            .exec_batch(&stmts)?
            .into_iter()
            .map(|n| n as usize)
            .collect())
    }
}

/// A conditional status move (see [`Tx::transitions`]): rows of `table` whose id (`by_lb`:
/// whose load balancer's id) is `key` and whose provisioning status is one of `from` go to
/// `to`, and to operating status `op` when given (`OFFLINE` instead for the rows whose
/// `admin_state_up` is false, with `offline_if_disabled`: Octavia's rule for monitors and L7
/// objects).
pub struct Move<'a> {
    pub table: Table,
    pub by_lb: bool,
    pub key: Id,
    pub from: &'a [ProvisioningStatus],
    pub to: ProvisioningStatus,
    pub op: Option<OperatingStatus>,
    pub offline_if_disabled: bool,
}

/// The `UPDATE` of a status move.
fn move_sql(
    dialect: Dialect,
    table: Table,
    column: &str,
    key: Id,
    from: &[&str],
    to: &str,
    op: Option<(OperatingStatus, bool)>,
) -> (String, Vec<Value>) {
    let set_op = match op {
        None => String::new(),
        Some((_, false)) => ", operating_status = ?".into(),
        Some((_, true)) => format!(
            ", operating_status = CASE WHEN {} THEN 'OFFLINE' ELSE ? END",
            dialect.admin_disabled()
        ),
    };
    let sql = format!(
        "UPDATE {} SET provisioning_status = ?{set_op}, updated_at = ? \
         WHERE {column} = ? AND provisioning_status IN ({})",
        table.name(),
        marks(from.len().max(1))
    );
    let mut a = vec![Value::from(to)];
    a.extend(op.map(|(o, _)| Value::from(o.as_str())));
    a.extend([fmt_ts(&time::now()).into(), key.into()]);
    if from.is_empty() {
        // Matches nothing: no status is empty.
        a.push(Value::from(""));
    }
    a.extend(from.iter().map(|s| Value::from(*s)));
    (sql, a)
}
