//! `barbican_cert_manager`: the TLS material of listeners and pools read from Barbican, as
//! Octavia's certificate manager does (with `barbican_acl_auth`).
//!
//! - A reference is a Barbican secret or certificate container: its URL
//!   (`…/v1/secrets/<uuid>`, `…/v1/containers/<uuid>`) or its bare UUID (a secret, else a
//!   container). Only the UUID is taken from it: every call goes to the catalog's (or the
//!   configured) key-manager endpoint, never to a host a tenant wrote in a reference.
//! - A secret holds a PKCS#12 bundle (Octavia's format for certificates: no passphrase) or PEM
//!   text (a CA bundle, a CRL); a container of type `certificate` holds the secrets
//!   `certificate`, `private_key` and `intermediates` (Octavia's legacy format). Either way
//!   the result is one PEM bundle: certificate, chain, key.
//! - The service user reads them through the read ACL the API grants it with the caller's own
//!   token when a listener or pool is created or updated (`set_acls`); containers get the
//!   listener or pool as a consumer while it uses them.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};

use super::nova::{deleted, fault_message, os_err};
use super::{Endpoint, OsError, Session};
use crate::{DriverError, DriverResult, TlsStore};

/// What a reference names.
#[derive(Debug, Clone, PartialEq)]
enum Ref {
    Secret(uuid::Uuid),
    Container(uuid::Uuid),
    /// A bare UUID: a secret, else a container.
    Either(uuid::Uuid),
}

/// Reads a reference; `None` when it names neither a secret nor a container.
fn parse_ref(reference: &str) -> Option<Ref> {
    let r = reference.trim();
    if let Ok(id) = uuid::Uuid::parse_str(r) {
        return Some(Ref::Either(id));
    }
    let rest = r
        .strip_prefix("http://")
        .or_else(|| r.strip_prefix("https://"))?;
    let mut segments = rest.trim_end_matches('/').rsplit('/');
    let id = uuid::Uuid::parse_str(segments.next()?).ok()?;
    match segments.next()? {
        "secrets" => Some(Ref::Secret(id)),
        "containers" => Some(Ref::Container(id)),
        _ => None,
    }
}

/// Octavia's `UnreadablePKCS12` detail.
fn unreadable_pkcs12(why: impl std::fmt::Display) -> String {
    format!(
        "The PKCS12 bundle is unreadable. Please check the PKCS12 bundle validity. In \
         addition, make sure it does not require a pass phrase. Error: {why}"
    )
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A secret's payload as PEM: PEM text as it is, else a PKCS#12 bundle without passphrase
/// turned into certificate, chain and key (PKCS#8).
pub fn payload_pem(payload: &[u8]) -> Result<String, String> {
    if let Ok(text) = std::str::from_utf8(payload) {
        if text.contains("-----BEGIN ") {
            return Ok(text.to_string());
        }
    }
    let store =
        p12_keystore::KeyStore::from_pkcs12(payload, "", p12_keystore::Pkcs12ImportPolicy::Relaxed)
            .map_err(unreadable_pkcs12)?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| unreadable_pkcs12("no private key in the bundle"))?;
    if chain.certs().is_empty() {
        return Err(unreadable_pkcs12("no certificate for the private key"));
    }
    let mut out: String = chain
        .certs()
        .iter()
        .map(|c| pem_block("CERTIFICATE", c.as_der()))
        .collect();
    // Certificates the bundle carries outside the key's chain (intermediates it could not
    // link) follow the chain, as Octavia takes every CA certificate of the bundle.
    let all =
        p12_keystore::KeyStore::from_pkcs12(payload, "", p12_keystore::Pkcs12ImportPolicy::Raw)
            .map_err(unreadable_pkcs12)?;
    for (_, entry) in all.entries() {
        if let p12_keystore::KeyStoreEntry::Certificate(c) = entry {
            if !chain.certs().contains(c) {
                out.push_str(&pem_block("CERTIFICATE", c.as_der()));
            }
        }
    }
    out.push_str(&pem_block("PRIVATE KEY", chain.key().as_der()));
    Ok(out)
}

/// The `barbican_cert_manager` store.
pub struct BarbicanTls {
    session: Arc<Session>,
    barbican: Endpoint,
    /// The name Octavia registers container consumers with (`[certificates] service_name`).
    consumer_name: String,
}

impl BarbicanTls {
    pub fn new(session: Arc<Session>, barbican: Endpoint, consumer_name: &str) -> Self {
        BarbicanTls {
            session,
            barbican,
            consumer_name: consumer_name.to_string(),
        }
    }

    /// `{endpoint}/v1`.
    async fn v1(&self) -> DriverResult<String> {
        let base = self
            .session
            .endpoint(&self.barbican)
            .await
            .map_err(os_err("find barbican"))?;
        Ok(if base.ends_with("/v1") {
            base
        } else {
            format!("{base}/v1")
        })
    }

    async fn get(&self, url: &str) -> Result<Value, OsError> {
        Ok(self
            .session
            .call("Barbican", Method::GET, url, None)
            .await?
            .body)
    }

    /// A secret's payload, in its default content type.
    async fn payload(&self, secret_url: &str) -> Result<Vec<u8>, OsError> {
        let meta = self.get(secret_url).await?;
        let accept = meta["content_types"]["default"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_string();
        self.session
            .get_bytes("Barbican", &format!("{secret_url}/payload"), &accept)
            .await
    }

    /// A certificate container as one PEM bundle.
    async fn container_pem(&self, container_url: &str) -> Result<Result<String, String>, OsError> {
        let c = self.get(container_url).await?;
        let refs: Vec<(String, String)> = c["secret_refs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some((
                            r["name"].as_str()?.to_string(),
                            r["secret_ref"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let find = |name: &str| refs.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone());
        if find("private_key_passphrase").is_some() {
            return Ok(Err(
                "Passphrase protected private keys are not supported.".into()
            ));
        }
        let (Some(cert), Some(key)) = (find("certificate"), find("private_key")) else {
            return Ok(Err(
                "the container has no certificate or no private key".into()
            ));
        };
        let v1 = match self.v1().await {
            Ok(v) => v,
            Err(e) => return Ok(Err(e.message)),
        };
        let mut out = String::new();
        for r in [Some(cert), find("intermediates"), Some(key)]
            .into_iter()
            .flatten()
        {
            // The secret's UUID, read at the configured endpoint like the container.
            let Some(Ref::Secret(id)) = parse_ref(&r) else {
                return Ok(Err(format!("the container names an unreadable secret {r}")));
            };
            let bytes = self.payload(&format!("{v1}/secrets/{id}")).await?;
            match String::from_utf8(bytes) {
                Ok(t) if t.contains("-----BEGIN ") => {
                    out.push_str(t.trim_end());
                    out.push('\n');
                }
                _ => return Ok(Err(format!("secret {id} of the container is not PEM"))),
            }
        }
        Ok(Ok(out))
    }

    /// The URL of what `r` names, and whether it is a container; a bare UUID is looked up,
    /// with the caller's token when there is one (the service may not read it yet).
    async fn resolve(&self, r: &Ref, caller: Option<&str>) -> Result<(String, bool), OsError> {
        let v1 = self.v1().await.map_err(|e| OsError::Config(e.message))?;
        Ok(match r {
            Ref::Secret(id) => (format!("{v1}/secrets/{id}"), false),
            Ref::Container(id) => (format!("{v1}/containers/{id}"), true),
            Ref::Either(id) => {
                let secret = format!("{v1}/secrets/{id}");
                let found = match caller {
                    Some(token) => self
                        .session
                        .call_as(token, "Barbican", Method::GET, &secret, None)
                        .await
                        .map(|_| ()),
                    None => self.get(&secret).await.map(|_| ()),
                };
                match found {
                    Ok(_) => (secret, false),
                    Err(OsError::Status { status: 404, .. }) => {
                        (format!("{v1}/containers/{id}"), true)
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// Adds the service user to the read ACL of `url` (a secret or container) with the
    /// caller's token, unless it is there.
    async fn grant(&self, token: &str, url: &str, me: &str) -> Result<(), OsError> {
        let acl_url = format!("{url}/acl");
        let acl = self
            .session
            .call_as(token, "Barbican", Method::GET, &acl_url, None)
            .await?
            .body;
        let mut users: Vec<String> = acl["read"]["users"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if users.iter().any(|u| u == me) {
            return Ok(());
        }
        users.push(me.to_string());
        let project_access = acl["read"]["project-access"].as_bool().unwrap_or(true);
        self.session
            .call_as(
                token,
                "Barbican",
                Method::PUT,
                &acl_url,
                Some(&json!({"read": {"users": users, "project-access": project_access}})),
            )
            .await?;
        Ok(())
    }

    /// Octavia's `set_acls`: the secret, or the container and each of its secrets.
    async fn set_acls(&self, token: &str, url: &str, container: bool) -> Result<(), OsError> {
        let me = self.session.user_id().await?;
        self.grant(token, url, &me).await?;
        if container {
            let c = self
                .session
                .call_as(token, "Barbican", Method::GET, url, None)
                .await?
                .body;
            let v1 = self.v1().await.map_err(|e| OsError::Config(e.message))?;
            for r in c["secret_refs"].as_array().into_iter().flatten() {
                if let Some(Ref::Secret(id)) = r["secret_ref"].as_str().and_then(parse_ref) {
                    self.grant(token, &format!("{v1}/secrets/{id}"), &me)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The PEM bundle of `url`.
    async fn read(&self, url: &str, container: bool) -> Result<Result<String, String>, OsError> {
        if container {
            self.container_pem(url).await
        } else {
            Ok(payload_pem(&self.payload(url).await?))
        }
    }
}

fn not_retrieved(reference: &str) -> DriverError {
    DriverError::fatal(
        "tls container",
        format!("Could not retrieve certificate: {reference}"),
    )
}

#[async_trait::async_trait]
impl TlsStore for BarbicanTls {
    /// Octavia's `_validate_tls_refs`: `set_acls`, then `get_cert(check_only=True)`; any
    /// failure is "Could not retrieve certificate", an unreadable PKCS#12 bundle says so.
    async fn check(&self, caller_token: Option<&str>, reference: &str) -> DriverResult<()> {
        let r = parse_ref(reference).ok_or_else(|| not_retrieved(reference))?;
        let (url, container) = match self.resolve(&r, caller_token).await {
            Ok(x) => x,
            Err(e) => {
                tracing::info!(reference, error = %fault_message(&e), "TLS reference refused");
                return Err(not_retrieved(reference));
            }
        };
        if let Some(token) = caller_token {
            if let Err(e) = self.set_acls(token, &url, container).await {
                tracing::info!(reference, error = %fault_message(&e), "cannot set the ACL");
                return Err(not_retrieved(reference));
            }
        }
        match self.read(&url, container).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(why)) if why.starts_with("The PKCS12 bundle") => {
                Err(DriverError::fatal("tls container", why))
            }
            Ok(Err(why)) => {
                tracing::info!(reference, error = %why, "TLS reference refused");
                Err(not_retrieved(reference))
            }
            Err(e) => {
                tracing::info!(reference, error = %fault_message(&e), "TLS reference refused");
                Err(not_retrieved(reference))
            }
        }
    }

    async fn fetch(&self, reference: &str) -> DriverResult<String> {
        let r = parse_ref(reference).ok_or_else(|| not_retrieved(reference))?;
        let (url, container) = self
            .resolve(&r, None)
            .await
            .map_err(os_err("read tls container"))?;
        match self
            .read(&url, container)
            .await
            .map_err(os_err("read tls container"))?
        {
            Ok(pem) => Ok(pem),
            Err(why) => Err(DriverError::fatal(
                "read tls container",
                format!("{reference}: {why}"),
            )),
        }
    }

    async fn add_consumer(&self, reference: &str, resource: &str) -> DriverResult<()> {
        let Some(r) = parse_ref(reference) else {
            return Ok(());
        };
        let (url, container) = self
            .resolve(&r, None)
            .await
            .map_err(os_err("add consumer"))?;
        if !container {
            return Ok(());
        }
        self.session
            .call(
                "Barbican",
                Method::POST,
                &format!("{url}/consumers"),
                Some(&json!({"name": self.consumer_name, "URL": resource})),
            )
            .await
            .map_err(os_err("add consumer"))?;
        Ok(())
    }

    async fn remove_consumer(&self, reference: &str, resource: &str) -> DriverResult<()> {
        let Some(r) = parse_ref(reference) else {
            return Ok(());
        };
        let (url, container) = match self.resolve(&r, None).await {
            Ok(x) => x,
            Err(OsError::Status { status: 404, .. }) => return Ok(()),
            Err(e) => return Err(os_err("remove consumer")(e)),
        };
        if !container {
            return Ok(());
        }
        deleted(
            "remove consumer",
            self.session
                .call(
                    "Barbican",
                    Method::DELETE,
                    &format!("{url}/consumers"),
                    Some(&json!({"name": self.consumer_name, "URL": resource})),
                )
                .await
                .map(|a| a.body),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let id = "6f1c3c2e-8c59-4f3c-9d0b-3f3a3c1b2a10";
        let u = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(parse_ref(id), Some(Ref::Either(u)));
        assert_eq!(
            parse_ref(&format!("http://kms:9311/v1/secrets/{id}")),
            Some(Ref::Secret(u))
        );
        assert_eq!(
            parse_ref(&format!("https://kms/key-manager/v1/containers/{id}/")),
            Some(Ref::Container(u))
        );
        for bad in [
            "",
            "web.pem",
            "http://kms/v1/orders/6f1c3c2e-8c59-4f3c-9d0b-3f3a3c1b2a10",
            "http://kms/v1/secrets/not-a-uuid",
            "ftp://kms/v1/secrets/6f1c3c2e-8c59-4f3c-9d0b-3f3a3c1b2a10",
        ] {
            assert_eq!(parse_ref(bad), None, "{bad}");
        }
    }

    #[test]
    fn pem_payloads_pass_and_garbage_is_unreadable() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(payload_pem(pem.as_bytes()).unwrap(), pem);
        let e = payload_pem(b"\x30\x03\x02\x01\x03").unwrap_err();
        assert!(e.starts_with("The PKCS12 bundle is unreadable."), "{e}");
    }

    /// Bundles as `openssl pkcs12 -export` writes them (OpenSSL 3's AES-256 default, and the
    /// 3DES of older tools such as pyOpenSSL's), without passphrase as Octavia expects.
    #[test]
    fn pkcs12_bundles_become_pem() {
        let d = tempfile::tempdir().unwrap();
        let leaf = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["intermediate".into()]).unwrap();
        let w = |name: &str, body: String| {
            let p = d.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let cert = w("cert.pem", leaf.cert.pem());
        let key = w("key.pem", leaf.key_pair.serialize_pem());
        let chain = w("chain.pem", other.cert.pem());
        for (variant, extra) in [
            ("default", vec![]),
            (
                "3des",
                vec![
                    "-keypbe",
                    "PBE-SHA1-3DES",
                    "-certpbe",
                    "PBE-SHA1-3DES",
                    "-macalg",
                    "sha1",
                ],
            ),
        ] {
            let out = d.path().join(format!("{variant}.p12"));
            let st = std::process::Command::new("openssl")
                .args(["pkcs12", "-export", "-passout", "pass:", "-in"])
                .arg(&cert)
                .arg("-inkey")
                .arg(&key)
                .arg("-certfile")
                .arg(&chain)
                .args(&extra)
                .arg("-out")
                .arg(&out)
                .status()
                .expect("openssl");
            assert!(st.success(), "{variant}");
            let pem = payload_pem(&std::fs::read(&out).unwrap()).unwrap();
            let blocks = pem::parse_many(&pem).unwrap();
            let tags: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
            assert_eq!(
                tags,
                ["CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"],
                "{variant}"
            );
            assert_eq!(blocks[0].contents(), leaf.cert.der().as_ref(), "{variant}");
            assert_eq!(blocks[1].contents(), other.cert.der().as_ref(), "{variant}");
            assert_eq!(
                blocks[2].contents(),
                leaf.key_pair.serialize_der(),
                "{variant}"
            );
        }
        // With a passphrase: unreadable, as Octavia says.
        let out = d.path().join("locked.p12");
        let st = std::process::Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:secret", "-in"])
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .arg("-out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let e = payload_pem(&std::fs::read(&out).unwrap()).unwrap_err();
        assert!(e.starts_with("The PKCS12 bundle is unreadable."), "{e}");
    }
}
