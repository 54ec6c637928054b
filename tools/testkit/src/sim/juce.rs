//! JUCE JSON serialisation of the message headers (spec §1.3).

use std::time::{SystemTime, UNIX_EPOCH};

pub(super) enum J<'a> {
    Int(i64),
    Dbl(f64),
    Str(&'a str),
    Arr(Vec<J<'a>>),
    Obj(Vec<(&'static str, J<'a>)>),
}

pub(super) const NL: &str = "\r\n";

pub(super) fn spaces(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// JUCE 8 `JSONFormatter::writeString` with UTF-8 encoding: `" \ \b \f \t \r \n` escaped, other
/// control characters as lowercase `\u00xx`, everything else (DEL, non-ASCII) raw; a NUL ends the
/// string (JUCE strings are NUL-terminated).
pub(super) fn write_juce_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => break,
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 32 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn write_juce(out: &mut String, v: &J<'_>, indent: usize) {
    match v {
        J::Int(i) => out.push_str(&i.to_string()),
        J::Dbl(d) => out.push_str(&juce_double(*d)),
        J::Str(s) => write_juce_string(out, s),
        J::Arr(items) => {
            out.push('[');
            if !items.is_empty() {
                out.push_str(NL);
                for (i, item) in items.iter().enumerate() {
                    spaces(out, indent + 2);
                    write_juce(out, item, indent + 2);
                    if i + 1 < items.len() {
                        out.push(',');
                    }
                    out.push_str(NL);
                }
                spaces(out, indent);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            out.push_str(NL);
            for (i, (k, item)) in members.iter().enumerate() {
                spaces(out, indent + 2);
                write_juce_string(out, k);
                out.push_str(": ");
                write_juce(out, item, indent + 2);
                if i + 1 < members.len() {
                    out.push(',');
                }
                out.push_str(NL);
            }
            spaces(out, indent);
            out.push('}');
        }
    }
}

pub(super) fn to_juce(v: &J<'_>) -> String {
    let mut s = String::with_capacity(320);
    write_juce(&mut s, v, 0);
    s
}

/// Removes trailing zeros after the decimal point, keeping at least one digit (`1.500` → `1.5`,
/// `2.000` → `2.0`), like JUCE `reduceLengthOfFloatString` on a fixed-point mantissa.
pub(super) fn trim_decimals(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let t = s.trim_end_matches('0');
    if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_string()
    }
}

/// JUCE 8 `serialiseDouble` as used by `JSON::toString` (max 15 decimal places, spec §1.3):
/// non-finite → `null`; |x| ≥ 1e6 or ≤ 1e-5 → reduced scientific form (`1.0e6`, `1.5e-7`, `0.0`);
/// integral values → one decimal (`30000.0`, `-50.0`); otherwise 15 decimals with trailing zeros
/// removed (`0.5`, `-47.299999237060547`).
pub fn juce_double(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_string();
    }
    let a = x.abs();
    if a >= 1.0e6 || a <= 1.0e-5 {
        let s = format!("{x:.15e}");
        let (mant, exp) = match s.split_once('e') {
            Some(p) => p,
            None => (s.as_str(), "0"),
        };
        let mant = trim_decimals(mant);
        match exp.parse::<i32>() {
            Ok(0) | Err(_) => mant,
            Ok(e) => format!("{mant}e{e}"),
        }
    } else if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        trim_decimals(&format!("{x:.15}"))
    }
}

/// DATA header (spec §1.4, §1.8) in the exact JUCE layout: CRLF, 2-space indentation, key order
/// `message_num, type, content{stream, channel_num, channel_name?, num_samples, sample_num,
/// sample_rate}, data_size, timestamp?`, no trailing newline. `data_size` = `4 * num_samples`.
/// `sample_rate` is printed as given (the [`Publisher`] rounds it through `f32` first, like the plugin).
#[allow(clippy::too_many_arguments)]
pub fn juce_data_header(
    message_num: i64,
    stream: &str,
    channel_num: u32,
    channel_name: Option<&str>,
    num_samples: usize,
    sample_num: i64,
    sample_rate: f64,
    timestamp: Option<i64>,
) -> String {
    let mut content = vec![
        ("stream", J::Str(stream)),
        ("channel_num", J::Int(i64::from(channel_num))),
    ];
    if let Some(name) = channel_name {
        content.push(("channel_name", J::Str(name)));
    }
    content.push(("num_samples", J::Int(num_samples as i64)));
    content.push(("sample_num", J::Int(sample_num)));
    content.push(("sample_rate", J::Dbl(sample_rate)));
    let mut top = vec![
        ("message_num", J::Int(message_num)),
        ("type", J::Str("data")),
        ("content", J::Obj(content)),
        ("data_size", J::Int((num_samples as i64).saturating_mul(4))),
    ];
    if let Some(ts) = timestamp {
        top.push(("timestamp", J::Int(ts)));
    }
    to_juce(&J::Obj(top))
}

/// TTL EVENT header (spec §1.5): `message_num, type "event", content{stream, source_node, type 3,
/// sample_num}, data_size, timestamp?` in the exact JUCE layout.
pub fn juce_event_header(
    message_num: i64,
    stream: &str,
    source_node: i64,
    sample_num: i64,
    data_size: usize,
    timestamp: Option<i64>,
) -> String {
    let content = vec![
        ("stream", J::Str(stream)),
        ("source_node", J::Int(source_node)),
        ("type", J::Int(3)),
        ("sample_num", J::Int(sample_num)),
    ];
    let mut top = vec![
        ("message_num", J::Int(message_num)),
        ("type", J::Str("event")),
        ("content", J::Obj(content)),
        ("data_size", J::Int(data_size as i64)),
    ];
    if let Some(ts) = timestamp {
        top.push(("timestamp", J::Int(ts)));
    }
    to_juce(&J::Obj(top))
}

/// SPIKE header (spec §1.6): `message_num, type "spike", spike{stream, source_node, electrode,
/// sample_num, num_channels, num_samples, sorted_id, threshold[]}, timestamp?` — key `spike` (not
/// `content`) and no `data_size`, in the exact JUCE layout (multi-line array, `[]` when empty).
#[allow(clippy::too_many_arguments)]
pub fn juce_spike_header(
    message_num: i64,
    stream: &str,
    source_node: i64,
    electrode: &str,
    sample_num: i64,
    num_channels: usize,
    num_samples: usize,
    sorted_id: i64,
    thresholds: &[f64],
    timestamp: Option<i64>,
) -> String {
    let spike = vec![
        ("stream", J::Str(stream)),
        ("source_node", J::Int(source_node)),
        ("electrode", J::Str(electrode)),
        ("sample_num", J::Int(sample_num)),
        ("num_channels", J::Int(num_channels as i64)),
        ("num_samples", J::Int(num_samples as i64)),
        ("sorted_id", J::Int(sorted_id)),
        (
            "threshold",
            J::Arr(thresholds.iter().map(|t| J::Dbl(*t)).collect()),
        ),
    ];
    let mut top = vec![
        ("message_num", J::Int(message_num)),
        ("type", J::Str("spike")),
        ("spike", J::Obj(spike)),
    ];
    if let Some(ts) = timestamp {
        top.push(("timestamp", J::Int(ts)));
    }
    to_juce(&J::Obj(top))
}

/// Wall-clock time in milliseconds since the Unix epoch (`Time::currentTimeMillis()`); 0 if the
/// clock is before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
