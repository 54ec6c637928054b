//! [`ConfigError`]: what is wrong with a config file, and where (the key path).

use std::fmt;

/// Result of a config check.
pub type CResult<T> = Result<T, ConfigError>;

/// A configuration error: a value of the wrong type or out of range, or a file that cannot
/// be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path of the offending value (e.g. `osc.processing.downsampling_factor`,
    /// `outputs[1].port`); empty for file-level errors (missing/unreadable file, JSON syntax
    /// error, top level not an object).
    pub path: String,
    /// Human-readable description of the problem.
    pub message: String,
}

impl ConfigError {
    /// An error at key path `path`.
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// A file-level error (no key path).
    pub fn file(message: impl Into<String>) -> Self {
        ConfigError::at("", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config error: {}", self.message)
        } else {
            write!(f, "config error at {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
