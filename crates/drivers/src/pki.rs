//! rocta's own PKI, as Octavia recommends it: a **server CA** that signs one certificate per
//! amphora (the controller verifies agents against it) and a separate **client CA** that signs
//! the controller's client certificate (agents require it), so an amphora cannot impersonate the
//! controller. Everything lives in one directory, private keys with mode 0600.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// A PKI failure (file or certificate generation).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Gen(#[from] rcgen::Error),
}

/// One CA: its certificate (as on disk) and key.
struct Ca {
    pem: String,
    /// Re-created from the same name and key, to sign with (issuer name and key match the
    /// certificate on disk, so signatures verify against it).
    cert: Certificate,
    key: KeyPair,
}

/// The local PKI.
pub struct Pki {
    dir: PathBuf,
    server_ca: Ca,
    client_ca: Ca,
    /// The controller's client certificate and key (PEM).
    pub controller_identity: String,
}

/// Validity of amphora certificates (Octavia's `cert_validity_time`: 30 days).
pub const AMPHORA_CERT_DAYS: i64 = 30;

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn ca_params(name: &str) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "rocta");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2044, 1, 1);
    Ok(p)
}

/// The content of `path`, made by `make` and written (0600) if absent. Processes starting
/// together on one data directory (api, workers) all end up with the first one's content: the
/// file is created exclusively and whole, and a loser reads the winner's.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Result<String, PkiError>,
) -> Result<String, PkiError> {
    if let Some(s) = read(path)? {
        return Ok(s);
    }
    let made = make()?;
    let created =
        rocta_service::fs::create_exclusive(path, made.as_bytes(), 0o600).map_err(|source| {
            PkiError::Io {
                path: path.display().to_string(),
                source,
            }
        })?;
    if created {
        return Ok(made);
    }
    read(path)?.ok_or_else(|| PkiError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other("vanished after another process created it"),
    })
}

/// Loads a CA from `dir/<stem>.pem` and `dir/<stem>.key`, creating both when absent.
fn load_ca(dir: &Path, stem: &str, name: &str) -> Result<Ca, PkiError> {
    let (cp, kp) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    let key = KeyPair::from_pem(&read_or_create(&kp, || {
        Ok(KeyPair::generate()?.serialize_pem())
    })?)?;
    let cert = ca_params(name)?.self_signed(&key)?;
    let pem = read_or_create(&cp, || Ok(cert.pem()))?;
    Ok(Ca { pem, cert, key })
}

fn leaf(
    ca: &Ca,
    cn: &str,
    sans: Vec<SanType>,
    server: bool,
    days: i64,
) -> Result<String, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let now = time_now();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(days);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &ca.cert, &ca.key)?;
    Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl Pki {
    /// Opens the PKI in `dir`, creating the CAs and the controller certificate on first use.
    pub fn open(dir: &Path) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let server_ca = load_ca(dir, "server_ca", "rocta amphora server CA")?;
        let client_ca = load_ca(dir, "client_ca", "rocta controller client CA")?;
        let controller_identity = read_or_create(&dir.join("controller.pem"), || {
            leaf(&client_ca, "rocta-controller", vec![], false, 3650)
        })?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            server_ca,
            client_ca,
            controller_identity,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA the controller verifies agents with.
    pub fn server_ca_pem(&self) -> &str {
        &self.server_ca.pem
    }

    /// The CA agents verify the controller with.
    pub fn client_ca_pem(&self) -> &str {
        &self.client_ca.pem
    }

    /// A server certificate (and key) for an amphora: CN and DNS name = the amphora id, plus
    /// its management address. Returns the PEM and its expiry (seconds since the epoch).
    pub fn issue_amphora(
        &self,
        amphora_id: &str,
        mgmt_ip: Option<std::net::IpAddr>,
    ) -> Result<(String, i64), PkiError> {
        let mut sans = vec![SanType::DnsName(amphora_id.try_into()?)];
        if let Some(ip) = mgmt_ip {
            sans.push(SanType::IpAddress(ip));
        }
        let pem = leaf(&self.server_ca, amphora_id, sans, true, AMPHORA_CERT_DAYS)?;
        let not_after = (time_now() + time::Duration::days(AMPHORA_CERT_DAYS)).unix_timestamp();
        Ok((pem, not_after))
    }
}

/// The local PKI as the worker's certificate generator (Octavia's `local_cert_generator`):
/// the amphorae's server certificates and the CA they trust for the controller.
pub struct LocalCerts {
    pub pki: std::sync::Arc<Pki>,
}

#[async_trait::async_trait]
impl crate::CertManager for LocalCerts {
    async fn issue_amphora_cert(
        &self,
        amphora_id: rocta_model::Id,
    ) -> crate::DriverResult<crate::IssuedCert> {
        let (pem, not_after) = self
            .pki
            .issue_amphora(&amphora_id.to_string(), None)
            .map_err(|e| crate::DriverError::fatal("issue amphora certificate", e.to_string()))?;
        Ok(crate::IssuedCert { pem, not_after })
    }

    /// Certificates are not stored by the controller: nothing to forget.
    async fn revoke_amphora_cert(&self, _amphora_id: rocta_model::Id) -> crate::DriverResult<()> {
        Ok(())
    }

    fn client_ca_pem(&self) -> String {
        self.pki.client_ca_pem().to_string()
    }
}

/// Octavia's `local_cert_manager`: the TLS certificates of listeners and pools kept as PEM
/// files in a storage directory (`[certificates] storage_path`); a container reference is a
/// file name there (e.g. `web.pem`, or `file://web.pem`).
pub struct LocalTls {
    pub storage: PathBuf,
}

impl LocalTls {
    fn read(&self, reference: &str) -> crate::DriverResult<String> {
        let name = reference.strip_prefix("file://").unwrap_or(reference);
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !name.starts_with('.');
        let unreadable = || {
            crate::DriverError::fatal(
                "tls container",
                format!("Could not retrieve certificate: {reference}"),
            )
        };
        if !ok {
            return Err(unreadable());
        }
        std::fs::read_to_string(self.storage.join(name)).map_err(|_| unreadable())
    }
}

#[async_trait::async_trait]
impl crate::TlsStore for LocalTls {
    async fn check(&self, _caller_token: Option<&str>, reference: &str) -> crate::DriverResult<()> {
        self.read(reference).map(drop)
    }

    async fn fetch(&self, reference: &str) -> crate::DriverResult<String> {
        self.read(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_with_private_files_and_reloads() {
        let d = tempfile::tempdir().unwrap();
        let a = Pki::open(d.path()).unwrap();
        let b = Pki::open(d.path()).unwrap();
        assert_eq!(a.server_ca_pem(), b.server_ca_pem());
        assert_eq!(a.controller_identity, b.controller_identity);
        for f in [
            "server_ca.key",
            "client_ca.key",
            "controller.pem",
            "server_ca.pem",
        ] {
            let mode = std::fs::metadata(d.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let (pem, exp) = b
            .issue_amphora(
                "5c0f8a8e-0d3c-4c61-9c57-0a2b7c1b1a01",
                Some("127.20.0.7".parse().unwrap()),
            )
            .unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"));
        assert!(exp > time_now().unix_timestamp() + 29 * 86_400);
    }
}
