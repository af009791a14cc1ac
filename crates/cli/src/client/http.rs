//! The HTTP side of the client: one Octavia v2 endpoint, its auth headers, and errors as one
//! readable line with the API's faultstring.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::Value;

/// How requests identify the caller. `noauth` sends the project as Octavia's noauth headers;
/// a token is sent as `X-Auth-Token` (what Keystone issues; Keystone password auth will add
/// a variant that obtains one).
#[derive(Clone, Debug)]
pub struct Auth {
    pub project: Option<String>,
    pub token: Option<String>,
}

/// A failed client operation: the message printed after `rocta: `.
#[derive(Debug)]
pub struct Failure(pub String);

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(e: T) -> Failure {
        Failure(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// An Octavia v2 endpoint.
pub struct Api {
    base: String,
    auth: Auth,
    http: Client,
}

/// What came back.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Api {
    pub fn new(endpoint: &str, auth: Auth) -> Result<Api> {
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api {
            base: endpoint.trim_end_matches('/').to_string(),
            auth,
            http,
        })
    }

    /// Sends one request; any 4xx/5xx becomes a `Failure` carrying the faultstring.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer> {
        self.call_with(method, path, &[], body)
    }

    /// `call` with query parameters.
    pub fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let a = self.send(method, path, query, body)?;
        if a.status >= 400 {
            return Err(Failure(fault(a.status, &a.body)));
        }
        Ok(a)
    }

    /// Sends one request and returns whatever status came back.
    /// `path` is under the endpoint, or a whole URL (pagination links).
    pub fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self
            .http
            .request(method, &url)
            .query(query)
            .header("Accept", "application/json");
        if let Some(p) = &self.auth.project {
            req = req.header("X-Project-Id", p);
        }
        if let Some(t) = &self.auth.token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().map_err(|e| {
            // The innermost cause reads best ("Connection refused (os error 111)").
            let mut why: &dyn std::error::Error = &e;
            while let Some(s) = why.source() {
                why = s;
            }
            Failure(format!("cannot reach {}: {why}", self.base))
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .map_err(|e| Failure(format!("reading the answer from {url}: {e}")))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        Ok(self.call(Method::GET, path, None)?.body)
    }

    /// GET with query parameters; an error answer becomes a `Failure`.
    pub fn get_with(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        Ok(self.call_with(Method::GET, path, query, None)?.body)
    }
}

/// The one line for an error answer: Octavia's faultstring (or the body's text) and the status.
pub fn fault(status: u16, body: &Value) -> String {
    let msg = body
        .get("faultstring")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            body.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| body.as_str().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "no details given".into());
    format!("{msg} (HTTP {status})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn faults_read_as_one_line() {
        let b = json!({"faultcode": "Client", "faultstring": "Load Balancer x could not be found.", "debuginfo": null});
        assert_eq!(
            fault(404, &b),
            "Load Balancer x could not be found. (HTTP 404)"
        );
        assert_eq!(
            fault(502, &json!("Bad gateway\n")),
            "Bad gateway (HTTP 502)"
        );
        assert_eq!(fault(500, &Value::Null), "no details given (HTTP 500)");
    }
}
