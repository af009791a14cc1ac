//! `rocta-bench tls`: TLS 1.3 connections per second against a TERMINATED_HTTPS listener, each
//! connection one handshake and one `GET /` with `Connection: close`, as many at once as
//! `conns`. With `resume`, every connection after a client's first resumes the session of
//! its previous one (a ticket the server sent); without, every handshake is full. Counts how
//! each handshake went (rustls' `handshake_kind`) so a run that did not resume says so.
//! Bounded in time; the target is an address the benchmark made (loopback or its own bridge).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub struct Args<'a> {
    /// `host:port` of the listener.
    pub target: &'a str,
    /// The name the certificate carries (SNI and verification).
    pub name: &'a str,
    /// PEM file of the CA that signed the listener's certificate.
    pub ca: &'a str,
    pub conns: usize,
    pub secs: u64,
    pub resume: bool,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    full: AtomicU64,
    resumed: AtomicU64,
    /// What the first connection negotiated (suite, key exchange group), to print.
    negotiated: OnceLock<String>,
}

fn config(roots: &RootCertStore, resume: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c.resumption = if resume {
        // Per client: its next connection takes a ticket of its previous one.
        Resumption::in_memory_sessions(4)
    } else {
        Resumption::disabled()
    };
    Arc::new(c)
}

/// One connection: handshake, one request, the whole answer. Returns whether it resumed.
async fn once(
    connector: &TlsConnector,
    target: &str,
    name: &ServerName<'static>,
    request: &[u8],
    negotiated: &OnceLock<String>,
) -> std::io::Result<bool> {
    let tcp = TcpStream::connect(target).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name.clone(), tcp).await?;
    let conn = tls.get_ref().1;
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    if negotiated.get().is_none() {
        let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        let group = conn.negotiated_key_exchange_group().map(|g| g.name());
        let _ = negotiated.set(format!("{suite:?}/{group:?}"));
    }
    tls.write_all(request).await?;
    let mut answer = Vec::with_capacity(512);
    // HAProxy closes after the answer (`Connection: close`); some servers skip close_notify.
    match tls.read_to_end(&mut answer).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e),
    }
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200 answer"));
    }
    Ok(resumed)
}

pub fn run(a: Args<'_>) {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(a.ca).unwrap_or_else(|e| panic!("reading {}: {e}", a.ca));
    for c in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(c.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    let name = ServerName::try_from(a.name.to_string()).expect("a server name");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.name
    );
    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(a.secs);
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..a.conns)
            .map(|_| {
                let connector = TlsConnector::from(config(&roots, a.resume));
                let (target, name, request) = (a.target.to_string(), name.clone(), request.clone());
                let counts = counts.clone();
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let r = tokio::time::timeout(
                            Duration::from_secs(2),
                            once(
                                &connector,
                                &target,
                                &name,
                                request.as_bytes(),
                                &counts.negotiated,
                            ),
                        )
                        .await;
                        match r {
                            Ok(Ok(resumed)) => {
                                counts.ok.fetch_add(1, Ordering::Relaxed);
                                let kind = if resumed {
                                    &counts.resumed
                                } else {
                                    &counts.full
                                };
                                kind.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                                // A refused connection comes back at once: do not spin on it.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let ok = counts.ok.load(Ordering::Relaxed);
    println!(
        "tls_connections: secs={secs:.2} ok={ok} rate={:.1}/s failed={} full={} resumed={} negotiated={}",
        ok as f64 / secs,
        counts.failed.load(Ordering::Relaxed),
        counts.full.load(Ordering::Relaxed),
        counts.resumed.load(Ordering::Relaxed),
        counts.negotiated.get().map_or("-", |s| s.as_str()),
    );
}
