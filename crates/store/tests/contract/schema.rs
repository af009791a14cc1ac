//! The contract of the schema (its version, upgrades from earlier ones) and of the operator's
//! catalog (flavors, availability zones and their profiles).

use rocta_model::*;
use rocta_store::*;

use super::{lb, Db};

pub(super) async fn schema_is_current_and_a_newer_one_is_refused(db: Db) {
    let s = &db.store;
    assert_eq!(s.schema_state().unwrap(), SchemaState::Current);
    // Upgrading a current schema changes nothing.
    assert_eq!(s.upgrade().unwrap(), (SCHEMA_VERSION, SCHEMA_VERSION));
    s.blocking(true, |tx| tx.schema_version_set(SCHEMA_VERSION + 1))
        .unwrap();
    assert_eq!(
        s.schema_state().unwrap(),
        SchemaState::Newer(SCHEMA_VERSION + 1)
    );
    assert!(s.upgrade().is_err());
}

/// The catalog: insert once per key, read, list in creation order, update, references and
/// names counted, load balancers using a flavor found through their documents, delete.
pub(super) async fn catalog_objects_and_their_references(db: Db) {
    let s = &db.store;
    let k = CatalogKind::Flavor;
    let row = |key: &str, name: &str, profile: &str| CatalogRow {
        key: key.into(),
        name: name.into(),
        refers_to: profile.into(),
        doc: serde_json::json!({"id": key, "name": name, "description": "ü \"q\""}),
    };
    let (a, b) = (row("fa", "gold", "p1"), row("fb", "silver", "p1"));
    s.write(|tx| -> Result<(), StoreError> {
        assert!(tx.catalog_insert(k, &a)?);
        assert!(tx.catalog_insert(k, &b)?);
        assert!(!tx.catalog_insert(k, &a)?, "a key is inserted once");
        // Another kind may reuse a key.
        assert!(tx.catalog_insert(CatalogKind::FlavorProfile, &row("fa", "p", ""))?);
        Ok(())
    })
    .await
    .unwrap();
    let listed = s.read(|tx| tx.catalog_list(k)).await.unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    let (taken, free, refs) = s
        .write(|tx| {
            Ok::<_, StoreError>((
                tx.catalog_name_taken(k, "gold")?,
                tx.catalog_name_taken(k, "bronze")?,
                tx.catalog_referrers(k, "p1")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((taken, free, refs), (true, false, 2));
    let mut b2 = b.clone();
    b2.name = "platinum".into();
    b2.doc["name"] = "platinum".into();
    assert!(s.write(|tx| tx.catalog_update(k, &b2)).await.unwrap());
    assert_eq!(
        s.read(|tx| tx.catalog_get(k, "fb")).await.unwrap(),
        Some(b2)
    );
    let mut l = lb("p");
    let flavor = new_id().to_string();
    l.flavor_id = Some(flavor.clone());
    s.write(|tx| tx.insert(&l)).await.unwrap();
    let using = s
        .read(|tx| tx.load_balancers_using("flavor_id", &flavor))
        .await
        .unwrap();
    assert_eq!(using, 1);
    assert!(s.write(|tx| tx.catalog_delete(k, "fa")).await.unwrap());
    assert!(!s.write(|tx| tx.catalog_delete(k, "fa")).await.unwrap());
    assert_eq!(s.read(|tx| tx.catalog_get(k, "fa")).await.unwrap(), None);
    assert!(s
        .read(|tx| tx.catalog_get(CatalogKind::FlavorProfile, "fa"))
        .await
        .unwrap()
        .is_some());
}

/// A database of schema version 5 (before the catalog) is brought to the current version by
/// `upgrade`, keeping what it held.
pub(super) async fn a_version_5_schema_is_upgraded_to_the_catalog(db: Db) {
    let s = &db.store;
    let l = lb("p");
    s.write(|tx| tx.insert(&l)).await.unwrap();
    s.blocking(true, |tx| {
        tx.raw_exec("DROP TABLE catalog")?;
        tx.raw_exec("DROP TABLE job_history")?;
        tx.schema_version_set(5)
    })
    .unwrap();
    assert_eq!(s.schema_state().unwrap(), SchemaState::Older(5));
    assert_eq!(s.upgrade().unwrap(), (5, SCHEMA_VERSION));
    assert_eq!(s.schema_state().unwrap(), SchemaState::Current);
    assert!(s
        .read(|tx| tx.get::<LoadBalancer>(l.id))
        .await
        .unwrap()
        .is_some());
    let row = CatalogRow {
        key: "z".into(),
        name: "z".into(),
        refers_to: String::new(),
        doc: serde_json::json!({}),
    };
    assert!(s
        .write(|tx| tx.catalog_insert(CatalogKind::AvailabilityZone, &row))
        .await
        .unwrap());
}
