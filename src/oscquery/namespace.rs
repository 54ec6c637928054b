//! The OSCQuery namespace, sans-IO: the tree of OSC addresses the bridge sends, as the OSCQuery
//! proposal (Vidvox) describes it in JSON, and the answer to one HTTP request target
//! (`/path?ATTRIBUTE`). No sockets here; `super::http` serves what [`respond`] returns.
//!
//! The bridge *sends* OSC; the namespace tells a receiver what arrives where: every method is
//! read-only (`ACCESS` 1), typed (`TYPE`, an OSC type tag string) and described (`DESCRIPTION`:
//! output, channels, stream, rate, downsampling). `VALUE`, `RANGE` and the other optional
//! attributes are not offered (queries for them answer 204), and neither is the websocket
//! `LISTEN` extension.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One OSC method (a leaf): an address the bridge sends to.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    /// Full OSC address, e.g. `/data/sample`.
    pub path: String,
    /// OSC type tag string without the comma, e.g. `ffff` or `iff…`.
    pub type_tag: String,
    /// Human-readable description.
    pub description: String,
}

/// Facts for `?HOST_INFO`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    /// Human-readable name of this bridge.
    pub name: String,
    /// Where the OSC goes (the first output's destination).
    pub osc_ip: String,
    /// The first output's destination port.
    pub osc_port: u16,
}

/// Everything the server describes at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `?HOST_INFO`.
    pub host: HostInfo,
    /// Every address, in any order; a path given twice keeps its first type and joins the
    /// descriptions.
    pub methods: Vec<Method>,
    /// Description of the root container.
    pub description: String,
}

/// Attributes this server supports (the `EXTENSIONS` of `HOST_INFO`; core attributes aside).
const EXTENSIONS: [(&str, bool); 10] = [
    ("ACCESS", true),
    ("DESCRIPTION", true),
    ("VALUE", false),
    ("RANGE", false),
    ("TAGS", false),
    ("EXTENDED_TYPE", false),
    ("UNIT", false),
    ("CLIPMODE", false),
    ("LISTEN", false),
    ("PATH_CHANGED", false),
];

/// Attributes the proposal defines that this server knows but does not offer (answer 204).
const UNSUPPORTED: [&str; 9] = [
    "VALUE",
    "RANGE",
    "TAGS",
    "EXTENDED_TYPE",
    "UNIT",
    "CLIPMODE",
    "CRITICAL",
    "OVERLOADS",
    "HTML",
];

/// A node of the tree.
#[derive(Debug, Default)]
struct Node {
    method: Option<(String, String)>, // (type tag, description)
    description: Option<String>,
    children: BTreeMap<String, Node>,
}

fn build(s: &Snapshot) -> Node {
    let mut root = Node {
        description: Some(s.description.clone()),
        ..Default::default()
    };
    for m in &s.methods {
        let mut n = &mut root;
        for part in m.path.split('/').filter(|p| !p.is_empty()) {
            n = n.children.entry(part.to_string()).or_default();
        }
        match &mut n.method {
            None => n.method = Some((m.type_tag.clone(), m.description.clone())),
            Some((_, d)) => {
                d.push_str("; also: ");
                d.push_str(&m.description);
            }
        }
    }
    root
}

fn full_path(parts: &[&str]) -> String {
    if parts.is_empty() {
        "/".to_string()
    } else {
        parts.iter().fold(String::new(), |mut a, p| {
            a.push('/');
            a.push_str(p);
            a
        })
    }
}

/// The JSON object of a node, with its whole sub-tree under `CONTENTS`.
fn node_json(n: &Node, parts: &mut Vec<String>) -> Value {
    let mut o = Map::new();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    o.insert("FULL_PATH".into(), Value::from(full_path(&refs)));
    if let Some((tag, desc)) = &n.method {
        o.insert("TYPE".into(), Value::from(tag.as_str()));
        o.insert("ACCESS".into(), Value::from(1));
        o.insert("DESCRIPTION".into(), Value::from(desc.as_str()));
    } else {
        o.insert("ACCESS".into(), Value::from(0));
        if let Some(d) = &n.description {
            o.insert("DESCRIPTION".into(), Value::from(d.as_str()));
        }
    }
    if !n.children.is_empty() {
        let mut c = Map::new();
        for (k, child) in &n.children {
            parts.push(k.clone());
            c.insert(k.clone(), node_json(child, parts));
            parts.pop();
        }
        o.insert("CONTENTS".into(), Value::Object(c));
    }
    Value::Object(o)
}

/// What one request gets: an HTTP status and, for 200, a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code (200, 204, 400, 404).
    pub status: u16,
    /// JSON body (empty unless 200; a short reason for errors).
    pub body: String,
}

impl Reply {
    fn ok(v: Value) -> Reply {
        Reply {
            status: 200,
            body: v.to_string(),
        }
    }
    fn err(status: u16, why: &str) -> Reply {
        Reply {
            status,
            body: if status == 204 {
                String::new()
            } else {
                json!({ "error": why }).to_string()
            },
        }
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Answers one request target (`/path`, `/path?ATTRIBUTE`, `/?HOST_INFO`; a `#fragment` is
/// ignored) against `s`.
pub fn respond(s: &Snapshot, target: &str) -> Reply {
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return Reply::err(400, "the path must start with /");
    }
    let Some(path) = percent_decode(path) else {
        return Reply::err(400, "bad percent escape in the path");
    };
    let attr = match query {
        None | Some("") => None,
        Some(q) => {
            // `?TYPE`, also tolerated as `?TYPE=` or with more `&…` after it.
            let a = q.split('&').next().unwrap_or("");
            Some(a.split('=').next().unwrap_or("").to_string())
        }
    };
    if attr.as_deref() == Some("HOST_INFO") {
        let mut ext = Map::new();
        for (k, v) in EXTENSIONS {
            ext.insert(k.into(), Value::from(v));
        }
        return Reply::ok(json!({
            "NAME": s.host.name,
            "OSC_IP": s.host.osc_ip,
            "OSC_PORT": s.host.osc_port,
            "OSC_TRANSPORT": "UDP",
            "EXTENSIONS": Value::Object(ext),
        }));
    }
    let root = build(s);
    let mut n = &root;
    let mut parts = Vec::new();
    for p in path.split('/').filter(|p| !p.is_empty()) {
        match n.children.get(p) {
            Some(c) => {
                n = c;
                parts.push(p.to_string());
            }
            None => return Reply::err(404, "no such OSC address"),
        }
    }
    let full = node_json(n, &mut parts);
    match attr {
        None => Reply::ok(full),
        Some(a) => match a.as_str() {
            "FULL_PATH" | "TYPE" | "ACCESS" | "DESCRIPTION" | "CONTENTS" => match full.get(&a) {
                Some(v) => {
                    let mut o = Map::new();
                    o.insert(a.clone(), v.clone());
                    Reply::ok(Value::Object(o))
                }
                None => Reply::err(204, "attribute not present on this node"),
            },
            other if UNSUPPORTED.contains(&other) => {
                Reply::err(204, "attribute not supported by this server")
            }
            _ => Reply::err(400, "unknown attribute"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            host: HostInfo {
                name: "openephys-zmq2osc".into(),
                osc_ip: "127.0.0.1".into(),
                osc_port: 10000,
            },
            description: "Open Ephys".into(),
            methods: vec![
                Method {
                    path: "/data/sample".into(),
                    type_tag: "ffff".into(),
                    description: "4 channels".into(),
                },
                Method {
                    path: "/data/batch/1".into(),
                    type_tag: "iffff".into(),
                    description: "batch of 1".into(),
                },
                Method {
                    path: "/data/sample".into(),
                    type_tag: "ff".into(),
                    description: "second output".into(),
                },
            ],
        }
    }

    fn get(target: &str) -> (u16, Value) {
        let r = respond(&snap(), target);
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&r.body).unwrap()
        };
        (r.status, v)
    }

    #[test]
    fn root_holds_the_whole_tree() {
        let (st, v) = get("/");
        assert_eq!(st, 200);
        assert_eq!(v["FULL_PATH"], "/");
        let s = &v["CONTENTS"]["data"]["CONTENTS"]["sample"];
        assert_eq!(s["FULL_PATH"], "/data/sample");
        assert_eq!(s["TYPE"], "ffff");
        assert_eq!(s["ACCESS"], 1);
        assert_eq!(s["DESCRIPTION"], "4 channels; also: second output");
        assert_eq!(
            v["CONTENTS"]["data"]["CONTENTS"]["batch"]["CONTENTS"]["1"]["TYPE"],
            "iffff"
        );
        assert!(s.get("CONTENTS").is_none());
    }

    #[test]
    fn sub_paths_attributes_and_errors() {
        assert_eq!(get("/data/sample").1["TYPE"], "ffff");
        assert_eq!(get("/data/sample/").1["FULL_PATH"], "/data/sample");
        assert_eq!(get("/data/sample?TYPE").1, json!({"TYPE": "ffff"}));
        assert_eq!(get("/data/sample?ACCESS#frag").1, json!({"ACCESS": 1}));
        assert_eq!(
            get("/data?CONTENTS").1["CONTENTS"]["sample"]["TYPE"],
            "ffff"
        );
        assert_eq!(get("/data/sample?CONTENTS").0, 204);
        assert_eq!(get("/data?TYPE").0, 204);
        assert_eq!(get("/data/sample?VALUE").0, 204);
        assert_eq!(get("/data/sample?NONSENSE").0, 400);
        assert_eq!(get("/nope").0, 404);
        assert_eq!(get("/data/sample/x").0, 404);
        assert_eq!(get("nope").0, 400);
        assert_eq!(get("/%zz").0, 400);
        assert_eq!(get("/d%61ta/sample").1["TYPE"], "ffff");
    }

    #[test]
    fn host_info_whatever_the_path() {
        for t in ["/?HOST_INFO", "/data?HOST_INFO"] {
            let (st, v) = get(t);
            assert_eq!(st, 200);
            assert_eq!(v["NAME"], "openephys-zmq2osc");
            assert_eq!(v["OSC_IP"], "127.0.0.1");
            assert_eq!(v["OSC_PORT"], 10000);
            assert_eq!(v["OSC_TRANSPORT"], "UDP");
            assert_eq!(v["EXTENSIONS"]["ACCESS"], true);
            assert_eq!(v["EXTENSIONS"]["VALUE"], false);
        }
    }
}
