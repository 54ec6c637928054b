//! `zmq.sources` (new): several ZMQ publishers in one bridge (two probes through two ZMQ
//! Interface plugins, or two GUIs on two hosts). Each entry is `{name, host, data_port}`;
//! `host` and `data_port` default to `zmq.host` and `zmq.data_port`, the heartbeat settings
//! are shared from `zmq.*`. Without the key the original's single `zmq` section is the one
//! source (named [`DEFAULT_SOURCE_NAME`]).

use super::error::{CResult, ConfigError};
use super::values;
use super::Config;
use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};
use serde::Deserialize;

/// Most entries accepted in `zmq.sources`.
pub const MAX_SOURCES: usize = 16;

/// Name of the one source of a config without `zmq.sources` (what an output's `source` may
/// name then).
pub const DEFAULT_SOURCE_NAME: &str = "zmq";

/// Longest source name (bytes).
pub const MAX_SOURCE_NAME: usize = 32;

/// One entry of `zmq.sources` as written; `None` = not given.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, expecting = "a source object")]
pub struct SourceEntry {
    /// `name` (required, unique; 1 to [`MAX_SOURCE_NAME`] of `A-Z a-z 0-9 _ - .`, not starting
    /// with `.`): what outputs name in `source`.
    #[serde(deserialize_with = "values::some_nonempty")]
    pub name: Option<String>,
    /// `host` (default `zmq.host`).
    #[serde(deserialize_with = "values::some_nonempty")]
    pub host: Option<String>,
    /// `data_port` (default `zmq.data_port`; heartbeat on `data_port + 1`).
    #[serde(deserialize_with = "values::some_int::<_, _, 1, 65534>")]
    pub data_port: Option<u16>,
}

/// One resolved source: a ZMQ publisher the bridge subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Name (unique).
    pub name: String,
    /// Publisher host.
    pub host: String,
    /// Data (SUB) port; the heartbeat goes to `data_port + 1`.
    pub data_port: u16,
}

/// `zmq.sources`: an array of at most [`MAX_SOURCES`] source objects.
pub fn source_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SourceEntry>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<SourceEntry>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of source objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(values::Obj(e)) = seq.next_element::<values::Obj<SourceEntry>>()? {
                if out.len() == MAX_SOURCES {
                    return Err(A::Error::custom(format!("at most {MAX_SOURCES} sources")));
                }
                out.push(e);
            }
            if out.is_empty() {
                return Err(A::Error::custom(
                    "the list is empty (leave the key out for the single `zmq` source)",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(List)
}

impl Config {
    /// True when the file lists its sources (`zmq.sources`): the JSON stats then carry a
    /// `sources` array and the report a section per source. Without it everything is
    /// printed exactly as for the original's single source.
    pub fn sources_listed(&self) -> bool {
        !self.zmq.sources.is_empty()
    }

    /// The sources this config describes: `zmq.sources` (host and port defaulting to
    /// `zmq.host`, `zmq.data_port`), or the original's single `zmq` section, named
    /// [`DEFAULT_SOURCE_NAME`].
    pub fn source_specs(&self) -> Vec<SourceSpec> {
        if self.zmq.sources.is_empty() {
            return vec![SourceSpec {
                name: DEFAULT_SOURCE_NAME.into(),
                host: self.zmq.host.clone(),
                data_port: self.zmq.data_port,
            }];
        }
        self.zmq
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| SourceSpec {
                name: s.name.clone().unwrap_or_else(|| format!("source{i}")),
                host: s.host.clone().unwrap_or_else(|| self.zmq.host.clone()),
                data_port: s.data_port.unwrap_or(self.zmq.data_port),
            })
            .collect()
    }

    /// The index (into [`Config::source_specs`]) of the source each output of
    /// [`Config::output_specs`] carries: the one it names in `source`, else the first.
    pub fn output_source_indices(&self) -> Vec<usize> {
        let names: Vec<String> = self.source_specs().into_iter().map(|s| s.name).collect();
        self.output_specs()
            .iter()
            .map(|o| {
                o.source
                    .as_ref()
                    .and_then(|s| names.iter().position(|n| n == s))
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Checks the sources (names given and unique) and every output's `source` (must name
    /// one); warns about two sources on the same endpoint and about a source no output
    /// carries.
    pub(super) fn check_sources(&self, w: &mut Vec<String>) -> CResult<()> {
        for (i, s) in self.zmq.sources.iter().enumerate() {
            let Some(name) = &s.name else {
                return Err(ConfigError::at(
                    &format!("zmq.sources[{i}].name"),
                    "missing: every source needs a name (outputs refer to it in `source`)",
                ));
            };
            if name.len() > MAX_SOURCE_NAME
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
                || name.starts_with('.')
            {
                return Err(ConfigError::at(
                    &format!("zmq.sources[{i}].name"),
                    format!(
                        "'{name}': a source name is 1 to {MAX_SOURCE_NAME} of the characters A-Z a-z 0-9 _ - . \
                         and does not start with '.' (it becomes part of thread names, heartbeat \
                         uuids and --record file names)"
                    ),
                ));
            }
            if let Some(j) = self.zmq.sources[..i]
                .iter()
                .position(|o| o.name.as_deref() == Some(name))
            {
                return Err(ConfigError::at(
                    &format!("zmq.sources[{i}].name"),
                    format!("'{name}' is already the name of zmq.sources[{j}]"),
                ));
            }
        }
        let specs = self.source_specs();
        for (i, a) in specs.iter().enumerate() {
            if let Some(b) = specs[..i]
                .iter()
                .find(|b| b.host == a.host && b.data_port == a.data_port)
            {
                w.push(format!(
                    "sources '{}' and '{}' both subscribe to {}:{} (each gets every message)",
                    b.name, a.name, a.host, a.data_port
                ));
            }
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if let Some(src) = &o.source {
                if !specs.iter().any(|s| &s.name == src) {
                    let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                    return Err(ConfigError::at(
                        &format!("outputs[{i}].source"),
                        format!("no source named '{src}' (sources: {})", known.join(", ")),
                    ));
                }
            }
        }
        if self.sources_listed() {
            let fed = self.output_source_indices();
            for (i, s) in specs.iter().enumerate() {
                if !fed.contains(&i) {
                    w.push(format!(
                        "source '{}' feeds no output (name it in an output's \"source\"); its messages are received and counted only",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }
}
