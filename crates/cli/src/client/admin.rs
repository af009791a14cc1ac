//! The admin and project-wide commands: `amphora`, `quota`.

use clap::{value_parser, Arg, ArgMatches, Command};
use reqwest::Method;
use serde_json::{json, Map};

use super::http::{Api, Failure, Result};
use super::wait::{wait, Until};
use super::{
    fmt_of, items, list_all, output, positional, print, resolve, resources, timeout, with_output,
    with_wait,
};

const AMPHORAE: &str = "/v2/octavia/amphorae";
const QUOTAS: &str = "/v2/lbaas/quotas";

pub(super) fn amphora_command() -> Command {
    let amp = |c: Command| c.arg(positional("object", "amphora", "The amphora id".into()));
    Command::new("amphora")
        .about("Amphorae (admin)")
        .subcommand_required(true)
        .subcommands([
            with_output(
                Command::new("list")
                    .about("List amphorae")
                    .arg(
                        Arg::new("loadbalancer")
                            .long("loadbalancer")
                            .help("Only this load balancer's (name or id)"),
                    )
                    .arg(
                        Arg::new("status")
                            .long("status")
                            .help("Only amphorae in this status"),
                    ),
            ),
            with_output(amp(Command::new("show").about("Show an amphora"))),
            with_output(amp(
                Command::new("stats").about("Per-listener statistics of an amphora")
            )),
            with_wait(amp(Command::new("failover").about("Replace an amphora"))),
        ])
}

const QUOTA_FIELDS: [&str; 7] = [
    "loadbalancer",
    "listener",
    "pool",
    "member",
    "healthmonitor",
    "l7policy",
    "l7rule",
];

pub(super) fn quota_command() -> Command {
    let project = |c: Command| c.arg(positional("project_id", "project", "The project id".into()));
    let mut set = project(Command::new("set").about("Set a project's quotas (-1: unlimited)"));
    for f in QUOTA_FIELDS {
        set = set.arg(
            Arg::new(f)
                .long(f)
                .value_parser(value_parser!(i64))
                .help(format!("The {f} quota")),
        );
    }
    Command::new("quota")
        .about("Quotas")
        .subcommand_required(true)
        .subcommands([
            with_output(Command::new("list").about("List projects' quotas")),
            with_output(project(
                Command::new("show").about("Show a project's quotas"),
            )),
            with_output(set),
            project(Command::new("reset").about("Reset a project's quotas to the defaults")),
            with_output(Command::new("defaults").about("Show the default quotas")),
        ])
}

pub(super) fn amphora(api: &Api, sub: &str, m: &ArgMatches) -> Result<()> {
    let id = m.try_get_one::<String>("object").ok().flatten().cloned();
    let item = format!("{AMPHORAE}/{}", id.clone().unwrap_or_default());
    match sub {
        "list" => {
            let mut q = Vec::new();
            if let Some(lb) = m.get_one::<String>("loadbalancer") {
                q.push(("loadbalancer_id", resolve(api, &resources::LB, None, lb)?));
            }
            if let Some(s) = m.get_one::<String>("status") {
                q.push(("status", s.clone()));
            }
            let all = list_all(api, AMPHORAE, "amphorae", &q)?;
            let cols = [
                "id",
                "loadbalancer_id",
                "status",
                "role",
                "lb_network_ip",
                "ha_ip",
            ];
            print(output::list(&all, &cols, &fmt_of(m))?)
        }
        "show" => print(output::one(&api.get(&item)?["amphora"], &fmt_of(m))?),
        "stats" => {
            let b = api.get(&format!("{item}/stats"))?;
            let cols = [
                "listener_id",
                "active_connections",
                "total_connections",
                "bytes_in",
                "bytes_out",
                "request_errors",
            ];
            print(output::list(items(&b, "amphora_stats"), &cols, &fmt_of(m))?)
        }
        "failover" => {
            let amp = api.get(&item)?;
            api.call(Method::PUT, &format!("{item}/failover"), None)?;
            if m.get_flag("wait") {
                if let Some(lb) = amp["amphora"]["loadbalancer_id"].as_str() {
                    let path = format!("{}/{lb}", resources::LB.path);
                    wait(
                        api,
                        &format!("load balancer {lb}"),
                        &path,
                        "loadbalancer",
                        Until::Active,
                        timeout(m),
                    )?;
                }
            }
            Ok(())
        }
        other => Err(Failure(format!("unknown subcommand {other}"))),
    }
}

pub(super) fn quota(api: &Api, sub: &str, m: &ArgMatches) -> Result<()> {
    let project = m
        .try_get_one::<String>("project_id")
        .ok()
        .flatten()
        .cloned();
    let item = format!("{QUOTAS}/{}", project.unwrap_or_default());
    match sub {
        "list" => {
            let b = api.get(QUOTAS)?;
            let mut cols = vec!["project_id"];
            cols.extend(QUOTA_FIELDS);
            print(output::list(items(&b, "quotas"), &cols, &fmt_of(m))?)
        }
        "show" => print(output::one(&api.get(&item)?["quota"], &fmt_of(m))?),
        "defaults" => print(output::one(
            &api.get(&format!("{QUOTAS}/defaults"))?["quota"],
            &fmt_of(m),
        )?),
        "set" => {
            let mut b = Map::new();
            for f in QUOTA_FIELDS {
                if let Some(n) = m.get_one::<i64>(f) {
                    b.insert(f.into(), json!(n));
                }
            }
            if b.is_empty() {
                return Err(Failure(
                    "nothing to change: give at least one quota (see --help)".into(),
                ));
            }
            let a = api.call(Method::PUT, &item, Some(&json!({ "quota": b })))?;
            print(output::one(&a.body["quota"], &fmt_of(m))?)
        }
        "reset" => {
            api.call(Method::DELETE, &item, None)?;
            Ok(())
        }
        other => Err(Failure(format!("unknown subcommand {other}"))),
    }
}
