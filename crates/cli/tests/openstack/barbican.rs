//! `barbican_cert_manager` against the real Barbican and Keystone of the stack: a tenant's
//! PKCS#12 secret and legacy certificate container terminate TLS on a real HAProxy (rocta on
//! its local drivers), the service user reads them through the read ACL the API grants with
//! the tenant's token, the container gets the listener as a consumer while it uses it, client
//! certificates are checked against a CA and a CRL from secrets (references as bare UUIDs
//! too), and references rocta cannot read are refused with Octavia's 400.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::common::dataplane::{backend, delete_lb, eventually, PUBLIC};
use super::common::{assert_fault, Reaper, Rocta, TEST_CONFIG};
use super::stack::{serial, stack, Stack};

/// `method path` on Barbican with `token`.
fn barbican(s: &Stack, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}/v1/{path}", s.url("barbican"))
    };
    let mut r = reqwest::blocking::Client::new()
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .header("X-Auth-Token", token)
        .header("Accept", "application/json");
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Stores a secret; its ref.
fn secret(s: &Stack, token: &str, name: &str, payload: &[u8], content_type: &str) -> String {
    let body = if content_type == "text/plain" {
        json!({"name": name, "payload": String::from_utf8(payload.to_vec()).unwrap(),
               "payload_content_type": "text/plain"})
    } else {
        json!({"name": name, "payload": base64::engine::general_purpose::STANDARD.encode(payload),
               "payload_content_type": content_type, "payload_content_encoding": "base64"})
    };
    let (st, b) = barbican(s, token, "POST", "secrets", Some(body));
    assert_eq!(st, 201, "{b}");
    b["secret_ref"].as_str().unwrap().to_string()
}

/// `openssl pkcs12 -export` of `cert`+`key` (+`chain`) with `pass`.
fn pkcs12(dir: &std::path::Path, cert: &str, key: &str, chain: &str, pass: &str) -> Vec<u8> {
    let w = |n: &str, body: &str| {
        let p = dir.join(n);
        std::fs::write(&p, body).unwrap();
        p
    };
    let (c, k, ch, out) = (
        w("c.pem", cert),
        w("k.pem", key),
        w("ch.pem", chain),
        dir.join("out.p12"),
    );
    let st = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-passout",
            &format!("pass:{pass}"),
            "-in",
        ])
        .arg(&c)
        .arg("-inkey")
        .arg(&k)
        .arg("-certfile")
        .arg(&ch)
        .arg("-out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(out).unwrap()
}

/// A POST to rocta carrying the tenant's token (rocta under noauth here: the token is what
/// the API passes on to Barbican for the ACL).
fn post_with_token(r: &Rocta, token: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}{path}", r.url))
        .header("X-Project-Id", &r.project)
        .header("X-Auth-Token", token)
        .json(&body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn barbican_certificates_terminate_tls_with_acls_and_consumers() {
    let _one = serial();
    let s = stack();
    let alice = s.token("alice", "lb-a");
    let bob = s.token("bob", "lb-b");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper::new(dir.path());
    let vip = "127.10.210.1";

    // The tenant's CA, a certificate for the VIP (in a PKCS#12 secret) and one for a name
    // (in a legacy certificate container), both signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "alice CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_numbered = |sans: Vec<rcgen::SanType>, serial: u64| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        p.serial_number = Some(serial.into());
        (
            p.signed_by(&key, &ca, &ca_key).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let leaf = |sans| leaf_numbered(sans, 1);
    let (vip_cert, vip_key) = leaf(vec![rcgen::SanType::IpAddress(vip.parse().unwrap())]);
    let (sni_cert, sni_key) = leaf(vec![rcgen::SanType::DnsName(
        "sni.example.com".try_into().unwrap(),
    )]);
    // Client certificates of the tenant's CA, the second revoked by its CRL.
    let client = |serial| {
        let (cert, key) = leaf_numbered(vec![], serial);
        reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap()
    };
    let (good, revoked) = (client(100), client(101));
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2036, 1, 1),
        crl_number: 1u64.into(),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: 101u64.into(),
            revocation_time: rcgen::date_time_ymd(2026, 1, 2),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&ca, &ca_key)
    .unwrap()
    .pem()
    .unwrap();
    let p12 = pkcs12(dir.path(), &vip_cert, &vip_key, &ca.pem(), "");
    let default_ref = secret(s, &alice, "vip", &p12, "application/octet-stream");
    let cert_ref = secret(s, &alice, "sni cert", sni_cert.as_bytes(), "text/plain");
    let key_ref = secret(s, &alice, "sni key", sni_key.as_bytes(), "text/plain");
    let (st, b) = barbican(
        s,
        &alice,
        "POST",
        "containers",
        Some(
            json!({"type": "certificate", "name": "sni", "secret_refs": [
            {"name": "certificate", "secret_ref": cert_ref},
            {"name": "private_key", "secret_ref": key_ref}]}),
        ),
    );
    assert_eq!(st, 201, "{b}");
    let container_ref = b["container_ref"].as_str().unwrap().to_string();
    let ca_ref = secret(s, &alice, "client CA", ca.pem().as_bytes(), "text/plain");
    let crl_ref = secret(s, &alice, "client CRL", crl.as_bytes(), "text/plain");
    // A bare UUID names a secret (or a container) too.
    let uuid_of = |r: &str| r.rsplit('/').next().unwrap().to_string();
    // Refs rocta must refuse: bob's secret (alice cannot grant it), a passphrase-protected
    // bundle, a secret that does not exist.
    let bobs = secret(s, &bob, "bob's", &p12, "application/octet-stream");
    let locked = secret(
        s,
        &alice,
        "locked",
        &pkcs12(dir.path(), &vip_cert, &vip_key, &ca.pem(), "pass"),
        "application/octet-stream",
    );
    let missing = format!(
        "{}/v1/secrets/6f1c3c2e-8c59-4f3c-9d0b-3f3a3c1b2a10",
        s.url("barbican")
    );

    let config = format!(
        "{TEST_CONFIG}[certificates]\ncert_manager = \"barbican_cert_manager\"\n\
         region_name = \"RegionOne\"\n\
         [service_auth]\nauth_url = \"{ks}\"\nusername = \"rocta\"\npassword = \"rocta-pass\"\n\
         project_name = \"service\"\n",
        ks = s.ready["keystone"].as_str().unwrap(),
    );
    let r = Rocta::start_real_with(dir.path(), &config, &[]);
    let a = backend("A");
    let lb = |default: &str, sni: &[&str]| {
        json!({"loadbalancer": {"vip_subnet_id": PUBLIC, "vip_address": vip,
        "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 8443,
                       "default_tls_container_ref": default, "sni_container_refs": sni,
                       "default_pool": {"name": "p"}}],
        "pools": [{"name": "p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"address": "127.0.0.1", "protocol_port": a}]}]}})
    };
    let lbs = "/v2/lbaas/loadbalancers";
    for bad in [&bobs, &missing] {
        assert_fault(
            post_with_token(&r, &alice, lbs, lb(bad, &[])),
            400,
            &format!("Could not retrieve certificate: {bad}"),
        );
    }
    assert_fault(
        post_with_token(&r, &alice, lbs, lb(&locked, &[])),
        400,
        "The PKCS12 bundle is unreadable.",
    );
    // Without the tenant's token nothing grants the service access to alice's secret.
    assert_fault(
        r.post(lbs, lb(&default_ref, &[])),
        400,
        "Could not retrieve certificate",
    );

    let (st, b) = post_with_token(&r, &alice, lbs, lb(&default_ref, &[&container_ref]));
    assert_eq!(st, 201, "{b}");
    let id = b["loadbalancer"]["id"].as_str().unwrap().to_string();
    let listener = b["loadbalancer"]["listeners"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    r.wait_active(&id);

    // The service user is on the read ACL of each secret and of the container.
    let (_, me) = s.admin(
        reqwest::Method::GET,
        &format!("{}/users?name=rocta", s.ready["keystone"].as_str().unwrap()),
        None,
    );
    let me = me["users"][0]["id"].as_str().unwrap().to_string();
    for r in [&default_ref, &container_ref, &cert_ref, &key_ref] {
        let (st, acl) = barbican(s, &alice, "GET", &format!("{r}/acl"), None);
        assert_eq!(st, 200, "{acl}");
        assert!(
            acl["read"]["users"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u == &json!(me))),
            "{r}: {acl}"
        );
    }
    // The container's consumer is the listener.
    let consumers = || {
        let (st, c) = barbican(
            s,
            &alice,
            "GET",
            &format!("{container_ref}/consumers"),
            None,
        );
        assert_eq!(st, 200, "{c}");
        c["consumers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| c["URL"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<String>>()
    };
    let used = consumers();
    assert!(
        used.len() == 1 && used[0].ends_with(&format!("/v2/lbaas/listeners/{listener}")),
        "{used:?}"
    );

    // HAProxy serves the VIP's certificate from the PKCS#12 secret, and the container's for
    // its name (SNI): each verifies against the tenant's CA only for its own name.
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("sni.example.com", format!("{vip}:8443").parse().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for url in [
        format!("https://{vip}:8443/"),
        "https://sni.example.com:8443/".to_string(),
    ] {
        eventually(&format!("{url} not served"), || {
            client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        assert_eq!(client.get(&url).send().unwrap().text().unwrap(), "A");
    }

    // Client certificates (listener on 8444): the CA and CRL from PEM secrets, the server's
    // certificate and the CRL named by bare UUIDs. The CA's certificate passes, the revoked one
    // and none at all do not.
    let (st, b) = post_with_token(
        &r,
        &alice,
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": id, "protocol": "TERMINATED_HTTPS",
            "protocol_port": 8444, "default_tls_container_ref": uuid_of(&default_ref),
            "client_ca_tls_container_ref": ca_ref, "client_crl_container_ref": uuid_of(&crl_ref),
            "client_authentication": "MANDATORY"}}),
    );
    assert_eq!(st, 201, "{b}");
    let mtls_listener = b["listener"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let (st, b) = r.post(
        "/v2/lbaas/pools",
        json!({"pool": {"listener_id": mtls_listener, "protocol": "HTTP",
            "lb_algorithm": "ROUND_ROBIN"}}),
    );
    assert_eq!(st, 201, "{b}");
    let mtls_pool = b["pool"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let (st, b) = r.post(
        &format!("/v2/lbaas/pools/{mtls_pool}/members"),
        json!({"member": {"address": "127.0.0.1", "protocol_port": a}}),
    );
    assert_eq!(st, 201, "{b}");
    r.wait_active(&id);
    let mtls = |identity: Option<&reqwest::Identity>| {
        let mut c = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .timeout(Duration::from_secs(5));
        if let Some(i) = identity {
            c = c.identity(i.clone());
        }
        c.build()
            .unwrap()
            .get(format!("https://{vip}:8444/"))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
    };
    eventually("the client CA's certificate passes", || {
        mtls(Some(&good)).is_ok_and(|t| t == "A")
    });
    assert!(
        mtls(Some(&revoked)).is_err(),
        "the CRL's certificate passed"
    );
    assert!(mtls(None).is_err(), "no client certificate passed");
    for r in [&ca_ref, &crl_ref] {
        let (_, acl) = barbican(s, &alice, "GET", &format!("{r}/acl"), None);
        assert!(acl["read"]["users"].to_string().contains(&me), "{r}: {acl}");
    }

    // Re-encryption to a TLS member with the pool's TLS material from Barbican: the member's
    // certificate checked against the tenant's CA (`ca_tls_container_ref`), HAProxy showing
    // the PKCS#12 secret's certificate (`tls_container_ref`, a bare UUID), which the member
    // (`openssl s_server` asking for a certificate of the CA) requires.
    let (member_cert, member_key) = leaf_numbered(
        vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())],
        7,
    );
    let file = |n: &str, body: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, body).unwrap();
        p
    };
    let member_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _member = Killed(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-Verify", "1", "-accept"])
            .arg(format!("127.0.0.1:{member_port}"))
            .arg("-cert")
            .arg(file("member.pem", &member_cert))
            .arg("-key")
            .arg(file("member.key", &member_key))
            .arg("-CAfile")
            .arg(file("ca.pem", &ca.pem()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (st, b) = r.post(
        "/v2/lbaas/listeners",
        json!({"listener": {"loadbalancer_id": id, "protocol": "HTTP", "protocol_port": 8445}}),
    );
    assert_eq!(st, 201, "{b}");
    let reencrypt = b["listener"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let (st, b) = post_with_token(
        &r,
        &alice,
        "/v2/lbaas/pools",
        json!({"pool": {"listener_id": reencrypt, "protocol": "HTTP",
            "lb_algorithm": "ROUND_ROBIN", "tls_enabled": true, "ca_tls_container_ref": ca_ref,
            "tls_container_ref": uuid_of(&default_ref)}}),
    );
    assert_eq!(st, 201, "{b}");
    let tls_pool = b["pool"]["id"].as_str().unwrap().to_string();
    r.wait_active(&id);
    let (st, b) = r.post(
        &format!("/v2/lbaas/pools/{tls_pool}/members"),
        json!({"member": {"address": "127.0.0.1", "protocol_port": member_port}}),
    );
    assert_eq!(st, 201, "{b}");
    r.wait_active(&id);
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let through = || {
        plain
            .get(format!("http://{vip}:8445/"))
            .send()
            .ok()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    };
    eventually("the TLS member answers through the pool", || {
        through().is_some_and(|(code, body)| code == 200 && body.contains("s_server"))
    });
    // Updates bringing references rocta cannot read are refused too, changing nothing.
    for (path, body, bad) in [
        (
            format!("/v2/lbaas/listeners/{mtls_listener}"),
            json!({"listener": {"default_tls_container_ref": bobs}}),
            &bobs,
        ),
        (
            format!("/v2/lbaas/pools/{tls_pool}"),
            json!({"pool": {"ca_tls_container_ref": missing}}),
            &missing,
        ),
    ] {
        let resp = reqwest::blocking::Client::new()
            .put(format!("{}{path}", r.url))
            .header("X-Project-Id", &r.project)
            .header("X-Auth-Token", &alice)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        assert_fault(
            (status, resp.json().unwrap_or(Value::Null)),
            400,
            &format!("Could not retrieve certificate: {bad}"),
        );
    }
    r.wait_active(&id);
    assert!(through().is_some_and(|(code, _)| code == 200));

    delete_lb(&r, &id);
    assert!(consumers().is_empty(), "{:?}", consumers());
    for r in [
        &default_ref,
        &container_ref,
        &cert_ref,
        &key_ref,
        &ca_ref,
        &crl_ref,
        &bobs,
        &locked,
    ] {
        let token = if r == &bobs { &bob } else { &alice };
        assert_eq!(barbican(s, token, "DELETE", r, None).0, 204, "{r}");
    }
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
