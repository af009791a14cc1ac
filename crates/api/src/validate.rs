//! Request-body validation with WSME's messages: unknown attributes, mandatory fields, types,
//! enums, ranges and lengths are checked here, generically, from a per-resource field table;
//! cross-field and database rules live with each resource.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// A field's type.
#[derive(Clone, Copy)]
pub enum T {
    /// A string of at most this many characters.
    Str(usize),
    Uuid,
    Bool,
    /// An integer within the bounds.
    Int(i64, i64),
    /// One of an enum's values: (is it valid, the choices for the message, the values).
    Enum(fn(&str) -> bool, fn() -> String, fn() -> Vec<&'static str>),
    Ip,
    /// A list of strings of at most this many characters each.
    StrList(usize),
    UuidList,
    /// A JSON object of string values.
    StrDict,
    /// A nested object checked against its own field table.
    Obj(&'static [F]),
    /// A list of objects each checked against a field table.
    ObjList(&'static [F]),
    /// One of these numbers.
    Num(&'static [f64]),
    /// Anything; checked by the resource (inline children of a graph create).
    Any,
}

/// A field: name, type, and whether a create must give it.
#[derive(Clone, Copy)]
pub struct F {
    pub name: &'static str,
    pub ty: T,
    pub required: bool,
}

/// Shorthand for an optional field.
pub const fn opt(name: &'static str, ty: T) -> F {
    F {
        name,
        ty,
        required: false,
    }
}

/// Shorthand for a mandatory field (on create).
pub const fn req(name: &'static str, ty: T) -> F {
    F {
        name,
        ty,
        required: true,
    }
}

/// Defines `T::Enum` from a model enum.
#[macro_export]
macro_rules! en {
    ($e:ty) => {
        $crate::validate::T::Enum(
            |s| <$e>::parse(s).is_some(),
            <$e>::choices,
            || <$e>::ALL.iter().map(|v| v.as_str()).collect(),
        )
    };
}

/// Parses a request body as JSON (Octavia's message when it is not).
pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("Request is not in valid JSON format"))
}

/// Renders a value the way WSME quotes it in messages.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "<class 'str'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
        Value::Null => "<class 'NoneType'>",
    }
}

fn wrong_type(name: &str, v: &Value, expected: &str) -> ApiError {
    ApiError::invalid_field(
        name,
        &show(v),
        format!("Wrong type. Expected '{expected}', got '{}'", py_type(v)),
    )
}

/// Takes `{"<key>": {...}}` from the body and checks the object against `spec`.
/// `arg` is the controller argument name used in WSME's unknown-attribute message.
/// `create` enforces mandatory fields.
pub fn envelope(
    body: &Value,
    arg: &str,
    key: &str,
    spec: &[F],
    create: bool,
) -> ApiResult<Map<String, Value>> {
    let Value::Object(root) = body else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: '{}'. Wrong type.",
            show(body)
        )));
    };
    let unknown: Vec<&str> = root
        .keys()
        .filter(|k| *k != key)
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument {arg}: {}",
            unknown.join(", ")
        )));
    }
    match root.get(key) {
        Some(Value::Object(obj)) => check_object(obj, &format!("{arg}.{key}"), spec, create),
        Some(other) => Err(ApiError::invalid_field(key, &show(other), "Wrong type.")),
        None => Err(ApiError::invalid_field(
            key,
            "Unset",
            "Mandatory field missing.",
        )),
    }
}

/// Checks one object against a field table and returns it with WSME's conversions applied
/// (numeric strings to integers, its boolean spellings to booleans; see [`wsme_int`],
/// [`wsme_bool`]), so what is stored is what Octavia would have stored.
pub fn check_object(
    obj: &Map<String, Value>,
    arg: &str,
    spec: &[F],
    create: bool,
) -> ApiResult<Map<String, Value>> {
    let unknown: Vec<&str> = obj
        .keys()
        .filter(|k| !spec.iter().any(|f| f.name == k.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument {arg}: {}",
            unknown.join(", ")
        )));
    }
    let mut out = obj.clone();
    for f in spec {
        match out.get_mut(f.name) {
            None | Some(Value::Null) if f.required && create => {
                return Err(ApiError::invalid_field(
                    f.name,
                    "Unset",
                    "Mandatory field missing.",
                ));
            }
            None | Some(Value::Null) => {}
            Some(v) => check_value(f.name, v, f.ty, arg)?,
        }
    }
    Ok(out)
}

/// WSME's `int(value)`: an integer as it is, a float truncated, a boolean as 0 or 1, a string
/// holding a decimal integer (spaces and a sign allowed) parsed.
fn wsme_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite() && f.abs() < 9.2e18).then_some(f.trunc() as i64)
        }),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// WSME's booleans: a boolean, an integer (non-zero is true), or one of the strings
/// `true t yes y on 1` / `false f no n off 0` (exactly so spelled).
fn wsme_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
            "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn check_value(name: &str, v: &mut Value, ty: T, arg: &str) -> ApiResult<()> {
    match ty {
        T::Str(max) => {
            let s = v
                .as_str()
                .ok_or_else(|| wrong_type(name, v, "<class 'str'>"))?;
            if s.chars().count() > max {
                return Err(ApiError::invalid_field(
                    name,
                    s,
                    format!("Value should have a maximum character requirement of {max}"),
                ));
            }
        }
        T::Uuid => {
            let s = v
                .as_str()
                .ok_or_else(|| wrong_type(name, v, "<class 'str'>"))?;
            if uuid::Uuid::try_parse(s).is_err() {
                return Err(ApiError::invalid_field(
                    name,
                    s,
                    "Value should be UUID format",
                ));
            }
        }
        T::Bool => {
            let b = wsme_bool(v).ok_or_else(|| wrong_type(name, v, "<class 'bool'>"))?;
            *v = Value::Bool(b);
        }
        T::Int(min, max) => {
            let n = wsme_int(v).ok_or_else(|| {
                ApiError::invalid_field(name, &show(v), "Value should be an integer")
            })?;
            if n < min {
                return Err(ApiError::invalid_field(
                    name,
                    &show(v),
                    format!("Value should be greater or equal to {min}"),
                ));
            }
            if n > max {
                return Err(ApiError::invalid_field(
                    name,
                    &show(v),
                    format!("Value should be lower or equal to {max}"),
                ));
            }
            *v = Value::from(n);
        }
        T::Enum(valid, choices, _) => {
            let ok = v.as_str().is_some_and(valid);
            if !ok {
                return Err(ApiError::invalid_field(
                    name,
                    &show(v),
                    format!("Value should be one of: {}", choices()),
                ));
            }
        }
        T::Ip => {
            let ok = v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok());
            if !ok {
                return Err(ApiError::invalid_field(
                    name,
                    &show(v),
                    "Value should be IPv4 or IPv6 format",
                ));
            }
        }
        T::StrList(_) | T::UuidList if !v.is_array() => {
            return Err(wrong_type(name, v, "<class 'list'>"));
        }
        T::StrList(max) => {
            for item in v.as_array_mut().into_iter().flatten() {
                check_value(name, item, T::Str(max), arg)?;
            }
        }
        T::UuidList => {
            for item in v.as_array_mut().into_iter().flatten() {
                check_value(name, item, T::Uuid, arg)?;
            }
        }
        T::StrDict if !v.is_object() => {
            return Err(wrong_type(name, v, "<class 'dict'>"));
        }
        T::StrDict => {
            for item in v.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                check_value(name, item, T::Str(255), arg)?;
            }
        }
        T::Obj(spec) => {
            let m = v
                .as_object()
                .ok_or_else(|| wrong_type(name, v, "<class 'dict'>"))?;
            *v = Value::Object(check_object(m, &format!("{arg}.{name}"), spec, true)?);
        }
        T::ObjList(_) if !v.is_array() => {
            return Err(wrong_type(name, v, "<class 'list'>"));
        }
        T::ObjList(spec) => {
            for item in v.as_array_mut().into_iter().flatten() {
                let m = item
                    .as_object()
                    .ok_or_else(|| wrong_type(name, item, "<class 'dict'>"))?;
                *item = Value::Object(check_object(m, &format!("{arg}.{name}"), spec, true)?);
            }
        }
        T::Num(allowed) => {
            let ok = v.as_f64().is_some_and(|n| allowed.contains(&n));
            if !ok {
                let choices: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
                return Err(ApiError::invalid_field(
                    name,
                    &show(v),
                    format!("Value should be one of: {}", choices.join(", ")),
                ));
            }
        }
        T::Any => {}
    }
    Ok(())
}

/// Typed reads from a validated object. `None` = absent or null.
pub trait Get {
    fn has(&self, k: &str) -> bool;
    fn is_null(&self, k: &str) -> bool;
    fn s(&self, k: &str) -> Option<String>;
    fn b(&self, k: &str) -> Option<bool>;
    fn i(&self, k: &str) -> Option<i64>;
    fn f(&self, k: &str) -> Option<f64>;
    fn id(&self, k: &str) -> Option<uuid::Uuid>;
    fn list(&self, k: &str) -> Option<Vec<String>>;
    fn parse<E>(&self, k: &str, p: fn(&str) -> Option<E>) -> Option<E>;
}

impl Get for Map<String, Value> {
    fn has(&self, k: &str) -> bool {
        self.contains_key(k)
    }
    fn is_null(&self, k: &str) -> bool {
        matches!(self.get(k), Some(Value::Null))
    }
    fn s(&self, k: &str) -> Option<String> {
        self.get(k).and_then(Value::as_str).map(str::to_string)
    }
    fn b(&self, k: &str) -> Option<bool> {
        self.get(k).and_then(Value::as_bool)
    }
    fn i(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(Value::as_i64)
    }
    fn f(&self, k: &str) -> Option<f64> {
        self.get(k).and_then(Value::as_f64)
    }
    fn id(&self, k: &str) -> Option<uuid::Uuid> {
        self.get(k)
            .and_then(Value::as_str)
            .and_then(|s| uuid::Uuid::try_parse(s).ok())
    }
    fn list(&self, k: &str) -> Option<Vec<String>> {
        self.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    }
    fn parse<E>(&self, k: &str, p: fn(&str) -> Option<E>) -> Option<E> {
        self.get(k).and_then(Value::as_str).and_then(p)
    }
}

/// Parses a path id; an id that is not a UUID cannot name anything (404 as Octavia).
pub fn path_id(raw: &str, resource: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::try_parse(raw).map_err(|_| ApiError::not_found(resource, raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: &[F] = &[
        req("protocol_port", T::Int(1, 65535)),
        opt("name", T::Str(3)),
        opt("admin_state_up", T::Bool),
        opt("vip_subnet_id", T::Uuid),
    ];

    fn run(v: Value) -> String {
        envelope(&json!({ "x": v }), "x_", "x", SPEC, true)
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    }

    #[test]
    fn conversions_match_wsme() {
        let ok = |v: Value| envelope(&json!({ "x": v }), "x_", "x", SPEC, true).unwrap();
        let m = ok(json!({"protocol_port": " +80 ", "admin_state_up": "on"}));
        assert_eq!(
            (&m["protocol_port"], &m["admin_state_up"]),
            (&json!(80), &json!(true))
        );
        let m = ok(json!({"protocol_port": 80.7, "admin_state_up": 0}));
        assert_eq!(
            (&m["protocol_port"], &m["admin_state_up"]),
            (&json!(80), &json!(false))
        );
        for t in ["true", "t", "yes", "y", "on", "1"] {
            assert_eq!(wsme_bool(&json!(t)), Some(true), "{t}");
        }
        for f in ["false", "f", "no", "n", "off", "0"] {
            assert_eq!(wsme_bool(&json!(f)), Some(false), "{f}");
        }
        for bad in [json!("TRUE"), json!(""), json!(0.5), json!([]), json!({})] {
            assert_eq!(wsme_bool(&bad), None, "{bad}");
        }
        assert_eq!(wsme_int(&json!(f64::MAX)), None);
        assert_eq!(wsme_int(&json!("1e3")), None);
    }

    #[test]
    fn messages_match_wsme() {
        assert_eq!(
            run(json!({"protocol_port": 1, "bogus": 1})),
            "Unknown attribute for argument x_.x: bogus"
        );
        assert_eq!(run(json!({})), "Invalid input for field/attribute protocol_port. Value: 'Unset'. Mandatory field missing.");
        assert_eq!(run(json!({"protocol_port": 70000})), "Invalid input for field/attribute protocol_port. Value: '70000'. Value should be lower or equal to 65535");
        assert!(run(json!({"protocol_port": 1, "name": "abcd"}))
            .contains("maximum character requirement of 3"));
        assert!(run(json!({"protocol_port": 1, "admin_state_up": "Yes"})).contains("Wrong type"));
        assert!(run(json!({"protocol_port": "x"})).contains("should be an integer"));
        assert!(run(json!({"protocol_port": [1]})).contains("should be an integer"));
        assert_eq!(
            run(json!({"protocol_port": "80", "admin_state_up": "yes"})),
            ""
        );
        assert!(run(json!({"protocol_port": 1, "vip_subnet_id": "nope"})).contains("UUID format"));
        assert_eq!(run(json!({"protocol_port": 1, "name": null})), "");
    }
}
