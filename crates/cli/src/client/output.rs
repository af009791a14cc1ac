//! Output: `-f table|json|yaml|value` and `-c COLUMN`, and the status tree.

use comfy_table::{presets::ASCII_FULL_CONDENSED, Table, TableComponent};
use serde_json::{Map, Value};

use super::http::{Failure, Result};

/// The chosen format and columns.
pub struct Fmt {
    pub format: String,
    pub columns: Vec<String>,
}

/// A cell: lists of `{id}` as ids one per line, other lists and objects compact, `null` empty,
/// booleans as the openstack CLI prints them.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a)
            if a.iter()
                .all(|x| x.get("id").is_some() && x.as_object().is_some_and(|o| o.len() == 1)) =>
        {
            a.iter()
                .map(|x| cell(&x["id"]))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Named fields, in the order asked for.
type Row = Vec<(String, Value)>;

fn pick(obj: &Map<String, Value>, cols: &[String]) -> Result<Row> {
    cols.iter()
        .map(|c| {
            let v = obj
                .get(c)
                .ok_or_else(|| Failure(format!("no column {c:?} (columns: {})", keys(obj))))?;
            Ok((c.clone(), v.clone()))
        })
        .collect()
}

fn to_object(row: Row) -> Value {
    Value::Object(row.into_iter().collect())
}

fn keys(obj: &Map<String, Value>) -> String {
    obj.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn structured(v: &Value, format: &str) -> Result<String> {
    match format {
        "json" => Ok(serde_json::to_string_pretty(v)? + "\n"),
        "yaml" => Ok(serde_norway::to_string(v)?),
        other => Err(Failure(format!(
            "unknown format {other:?} (table, json, yaml, value)"
        ))),
    }
}

/// A table drawn like the openstack CLI's.
fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(ASCII_FULL_CONDENSED);
    t.set_style(TableComponent::HeaderLines, '-');
    t.set_style(TableComponent::MiddleHeaderIntersections, '+');
    t
}

/// One object (show, create, set, stats).
pub fn one(obj: &Value, fmt: &Fmt) -> Result<String> {
    let empty = Map::new();
    let map = obj.as_object().unwrap_or(&empty);
    let row: Row = if fmt.columns.is_empty() {
        let mut sorted: Row = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted
    } else {
        pick(map, &fmt.columns)?
    };
    match fmt.format.as_str() {
        "table" => {
            let mut t = table();
            t.set_header(["Field", "Value"]);
            for (k, v) in &row {
                t.add_row([k.clone(), cell(v)]);
            }
            Ok(format!("{t}\n"))
        }
        "value" => Ok(row.iter().map(|(_, v)| cell(v) + "\n").collect()),
        f => structured(&to_object(row), f),
    }
}

/// A list (list commands), with the resource's default columns unless `-c` names others.
pub fn list(items: &[Value], default: &[&str], fmt: &Fmt) -> Result<String> {
    let cols: Vec<String> = if fmt.columns.is_empty() {
        default.iter().map(|s| s.to_string()).collect()
    } else {
        fmt.columns.clone()
    };
    let empty = Map::new();
    let rows: Vec<Row> = items
        .iter()
        .map(|i| {
            let m = i.as_object().unwrap_or(&empty);
            if fmt.columns.is_empty() {
                // Default columns: a field the endpoint does not return shows empty.
                Ok(cols
                    .iter()
                    .map(|c| (c.clone(), m.get(c).cloned().unwrap_or(Value::Null)))
                    .collect())
            } else {
                pick(m, &cols)
            }
        })
        .collect::<Result<_>>()?;
    match fmt.format.as_str() {
        "table" => {
            let mut t = table();
            t.set_header(cols.clone());
            for r in &rows {
                t.add_row(r.iter().map(|(_, v)| cell(v)).collect::<Vec<_>>());
            }
            Ok(format!("{t}\n"))
        }
        "value" => Ok(rows
            .iter()
            .map(|r| r.iter().map(|(_, v)| cell(v)).collect::<Vec<_>>().join(" ") + "\n")
            .collect()),
        f => structured(&Value::Array(rows.into_iter().map(to_object).collect()), f),
    }
}

/// The status tree (`loadbalancer status`) drawn as a tree; other formats print it as is.
pub fn tree(statuses: &Value, fmt: &Fmt) -> Result<String> {
    if fmt.format != "table" {
        return structured(statuses, &fmt.format);
    }
    let lb = &statuses["statuses"]["loadbalancer"];
    let mut out = String::new();
    out.push_str(&node("loadbalancer", lb, None));
    let listeners = lb["listeners"].as_array().cloned().unwrap_or_default();
    for (i, l) in listeners.iter().enumerate() {
        let last_l = i + 1 == listeners.len();
        out.push_str(&format!("{}{}", branch(last_l), node("listener", l, None)));
        let pad_l = if last_l { "    " } else { "│   " };
        let pools = l["pools"].as_array().cloned().unwrap_or_default();
        for (j, p) in pools.iter().enumerate() {
            let last_p = j + 1 == pools.len();
            out.push_str(&format!(
                "{pad_l}{}{}",
                branch(last_p),
                node("pool", p, None)
            ));
            let pad_p = format!("{pad_l}{}", if last_p { "    " } else { "│   " });
            let mut kids: Vec<(&str, &Value)> = Vec::new();
            if p["health_monitor"].is_object() {
                kids.push(("healthmonitor", &p["health_monitor"]));
            }
            for m in p["members"].as_array().into_iter().flatten() {
                kids.push(("member", m));
            }
            for (k, (what, v)) in kids.iter().enumerate() {
                let addr = (*what == "member")
                    .then(|| format!("{}:{}", cell(&v["address"]), cell(&v["protocol_port"])));
                out.push_str(&format!(
                    "{pad_p}{}{}",
                    branch(k + 1 == kids.len()),
                    node(what, v, addr.as_deref())
                ));
            }
        }
    }
    Ok(out)
}

fn branch(last: bool) -> &'static str {
    if last {
        "└── "
    } else {
        "├── "
    }
}

fn node(what: &str, v: &Value, extra: Option<&str>) -> String {
    let name = cell(&v["name"]);
    let mut s = what.to_string();
    if !name.is_empty() {
        s.push_str(&format!(" {name}"));
    }
    if let Some(e) = extra {
        s.push_str(&format!(" {e}"));
    }
    s.push_str(&format!(" ({})", cell(&v["id"])));
    if let Some(p) = v["provisioning_status"].as_str() {
        s.push_str(&format!(" {p}"));
    }
    if let Some(o) = v["operating_status"].as_str() {
        s.push_str(&format!(" {o}"));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(f: &str, cols: &[&str]) -> Fmt {
        Fmt {
            format: f.into(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn formats_and_columns() {
        let lb = json!({"id": "a", "name": "web", "admin_state_up": true, "listeners": [{"id": "l1"}, {"id": "l2"}], "tags": ["x", "y"]});
        assert_eq!(
            one(&lb, &fmt("value", &["name", "id"])).unwrap(),
            "web\na\n"
        );
        let t = one(&lb, &fmt("table", &[])).unwrap();
        assert!(t.contains("| admin_state_up | True"), "{t}");
        assert!(t.contains("| listeners      | l1"), "{t}");
        assert!(t.contains("x, y"), "{t}");
        let j: Value = serde_json::from_str(&one(&lb, &fmt("json", &["id"])).unwrap()).unwrap();
        assert_eq!(j, json!({"id": "a"}));
        assert_eq!(one(&lb, &fmt("yaml", &["name"])).unwrap(), "name: web\n");
        assert!(one(&lb, &fmt("table", &["nope"])).is_err());
        assert!(one(&lb, &fmt("xml", &[])).is_err());
        let rows = [lb.clone(), json!({"id": "b", "name": "api"})];
        assert_eq!(
            list(&rows, &["id", "name"], &fmt("value", &[])).unwrap(),
            "a web\nb api\n"
        );
    }

    #[test]
    fn status_tree_is_drawn() {
        let s = json!({"statuses": {"loadbalancer": {
            "id": "lb", "name": "web", "provisioning_status": "ACTIVE", "operating_status": "ONLINE",
            "listeners": [{"id": "l", "name": "", "provisioning_status": "ACTIVE", "operating_status": "ONLINE",
                "pools": [{"id": "p", "name": "pool", "provisioning_status": "ACTIVE", "operating_status": "ONLINE",
                    "health_monitor": {"id": "h", "name": "", "type": "HTTP", "provisioning_status": "ACTIVE", "operating_status": "ONLINE"},
                    "members": [{"id": "m", "name": "", "address": "127.0.0.1", "protocol_port": 8080,
                        "provisioning_status": "ACTIVE", "operating_status": "ONLINE"}]}]}]}}});
        let t = tree(&s, &fmt("table", &[])).unwrap();
        assert_eq!(
            t,
            "loadbalancer web (lb) ACTIVE ONLINE\n\
             └── listener (l) ACTIVE ONLINE\n    \
             └── pool pool (p) ACTIVE ONLINE\n        \
             ├── healthmonitor (h) ACTIVE ONLINE\n        \
             └── member 127.0.0.1:8080 (m) ACTIVE ONLINE\n"
        );
    }
}
