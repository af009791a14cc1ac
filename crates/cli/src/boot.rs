//! The boot steps of every role, each with its typed error and exit code (sozu's one variant per
//! step): configuration → data directory → logging → database → preflight → heartbeat key →
//! drivers. Nothing is bound before all of them succeed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocta_config::{AmphoraDriver, CertManager, ComputeDriver, Config, NetworkDriver, TlsManager};
use rocta_drivers::Drivers;
use rocta_store::{Options as StoreOptions, SchemaState, Store, Target};
use tokio_util::sync::CancellationToken;

use crate::{DbArgs, RoleArgs};

/// A failed boot step (or a role's task ending early): one line on stderr and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The config file or the arguments (64, EX_USAGE).
    #[error("{0}")]
    LoadConfig(String),
    /// The data directory cannot be created or written (73, EX_CANTCREAT).
    #[error("{0}")]
    DataDir(String),
    /// The database cannot be opened or migrated (74, EX_IOERR).
    #[error("{0}")]
    OpenDatabase(String),
    /// What the drivers need on this host is missing (69, EX_UNAVAILABLE).
    #[error("{0}")]
    Preflight(String),
    /// The system's randomness cannot be read for the heartbeat key (71, EX_OSERR).
    #[error("{0}")]
    Randomness(String),
    /// The generated heartbeat key cannot be stored (73).
    #[error("{0}")]
    HeartbeatKey(String),
    /// A driver's state (PKI, amphora or VIP directories) cannot be prepared (73).
    #[error("{0}")]
    BuildDrivers(String),
    /// The async runtime cannot start (70, EX_SOFTWARE).
    #[error("{0}")]
    Runtime(String),
    /// The API (or agent) port cannot be bound (69).
    #[error("{0}")]
    BindApi(String),
    /// The heartbeat port cannot be bound (69).
    #[error("{0}")]
    BindHeartbeats(String),
    /// The amphora agent could not serve (73).
    #[error("{0}")]
    Agent(String),
    /// A task of the role ended or panicked before shutdown (70): a supervisor restarts it.
    #[error(transparent)]
    TaskEnded(#[from] rocta_service::tasks::TaskEnded),
}

impl BootError {
    /// The process exit code (sysexits.h).
    pub fn exit_code(&self) -> u8 {
        match self {
            BootError::LoadConfig(_) => 64,
            BootError::Preflight(_) | BootError::BindApi(_) | BootError::BindHeartbeats(_) => 69,
            BootError::Runtime(_) | BootError::TaskEnded(_) => 70,
            BootError::Randomness(_) => 71,
            BootError::DataDir(_)
            | BootError::HeartbeatKey(_)
            | BootError::BuildDrivers(_)
            | BootError::Agent(_) => 73,
            BootError::OpenDatabase(_) => 74,
        }
    }
}

pub fn load_config(args: &RoleArgs) -> Result<Config, BootError> {
    let mut cfg = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                BootError::LoadConfig(format!("cannot read config {}: {e}", p.display()))
            })?;
            let mut cfg = Config::from_toml(&text)
                .map_err(|e| BootError::LoadConfig(format!("{}: {e}", p.display())))?;
            // Files the config names are relative to its directory (as oslo.config finds them).
            let policy = &mut cfg.oslo_policy.policy_file;
            if !policy.is_empty() && Path::new(policy).is_relative() {
                if let Some(dir) = p.parent() {
                    *policy = dir.join(&*policy).display().to_string();
                }
            }
            cfg
        }
        None => Config::default(),
    };
    match args.drivers.as_deref() {
        None => cfg
            .controller_worker
            .default_placement(nix::unistd::geteuid().is_root()),
        Some("noop") => cfg.controller_worker.all_noop(),
        Some("local") => cfg.controller_worker.real(false),
        Some("netns") => cfg.controller_worker.real(true),
        Some(other) => {
            return Err(BootError::LoadConfig(format!(
                "--drivers: unknown driver {other:?} (available: local, netns, noop)"
            )))
        }
    }
    if let Some(a) = args.api_bind {
        cfg.api_settings.bind_host = a.ip().to_string();
        cfg.api_settings.bind_port = a.port();
    }
    Ok(cfg)
}

pub fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.logging.level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cfg.logging.format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

pub fn prepare_data_dir(dir: &Path) -> Result<(), BootError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        BootError::DataDir(format!("cannot create data dir {}: {e}", dir.display()))
    })?;
    // Per process: roles starting together must not remove each other's probe.
    let probe = dir.join(format!(".rocta-write-test.{}", std::process::id()));
    std::fs::write(&probe, b"ok")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| BootError::DataDir(format!("data dir {} is not writable: {e}", dir.display())))
}

/// Where `[database] connection` points (SQLite in the data dir when empty).
pub fn db_target(cfg: &Config, dir: &Path) -> Result<Target, BootError> {
    Target::parse(&cfg.database.connection, &dir.join("rocta.db"))
        .map_err(|e| BootError::LoadConfig(format!("invalid configuration: [database] {e}")))
}

pub fn db_options(cfg: &Config) -> StoreOptions {
    StoreOptions {
        sqlite_synchronous: cfg.database.sqlite_synchronous.clone(),
        max_pool_size: cfg.database.max_pool_size,
    }
}

/// Opens the store for a role: refused (74) when its schema is not this build's, with the
/// command that fixes it.
pub fn open_store(cfg: &Config, dir: &Path) -> Result<Store, BootError> {
    let target = db_target(cfg, dir)?;
    Store::open(&target, &db_options(cfg)).map_err(|e| {
        BootError::OpenDatabase(match e {
            rocta_store::StoreError::Schema(m) => m,
            e => format!("{}: {e}", target.display()),
        })
    })
}

fn db_connect(args: &DbArgs) -> Result<(Store, Target), BootError> {
    let cfg = load_config(&RoleArgs {
        config: args.config.clone(),
        data_dir: args.data_dir.clone(),
        api_bind: None,
        drivers: None,
    })?;
    let target = db_target(&cfg, &args.data_dir)?;
    if let Target::Sqlite(p) = &target {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            prepare_data_dir(dir)?;
        }
    }
    let store = Store::connect(&target, &db_options(&cfg))
        .map_err(|e| BootError::OpenDatabase(format!("{}: {e}", target.display())))?;
    Ok((store, target))
}

/// `rocta db upgrade`: the schema to this release's version, under the backend's lock.
pub fn db_upgrade(args: &DbArgs) -> Result<(), BootError> {
    let (store, target) = db_connect(args)?;
    let (from, to) = store
        .upgrade()
        .map_err(|e| BootError::OpenDatabase(format!("{}: {e}", target.display())))?;
    if from == to {
        println!("{}: schema version {to}, already current", target.display());
    } else if from == 0 {
        println!("{}: schema created at version {to}", target.display());
    } else {
        println!(
            "{}: schema upgraded from version {from} to {to}",
            target.display()
        );
    }
    Ok(())
}

/// `rocta db version`: what the database holds and what this release needs.
pub fn db_version(args: &DbArgs) -> Result<(), BootError> {
    let (store, target) = db_connect(args)?;
    let state = store
        .schema_state()
        .map_err(|e| BootError::OpenDatabase(format!("{}: {e}", target.display())))?;
    let need = rocta_store::SCHEMA_VERSION;
    let line = match state {
        SchemaState::Current => format!("schema version {need} (current)"),
        SchemaState::Empty => format!("no schema yet (this release creates version {need})"),
        other => other.explain(),
    };
    println!("{}: {line}", target.display());
    Ok(())
}

/// The bus for job wake-ups (`transport_url`), if one is configured.
pub fn message_bus(cfg: &Config) -> Result<Option<rocta_messaging::Bus>, BootError> {
    cfg.transport_url()
        .map(|url| rocta_messaging::Bus::parse(url, &cfg.oslo_messaging.topic))
        .transpose()
        .map_err(|e| BootError::LoadConfig(format!("invalid configuration: {e}")))
}

/// Checks what the chosen drivers need on this host, before anything is bound.
pub fn preflight(cfg: &Config) -> Result<(), BootError> {
    let w = &cfg.controller_worker;
    // Local amphorae run this host's HAProxy (a Nova amphora runs its image's).
    let real = w.compute_driver != ComputeDriver::Nova
        && (w.compute_driver != ComputeDriver::Noop || w.amphora_driver != AmphoraDriver::Noop);
    if real {
        let hx = &cfg.haproxy_amphora.haproxy_cmd;
        let ok = std::process::Command::new(hx)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(BootError::Preflight(format!("HAProxy ({hx}) is needed by the local amphorae: install it with `apt-get install -y haproxy iputils-ping`, or run with --drivers noop"),
            ));
        }
    }
    if w.loadbalancer_topology == "ACTIVE_STANDBY" && w.network_driver == NetworkDriver::Loopback {
        return Err(BootError::LoadConfig(
            "invalid configuration: [controller_worker] loadbalancer_topology: ACTIVE_STANDBY needs the netns drivers (two amphorae on the VIP network): run as root or with --drivers netns".into(),
        ));
    }
    if w.compute_driver == ComputeDriver::Netns {
        let mgmt_id = &cfg.netns.management_network_id;
        if let Some(other) = w.amp_boot_network_list.iter().find(|id| *id != mgmt_id) {
            return Err(BootError::LoadConfig(format!(
                "invalid configuration: [controller_worker] amp_boot_network_list: {other:?} is not a network amphorae can boot on here: the netns drivers boot them on the management network ([netns] management_network_id {mgmt_id:?})"
            )));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(BootError::Preflight(
                "the netns drivers make network namespaces, bridges and nftables rules: run as root, or with --drivers local".into(),
            ));
        }
        let mut tools = vec![
            ("ip", "iproute2"),
            ("nft", "nftables"),
            ("arping", "iputils-arping"),
        ];
        if w.loadbalancer_topology == "ACTIVE_STANDBY" {
            tools.push(("keepalived", "keepalived"));
        }
        for (tool, pkg) in tools {
            let ok = std::process::Command::new(tool)
                .arg(if tool == "keepalived" {
                    "--version"
                } else {
                    "-V"
                })
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                return Err(BootError::Preflight(format!(
                    "{tool} is needed by the netns drivers: install it with `apt-get install -y {pkg}`, or run with --drivers local"
                )));
            }
        }
    }
    Ok(())
}

/// The tenant networks of the netns network driver (`[[netns.networks]]`); a network without
/// ids gets stable ones derived from its name.
fn tenant_networks(cfg: &Config) -> Result<Vec<rocta_drivers::netns::TenantNet>, BootError> {
    let hosts = crate::network::host_networks(cfg, None)?;
    Ok(cfg
        .netns
        .networks
        .iter()
        .zip(hosts.tenants)
        .map(|(c, t)| {
            let id = |kind: &str, given: &str| {
                if given.is_empty() {
                    let name = format!("rocta-{kind}-{}", c.name);
                    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
                } else {
                    given.to_string()
                }
            };
            rocta_drivers::netns::TenantNet {
                name: c.name.clone(),
                bridge: t.bridge(),
                cidr: t.cidr,
                network_id: id("network", &c.network_id),
                subnet_id: id("subnet", &c.subnet_id),
            }
        })
        .collect())
}

/// The hosts the netns drivers plug amphorae on: `[netns] amphora_host_netns` and each
/// `[[netns.compute_zones]]`'s.
fn amphora_hosts(cfg: &Config) -> rocta_drivers::netns::Hosts {
    use rocta_drivers::netns::{HostNs, Hosts};
    let n = &cfg.netns;
    let zones = n.compute_zones.iter();
    Hosts::new(
        HostNs::of(&n.amphora_host_netns),
        zones
            .map(|z| (z.name.clone(), HostNs::of(&z.host_netns)))
            .collect(),
    )
}

/// The process's OpenStack session, made on first use.
fn openstack_session(
    cfg: &Config,
    held: &mut Option<Arc<rocta_drivers::openstack::Session>>,
) -> Result<Arc<rocta_drivers::openstack::Session>, BootError> {
    if let Some(s) = held {
        return Ok(s.clone());
    }
    let s = crate::openstack::session(cfg)?;
    *held = Some(s.clone());
    Ok(s)
}

/// The composition root of the drivers: each `[controller_worker]` driver by name.
pub fn build_drivers(
    cfg: &Config,
    data: &Path,
    heartbeat: rocta_drivers::local::HeartbeatTarget,
) -> Result<Drivers, BootError> {
    use rocta_drivers::{local, loopback, netns, noop, pki, rest};
    let w = &cfg.controller_worker;
    let dir_err = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| BootError::BuildDrivers(format!("cannot create {p}: {e}"))
    };
    let noop_dir = data.join("noop");
    let noop = noop::drivers(&noop_dir).map_err(dir_err(&noop_dir))?;
    let pki_dir = data.join("pki");
    let pki = if w.cert_manager == CertManager::Local || w.amphora_driver == AmphoraDriver::Rest {
        Some(Arc::new(pki::Pki::open(&pki_dir).map_err(|e| {
            BootError::BuildDrivers(format!("PKI in {}: {e}", pki_dir.display()))
        })?))
    } else {
        None
    };
    let placement = match w.compute_driver {
        ComputeDriver::Local => Some(local::Placement::Loopback),
        ComputeDriver::Netns => {
            let n = crate::network::host_networks(cfg, None)?;
            // The hosts' ports: the subnet's first ten addresses (at most half of it), this
            // host's and every controller's.
            let hosts = n.cidr.hosts().count();
            let mut excluded: Vec<std::net::Ipv4Addr> =
                n.cidr.hosts().take(10.min(hosts / 2)).collect();
            excluded.push(n.host_address);
            excluded.extend(&n.other_controllers);
            Some(local::Placement::Netns(local::Management {
                bridge: n.bridge,
                cidr: n.cidr,
                excluded,
                mtu: n.mtu,
                network_id: cfg.netns.management_network_id.clone(),
                hosts: amphora_hosts(cfg),
            }))
        }
        ComputeDriver::Nova | ComputeDriver::Noop => None,
    };
    // One Keystone session for the OpenStack drivers of this process.
    let mut os_session = None;
    let compute: Arc<dyn rocta_drivers::Compute> = match placement {
        None if w.compute_driver == ComputeDriver::Nova => {
            let session = openstack_session(cfg, &mut os_session)?;
            Arc::new(crate::openstack::nova_compute(cfg, session, heartbeat))
        }
        Some(placement) => {
            let root = data.join("amphorae");
            let exe = std::env::current_exe().map_err(|e| {
                BootError::BuildDrivers(format!("cannot find the rocta binary: {e}"))
            })?;
            Arc::new(
                local::LocalCompute::new(
                    &root,
                    &exe,
                    &cfg.haproxy_amphora.haproxy_cmd,
                    heartbeat,
                    placement,
                )
                .map_err(dir_err(&root))?,
            )
        }
        None => noop.compute.clone(),
    };
    let network: Arc<dyn rocta_drivers::Network> = match w.network_driver {
        NetworkDriver::Loopback => {
            let root = data.join("loopback");
            Arc::new(loopback::LoopbackNetwork::new(&root).map_err(dir_err(&root))?)
        }
        NetworkDriver::Netns => {
            let root = data.join("netns");
            let nets = tenant_networks(cfg)?;
            Arc::new(
                netns::NetnsNetwork::new(&root, nets, amphora_hosts(cfg))
                    .map_err(dir_err(&root))?,
            )
        }
        NetworkDriver::Neutron => {
            let session = openstack_session(cfg, &mut os_session)?;
            Arc::new(crate::openstack::neutron_network(cfg, session))
        }
        NetworkDriver::Noop => noop.network.clone(),
    };
    let certs: Arc<dyn rocta_drivers::CertManager> = match (&pki, w.cert_manager) {
        (Some(p), CertManager::Local) => Arc::new(pki::LocalCerts { pki: p.clone() }),
        _ => noop.certs.clone(),
    };
    let tls: Arc<dyn rocta_drivers::TlsStore> = match cfg.certificates.cert_manager {
        TlsManager::Barbican => {
            let session = openstack_session(cfg, &mut os_session)?;
            Arc::new(crate::openstack::barbican_tls(cfg, session))
        }
        TlsManager::Noop => noop.tls.clone(),
        TlsManager::Local if w.cert_manager == CertManager::Noop => noop.tls.clone(),
        TlsManager::Local => {
            let storage = if cfg.certificates.storage_path.is_empty() {
                data.join("certificates")
            } else {
                PathBuf::from(&cfg.certificates.storage_path)
            };
            std::fs::create_dir_all(&storage).map_err(dir_err(&storage))?;
            Arc::new(pki::LocalTls { storage })
        }
    };
    let amphora: Arc<dyn rocta_drivers::AmphoraDriver> = match (&pki, w.amphora_driver) {
        (Some(p), AmphoraDriver::Rest) => Arc::new(
            rest::RestAmphora::new(
                tls.clone(),
                p.server_ca_pem(),
                &p.controller_identity,
                cfg.haproxy_amphora.default_connection_limit,
                cfg.haproxy_amphora.connection_logging,
                (
                    cfg.amphora_agent.user_log_facility,
                    cfg.amphora_agent.administrative_log_facility,
                ),
            )
            .map_err(|e| BootError::BuildDrivers(format!("controller TLS identity: {e}")))?,
        ),
        _ => noop.amphora.clone(),
    };
    Ok(Drivers {
        compute,
        network,
        amphora,
        certs,
        tls,
    })
}

/// The heartbeat key: the configured one, else one generated once into the data dir.
pub fn heartbeat_key(cfg: &Config, data: &Path) -> Result<String, BootError> {
    if !cfg.health_manager.heartbeat_key.is_empty() {
        return Ok(cfg.health_manager.heartbeat_key.clone());
    }
    let path = data.join("pki").join("heartbeat_key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        if !k.trim().is_empty() {
            return Ok(k.trim().to_string());
        }
    }
    let key = random_hex()?;
    // Exclusive: roles starting together on one data dir must share one key (a second key
    // would make the health manager drop every heartbeat as forged). A loser reads the winner's.
    let write = || -> std::io::Result<String> {
        std::fs::create_dir_all(data.join("pki"))?;
        if rocta_service::fs::create_exclusive(&path, key.as_bytes(), 0o600)? {
            return Ok(key.clone());
        }
        Ok(std::fs::read_to_string(&path)?.trim().to_string())
    };
    write().map_err(|e| BootError::HeartbeatKey(format!("cannot write {}: {e}", path.display())))
}

/// A random 256-bit key, hex, from the system's randomness; never a weak one: when that
/// cannot be read, startup fails (exit 71, EX_OSERR).
fn random_hex() -> Result<String, BootError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| {
        BootError::Randomness(format!(
            "cannot read the system's randomness for the heartbeat key: {e}"
        ))
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGTERM");
                    return;
                }
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        token.cancel();
    });
}
