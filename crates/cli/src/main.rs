//! `rocta`: one binary for every role, and the client commands (`client`: `rocta loadbalancer
//! create ...`, which only speak HTTP to an Octavia v2 endpoint). This crate is the composition
//! root, the only place that chooses concrete drivers and stores. `main` only parses the
//! command line and turns the outcome into an exit code; `boot` holds the boot steps (config →
//! data dir → logging → store → preflight → heartbeat key → drivers), each with its typed
//! error; `roles` binds and runs each role's tasks under one supervisor, draining under
//! `[DEFAULT] graceful_shutdown_timeout`.
//!
//! Exit codes (`boot::BootError::exit_code`): 0 clean stop; 64 bad configuration or arguments;
//! 69 a port cannot be bound or HAProxy is missing; 70 a task ended early or the runtime failed;
//! 71 no system randomness for the heartbeat key; 73 the data directory or driver state cannot
//! be created or written; 74 the database cannot be opened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use roles::Role;

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
    /// The database schema (Octavia's `octavia-db-manage`).
    #[command(subcommand)]
    Db(DbCmd),
    /// The load-balancer management network on this host (bridge, controller port, filter,
    /// VXLAN to other hosts).
    #[command(subcommand)]
    Network(NetworkCmd),
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Builds what is missing (idempotent).
    Setup(network::NetworkArgs),
    /// Removes what setup built (idempotent).
    Teardown(network::NetworkArgs),
}

#[derive(Subcommand)]
enum DbCmd {
    /// Brings the schema to this release's version (`octavia-db-manage upgrade head`); run it
    /// once, before starting the new release's processes.
    Upgrade(DbArgs),
    /// Prints the database's schema version and the one this release needs.
    Version(DbArgs),
}

#[derive(Args, Clone)]
struct DbArgs {
    /// TOML configuration file (its `[database] connection`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory (the SQLite database when `[database] connection` is empty).
    #[arg(long, default_value = "./rocta-data")]
    data_dir: PathBuf,
}

#[derive(Args, Clone)]
struct AgentArgs {
    /// The agent's configuration: Octavia's `amphora-agent.conf` (a config drive's
    /// `/etc/octavia/amphora-agent.conf`) or rocta's TOML file (the local compute drivers').
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
    /// Use these drivers for compute, network, amphora and certificates: "noop", "local"
    /// (agents on this host's loopback) or "netns" (amphorae in network namespaces; root).
    #[arg(long)]
    drivers: Option<String>,
}

mod boot;
mod client;
mod metrics;
mod network;
mod openstack;
mod roles;

fn main() -> ExitCode {
    let matches = Cli::command().subcommands(client::commands()).get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if client::handles(name) {
            return client::run(name, sub);
        }
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (name, result) = match &cli.cmd {
        Cmd::Serve(a) => ("serve", roles::run(Role::Serve, a.clone())),
        Cmd::Api(a) => ("api", roles::run(Role::Api, a.clone())),
        Cmd::Worker(a) => ("worker", roles::run(Role::Worker, a.clone())),
        Cmd::HealthManager(a) => ("health-manager", roles::run(Role::HealthManager, a.clone())),
        Cmd::Housekeeping(a) => ("housekeeping", roles::run(Role::Housekeeping, a.clone())),
        Cmd::AmphoraAgent(a) => ("amphora-agent", roles::run_agent(a)),
        Cmd::Db(DbCmd::Upgrade(a)) => ("db upgrade", boot::db_upgrade(a)),
        Cmd::Db(DbCmd::Version(a)) => ("db version", boot::db_version(a)),
        Cmd::Network(NetworkCmd::Setup(a)) => ("network setup", network::setup(a)),
        Cmd::Network(NetworkCmd::Teardown(a)) => ("network teardown", network::teardown(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rocta {name}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
