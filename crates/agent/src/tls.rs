//! TLS: the agent's server certificate (swappable at run time for rotation, new handshakes get
//! the new one) and mandatory client certificates signed by the controller's CA.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::AgentError;

/// Parses a PEM bundle holding a certificate chain and its key.
pub fn certified_key(pem: &[u8]) -> Result<CertifiedKey, AgentError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| AgentError::Tls(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(AgentError::Tls("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| AgentError::Tls(format!("private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| AgentError::Tls(format!("private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| AgentError::Tls(format!("key does not match the certificate: {e}")))?;
    Ok(ck)
}

/// The server certificate, replaceable while serving.
#[derive(Debug)]
pub struct SwappableCert(RwLock<Arc<CertifiedKey>>);

impl SwappableCert {
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let pem =
            std::fs::read(path).map_err(|e| AgentError::Tls(format!("{}: {e}", path.display())))?;
        Ok(SwappableCert(RwLock::new(Arc::new(certified_key(&pem)?))))
    }

    /// Installs a new certificate for new handshakes.
    pub fn swap(&self, ck: CertifiedKey) {
        let mut g = self.0.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(ck);
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// TLS 1.2+ server config requiring a client certificate from `client_ca`.
pub fn server_config(
    client_ca: &Path,
    certs: Arc<SwappableCert>,
) -> Result<rustls::ServerConfig, AgentError> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(client_ca)
        .map_err(|e| AgentError::Tls(format!("{}: {e}", client_ca.display())))?;
    for c in CertificateDer::pem_slice_iter(&pem) {
        let c = c.map_err(|e| AgentError::Tls(format!("client CA: {e}")))?;
        roots
            .add(c)
            .map_err(|e| AgentError::Tls(format!("client CA: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| AgentError::Tls(format!("client verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
