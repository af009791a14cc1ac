//! The operator's catalog: flavor profiles, flavors, availability zone profiles and
//! availability zones (Octavia's admin-defined objects, not owned by a project). One table
//! holds the four kinds: the key (an id; an availability zone's name), the name, the object
//! it refers to (a flavor's profile, a zone's profile) and the whole document as the API
//! shows it.

use crate::sql::args;
use crate::{StoreError, Tx};

/// What a catalog row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    FlavorProfile,
    Flavor,
    AvailabilityZoneProfile,
    AvailabilityZone,
}

impl CatalogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogKind::FlavorProfile => "flavor_profile",
            CatalogKind::Flavor => "flavor",
            CatalogKind::AvailabilityZoneProfile => "availability_zone_profile",
            CatalogKind::AvailabilityZone => "availability_zone",
        }
    }
}

/// One catalog object.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    pub key: String,
    pub name: String,
    /// The key of the object it refers to ("" for none).
    pub refers_to: String,
    pub doc: serde_json::Value,
}

/// A flavor or an availability zone with its profile's provider and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiled {
    pub object: CatalogRow,
    pub provider: Option<String>,
    pub settings: serde_json::Value,
}

fn doc(kind: CatalogKind, key: &str, body: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        table: kind.as_str(),
        id: key.to_string(),
        source,
    })
}

impl Tx<'_> {
    /// One object by key.
    pub fn catalog_get(
        &self,
        kind: CatalogKind,
        key: &str,
    ) -> Result<Option<CatalogRow>, StoreError> {
        self.row(
            "SELECT name, refers_to, body FROM catalog WHERE kind = ? AND id = ?",
            args![kind.as_str(), key],
        )?
        .map(|r| {
            Ok(CatalogRow {
                key: key.to_string(),
                name: r.text(0)?,
                refers_to: r.text(1)?,
                doc: doc(kind, key, &r.text(2)?)?,
            })
        })
        .transpose()
    }

    /// Every object of `kind`, oldest first.
    pub fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<CatalogRow>, StoreError> {
        self.rows(
            "SELECT id, name, refers_to, body FROM catalog WHERE kind = ? ORDER BY seq",
            args![kind.as_str()],
        )?
        .iter()
        .map(|r| {
            let key = r.text(0)?;
            Ok(CatalogRow {
                name: r.text(1)?,
                refers_to: r.text(2)?,
                doc: doc(kind, &key, &r.text(3)?)?,
                key,
            })
        })
        .collect()
    }

    /// Whether an object of `kind` is named `name`. Takes the kind's lock row first, so two
    /// creates of one name (on any API process) take turns and the second sees the first.
    pub fn catalog_name_taken(&self, kind: CatalogKind, name: &str) -> Result<bool, StoreError> {
        self.lock(&format!("catalog:{}", kind.as_str()))?;
        Ok(self
            .row(
                "SELECT 1 FROM catalog WHERE kind = ? AND name = ?",
                args![kind.as_str(), name],
            )?
            .is_some())
    }

    /// Inserts `row` (false when its key exists).
    pub fn catalog_insert(&self, kind: CatalogKind, row: &CatalogRow) -> Result<bool, StoreError> {
        let sql = self.dialect.insert_ignore_rows(
            "catalog",
            &["kind", "id", "name", "refers_to", "body"],
            &["kind", "id"],
            1,
        );
        let body = serde_json::to_string(&row.doc).map_err(|e| StoreError::Encode("catalog", e))?;
        Ok(self.exec(
            &sql,
            args![
                kind.as_str(),
                row.key.as_str(),
                row.name.as_str(),
                row.refers_to.as_str(),
                body
            ],
        )? == 1)
    }

    /// Replaces the name, reference and document of `row` (false when it does not exist).
    pub fn catalog_update(&self, kind: CatalogKind, row: &CatalogRow) -> Result<bool, StoreError> {
        let body = serde_json::to_string(&row.doc).map_err(|e| StoreError::Encode("catalog", e))?;
        Ok(self.exec(
            "UPDATE catalog SET name = ?, refers_to = ?, body = ? WHERE kind = ? AND id = ?",
            args![
                row.name.as_str(),
                row.refers_to.as_str(),
                body,
                kind.as_str(),
                row.key.as_str()
            ],
        )? == 1)
    }

    /// Deletes one object (false when it did not exist).
    pub fn catalog_delete(&self, kind: CatalogKind, key: &str) -> Result<bool, StoreError> {
        Ok(self.exec(
            "DELETE FROM catalog WHERE kind = ? AND id = ?",
            args![kind.as_str(), key],
        )? == 1)
    }

    /// How many objects of `kind` refer to `key` (flavors of a profile, zones of a profile).
    pub fn catalog_referrers(&self, kind: CatalogKind, key: &str) -> Result<i64, StoreError> {
        self.row(
            "SELECT COUNT(*) FROM catalog WHERE kind = ? AND refers_to = ?",
            args![kind.as_str(), key],
        )?
        .map_or(Ok(0), |r| r.int(0))
    }

    /// A flavor (`kind` `Flavor`) or an availability zone (`AvailabilityZone`) with what its
    /// profile says: the provider and the settings (`flavor_data` / `availability_zone_data`,
    /// parsed; `Null` when the profile is missing or unreadable). `None`: no such object.
    pub fn catalog_profiled(
        &self,
        kind: CatalogKind,
        key: &str,
    ) -> Result<Option<Profiled>, StoreError> {
        let (profile_kind, data) = match kind {
            CatalogKind::Flavor => (CatalogKind::FlavorProfile, "flavor_data"),
            CatalogKind::AvailabilityZone => (
                CatalogKind::AvailabilityZoneProfile,
                "availability_zone_data",
            ),
            _ => return Ok(None),
        };
        let Some(object) = self.catalog_get(kind, key)? else {
            return Ok(None);
        };
        let profile = self.catalog_get(profile_kind, &object.refers_to)?;
        let provider = profile
            .as_ref()
            .and_then(|p| p.doc["provider_name"].as_str().map(str::to_string));
        let settings = profile
            .as_ref()
            .and_then(|p| p.doc[data].as_str())
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        Ok(Some(Profiled {
            object,
            provider,
            settings,
        }))
    }

    /// One string setting of the profile behind a flavor or an availability zone (a flavor's
    /// `compute_flavor`, a zone's `compute_zone`); `None` when anything is missing.
    pub fn profile_setting(
        &self,
        kind: CatalogKind,
        key: &str,
        setting: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .catalog_profiled(kind, key)?
            .and_then(|p| p.settings[setting].as_str().map(str::to_string)))
    }

    /// How many load balancers not `DELETED` name `value` in their document's `field`
    /// (`flavor_id`, `availability_zone`): a flavor or zone in use is not deleted.
    pub fn load_balancers_using(&self, field: &str, value: &str) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) FROM load_balancers WHERE provisioning_status <> 'DELETED' AND {} = ?",
            self.dialect.json_text(field)
        );
        self.row(&sql, args![value])?.map_or(Ok(0), |r| r.int(0))
    }
}
