//! A heartbeat thread `zmq_hb` (one per source; REQ to data_port + 1, lazy pirate) and the data-socket monitor.

use super::counters::{publish_hb, HbTallies};
use super::Shared;
use crate::config::Config;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Heartbeat identity and timing.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// REQ endpoint (`tcp://host:data_port+1`).
    pub endpoint: String,
    /// The single-frame JSON sent.
    pub message: String,
    /// Send interval (`zmq.heartbeat_timeout`).
    pub interval: Duration,
    /// Reset the REQ socket after this long without a reply (`zmq.not_responding_timeout`).
    pub not_responding: Duration,
}

/// `{"application": "ZMQ2OSC-<uuid[:4]>", "uuid": "<uuid>", "type": "heartbeat"}` with
/// Python `json.dumps` separators, as the original sends.
pub fn heartbeat_message(uuid: &str) -> String {
    let short: String = uuid.chars().take(4).collect();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"application\": {}, \"uuid\": {}, \"type\": \"heartbeat\"}}",
        q(&format!("ZMQ2OSC-{short}")),
        q(uuid)
    )
}

/// The heartbeat uuid: `zmq.app_uuid`, or for `"auto"` one generated per run, so several
/// bridges on one GUI each get their own entry in the plugin's list of connected apps.
pub fn effective_uuid(configured: &str) -> String {
    use std::sync::OnceLock;
    static AUTO: OnceLock<String> = OnceLock::new();
    if configured != "auto" {
        return configured.to_string();
    }
    AUTO.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        format!("{:08x}", h.finish() as u32)
    })
    .clone()
}

impl HeartbeatConfig {
    /// From the config file's keys.
    pub fn from_config(cfg: &Config, endpoint: &str) -> Self {
        HeartbeatConfig::with_uuid(cfg, endpoint, &effective_uuid(&cfg.zmq.app_uuid))
    }

    /// From the config file's timing keys, with the given uuid (one per source, see
    /// [`super::source_uuid`]).
    pub fn with_uuid(cfg: &Config, endpoint: &str, uuid: &str) -> Self {
        HeartbeatConfig {
            endpoint: endpoint.to_string(),
            message: heartbeat_message(uuid),
            interval: Duration::from_secs_f64(cfg.zmq.heartbeat_timeout),
            not_responding: Duration::from_secs_f64(cfg.zmq.not_responding_timeout),
        }
    }
}

pub(crate) fn new_req(ctx: &zmq::Context, endpoint: &str) -> Option<zmq::Socket> {
    let s = ctx.socket(zmq::REQ).ok()?;
    s.set_linger(0).ok()?;
    s.connect(endpoint).ok()?;
    Some(s)
}

/// Data-socket monitor counts: (connects, disconnects, handshake failures).
#[derive(Default)]
pub(crate) struct MonitorCounts {
    pub(crate) connects: u64,
    pub(crate) disconnects: u64,
    pub(crate) handshake_failures: u64,
    pub(crate) manual_reconnects: u64,
    /// A disconnect not yet followed by libzmq's own reconnect attempt.
    pub(crate) lost_since: Option<Instant>,
}

/// Reads pending monitor events of the data socket (2-frame: u16 event + u32 value, endpoint).
pub(crate) fn read_monitor(
    m: &zmq::Socket,
    counts: &mut MonitorCounts,
    endpoint: &str,
    verbose: bool,
) {
    let mut ev = [0u8; 16];
    let mut addr = [0u8; 256];
    while let Ok(n) = m.recv_into(&mut ev, zmq::DONTWAIT) {
        if m.get_rcvmore().unwrap_or(false) {
            let _ = m.recv_into(&mut addr, 0);
        }
        if n < 6 {
            continue;
        }
        let id = u16::from_le_bytes([ev[0], ev[1]]) as u32;
        if id == zmq::SocketEvent::CONNECT_RETRIED as u32
            || id == zmq::SocketEvent::CONNECT_DELAYED as u32
        {
            counts.lost_since = None;
        }
        if id == zmq::SocketEvent::CONNECTED as u32 {
            counts.lost_since = None;
            counts.connects += 1;
            if verbose && counts.disconnects > 0 {
                eprintln!("zmq: data connection to {endpoint} re-established");
            }
        } else if id == zmq::SocketEvent::DISCONNECTED as u32 {
            counts.disconnects += 1;
            counts.lost_since = Some(Instant::now());
            if verbose {
                eprintln!(
                    "zmq: data connection to {endpoint} lost (GUI stopped, or a message above the size cap); reconnecting"
                );
            }
        } else if id == zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as u32
            || id == zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as u32
            || id == zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as u32
        {
            counts.handshake_failures += 1;
        }
    }
}

pub(crate) fn run_heartbeat(
    shared: Arc<Shared>,
    source: usize,
    ctx: zmq::Context,
    cfg: HeartbeatConfig,
    monitor: zmq::Socket,
    data_endpoint: &str,
    verbose: bool,
) {
    let c = &shared.hb[source];
    let mut mon = MonitorCounts::default();
    let (mut sent, mut replies, mut resets) = (0u64, 0u64, 0u64);
    let mut state = 0u64;
    let mut req = new_req(&ctx, &cfg.endpoint);
    let mut waiting = false;
    let mut next_send = Instant::now();
    let mut sent_at = Instant::now();
    let mut last_reply = Instant::now();
    let mut buf = [0u8; 256];
    let mut warned = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let Some(sock) = req.as_ref() else {
            // Socket creation failed (should not happen); retry later.
            thread::sleep(Duration::from_millis(100));
            req = new_req(&ctx, &cfg.endpoint);
            continue;
        };
        if !waiting && now >= next_send {
            if sock.send(cfg.message.as_bytes(), zmq::DONTWAIT).is_ok() {
                sent += 1;
                waiting = true;
                sent_at = now;
            }
            next_send = now + cfg.interval;
        }
        let mut items = [
            sock.as_poll_item(zmq::POLLIN),
            monitor.as_poll_item(zmq::POLLIN),
        ];
        let _ = zmq::poll(&mut items, 100);
        if items[1].is_readable() {
            read_monitor(&monitor, &mut mon, data_endpoint, verbose);
        }
        // libzmq reconnects by itself after a connection error (announced by a
        // CONNECT_RETRIED event), but not after a protocol error: then we do it.
        if mon
            .lost_since
            .is_some_and(|t| t.elapsed() > Duration::from_millis(500))
        {
            mon.lost_since = None;
            mon.manual_reconnects += 1;
            shared.sources[source]
                .reconnect_data
                .store(true, Ordering::Relaxed);
        }
        if items[0].is_readable() {
            if sock.recv_into(&mut buf, zmq::DONTWAIT).is_ok() {
                replies += 1;
                waiting = false;
                last_reply = Instant::now();
                if state != 1 && verbose && warned {
                    eprintln!("heartbeat: {} answers again", cfg.endpoint);
                }
                warned = false;
                state = 1;
            }
        } else if waiting {
            let now = Instant::now();
            if now.duration_since(sent_at) > cfg.interval && state != 2 {
                state = 2;
                if verbose && !warned {
                    eprintln!(
                        "heartbeat: no reply from {} (Open Ephys GUI not running, or no ZMQ Interface there); retrying",
                        cfg.endpoint
                    );
                    warned = true;
                }
            }
            if now.duration_since(last_reply.max(sent_at - cfg.interval)) >= cfg.not_responding {
                // Lazy pirate: drop the REQ socket (its request may be stuck on a dead
                // connection) and make a new one. The data socket is left alone.
                state = 3;
                resets += 1;
                req = new_req(&ctx, &cfg.endpoint);
                waiting = false;
                last_reply = now;
                next_send = now;
            }
        }
        publish_hb(
            c,
            HbTallies {
                sent,
                replies,
                resets,
                state,
            },
            &mon,
        );
    }
}
