//! The client commands (`rocta loadbalancer create ...`), in the spirit of
//! `openstack loadbalancer ...`: they speak only the Octavia v2 API, so they work against rocta
//! and against an upstream Octavia endpoint alike. The command tree is built from the resource
//! tables in `resources`; `output` prints; `http` talks to the endpoint.

mod admin;
mod auth;
mod http;
mod output;
mod resources;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use reqwest::Method;
use serde_json::{json, Map, Value};

use http::{Api, Auth, Failure, Result};
use output::Fmt;
use resources::{Flag, Res, K, R};
use wait::{wait, Until};

/// The endpoint when neither `--os-endpoint` nor `ROCTA_URL` is given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9876";

/// The top-level client commands.
pub fn commands() -> Vec<Command> {
    let mut v: Vec<Command> = resources::ALL.iter().map(|r| resource_command(r)).collect();
    v.push(admin::amphora_command());
    v.push(admin::quota_command());
    v.push(
        Command::new("provider")
            .about("Provider drivers")
            .subcommand_required(true)
            .subcommand(with_output(
                Command::new("list").about("List provider drivers"),
            )),
    );
    v.into_iter().map(|c| c.args(connection_args())).collect()
}

/// Whether `rocta <name>` is a client command.
pub fn handles(name: &str) -> bool {
    resources::ALL.iter().any(|r| r.cmd == name) || matches!(name, "amphora" | "quota" | "provider")
}

/// Runs a client command; failures print one line and exit non-zero.
pub fn run(name: &str, m: &ArgMatches) -> ExitCode {
    match dispatch(name, m) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("rocta: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn connection_args() -> Vec<Arg> {
    let os = |flag: &'static str, env: &'static str, help: &'static str| {
        Arg::new(flag).long(flag).env(env).global(true).help(help)
    };
    vec![
        Arg::new("os-endpoint")
            .long("os-endpoint")
            .env("ROCTA_URL")
            .default_value(DEFAULT_ENDPOINT)
            .global(true)
            .help("The Octavia v2 API endpoint (with Keystone auth: the catalog's, unless given)"),
        Arg::new("project")
            .long("project")
            .env("ROCTA_PROJECT")
            .global(true)
            .help("The project to act in (noauth: sent as X-Project-Id)"),
        Arg::new("os-token")
            .long("os-token")
            .env("ROCTA_TOKEN")
            .hide_env_values(true)
            .global(true)
            .help("A Keystone token, sent as X-Auth-Token"),
        os(
            "os-cloud",
            "OS_CLOUD",
            "A cloud of clouds.yaml to take the credentials from",
        ),
        os(
            "os-auth-url",
            "OS_AUTH_URL",
            "Keystone's URL: authenticate with a password",
        ),
        os("os-username", "OS_USERNAME", "Keystone user name"),
        os("os-password", "OS_PASSWORD", "Keystone password").hide_env_values(true),
        os(
            "os-project-name",
            "OS_PROJECT_NAME",
            "Project to scope the token to",
        ),
        os(
            "os-project-id",
            "OS_PROJECT_ID",
            "Project (by id) to scope the token to",
        ),
        os(
            "os-user-domain-name",
            "OS_USER_DOMAIN_NAME",
            "The user's domain (Default)",
        ),
        os(
            "os-project-domain-name",
            "OS_PROJECT_DOMAIN_NAME",
            "The project's domain (Default)",
        ),
        os(
            "os-region-name",
            "OS_REGION_NAME",
            "Region of the catalog endpoint",
        ),
        os(
            "os-interface",
            "OS_INTERFACE",
            "Catalog interface: public, internal or admin (public)",
        ),
    ]
}

fn with_output(c: Command) -> Command {
    c.arg(
        Arg::new("format")
            .short('f')
            .long("format")
            .value_parser(["table", "json", "yaml", "value"])
            .default_value("table")
            .help("Output format"),
    )
    .arg(
        Arg::new("column")
            .short('c')
            .long("column")
            .action(ArgAction::Append)
            .help("Show only this column (repeatable)"),
    )
}

fn with_wait(c: Command) -> Command {
    c.arg(
        Arg::new("wait")
            .long("wait")
            .action(ArgAction::SetTrue)
            .help("Wait until the change is done (provisioning_status ACTIVE, or gone)"),
    )
    .arg(
        Arg::new("wait-timeout")
            .long("wait-timeout")
            .value_parser(value_parser!(u64))
            .default_value("600")
            .value_name("SECONDS")
            .help("Give up waiting after this long"),
    )
}

fn positional(id: &'static str, name: &str, help: String) -> Arg {
    Arg::new(id)
        .value_name(name.to_uppercase())
        .required(true)
        .help(help)
}

fn flag_args(flags: &[Flag], create: bool) -> Vec<Arg> {
    let mut v = Vec::new();
    for f in flags {
        let help = format!("Sets {}", f.field);
        let a = Arg::new(f.long).long(f.long).help(help.clone());
        let a = match f.kind {
            K::OnOff(off) => {
                v.push(
                    Arg::new(off)
                        .long(off)
                        .action(ArgAction::SetTrue)
                        .conflicts_with(f.long)
                        .help(format!("Sets {} to false", f.field)),
                );
                a.action(ArgAction::SetTrue)
                    .help(format!("Sets {} to true", f.field))
            }
            K::True => a.action(ArgAction::SetTrue),
            K::List => a
                .action(ArgAction::Append)
                .help(format!("{help} (repeatable)")),
            K::Kv | K::Dict => a
                .action(ArgAction::Append)
                .value_name("KEY=VALUE[,KEY=VALUE]"),
            K::Int => a.value_parser(value_parser!(i64)),
            K::Num => a.value_parser(value_parser!(f64)),
            K::Ref(r) => a
                .value_name(resources::of(r).cmd.to_uppercase())
                .help(format!("Sets {} (name or id)", f.field)),
            K::Str => a,
        };
        v.push(a.required(f.required && create));
    }
    v
}

fn resource_command(r: &'static Res) -> Command {
    let parent = |c: Command| match r.parent {
        Some(p) => c.arg(positional(
            "parent",
            p.arg,
            format!("The {} (name or id)", resources::of(p.kind).title),
        )),
        None => c,
    };
    let object = |c: Command| {
        parent(c).arg(positional(
            "object",
            r.cmd,
            format!("The {} (name or id)", r.title),
        ))
    };
    let mut create = parent(Command::new("create").about(format!("Create a {}", r.title)));
    if let Some(o) = r.owner {
        create = create.arg(positional(
            "owner",
            o.arg,
            format!("The {} (name or id)", resources::of(o.kind).title),
        ));
    }
    let create = with_wait(with_output(create.args(flag_args(r.create, true))));
    let list = with_output(
        parent(Command::new("list").about(format!("List {}s", r.title)))
            .args(flag_args(r.filters, false)),
    );
    let show = with_output(object(
        Command::new("show").about(format!("Show a {}", r.title)),
    ));
    let set = with_wait(
        object(Command::new("set").about(format!("Change a {}", r.title)))
            .args(flag_args(r.set, false)),
    );
    let mut delete = with_wait(object(
        Command::new("delete").about(format!("Delete a {}", r.title)),
    ));
    let mut c = Command::new(r.cmd)
        .about(format!("{}s", capital(r.title)))
        .subcommand_required(true)
        .subcommands([create, list, show, set]);
    match r.kind {
        R::Lb => {
            delete = delete.arg(
                Arg::new("cascade")
                    .long("cascade")
                    .action(ArgAction::SetTrue)
                    .help("Delete the load balancer's listeners, pools, members and monitors too"),
            );
            c = c.subcommands([
                with_output(object(Command::new("stats").about("Traffic statistics"))),
                with_output(object(Command::new("status").about("The status tree"))),
                with_wait(object(
                    Command::new("failover").about("Rebuild the load balancer's amphorae"),
                )),
            ]);
        }
        R::Listener => {
            c = c.subcommand(with_output(object(
                Command::new("stats").about("Traffic statistics"),
            )));
        }
        R::Member => {
            c = c.subcommand(
                Command::new("batch")
                    .about("Replace or extend a pool's members in one request")
                    .subcommand_required(true)
                    .subcommand(with_wait(
                        parent(Command::new("set").about(
                            "Make the pool's members exactly these (matched on address and port)",
                        ))
                        .arg(
                            Arg::new("member")
                                .long("member")
                                .action(ArgAction::Append)
                                .value_name("address=A,protocol_port=P[,weight=W,...]")
                                .help(format!(
                                    "A member (repeatable); keys: {}",
                                    resources::BATCH_MEMBER.join(", ")
                                )),
                        )
                        .arg(
                            Arg::new("additive-only")
                                .long("additive-only")
                                .action(ArgAction::SetTrue)
                                .help("Keep members not listed"),
                        ),
                    )),
            );
        }
        _ => {}
    }
    c.subcommand(delete)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn fmt_of(m: &ArgMatches) -> Fmt {
    Fmt {
        format: m
            .get_one::<String>("format")
            .cloned()
            .unwrap_or_else(|| "table".into()),
        columns: m
            .get_many::<String>("column")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
    }
}

/// A failure, with a hint when the endpoint wanted a project and none was given.
fn hint(f: Failure, m: &ArgMatches) -> Failure {
    if f.0.contains("Missing project ID") && m.get_one::<String>("project").is_none() {
        return Failure(format!("{} (give --project or set ROCTA_PROJECT)", f.0));
    }
    f
}

fn api_of(m: &ArgMatches) -> Result<Api> {
    let flag = |k: &str| m.get_one::<String>(k).cloned();
    let given_endpoint = match m.value_source("os-endpoint") {
        Some(clap::parser::ValueSource::DefaultValue) | None => None,
        Some(_) => flag("os-endpoint"),
    };
    let mut creds = auth::Credentials {
        auth_url: flag("os-auth-url"),
        username: flag("os-username"),
        password: flag("os-password"),
        project_name: flag("os-project-name"),
        project_id: flag("os-project-id"),
        user_domain_name: flag("os-user-domain-name"),
        project_domain_name: flag("os-project-domain-name"),
        region_name: flag("os-region-name"),
        interface: flag("os-interface"),
    };
    if let Some(name) = flag("os-cloud") {
        creds = creds.or_cloud(&auth::cloud(&name)?);
    }
    // A token given outright wins; otherwise Keystone's URL means password authentication.
    if flag("os-token").is_none() && creds.wanted() {
        let session = auth::login(&creds)?;
        let endpoint = given_endpoint.or(session.endpoint).ok_or_else(|| {
            Failure(
                "Keystone's catalog has no load-balancer endpoint for this region and interface \
                 (give --os-endpoint)"
                    .into(),
            )
        })?;
        return Api::new(
            &endpoint,
            Auth {
                project: None,
                token: Some(session.token),
            },
        );
    }
    Api::new(
        &given_endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
        Auth {
            project: flag("project"),
            token: flag("os-token"),
        },
    )
}

fn dispatch(name: &str, m: &ArgMatches) -> Result<()> {
    let Some((sub, sm)) = m.subcommand() else {
        return Err(Failure(format!("rocta {name}: a subcommand is required")));
    };
    let api = api_of(sm)?;
    let done = match name {
        "amphora" => admin::amphora(&api, sub, sm),
        "quota" => admin::quota(&api, sub, sm),
        "provider" => {
            let b = api.get("/v2/lbaas/providers")?;
            print(output::list(
                items(&b, "providers"),
                &["name", "description"],
                &fmt_of(sm),
            )?)
        }
        _ => {
            let r = resources::ALL
                .iter()
                .copied()
                .find(|r| r.cmd == name)
                .ok_or_else(|| Failure(format!("unknown command {name}")))?;
            resource(&api, r, sub, sm)
        }
    };
    done.map_err(|f| hint(f, sm))
}

fn print(s: String) -> Result<()> {
    print!("{s}");
    Ok(())
}

fn items<'a>(body: &'a Value, key: &str) -> &'a [Value] {
    body.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The collection path of `r` (its parent's id filled in).
fn collection(r: &Res, parent: Option<&str>) -> String {
    r.path.replace("{parent}", parent.unwrap_or_default())
}

/// A name or id to an id: a UUID is taken as is; a name must match exactly one object.
fn resolve(api: &Api, r: &Res, parent: Option<&str>, name_or_id: &str) -> Result<String> {
    if uuid::Uuid::try_parse(name_or_id).is_ok() {
        return Ok(name_or_id.to_string());
    }
    let body = api.get_with(&collection(r, parent), &[("name", name_or_id.to_string())])?;
    let found: Vec<&Value> = items(&body, r.plural)
        .iter()
        .filter(|o| o["name"].as_str() == Some(name_or_id))
        .collect();
    match found.as_slice() {
        [one] => Ok(one["id"].as_str().unwrap_or_default().to_string()),
        [] => Err(Failure(format!(
            "No {} with a name or ID of '{name_or_id}' exists.",
            r.title
        ))),
        _ => Err(Failure(format!(
            "More than one {} exists with the name '{name_or_id}'; use its ID.",
            r.title
        ))),
    }
}

/// `k=v,k=v`; with `dashes`, `-` in keys reads as `_` (`protocol-port` = `protocol_port`).
fn kv_pairs(raw: &str, dashes: bool) -> Result<Vec<(String, String)>> {
    raw.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| {
                    let k = k.trim();
                    let k = if dashes {
                        k.replace('-', "_")
                    } else {
                        k.to_string()
                    };
                    (k, v.trim().to_string())
                })
                .ok_or_else(|| Failure(format!("expected KEY=VALUE, got {p:?}")))
        })
        .collect()
}

fn typed(v: &str) -> Value {
    if let Ok(n) = v.parse::<i64>() {
        return json!(n);
    }
    match v.to_ascii_lowercase().as_str() {
        "true" => json!(true),
        "false" => json!(false),
        _ => json!(v),
    }
}

/// The API body from the flags given.
fn body_of(api: &Api, m: &ArgMatches, flags: &[Flag]) -> Result<Map<String, Value>> {
    let mut b = Map::new();
    for f in flags {
        let v = match f.kind {
            K::OnOff(off) => {
                if m.get_flag(f.long) {
                    Some(json!(true))
                } else if m.get_flag(off) {
                    Some(json!(false))
                } else {
                    None
                }
            }
            K::True => m.get_flag(f.long).then_some(json!(true)),
            K::Str => m.get_one::<String>(f.long).map(|s| json!(s)),
            K::Int => m.get_one::<i64>(f.long).map(|n| json!(n)),
            K::Num => m.get_one::<f64>(f.long).map(|n| json!(n)),
            K::List => m
                .get_many::<String>(f.long)
                .map(|v| json!(v.cloned().collect::<Vec<_>>())),
            K::Kv | K::Dict => match m.get_many::<String>(f.long) {
                None => None,
                Some(vals) => {
                    let mut o = Map::new();
                    for raw in vals {
                        let dict = matches!(f.kind, K::Dict);
                        for (k, v) in kv_pairs(raw, !dict)? {
                            let v = if dict { json!(v) } else { typed(&v) };
                            o.insert(k, v);
                        }
                    }
                    Some(Value::Object(o))
                }
            },
            K::Ref(kind) => match m.get_one::<String>(f.long) {
                Some(x) => Some(json!(resolve(api, resources::of(kind), None, x)?)),
                None => None,
            },
        };
        if let Some(v) = v {
            b.insert(f.field.into(), v);
        }
    }
    Ok(b)
}

/// Every page of a list.
fn list_all(api: &Api, path: &str, plural: &str, query: &[(&str, String)]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut body = api.get_with(path, query)?;
    let mut pages = 0;
    loop {
        out.extend(items(&body, plural).iter().cloned());
        let next = body
            .get(format!("{plural}_links"))
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|x| x["rel"] == "next"))
            .and_then(|x| x["href"].as_str())
            .map(str::to_string);
        pages += 1;
        match next {
            Some(href) if pages < 10_000 => body = api.get(&href)?,
            _ => return Ok(out),
        }
    }
}

fn resource(api: &Api, r: &'static Res, sub: &str, m: &ArgMatches) -> Result<()> {
    // `member batch set POOL ...`: its arguments are one level down.
    let m = match (sub, m.subcommand()) {
        ("batch", Some(("set", sm))) => sm,
        ("batch", _) => return Err(Failure("member batch: the subcommand is `set`".into())),
        _ => m,
    };
    let parent = match (r.parent, m.try_get_one::<String>("parent").ok().flatten()) {
        (Some(p), Some(x)) => Some(resolve(api, resources::of(p.kind), None, x)?),
        _ => None,
    };
    let coll = collection(r, parent.as_deref());
    let object = match m.try_get_one::<String>("object").ok().flatten() {
        Some(x) => Some(resolve(api, r, parent.as_deref(), x)?),
        None => None,
    };
    let item = format!("{coll}/{}", object.clone().unwrap_or_default());
    let label = format!("{} {}", r.title, object.clone().unwrap_or_default());
    match sub {
        "list" => {
            let mut query = Vec::new();
            for (k, v) in body_of(api, m, r.filters)? {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                query.push((k, v));
            }
            let q: Vec<(&str, String)> =
                query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let all = list_all(api, &coll, r.plural, &q)?;
            print(output::list(&all, r.columns, &fmt_of(m))?)
        }
        "show" => {
            let b = api.get(&item)?;
            print(output::one(&b[r.key], &fmt_of(m))?)
        }
        "create" => {
            let mut b = body_of(api, m, r.create)?;
            if let Some(o) = r.owner {
                if let Some(x) = m.get_one::<String>("owner") {
                    let id = resolve(api, resources::of(o.kind), None, x)?;
                    b.insert(o.field.into(), json!(id));
                }
            }
            let a = api.call(Method::POST, &coll, Some(&json!({ r.key: b })))?;
            let mut obj = a.body[r.key].clone();
            if m.get_flag("wait") {
                let id = obj["id"].as_str().unwrap_or_default().to_string();
                let path = format!("{coll}/{id}");
                wait(
                    api,
                    &format!("{} {id}", r.title),
                    &path,
                    r.key,
                    Until::Active,
                    timeout(m),
                )?;
                obj = api.get(&path)?[r.key].clone();
            }
            print(output::one(&obj, &fmt_of(m))?)
        }
        "set" => {
            let b = body_of(api, m, r.set)?;
            if b.is_empty() {
                return Err(Failure(
                    "nothing to change: give at least one option (see --help)".into(),
                ));
            }
            api.call(Method::PUT, &item, Some(&json!({ r.key: b })))?;
            if m.get_flag("wait") {
                wait(api, &label, &item, r.key, Until::Active, timeout(m))?;
            }
            Ok(())
        }
        "delete" => {
            let cascade = m
                .try_get_one::<bool>("cascade")
                .ok()
                .flatten()
                .copied()
                .unwrap_or(false);
            let q: Vec<(&str, String)> = if cascade {
                vec![("cascade", "true".into())]
            } else {
                vec![]
            };
            api.call_with(Method::DELETE, &item, &q, None)?;
            if m.get_flag("wait") {
                wait(api, &label, &item, r.key, Until::Gone, timeout(m))?;
            }
            Ok(())
        }
        "stats" => {
            let b = api.get(&format!("{item}/stats"))?;
            print(output::one(&b["stats"], &fmt_of(m))?)
        }
        "status" => {
            let b = api.get(&format!("{item}/status"))?;
            print(output::tree(&b, &fmt_of(m))?)
        }
        "failover" => {
            api.call(Method::PUT, &format!("{item}/failover"), None)?;
            if m.get_flag("wait") {
                wait(api, &label, &item, r.key, Until::Active, timeout(m))?;
            }
            Ok(())
        }
        "batch" => batch_set(api, &coll, parent.as_deref().unwrap_or_default(), m),
        other => Err(Failure(format!("unknown subcommand {other}"))),
    }
}

fn timeout(m: &ArgMatches) -> Duration {
    Duration::from_secs(m.get_one::<u64>("wait-timeout").copied().unwrap_or(600))
}

/// `member batch set POOL --member k=v,... [--additive-only]`.
fn batch_set(api: &Api, coll: &str, pool: &str, sm: &ArgMatches) -> Result<()> {
    let mut members = Vec::new();
    for raw in sm.get_many::<String>("member").into_iter().flatten() {
        let mut o = Map::new();
        for (k, v) in kv_pairs(raw, true)? {
            if !resources::BATCH_MEMBER.contains(&k.as_str()) {
                return Err(Failure(format!(
                    "unknown member key {k:?} (keys: {})",
                    resources::BATCH_MEMBER.join(", ")
                )));
            }
            let v = if matches!(
                k.as_str(),
                "address" | "name" | "subnet_id" | "monitor_address"
            ) {
                json!(v)
            } else {
                typed(&v)
            };
            o.insert(k, v);
        }
        members.push(Value::Object(o));
    }
    let q: Vec<(&str, String)> = if sm.get_flag("additive-only") {
        vec![("additive_only", "true".into())]
    } else {
        vec![]
    };
    api.call_with(Method::PUT, coll, &q, Some(&json!({ "members": members })))?;
    if sm.get_flag("wait") {
        let pool_path = format!("{}/{pool}", resources::POOL.path);
        wait(
            api,
            &format!("pool {pool}"),
            &pool_path,
            "pool",
            Until::Active,
            timeout(sm),
        )?;
    }
    Ok(())
}
