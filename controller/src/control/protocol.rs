//! The control socket's protocol: JSON lines. A client writes one request
//! object per line and reads one response object per line, in order, on
//! one connection for as long as it likes.
//!
//! Requests (`cmd` names the verb; unknown keys are errors):
//! ```text
//! {"cmd":"dump-flows"}
//! {"cmd":"dump-ports"}
//! {"cmd":"stats"}
//! {"cmd":"add-flow","table":0,"flow":"{name: web, priority: 10, actions: [flood]}"}
//! {"cmd":"del-flows","name":"web"}            or "table": 1
//! {"cmd":"reload"}                            or "file": "/abs/path.yaml"
//! {"cmd":"trace","in_port":"1","frame":"ffff..."}
//! ```
//! Responses: `{"ok":true,"result":...}` or `{"ok":false,"error":"..."}`;
//! `result` is the [`show`](crate::switchd::show) row list or report of
//! the verb, for `trace` `{"text":"...","trace":{...}}` (the offline
//! trace's text and JSON object).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request line accepted (a flow in YAML is far shorter).
pub const MAX_LINE: usize = 1 << 20;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    // Empty braces, not unit variants: serde lets unit variants of an
    // internally tagged enum take unknown keys.
    DumpFlows {},
    DumpPorts {},
    Stats {},
    AddFlow {
        #[serde(default)]
        table: u8,
        flow: String,
    },
    DelFlows {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<u8>,
    },
    Reload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    Trace {
        in_port: String,
        frame: String,
    },
}

/// One response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(result: Value) -> Self {
        Response {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            result: None,
            error: Some(msg.into()),
        }
    }

    /// The response as one line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"ok\":false,\"error\":\"response: {e}\"}}"))
    }
}

/// Parses a request line; the error is the response to send.
pub fn parse_request(line: &str) -> Result<Request, Response> {
    serde_json::from_str(line).map_err(|e| Response::error(format!("bad request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_errors() {
        for r in [
            Request::DumpFlows {},
            Request::DumpPorts {},
            Request::Stats {},
            Request::AddFlow {
                table: 2,
                flow: "{name: a}".into(),
            },
            Request::DelFlows {
                name: None,
                table: Some(1),
            },
            Request::Reload { file: None },
            Request::Trace {
                in_port: "p1".into(),
                frame: "00".into(),
            },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(parse_request(&line).unwrap(), r, "{line}");
        }
        assert_eq!(
            parse_request(r#"{"cmd":"dump-flows"}"#).unwrap(),
            Request::DumpFlows {}
        );
        for bad in [
            "",
            "{",
            "[]",
            r#"{"cmd":"explode"}"#,
            r#"{"cmd":"stats","x":1}"#,
            r#"{"cmd":"add-flow"}"#,
            r#"{"cmd":"del-flows","table":999}"#,
        ] {
            let e = parse_request(bad).unwrap_err();
            assert!(!e.ok);
            assert!(e.error.unwrap().starts_with("bad request"), "{bad}");
        }
        let line = Response::error("x").to_line();
        assert_eq!(line, r#"{"ok":false,"error":"x"}"#);
    }
}
