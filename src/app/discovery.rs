//! The OSCQuery server as the program runs it: started from the config's `oscquery` section
//! (or `--oscquery-port`), fed a new namespace whenever the layout generation changes.

use super::Fail;
use crate::cli::exit;
use crate::config::{Config, OscQueryConfig};
use crate::engine::Shared;
use crate::oscquery::{bridge, Options, OscQuery};
use serde_json::{json, Value};
use std::net::ToSocketAddrs;

/// The OSCQuery instance name (HOST_INFO `NAME`, mDNS instance): the config's `app.app_name`.
fn name(cfg: &Config) -> String {
    cfg.app.app_name.clone()
}

/// Binds the server (exit code 3 when the address cannot be used) and prints where it is.
pub fn start(q: &OscQueryConfig, cfg: &Config, info: bool) -> Result<OscQuery, Fail> {
    let bind = (q.host.as_str(), q.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            (
                exit::STARTUP,
                format!("oscquery.host: cannot resolve {:?}", q.host),
            )
        })?;
    let specs = cfg.output_specs();
    let server = OscQuery::start(
        &Options {
            bind,
            mdns: q.mdns,
            name: name(cfg),
        },
        bridge::snapshot(&name(cfg), &specs, None),
    )
    .map_err(|e| {
        (
            exit::STARTUP,
            format!("oscquery: cannot serve on {bind}: {e}"),
        )
    })?;
    if q.mdns && bind.ip().is_loopback() && warn_enabled(cfg) {
        eprintln!(
            "warning: oscquery.mdns advertises {bind}, which only this machine can reach; set \
             oscquery.host to a LAN address (or 0.0.0.0) for other machines"
        );
    }
    if info {
        eprintln!(
            "oscquery: http://{}/ (read-only namespace of {} output(s)){}",
            server.local_addr(),
            specs.len(),
            if q.mdns {
                ", advertised over mDNS as _oscjson._tcp"
            } else {
                ""
            }
        );
    }
    Ok(server)
}

fn warn_enabled(cfg: &Config) -> bool {
    cfg.app.log_level != crate::config::LogLevel::Error
}

/// Where the server is, for the JSON stats.
pub fn json(q: &OscQuery) -> Value {
    json!({ "url": format!("http://{}/", q.local_addr()) })
}

/// Hands the server a new namespace when the layout (channel set, stream, rate, names) of
/// any source has changed since `seen` (one generation per source; called by the controller
/// a few times a second; off the hot path). Each output's addresses follow its own
/// source's layout.
pub fn follow(q: &OscQuery, cfg: &Config, shared: &Shared, seen: &mut Vec<Option<u32>>) {
    let layouts: Vec<_> = (0..shared.sources.len())
        .map(|i| shared.source_layout_snapshot(i))
        .collect();
    let generations: Vec<Option<u32>> = layouts
        .iter()
        .map(|l| l.as_ref().map(|l| l.generation))
        .collect();
    if layouts.iter().all(Option::is_none) || *seen == generations {
        return;
    }
    *seen = generations;
    let specs = cfg.output_specs();
    let mut snap = bridge::snapshot(&name(cfg), &specs, layouts[0].as_ref());
    if layouts.len() > 1 {
        let each: Vec<String> = cfg
            .source_specs()
            .iter()
            .zip(&layouts)
            .map(|(s, l)| match l {
                Some(l) => format!("source '{}': {}", s.name, l.describe()),
                None => format!("source '{}': waiting for the first block", s.name),
            })
            .collect();
        snap.description = format!(
            "Open Ephys ZMQ Interface bridged to OSC: {} output(s); {}",
            specs.len(),
            each.join("; ")
        );
        let of = cfg.output_source_indices();
        snap.methods = specs
            .iter()
            .zip(of)
            .flat_map(|(s, i)| bridge::methods(s, layouts.get(i).and_then(Option::as_ref)))
            .collect();
    }
    q.update(snap);
}
