//! `rocta`: one binary for every role, and the client commands (`client`: `rocta loadbalancer
//! create ...`, which only speak HTTP to an Octavia v2 endpoint). This is the composition root,
//! the only place that chooses concrete drivers and stores. A thin main: config → logging → store → drivers →
//! bind → serve → drain under a grace period.
//!
//! Exit codes: 0 clean stop; 64 bad configuration or arguments; 69 a port cannot be bound;
//! 73 the data directory cannot be created or written; 74 the database cannot be opened.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rocta_config::Config;
use rocta_drivers::Drivers;
use rocta_store::Store;
use rocta_worker::{Worker, WorkerConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "rocta",
    version,
    about = "Load balancing as a service, wire-compatible with OpenStack Octavia"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// All-in-one: API and worker in one process, on the embedded defaults.
    Serve(RoleArgs),
    /// The Octavia v2 REST API alone.
    Api(RoleArgs),
    /// The controller worker alone.
    Worker(RoleArgs),
    /// The health manager alone (heartbeat receiver, stale-amphora failover).
    HealthManager(RoleArgs),
    /// Housekeeping alone (spare amphora pool, purge of deleted records, certificate rotation).
    Housekeeping(RoleArgs),
    /// The amphora agent (started by the `local` compute driver, one per amphora).
    AmphoraAgent(AgentArgs),
}

#[derive(Args, Clone)]
struct AgentArgs {
    /// The agent's TOML configuration (written by the compute driver).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args, Clone)]
struct RoleArgs {
    /// TOML configuration file (see etc/rocta.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the database and local state live.
    #[arg(long, default_value = "./rocta-data")]
    data_dir: PathBuf,
    /// API address (overrides [api_settings] bind_host/bind_port).
    #[arg(long)]
    api_bind: Option<SocketAddr>,
    /// Use these drivers for compute, network, amphora and certificates ("noop").
    #[arg(long)]
    drivers: Option<String>,
}

mod client;

/// A startup failure: one line on stderr and an exit code.
struct Fatal(u8, String);

fn main() -> ExitCode {
    let matches = Cli::command().subcommands(client::commands()).get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if client::handles(name) {
            return client::run(name, sub);
        }
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (role, args) = match &cli.cmd {
        Cmd::Serve(a) => ("serve", a),
        Cmd::Api(a) => ("api", a),
        Cmd::Worker(a) => ("worker", a),
        Cmd::HealthManager(a) => ("health-manager", a),
        Cmd::Housekeeping(a) => ("housekeeping", a),
        Cmd::AmphoraAgent(a) => {
            return match run_agent(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(Fatal(code, msg)) => {
                    eprintln!("rocta amphora-agent: {msg}");
                    ExitCode::from(code)
                }
            };
        }
    };
    match run(role, args.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(code, msg)) => {
            eprintln!("rocta {role}: {msg}");
            ExitCode::from(code)
        }
    }
}

fn load_config(args: &RoleArgs) -> Result<Config, Fatal> {
    let mut cfg = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Fatal(64, format!("cannot read config {}: {e}", p.display())))?;
            Config::from_toml(&text).map_err(|e| Fatal(64, format!("{}: {e}", p.display())))?
        }
        None => Config::default(),
    };
    if let Some(d) = &args.drivers {
        let w = &mut cfg.controller_worker;
        w.compute_driver = d.clone();
        w.network_driver = d.clone();
        w.amphora_driver = d.clone();
        w.cert_manager = d.clone();
    }
    let w = &cfg.controller_worker;
    for (key, v, real) in [
        ("compute_driver", &w.compute_driver, "local"),
        ("network_driver", &w.network_driver, "loopback"),
        ("amphora_driver", &w.amphora_driver, "rest"),
        ("cert_manager", &w.cert_manager, "local"),
    ] {
        if v != "noop" && v != real {
            return Err(Fatal(
                64,
                format!("invalid configuration: [controller_worker] {key}: unknown driver {v:?} (available: {real}, noop)"),
            ));
        }
    }
    if let Some(a) = args.api_bind {
        cfg.api_settings.bind_host = a.ip().to_string();
        cfg.api_settings.bind_port = a.port();
    }
    Ok(cfg)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.logging.level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.logging.format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn prepare_data_dir(dir: &Path) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fatal(73, format!("cannot create data dir {}: {e}", dir.display())))?;
    let probe = dir.join(".rocta-write-test");
    std::fs::write(&probe, b"ok")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            Fatal(
                73,
                format!("data dir {} is not writable: {e}", dir.display()),
            )
        })
}

fn open_store(cfg: &Config, dir: &Path) -> Result<Store, Fatal> {
    let conn = &cfg.database.connection;
    let path = if conn.is_empty() {
        dir.join("rocta.db")
    } else if let Some(p) = conn.strip_prefix("sqlite://") {
        PathBuf::from(p)
    } else {
        return Err(Fatal(64, format!("invalid configuration: [database] connection: unsupported {conn:?} (sqlite://PATH)")));
    };
    Store::open_sqlite(&path, &cfg.database.sqlite_synchronous)
        .map_err(|e| Fatal(74, e.to_string()))
}

fn run(role: &str, args: RoleArgs) -> Result<(), Fatal> {
    let cfg = load_config(&args)?;
    prepare_data_dir(&args.data_dir)?;
    init_logging(&cfg);
    let store = open_store(&cfg, &args.data_dir)?;
    preflight(&cfg)?;
    let heartbeat_key = heartbeat_key(&cfg, &args.data_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal(70, format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let with_api = role == "serve" || role == "api";
        let with_worker = role == "serve" || role == "worker";
        let with_health = role == "serve" || role == "health-manager";
        let with_housekeeping = role == "serve" || role == "housekeeping";
        let listener = if with_api {
            let addr = format!(
                "{}:{}",
                cfg.api_settings.bind_host, cfg.api_settings.bind_port
            );
            Some(
                tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| Fatal(69, format!("cannot listen on {addr}: {e}")))?,
            )
        } else {
            None
        };
        let hm = cfg.health_manager.clone();
        let hm_addr = format!("{}:{}", hm.bind_ip, hm.bind_port);
        let (udp, controllers) = if with_health {
            let sock = tokio::net::UdpSocket::bind(&hm_addr).await.map_err(|e| {
                Fatal(
                    69,
                    format!("cannot listen for heartbeats on {hm_addr}: {e}"),
                )
            })?;
            let actual = sock
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or(hm_addr.clone());
            (Some(sock), vec![actual])
        } else {
            (None, vec![hm_addr.clone()])
        };
        let drivers = build_drivers(
            &cfg,
            &args.data_dir,
            rocta_drivers::local::HeartbeatTarget {
                controllers,
                interval: hm.heartbeat_interval,
                key: heartbeat_key.clone(),
            },
        )?;
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        let wake = Arc::new(Notify::new());
        let cfg = Arc::new(cfg);
        // Every task runs until shutdown; one that ends or panics first ends the process.
        let mut tasks = rocta_service::tasks::Tasks::new();
        if let Some(listener) = listener {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            // Tests and scripts read this line to learn an ephemeral port.
            println!("rocta {role}: API listening on http://{addr}");
            tracing::info!(%addr, "API listening");
            let state = rocta_api::AppState {
                store: store.clone(),
                cfg: cfg.clone(),
                network: drivers.network.clone(),
                certs: drivers.certs.clone(),
                wake: wake.clone(),
            };
            let app = rocta_api::router(state);
            let stop = shutdown.clone();
            // Bounded: connections, idle time (slow-loris) and accept errors; no handshake.
            let limits = rocta_service::net::Limits {
                handshakes: 1024,
                handshake_timeout: Duration::from_secs(10),
                connections: 4096,
                idle_timeout: Duration::from_secs(60),
            };
            tasks.spawn(
                "api",
                rocta_service::net::serve(
                    listener,
                    limits,
                    |tcp| async move { Ok(tcp) },
                    app,
                    Default::default(),
                    stop,
                ),
            );
        }
        if let Some(sock) = udp {
            tracing::info!(addr = ?sock.local_addr().ok(), "health manager listening");
            let metrics = Arc::new(rocta_health::Metrics::default());
            let heard = Arc::new(rocta_health::stale::Heard::default());
            tasks.spawn(
                "heartbeat_intake",
                rocta_health::run(
                    sock,
                    heartbeat_key.clone().into_bytes(),
                    store.clone(),
                    metrics.clone(),
                    heard.clone(),
                    shutdown.clone(),
                ),
            );
            let metrics_file = if hm.metrics_file.is_empty() {
                args.data_dir.join("health-manager.prom")
            } else {
                PathBuf::from(&hm.metrics_file)
            };
            tasks.spawn(
                "stale_check",
                rocta_health::stale::check_loop(
                    store.clone(),
                    rocta_health::stale::CheckConfig {
                        heartbeat_timeout: Duration::from_secs_f64(hm.heartbeat_timeout),
                        interval: Duration::from_secs_f64(hm.health_check_interval),
                        failover_threshold: hm.failover_threshold,
                        metrics_file: Some(metrics_file),
                    },
                    metrics,
                    heard,
                    wake.clone(),
                    Default::default(),
                    shutdown.clone(),
                ),
            );
        }
        if with_housekeeping {
            let hk = &cfg.house_keeping;
            let secs = Duration::from_secs_f64;
            tasks.spawn(
                "housekeeping",
                rocta_housekeeping::run(
                    store.clone(),
                    rocta_housekeeping::Settings {
                        spare_pool_size: hk.spare_amphora_pool_size,
                        spare_check_interval: secs(hk.spare_check_interval),
                        cleanup_interval: secs(hk.cleanup_interval),
                        amphora_expiry_age: secs(hk.amphora_expiry_age),
                        load_balancer_expiry_age: secs(hk.load_balancer_expiry_age),
                        cert_interval: secs(hk.cert_interval),
                        cert_expiry_buffer: secs(hk.cert_expiry_buffer),
                        vip_allocation_grace: secs(hk.vip_allocation_grace),
                    },
                    wake.clone(),
                    Default::default(),
                    shutdown.clone(),
                ),
            );
        }
        if with_worker {
            let w = &cfg.controller_worker;
            let worker = Worker::new(
                store.clone(),
                drivers.clone(),
                WorkerConfig {
                    concurrency: w.workers,
                    lease: Duration::from_secs(w.job_lease_seconds),
                    poll: Duration::from_millis(w.job_poll_interval_ms),
                },
                wake.clone(),
            );
            tasks.spawn("worker", worker.run(shutdown.clone()));
        }
        let grace = Duration::from_secs_f64(cfg.default.graceful_shutdown_timeout);
        match tasks.run(shutdown, grace).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "grace period over; exiting with work in flight (it resumes on restart)"
            ),
            // EX_SOFTWARE: a supervisor restarts the role whole.
            Err(e) => return Err(Fatal(70, e.to_string())),
        }
        Ok(())
    })
}

/// Checks what the chosen drivers need on this host, before anything is bound.
fn preflight(cfg: &Config) -> Result<(), Fatal> {
    let w = &cfg.controller_worker;
    let real = [&w.compute_driver, &w.amphora_driver]
        .iter()
        .any(|d| *d != "noop");
    if real {
        let hx = &cfg.haproxy_amphora.haproxy_cmd;
        let ok = std::process::Command::new(hx)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(Fatal(
                69,
                format!("HAProxy ({hx}) is needed by the local amphorae: install it with `apt-get install -y haproxy iputils-ping`, or run with --drivers noop"),
            ));
        }
    }
    Ok(())
}

/// The composition root of the drivers: each `[controller_worker]` driver by name.
fn build_drivers(
    cfg: &Config,
    data: &Path,
    heartbeat: rocta_drivers::local::HeartbeatTarget,
) -> Result<Drivers, Fatal> {
    use rocta_drivers::{local, loopback, noop, pki, rest};
    let w = &cfg.controller_worker;
    let dir_err = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| Fatal(73, format!("cannot create {p}: {e}"))
    };
    let noop_dir = data.join("noop");
    let noop = noop::drivers(&noop_dir).map_err(dir_err(&noop_dir))?;
    let pki_dir = data.join("pki");
    let pki = if w.cert_manager == "local" || w.amphora_driver == "rest" {
        Some(Arc::new(pki::Pki::open(&pki_dir).map_err(|e| {
            Fatal(73, format!("PKI in {}: {e}", pki_dir.display()))
        })?))
    } else {
        None
    };
    let compute: Arc<dyn rocta_drivers::Compute> = if w.compute_driver == "local" {
        let root = data.join("amphorae");
        let exe = std::env::current_exe()
            .map_err(|e| Fatal(70, format!("cannot find the rocta binary: {e}")))?;
        Arc::new(
            local::LocalCompute::new(&root, &exe, &cfg.haproxy_amphora.haproxy_cmd, heartbeat)
                .map_err(dir_err(&root))?,
        )
    } else {
        noop.compute.clone()
    };
    let network: Arc<dyn rocta_drivers::Network> = if w.network_driver == "loopback" {
        let root = data.join("loopback");
        Arc::new(loopback::LoopbackNetwork::new(&root).map_err(dir_err(&root))?)
    } else {
        noop.network.clone()
    };
    let certs: Arc<dyn rocta_drivers::CertManager> = match (&pki, w.cert_manager.as_str()) {
        (Some(p), "local") => {
            let storage = if cfg.certificates.storage_path.is_empty() {
                data.join("certificates")
            } else {
                PathBuf::from(&cfg.certificates.storage_path)
            };
            std::fs::create_dir_all(&storage).map_err(dir_err(&storage))?;
            Arc::new(pki::LocalCerts {
                pki: p.clone(),
                storage,
            })
        }
        _ => noop.certs.clone(),
    };
    let amphora: Arc<dyn rocta_drivers::AmphoraDriver> = match (&pki, w.amphora_driver.as_str()) {
        (Some(p), "rest") => Arc::new(
            rest::RestAmphora::new(
                certs.clone(),
                p.server_ca_pem(),
                &p.controller_identity,
                cfg.haproxy_amphora.default_connection_limit,
                cfg.haproxy_amphora.connection_logging,
            )
            .map_err(|e| Fatal(73, format!("controller TLS identity: {e}")))?,
        ),
        _ => noop.amphora.clone(),
    };
    Ok(Drivers {
        compute,
        network,
        amphora,
        certs,
    })
}

/// The heartbeat key: the configured one, else one generated once into the data dir.
fn heartbeat_key(cfg: &Config, data: &Path) -> Result<String, Fatal> {
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
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(data.join("pki"))?;
        rocta_service::atomic_write(&path, key.as_bytes(), 0o600)
    };
    write().map_err(|e| Fatal(73, format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

/// A random 256-bit key, hex, from the system's randomness; never a weak one: when that
/// cannot be read, startup fails (exit 71, EX_OSERR).
fn random_hex() -> Result<String, Fatal> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| {
        Fatal(
            71,
            format!("cannot read the system's randomness for the heartbeat key: {e}"),
        )
    })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// `rocta amphora-agent`: the agent of one amphora.
fn run_agent(args: &AgentArgs) -> Result<(), Fatal> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        Fatal(
            64,
            format!("cannot read config {}: {e}", args.config.display()),
        )
    })?;
    let cfg = rocta_agent::AgentConfig::from_toml(&text)
        .map_err(|e| Fatal(64, format!("{}: {e}", args.config.display())))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Fatal(70, format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.bind)
            .await
            .map_err(|e| Fatal(69, format!("cannot listen on {}: {e}", cfg.bind)))?;
        tracing::info!(bind = %cfg.bind, amphora_id = %cfg.amphora_id, "amphora agent listening");
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        rocta_agent::serve(listener, cfg, shutdown)
            .await
            .map_err(|e| Fatal(73, e.to_string()))
    })
}

fn spawn_signal_handler(token: CancellationToken) {
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
