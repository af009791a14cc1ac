//! The roles of the `rocta` binary (`serve`, `api`, `worker`, `health-manager`,
//! `housekeeping`, `amphora-agent`): each composes the boot steps, binds, then runs its tasks
//! under one supervisor until shutdown (`rocta_service::tasks::Tasks`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rocta_worker::{Worker, WorkerConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::boot::*;
use crate::{AgentArgs, RoleArgs};

/// A control-plane role and the parts it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Serve,
    Api,
    Worker,
    HealthManager,
    Housekeeping,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Api => "api",
            Role::Worker => "worker",
            Role::HealthManager => "health-manager",
            Role::Housekeeping => "housekeeping",
        }
    }
    fn api(self) -> bool {
        matches!(self, Role::Serve | Role::Api)
    }
    fn worker(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
    fn health(self) -> bool {
        matches!(self, Role::Serve | Role::HealthManager)
    }
    fn housekeeping(self) -> bool {
        matches!(self, Role::Serve | Role::Housekeeping)
    }
}

/// Boots `role` and runs it until SIGTERM or SIGINT.
pub fn run(role: Role, args: RoleArgs) -> Result<(), BootError> {
    let cfg = load_config(&args)?;
    // The API's policy: Octavia's defaults and the operator's file, refused at start if bad.
    let policy = if role.api() {
        Arc::new(rocta_api::policy::Policy::load(&cfg.oslo_policy).map_err(BootError::LoadConfig)?)
    } else {
        Arc::new(rocta_api::policy::Policy::defaults(true))
    };
    prepare_data_dir(&args.data_dir)?;
    init_logging(&cfg);
    let store = open_store(&cfg, &args.data_dir)?;
    let store = if cfg.metrics.enabled {
        crate::metrics::observe(store)
    } else {
        store
    };
    let bus = message_bus(&cfg)?;
    preflight(&cfg)?;
    let heartbeat_key = heartbeat_key(&cfg, &args.data_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BootError::Runtime(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let (with_api, with_worker, with_health, with_housekeeping) = (
            role.api(),
            role.worker(),
            role.health(),
            role.housekeeping(),
        );
        let listener = if with_api {
            let addr = format!(
                "{}:{}",
                cfg.api_settings.bind_host, cfg.api_settings.bind_port
            );
            Some(
                tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| BootError::BindApi(format!("cannot listen on {addr}: {e}")))?,
            )
        } else {
            None
        };
        // `/metrics` on an address of its own (`[metrics] bind`); else beside the API, if any.
        let metrics_listener = if cfg.metrics.enabled && !cfg.metrics.bind.is_empty() {
            let addr = &cfg.metrics.bind;
            Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                BootError::BindApi(format!("cannot listen for metrics on {addr}: {e}"))
            })?)
        } else {
            None
        };
        let mut hm = cfg.health_manager.clone();
        // Amphorae in namespaces reach the controller on its management address only: the
        // host networks are built first (idempotent) and a loopback `bind_ip` means that
        // address.
        let host_nets = if cfg.controller_worker.compute_driver
            == rocta_config::ComputeDriver::Netns
            && (with_worker || with_health)
        {
            let n = crate::network::host_networks(&cfg, None)?;
            crate::network::ensure(&n)?;
            if hm
                .bind_ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            {
                hm.bind_ip = n.host_address.to_string();
            }
            Some(n)
        } else {
            None
        };
        let hm_addr = format!("{}:{}", hm.bind_ip, hm.bind_port);
        let (udp, controllers) = if with_health {
            let sock = tokio::net::UdpSocket::bind(&hm_addr).await.map_err(|e| {
                BootError::BindHeartbeats(format!("cannot listen for heartbeats on {hm_addr}: {e}"))
            })?;
            let actual = sock
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or(hm_addr.clone());
            if let (Some(n), Ok(a)) = (&host_nets, sock.local_addr()) {
                if a.port() != n.heartbeat_port {
                    // An ephemeral port: the filter lets heartbeats through to it.
                    let mut n = n.clone();
                    n.heartbeat_port = a.port();
                    crate::network::ensure(&n)?;
                }
            }
            (Some(sock), vec![actual])
        } else {
            (None, vec![hm_addr.clone()])
        };
        // Several health managers: amphorae send to each in turn.
        let controllers = if hm.controller_ip_port_list.is_empty() {
            controllers
        } else {
            hm.controller_ip_port_list.clone()
        };
        let drivers = build_drivers(
            &cfg,
            &args.data_dir,
            rocta_drivers::local::HeartbeatTarget {
                controllers,
                interval: hm.heartbeat_interval,
                key: heartbeat_key.clone(),
                logs: {
                    let a = &cfg.amphora_agent;
                    rocta_drivers::local::LogShipping {
                        tenant_log_targets: a.tenant_log_targets.clone(),
                        admin_log_targets: a.admin_log_targets.clone(),
                        log_protocol: a.log_protocol.clone(),
                        log_retry_count: a.log_retry_count,
                        log_retry_interval: a.log_retry_interval,
                        log_queue_size: a.log_queue_size,
                        disable_local_log_storage: a.disable_local_log_storage,
                        administrative_log_facility: a.administrative_log_facility,
                        forward_all_logs: a.forward_all_logs,
                    }
                },
            },
        )?;
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        let wake = Arc::new(Notify::new());
        let cfg = Arc::new(cfg);
        // Every task runs until shutdown; one that ends or panics first ends the process.
        let mut tasks = rocta_service::tasks::Tasks::new();
        if cfg.metrics.enabled {
            crate::metrics::install(&store);
        }
        if let Some(listener) = listener {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            // Tests and scripts read this line to learn an ephemeral port.
            println!("rocta {}: API listening on http://{addr}", role.name());
            tracing::info!(%addr, "API listening");
            let keystone = match cfg.api_settings.auth_strategy.as_str() {
                "keystone" => Some(Arc::new(
                    rocta_api::keystone::Keystone::new(&cfg.keystone_authtoken)
                        .map_err(BootError::LoadConfig)?,
                )),
                _ => None,
            };
            let state = rocta_api::AppState {
                keystone,
                policy,
                store: store.clone(),
                cfg: cfg.clone(),
                network: drivers.network.clone(),
                compute: drivers.compute.clone(),
                tls: drivers.tls.clone(),
                wake: rocta_api::JobSignal::new(
                    wake.clone(),
                    bus.clone().map(|b| {
                        let p = rocta_messaging::Publisher::spawn(b);
                        Arc::new(move || p.announce()) as Arc<dyn Fn() + Send + Sync>
                    }),
                ),
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
        if let Some(listener) = metrics_listener {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            // After the API's line (tests read the first line for the API's port).
            println!("rocta {}: metrics on http://{addr}/metrics", role.name());
            tasks.spawn("metrics", crate::metrics::serve(listener, shutdown.clone()));
        }
        if let Some(sock) = udp {
            tracing::info!(addr = ?sock.local_addr().ok(), "health manager listening");
            let metrics = Arc::new(rocta_health::Metrics::default());
            if cfg.metrics.enabled {
                rocta_service::metrics::global().register_collector(Box::new(metrics.clone()));
            }
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
                        confirm_for: Duration::from_secs_f64(
                            hm.health_check_interval.max(hm.heartbeat_interval),
                        ),
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
            if cfg.metrics.enabled {
                crate::metrics::spare_pool_target(hk.spare_amphora_pool_size);
            }
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
                    topology: rocta_worker::TopologySettings::named(&w.loadbalancer_topology, {
                        let k = &cfg.keepalived_vrrp;
                        rocta_drivers::VrrpSettings {
                            advert_int: k.vrrp_advert_int,
                            check_interval: k.vrrp_check_interval,
                            fail_count: k.vrrp_fail_count,
                            success_count: k.vrrp_success_count,
                            garp_refresh_interval: k.vrrp_garp_refresh_interval,
                            garp_refresh_count: k.vrrp_garp_refresh_count,
                        }
                    }),
                    concurrency: w.workers,
                    lease: Duration::from_secs(w.job_lease_seconds),
                    poll: Duration::from_millis(w.job_poll_interval_ms),
                    // Jobs posted by API processes elsewhere wake this worker at once: over
                    // RabbitMQ when a transport_url is set, else PostgreSQL's LISTEN.
                    pushed: match bus.clone() {
                        Some(b) => Some(rocta_messaging::spawn_consumer(
                            b,
                            wake.clone(),
                            u16::try_from(w.workers).unwrap_or(u16::MAX),
                        )),
                        None => store.listen_jobs(wake.clone()),
                    },
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
            Err(e) => return Err(BootError::TaskEnded(e)),
        }
        Ok(())
    })
}

/// `rocta amphora-agent`: the agent of one amphora.
pub fn run_agent(args: &AgentArgs) -> Result<(), BootError> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        BootError::LoadConfig(format!("cannot read config {}: {e}", args.config.display()))
    })?;
    let mut cfg = rocta_agent::AgentConfig::parse(&text)
        .map_err(|e| BootError::LoadConfig(format!("{}: {e}", args.config.display())))?;
    // A configuration update (`PUT /1.0/config`) replaces this file.
    cfg.config_path = Some(args.config.clone());
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;
        let stderr = tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            );
        // The agent's own log, info and above (every level with `forward_all_logs`), to
        // `[log_shipping] admin_log_targets` once the agent has them (nothing without).
        // (rocta's own debug events only: its libraries' would flood the receivers.)
        use tracing_subscriber::filter::{LevelFilter, Targets};
        let (level, handle) =
            tracing_subscriber::reload::Layer::new(Targets::new().with_default(LevelFilter::INFO));
        rocta_agent::shipping::on_forward_all(Box::new(move |all| {
            let mut t = Targets::new().with_default(LevelFilter::INFO);
            if all {
                t = t.with_target("rocta", LevelFilter::DEBUG);
            }
            let _ = handle.modify(|f| *f = t);
        }));
        let admin = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(rocta_agent::shipping::AdminLog::new(&cfg.amphora_id))
            .with_filter(level);
        let _ = tracing_subscriber::registry()
            .with(stderr)
            .with(admin)
            .try_init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BootError::Runtime(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.bind)
            .await
            .map_err(|e| BootError::BindApi(format!("cannot listen on {}: {e}", cfg.bind)))?;
        tracing::info!(bind = %cfg.bind, amphora_id = %cfg.amphora_id, "amphora agent listening");
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        rocta_agent::serve(listener, cfg, shutdown)
            .await
            .map_err(|e| BootError::Agent(e.to_string()))
    })
}
