//! Typed, validated configuration for openephys-zmq2osc.
//!
//! Accepts the `config.json` files of the original Python bridge
//! (`peachiia/openephys-zmq2osc`, both the "minimal" format written by `--create-config` and
//! the "full" format written by `--create-config-dev`, see [`defaults`]) with the same
//! defaults and the same key precedence, plus a few new keys of ours (see
//! [`PerformanceConfig`] and the `outputs` list, [`outputs`]).
//!
//! Every key is defined once, as a field of a serde-derived section struct ([`schema`]),
//! with its check ([`values`]) and its default (the section's `Default`). Loading:
//!
//! 1. the text is parsed as JSON (syntax errors name the line and column);
//! 2. the sections are deserialized through `serde_ignored` (every key no struct knows is a
//!    warning naming its full path: `unknown config key 'outputs[1].bar' ignored`) and
//!    `serde_path_to_error` (a bad value is a [`ConfigError`] naming its path:
//!    `config error at performance.pin_threads: expected true or false, got "yes"`);
//! 3. the minimal format's spellings are folded in (`performance.zmq_*` win over `zmq.*`,
//!    `osc.processing.enable_batching` over `performance.enable_batching`), the presets of
//!    `performance.mode` fill the keys the file did not give ([`Config::apply_mode_presets`]), and each
//!    `outputs` entry is resolved into an [`OutputSpec`] with defaults from `osc.*`.
//!
//! Differences from the original, on purpose: an unknown key is a warning instead of
//! silently resetting *everything* to defaults; a value of the wrong type or out of range is
//! an error instead of being accepted; integral floats (`30.0`) are accepted where an
//! integer is expected.

pub mod defaults;
mod error;
pub mod outputs;
mod presets;
pub mod schema;
pub mod sources;
pub mod values;

pub use defaults::{FULL_CONFIG_JSON, MINIMAL_CONFIG_JSON};
pub use error::{CResult, ConfigError};
pub use outputs::{parse_channel_list, OutputEntry};
pub use schema::*;
pub use sources::{SourceEntry, SourceSpec, DEFAULT_SOURCE_NAME, MAX_SOURCES};

pub use crate::output::{BundleMode, Mode as OutputFormatKind, OutputSpec, SIZE_PROFILES};

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Name of the configuration file looked up in the current directory when no explicit path
/// is given.
pub const DEFAULT_CONFIG_FILE: &str = "config.json";

/// The whole configuration (sections of `config.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, expecting = "a JSON object")]
pub struct Config {
    /// Section `zmq`: connection to the Open Ephys ZMQ Interface.
    #[serde(deserialize_with = "values::object")]
    pub zmq: ZmqConfig,
    /// Section `osc`: OSC output (with nested `processing`).
    #[serde(deserialize_with = "values::object")]
    pub osc: OscConfig,
    /// Section `ui`: terminal UI.
    #[serde(deserialize_with = "values::object")]
    pub ui: UiConfig,
    /// Section `app`: application metadata and logging.
    #[serde(deserialize_with = "values::object")]
    pub app: AppConfig,
    /// Section `performance`: queueing, batching mode and our resource limits.
    #[serde(deserialize_with = "values::object")]
    pub performance: PerformanceConfig,
    /// Section `oscquery` (**new**): the OSCQuery server, off when absent. Not among the
    /// logged non-default settings (the start-up line names the server's address instead).
    #[serde(deserialize_with = "values::some", skip_serializing)]
    pub oscquery: Option<OscQueryConfig>,
    /// `outputs` (**new**) as written in the file (resolved into [`Config::outputs`] at load).
    #[serde(
        rename = "outputs",
        deserialize_with = "outputs::output_list",
        skip_serializing
    )]
    pub output_entries: Vec<OutputEntry>,
    /// The outputs of the `outputs` list, each with its own destination, format, channel map
    /// and processing. Empty = the original's single output from `osc.*` (see
    /// [`Config::output_specs`]).
    #[serde(skip)]
    pub outputs: Vec<OutputSpec>,
    /// Key paths given explicitly in the file (so a `performance.mode` preset never
    /// overrides them).
    #[serde(skip)]
    pub explicit: BTreeSet<String>,
}

/// Equality of the settings (how the file spelled them does not matter).
impl PartialEq for Config {
    fn eq(&self, o: &Self) -> bool {
        self.zmq == o.zmq
            && self.osc == o.osc
            && self.ui == o.ui
            && self.app == o.app
            && self.performance == o.performance
            && self.outputs == o.outputs
            && self.oscquery == o.oscquery
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `zmq.host`, `outputs[1].bar`, … for a key serde ignored (control characters escaped).
fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => join(&ignored_path(parent), &key.escape_debug().to_string()),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn collect_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                collect_paths(v, &join(prefix, k), out);
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.to_string());
            }
        }
    }
}

impl Config {
    /// Parses and validates a `config.json` text (minimal or full format).
    ///
    /// Returns the configuration and a list of warnings (unknown keys, which are ignored; a
    /// minimal-format key overriding a different value given under its full-format
    /// spelling; presets applied). Missing keys keep their defaults.
    ///
    /// Precedence (as the original): `performance.zmq_not_responding_timeout`,
    /// `performance.zmq_data_timeout_seconds` and `performance.zmq_auto_reinit_on_timeout`
    /// win over the corresponding `zmq.*` keys; `osc.processing.enable_batching` wins over
    /// `performance.enable_batching`.
    ///
    /// # Errors
    /// JSON syntax errors (with serde_json's line/column), a top level or section that is
    /// not an object, and any value of the wrong type or out of range (the error names the
    /// key path).
    pub fn from_json_str(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::file(format!("invalid JSON: {e}")))?;
        if !root.is_object() {
            return Err(ConfigError::file(format!(
                "expected a JSON object at the top level, got {}",
                values::describe(&root)
            )));
        }
        let mut w = Vec::new();
        let mut on_unknown = |p: serde_ignored::Path<'_>| {
            w.push(format!("unknown config key '{}' ignored", ignored_path(&p)));
        };
        let de = serde_ignored::Deserializer::new(&root, &mut on_unknown);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::at(&path, e.inner().to_string())
        })?;
        collect_paths(&root, "", &mut cfg.explicit);
        cfg.fold_minimal_spellings(&mut w);
        w.extend(cfg.apply_mode_presets());
        let entries = std::mem::take(&mut cfg.output_entries);
        let mut outputs = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            outputs.push(e.resolve(i, &cfg, &mut w)?);
        }
        cfg.outputs = outputs;
        cfg.output_entries = entries;
        cfg.check_sources(&mut w)?;
        Ok((cfg, w))
    }

    /// Folds the minimal format's spellings into their keys (they win, as in the original),
    /// warning when the file also gave the other spelling a different value.
    fn fold_minimal_spellings(&mut self, w: &mut Vec<String>) {
        let explicit = self.explicit.clone();
        let given = |k: &str| explicit.contains(k);
        let p = &mut self.performance;
        let z = &mut self.zmq;
        let jf = |f: f64| Value::from(f).to_string();
        if let Some(new) = p.zmq_not_responding_timeout.take() {
            if given("zmq.not_responding_timeout") && new != z.not_responding_timeout {
                w.push(format!(
                    "performance.zmq_not_responding_timeout = {} overrides zmq.not_responding_timeout = {}",
                    jf(new),
                    jf(z.not_responding_timeout)
                ));
            }
            z.not_responding_timeout = new;
        }
        if let Some(new) = p.zmq_data_timeout_seconds.take() {
            if given("zmq.data_timeout_seconds") && new != z.data_timeout_seconds {
                w.push(format!(
                    "performance.zmq_data_timeout_seconds = {} overrides zmq.data_timeout_seconds = {}",
                    jf(new),
                    jf(z.data_timeout_seconds)
                ));
            }
            z.data_timeout_seconds = new;
        }
        if let Some(new) = p.zmq_auto_reinit_on_timeout.take() {
            if given("zmq.auto_reinit_on_timeout") && new != z.auto_reinit_on_timeout {
                w.push(format!(
                    "performance.zmq_auto_reinit_on_timeout = {new} overrides zmq.auto_reinit_on_timeout = {}",
                    z.auto_reinit_on_timeout
                ));
            }
            z.auto_reinit_on_timeout = new;
        }
        if let Some(b) = self.osc.processing.enable_batching.take() {
            if given("performance.enable_batching") && b != p.enable_batching {
                w.push(format!(
                    "osc.processing.enable_batching = {b} overrides performance.enable_batching = {}",
                    p.enable_batching
                ));
            }
            p.enable_batching = b;
        }
    }

    /// Loads the configuration file.
    ///
    /// `None` → `config.json` in the current directory; if it does not exist the defaults
    /// are returned with the note `Config file config.json not found, using defaults`.
    /// `Some(path)` → that file, which must exist.
    ///
    /// # Errors
    /// An explicit file that does not exist, read errors and JSON syntax errors (naming the
    /// file), and every error of [`Config::from_json_str`].
    pub fn load(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        Config::load_from(Path::new(""), path)
    }

    /// Like [`Config::load`], but with `None` looks for `config.json` in `default_dir`
    /// instead of the current directory. An explicit `path` is used as given.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_from(
        default_dir: &Path,
        path: Option<&Path>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let file = match path {
            Some(p) => p.to_path_buf(),
            None => default_dir.join(DEFAULT_CONFIG_FILE),
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if path.is_none() {
                    return Ok((
                        Config::default(),
                        vec![format!(
                            "Config file {DEFAULT_CONFIG_FILE} not found, using defaults"
                        )],
                    ));
                }
                return Err(ConfigError::file(format!(
                    "config file '{}' not found",
                    file.display()
                )));
            }
            Err(e) => {
                return Err(ConfigError::file(format!(
                    "cannot read config file '{}': {e}",
                    file.display()
                )));
            }
        };
        Config::from_json_str(&text).map_err(|e| {
            if e.path.is_empty() {
                ConfigError::file(format!("config file '{}': {}", file.display(), e.message))
            } else {
                e
            }
        })
    }

    /// Batch size actually used: `osc.processing.batch_size` when
    /// `performance.enable_batching` is true, else 1 (the original forces B = 1 in sample
    /// mode).
    pub fn effective_batch_size(&self) -> u32 {
        if self.performance.enable_batching {
            self.osc.processing.batch_size
        } else {
            1
        }
    }

    /// One line per leaf value that differs from the default, in key order (the order of
    /// the full format, new keys last), e.g. `osc.port = 9000 (default 10000)`. Values are
    /// rendered as JSON.
    pub fn non_default_settings(&self) -> Vec<String> {
        let defaults = Config::default().leaves();
        self.leaves()
            .into_iter()
            .zip(defaults)
            .filter(|((_, v), (_, d))| v != d)
            .map(|((k, v), (_, d))| format!("{k} = {v} (default {d})"))
            .collect()
    }

    /// Every leaf value as (key path, JSON text), in the order of the structs' fields.
    fn leaves(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        // Serializing plain structs of numbers, strings and bools cannot fail.
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut de = serde_json::Deserializer::from_str(&text);
        let _ = Leaves {
            prefix: String::new(),
            out: &mut out,
        }
        .deserialize(&mut de);
        out
    }
}

/// Walks serialized JSON in document order, collecting `(path, value as JSON)` per leaf.
struct Leaves<'a> {
    prefix: String,
    out: &'a mut Vec<(String, String)>,
}

impl<'de> DeserializeSeed<'de> for Leaves<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Leaves<'_> {
    fn leaf(self, v: Value) {
        self.out.push((self.prefix, v.to_string()));
    }
}

impl<'de> Visitor<'de> for Leaves<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            map.next_value_seed(Leaves {
                prefix: join(&self.prefix, &k),
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(Value::from(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.leaf(Value::from(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(Value::from(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.leaf(Value::from(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.leaf(Value::from(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf(Value::Null);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
