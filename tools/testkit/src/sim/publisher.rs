//! Socket binding and the message-by-message [`Publisher`].

use super::*;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(super) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

pub(super) fn endpoint(host: &str, port: u16) -> String {
    format!("tcp://{host}:{port}")
}

/// Address a local client should connect to for a socket bound on `host`.
pub(super) fn connect_host(host: &str) -> &str {
    match host {
        "*" | "0.0.0.0" | "" => "127.0.0.1",
        h => h,
    }
}

pub(super) fn make_data_socket(
    ctx: &zmq::Context,
    xpub: bool,
    hwm: i32,
) -> Result<zmq::Socket, String> {
    let kind = if xpub { zmq::XPUB } else { zmq::PUB };
    let s = ctx
        .socket(kind)
        .map_err(|e| format!("cannot create data socket: {e}"))?;
    s.set_linger(0).map_err(|e| format!("set_linger: {e}"))?;
    s.set_sndhwm(hwm).map_err(|e| format!("set_sndhwm: {e}"))?;
    Ok(s)
}

pub(super) fn bound_port(s: &zmq::Socket) -> Result<u16, String> {
    let ep = s
        .get_last_endpoint()
        .map_err(|e| format!("get_last_endpoint: {e}"))?
        .map_err(|_| "endpoint is not UTF-8".to_string())?;
    ep.rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| format!("cannot parse port from {ep}"))
}

/// Binds the data socket (and the REP socket on port + 1 if `heartbeat`). Port 0 picks a random pair
/// in 20000..60000, retrying on EADDRINUSE.
pub(super) fn bind_pair(
    ctx: &zmq::Context,
    host: &str,
    port: u16,
    heartbeat: bool,
    xpub: bool,
    hwm: i32,
) -> Result<(zmq::Socket, Option<zmq::Socket>, u16), String> {
    let attempts = if port == 0 { 64 } else { 1 };
    let mut last_err = String::new();
    for _ in 0..attempts {
        let p = if port == 0 {
            20_000 + (random_u64() % 40_000) as u16
        } else {
            port
        };
        if heartbeat && p == u16::MAX {
            return Err("data port 65535 leaves no heartbeat port".to_string());
        }
        let data = make_data_socket(ctx, xpub, hwm)?;
        match data.bind(&endpoint(host, p)) {
            Ok(()) => {}
            Err(e @ zmq::Error::EADDRINUSE) => {
                last_err = format!("bind {}: {e}", endpoint(host, p));
                continue;
            }
            Err(e) => return Err(format!("bind {}: {e}", endpoint(host, p))),
        }
        if !heartbeat {
            return Ok((data, None, p));
        }
        let rep = ctx
            .socket(zmq::REP)
            .map_err(|e| format!("cannot create heartbeat socket: {e}"))?;
        rep.set_linger(0).map_err(|e| format!("set_linger: {e}"))?;
        match rep.bind(&endpoint(host, p + 1)) {
            Ok(()) => return Ok((data, Some(rep), p)),
            Err(e @ zmq::Error::EADDRINUSE) => {
                last_err = format!("bind {}: {e}", endpoint(host, p + 1));
                continue; // both sockets dropped (linger 0), try another pair
            }
            Err(e) => return Err(format!("bind {}: {e}", endpoint(host, p + 1))),
        }
    }
    Err(last_err)
}

/// Polls an XPUB socket until a subscribe message (first byte 1) arrives, `stop` is set, or the
/// deadline passes. Returns Ok(true) when subscribed.
pub(super) fn wait_subscription(
    sock: &zmq::Socket,
    stop: Option<&AtomicBool>,
    deadline: Option<Instant>,
) -> Result<bool, String> {
    loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(false);
        }
        let slice = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(false);
                }
                ((d - now).as_millis() as i64).clamp(1, POLL_SLICE_MS)
            }
            None => POLL_SLICE_MS,
        };
        match sock.poll(zmq::POLLIN, slice) {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(zmq::Error::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        match sock.recv_bytes(zmq::DONTWAIT) {
            Ok(m) if m.first() == Some(&1) => return Ok(true),
            Ok(_) | Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher
// ---------------------------------------------------------------------------------------------

/// Low-level publisher for tests that need exact control (sparse channels, partial blocks, bad
/// messages). Each `send_*` call emits one message with the plugin's framing and pre-increments the
/// shared 32-bit `message_num` (first message = 1 after [`Publisher::bind`]).
pub struct Publisher {
    pub(super) sock: zmq::Socket,
    xpub: bool,
    host: String,
    port: u16,
    /// Value the next message will carry.
    next_msg: i32,
    length_bug: bool,
    hb: Option<HeartbeatServer>,
    hb_port: Option<u16>,
}

impl Publisher {
    /// Binds an XPUB data socket on `tcp://{host}:{port}` (linger 0, SNDHWM 1000). Port 0 binds an
    /// ephemeral port (see [`Publisher::port`]). No heartbeat socket; see
    /// [`Publisher::serve_heartbeats`] / [`Publisher::bind_with_heartbeat`].
    pub fn bind(ctx: &zmq::Context, host: &str, port: u16) -> Result<Publisher, String> {
        Self::bind_with_hwm(ctx, host, port, 1000)
    }

    /// Like [`Publisher::bind`] with ZMQ_SNDHWM `hwm` (set before binding: libzmq copies a
    /// listener's options at bind time). Tests that flood raise it so loss stays upstream of
    /// nothing.
    pub fn bind_with_hwm(
        ctx: &zmq::Context,
        host: &str,
        port: u16,
        hwm: i32,
    ) -> Result<Publisher, String> {
        let sock = make_data_socket(ctx, true, hwm)?;
        let ep = if port == 0 {
            format!("tcp://{host}:*")
        } else {
            endpoint(host, port)
        };
        sock.bind(&ep).map_err(|e| format!("bind {ep}: {e}"))?;
        let port = bound_port(&sock)?;
        Ok(Publisher::from_socket(sock, true, host, port))
    }

    /// Binds the XPUB data socket on `port` and a REP heartbeat socket on `port + 1`, served by a
    /// background thread until the publisher is dropped. Port 0 picks a random free pair in
    /// 20000..60000 (retrying on EADDRINUSE).
    pub fn bind_with_heartbeat(
        ctx: &zmq::Context,
        host: &str,
        port: u16,
    ) -> Result<Publisher, String> {
        let (sock, rep, p) = bind_pair(ctx, host, port, true, true, 1000)?;
        let mut publ = Publisher::from_socket(sock, true, host, p);
        if let Some(rep) = rep {
            publ.hb = Some(HeartbeatServer::spawn(rep)?);
            publ.hb_port = Some(p + 1);
        }
        Ok(publ)
    }

    /// Like [`Publisher::bind_with_heartbeat`] with ZMQ_SNDHWM `hwm` (0 = unlimited: a replay
    /// that must lose nothing).
    pub fn bind_pair_with_hwm(
        ctx: &zmq::Context,
        host: &str,
        port: u16,
        hwm: i32,
    ) -> Result<Publisher, String> {
        let (sock, rep, p) = bind_pair(ctx, host, port, true, true, hwm)?;
        let mut publ = Publisher::from_socket(sock, true, host, p);
        if let Some(rep) = rep {
            publ.hb = Some(HeartbeatServer::spawn(rep)?);
            publ.hb_port = Some(p + 1);
        }
        Ok(publ)
    }

    pub(super) fn from_socket(sock: zmq::Socket, xpub: bool, host: &str, port: u16) -> Publisher {
        Publisher {
            sock,
            xpub,
            host: host.to_string(),
            port,
            next_msg: 1,
            length_bug: true,
            hb: None,
            hb_port: None,
        }
    }

    /// Binds a REP socket on data port + 1 and answers heartbeats (spec §2.1) on a background thread
    /// until the publisher is dropped. Returns the heartbeat port. Idempotent.
    pub fn serve_heartbeats(&mut self, ctx: &zmq::Context) -> Result<u16, String> {
        if let Some(p) = self.hb_port {
            return Ok(p);
        }
        let hp = self
            .port
            .checked_add(1)
            .ok_or_else(|| "data port 65535 leaves no heartbeat port".to_string())?;
        let rep = ctx
            .socket(zmq::REP)
            .map_err(|e| format!("cannot create heartbeat socket: {e}"))?;
        rep.set_linger(0).map_err(|e| format!("set_linger: {e}"))?;
        let ep = endpoint(&self.host, hp);
        rep.bind(&ep).map_err(|e| format!("bind {ep}: {e}"))?;
        self.hb = Some(HeartbeatServer::spawn(rep)?);
        self.hb_port = Some(hp);
        Ok(hp)
    }

    /// Heartbeat requests answered so far by [`Publisher::serve_heartbeats`].
    pub fn heartbeats_answered(&self) -> u64 {
        self.hb
            .as_ref()
            .map(|h| h.answered.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The bound data port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The heartbeat port, if heartbeats are served.
    pub fn heartbeat_port(&self) -> Option<u16> {
        self.hb_port
    }

    /// Endpoint a local SUB should connect to (`tcp://127.0.0.1:port` when bound on `*`).
    pub fn connect_endpoint(&self) -> String {
        endpoint(connect_host(&self.host), self.port)
    }

    /// Whether frame 1 is cut to the header's character count (JUCE `String::length()`), as the
    /// plugin does (spec §1.3 header-length bug). Default `true`; only matters for non-ASCII text.
    pub fn set_juce_length_bug(&mut self, enabled: bool) {
        self.length_bug = enabled;
    }

    /// Blocks until the XPUB sees a subscribe message, or fails after `timeout`.
    pub fn wait_for_subscriber(&self, timeout: Duration) -> Result<(), String> {
        if !self.xpub {
            return Err("not an XPUB socket".to_string());
        }
        match wait_subscription(&self.sock, None, Some(Instant::now() + timeout))? {
            true => Ok(()),
            false => Err(format!("no subscriber within {timeout:?}")),
        }
    }

    /// Consumes one `message_num` without sending anything (the plugin's counter is incremented for
    /// every message, e.g. also for a spike with data size 0) and returns it. Receivers see a gap.
    pub fn next_message_num(&mut self) -> i64 {
        let n = self.next_msg;
        self.next_msg = n.wrapping_add(1);
        i64::from(n)
    }

    /// The `message_num` the next message will carry (not consumed).
    pub fn peek_message_num(&self) -> i64 {
        i64::from(self.next_msg)
    }

    /// Sets the `message_num` of the next message (`set_message_num(1)` = new acquisition). The
    /// counter is a signed 32-bit int like the plugin's: the value is truncated to `i32` and wraps
    /// after `i32::MAX`.
    pub fn set_message_num(&mut self, next: i64) {
        self.next_msg = next as i32;
    }

    fn header_frame<'a>(&self, header: &'a str) -> &'a [u8] {
        if self.length_bug {
            let n = header.chars().count();
            &header.as_bytes()[..n]
        } else {
            header.as_bytes()
        }
    }

    fn send_frames(&self, frames: &[&[u8]]) -> Result<(), String> {
        self.sock
            .send_multipart(frames.iter().copied(), 0)
            .map_err(|e| format!("send: {e}"))
    }

    /// Sends one DATA message (3 frames). `sample_rate` goes through `f32` as in the plugin; the
    /// payload is `samples` as little-endian `f32`; `data_size = 4 * samples.len()`.
    #[allow(clippy::too_many_arguments)]
    pub fn send_data(
        &mut self,
        stream: &str,
        channel_num: u32,
        channel_name: Option<&str>,
        sample_num: i64,
        sample_rate: f64,
        samples: &[f32],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let mut payload = Vec::with_capacity(samples.len() * 4);
        for s in samples {
            payload.extend_from_slice(&s.to_le_bytes());
        }
        self.send_data_bytes(
            stream,
            channel_num,
            channel_name,
            sample_num,
            sample_rate,
            samples.len(),
            &payload,
            timestamp,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_data_bytes(
        &mut self,
        stream: &str,
        channel_num: u32,
        channel_name: Option<&str>,
        sample_num: i64,
        sample_rate: f64,
        num_samples: usize,
        payload: &[u8],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let n = self.next_message_num();
        let header = juce_data_header(
            n,
            stream,
            channel_num,
            channel_name,
            num_samples,
            sample_num,
            f64::from(sample_rate as f32),
            timestamp,
        );
        let h = self.header_frame(&header);
        self.send_frames(&[DATA_ENVELOPE, h, payload])
    }

    /// Sends one TTL EVENT message (3 frames; payload `[line, state, word as u64 LE]`, 10 bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn send_ttl(
        &mut self,
        stream: &str,
        source_node: i64,
        sample_num: i64,
        line: u8,
        state: u8,
        word: u64,
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let mut payload = [0u8; 10];
        payload[0] = line;
        payload[1] = state;
        payload[2..].copy_from_slice(&word.to_le_bytes());
        self.send_event_bytes(stream, source_node, sample_num, &payload, timestamp)
    }

    /// Sends an EVENT message with an arbitrary payload; `data_size = payload.len()`, and an empty
    /// payload produces the plugin's 2-frame event.
    pub fn send_event_bytes(
        &mut self,
        stream: &str,
        source_node: i64,
        sample_num: i64,
        payload: &[u8],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let n = self.next_message_num();
        let header =
            juce_event_header(n, stream, source_node, sample_num, payload.len(), timestamp);
        let h = self.header_frame(&header);
        if payload.is_empty() {
            self.send_frames(&[EVENT_ENVELOPE, h])
        } else {
            self.send_frames(&[EVENT_ENVELOPE, h, payload])
        }
    }

    /// Sends one SPIKE message (`EVENT\0` envelope) with `source_node` [`SPIKE_SOURCE_NODE`] and
    /// thresholds of -50.0 per channel. `waveform` is channel-major and must hold
    /// `num_channels * num_samples` values.
    #[allow(clippy::too_many_arguments)]
    pub fn send_spike(
        &mut self,
        stream: &str,
        electrode: &str,
        sample_num: i64,
        num_channels: usize,
        num_samples: usize,
        sorted_id: i64,
        waveform: &[f32],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let thresholds = vec![-50.0; num_channels];
        self.send_spike_full(
            stream,
            SPIKE_SOURCE_NODE,
            electrode,
            sample_num,
            num_channels,
            num_samples,
            sorted_id,
            &thresholds,
            waveform,
            timestamp,
        )
    }

    /// Like [`Publisher::send_spike`] with explicit `source_node` and thresholds (printed as given;
    /// the plugin's thresholds are `f32` widened to `f64`).
    #[allow(clippy::too_many_arguments)]
    pub fn send_spike_full(
        &mut self,
        stream: &str,
        source_node: i64,
        electrode: &str,
        sample_num: i64,
        num_channels: usize,
        num_samples: usize,
        sorted_id: i64,
        thresholds: &[f64],
        waveform: &[f32],
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        if num_channels.checked_mul(num_samples) != Some(waveform.len()) {
            return Err(format!(
                "waveform has {} values, expected {num_channels} x {num_samples}",
                waveform.len()
            ));
        }
        let n = self.next_message_num();
        let header = juce_spike_header(
            n,
            stream,
            source_node,
            electrode,
            sample_num,
            num_channels,
            num_samples,
            sorted_id,
            thresholds,
            timestamp,
        );
        let mut payload = Vec::with_capacity(waveform.len() * 4);
        for s in waveform {
            payload.extend_from_slice(&s.to_le_bytes());
        }
        let h = self.header_frame(&header);
        self.send_frames(&[EVENT_ENVELOPE, h, &payload])
    }

    /// Sends arbitrary frames as one multipart message (bad-input tests). Does not touch
    /// `message_num`. An empty slice is rejected.
    pub fn send_raw(&mut self, frames: &[&[u8]]) -> Result<(), String> {
        if frames.is_empty() {
            return Err("no frames".to_string());
        }
        self.send_frames(frames)
    }

    /// Drains pending subscription messages of an XPUB socket (non-blocking).
    pub(super) fn drain_subscriptions(&self) {
        if self.xpub {
            while self.sock.recv_bytes(zmq::DONTWAIT).is_ok() {}
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(mut hb) = self.hb.take() {
            hb.shutdown();
        }
    }
}
