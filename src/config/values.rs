//! Value checks shared by every config key: serde `deserialize_with` functions that read the
//! JSON value, check its type and range, and fail with a message that shows the value
//! (`expected an integer from 1 to 1000, got 30.5`). The key path is added by the caller
//! (`serde_path_to_error`), so a check never needs to know where it is used.
//!
//! Integral floats (`30.0`) are accepted where an integer is expected, as the original's
//! Python did.

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

/// Largest accepted value (in seconds) for the `zmq.*` timeouts/intervals.
pub const MAX_SECONDS: u64 = 86_400;
/// Largest accepted value (in milliseconds) for the `*_ms` intervals/timeouts.
pub const MAX_MILLIS: u64 = 86_400_000;

/// Short JSON rendering of a value for error messages (at most 80 characters).
pub fn describe(v: &Value) -> String {
    const MAX: usize = 80;
    let s = v.to_string();
    if s.chars().count() > MAX {
        let mut t: String = s.chars().take(MAX - 3).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Value::deserialize(d)
}

/// A JSON integer, or a float with an integral value.
fn integer_value(v: &Value) -> Option<i128> {
    let Value::Number(n) = v else { return None };
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    let f = n.as_f64()?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 {
        Some(f as i128)
    } else {
        None
    }
}

/// An integer (or integral float) in `min..=max`.
pub fn check_int<T: TryFrom<i128>>(v: &Value, min: i128, max: i128) -> Result<T, String> {
    let err = || {
        format!(
            "expected an integer from {min} to {max}, got {}",
            describe(v)
        )
    };
    match integer_value(v) {
        Some(n) if (min..=max).contains(&n) => T::try_from(n).map_err(|_| err()),
        _ => Err(err()),
    }
}

/// A finite number `> 0` and `<= max`.
pub fn check_positive(v: &Value, max: u64) -> Result<f64, String> {
    match v.as_f64() {
        Some(f) if f.is_finite() && f > 0.0 && f <= max as f64 => Ok(f),
        _ => Err(format!(
            "expected a number > 0 and <= {max}, got {}",
            describe(v)
        )),
    }
}

/// `true` or `false`.
pub fn check_bool(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, got {}", describe(v)))
}

/// Any string.
pub fn check_string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, got {}", describe(v)))
}

/// A non-empty string.
pub fn check_nonempty(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(format!("expected a non-empty string, got {}", describe(v))),
    }
}

/// An OSC base address: starts with `/`, does not end with `/`, no whitespace, control or
/// pattern characters.
pub fn check_base_address(v: &Value) -> Result<String, String> {
    let s = check_string(v)?;
    let bad = |why: &str| format!("expected an OSC address {why}, got {}", describe(v));
    if !s.starts_with('/') {
        return Err(bad("starting with '/'"));
    }
    if s.ends_with('/') {
        return Err(bad("not ending with '/'"));
    }
    if s.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '#' | '*' | ',' | '?' | '[' | ']' | '{' | '}')
    }) {
        return Err(bad(
            "without whitespace, control or pattern characters (#*,?[]{})",
        ));
    }
    Ok(s)
}

/// A string starting with `/`.
pub fn check_slash_string(v: &Value) -> Result<String, String> {
    let s = check_string(v)?;
    if s.starts_with('/') {
        Ok(s)
    } else {
        Err(format!(
            "expected a string starting with '/', got {}",
            describe(v)
        ))
    }
}

/// One of the spellings `parse` accepts; `names` lists them for the message.
pub fn check_choice<T>(v: &Value, parse: fn(&str) -> Option<T>, names: &str) -> Result<T, String> {
    v.as_str()
        .and_then(parse)
        .ok_or_else(|| format!("expected one of {names}, got {}", describe(v)))
}

// --- serde adapters (`#[serde(deserialize_with = "...")]`) ---------------------------------

/// Integer in `MIN..=MAX` ([`check_int`]).
pub fn int<'de, D, T, const MIN: i128, const MAX: i128>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    check_int(&value(d)?, MIN, MAX).map_err(D::Error::custom)
}

/// Number in `(0, MAX]` ([`check_positive`]).
pub fn positive<'de, D: Deserializer<'de>, const MAX: u64>(d: D) -> Result<f64, D::Error> {
    check_positive(&value(d)?, MAX).map_err(D::Error::custom)
}

/// `true`/`false` ([`check_bool`]).
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    check_bool(&value(d)?).map_err(D::Error::custom)
}

/// Any string ([`check_string`]).
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_string(&value(d)?).map_err(D::Error::custom)
}

/// Non-empty string ([`check_nonempty`]).
pub fn nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_nonempty(&value(d)?).map_err(D::Error::custom)
}

/// OSC base address ([`check_base_address`]).
pub fn base_address<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_base_address(&value(d)?).map_err(D::Error::custom)
}

/// String starting with `/` ([`check_slash_string`]).
pub fn slash_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_slash_string(&value(d)?).map_err(D::Error::custom)
}

/// A present key of an optional setting: `Some(T)`; `null` is an error like any wrong type
/// (serde's plain `Option` would read `null` as "not given").
pub fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// [`int`], present.
pub fn some_int<'de, D, T, const MIN: i128, const MAX: i128>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    int::<D, T, MIN, MAX>(d).map(Some)
}

/// [`positive`], present.
pub fn some_positive<'de, D: Deserializer<'de>, const MAX: u64>(
    d: D,
) -> Result<Option<f64>, D::Error> {
    positive::<D, MAX>(d).map(Some)
}

/// [`boolean`], present.
pub fn some_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    boolean(d).map(Some)
}

/// [`string`], present.
pub fn some_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string(d).map(Some)
}

/// [`nonempty`], present.
pub fn some_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    nonempty(d).map(Some)
}

/// [`base_address`], present.
pub fn some_base_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    base_address(d).map(Some)
}

/// A section: a JSON object only (serde's derived structs would also take an array).
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
        .map(|Obj(t)| t)
}

/// `T` read from a JSON object only (see [`object`]).
pub struct Obj<T>(pub T);

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
    type Value = Obj<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// Defines a unit enum spelled in JSON as lowercase strings, once: the enum, `as_str`,
/// `parse`, `Serialize` (the spelling) and `Deserialize` (one of the spellings, else
/// `expected one of …, got <value>`).
macro_rules! json_enum {
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vm:meta])* $var:ident = $s:literal, )+
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[$vm])* $var, )+
        }

        impl $name {
            /// JSON spelling.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$var => $s, )+
                }
            }

            /// Parses the JSON spelling (exact).
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $s => Some($name::$var), )+
                    _ => None,
                }
            }

            /// The spellings, for messages: `"a", "b"`.
            pub const NAMES: &'static str = concat!($( "\"", $s, "\", " ),+);
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let v = serde_json::Value::deserialize(d)?;
                let names = $name::NAMES.trim_end_matches(", ");
                $crate::config::values::check_choice(&v, $name::parse, names)
                    .map_err(D::Error::custom)
            }
        }
    };
}
pub(crate) use json_enum;
