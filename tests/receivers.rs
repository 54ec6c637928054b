//! Real OSC receivers fed by the bridge (`--simulate 8`, F = 30 by default, so 1 000
//! `/data/sample` messages/s of 8 floats), each checked for what it actually got:
//!
//! * python-osc's `AsyncIOOSCUDPServer` (`tests/receivers/pyosc_count.py`),
//! * liblo's `oscdump -L <port>` (Debian `liblo-tools`),
//! * SuperCollider's sclang running the README recipe (`tests/receivers/count.scd`),
//! * Pure Data vanilla, the README's chain `[netreceive -u -b]` → `[oscparse]` → `[list trim]`
//!   → `[route data]` → `[route sample]` → `[print]` (`tests/receivers/count.pd`), and the
//!   features recipe `… [route data]` → `[route features]` → `[route band_alpha rms]`
//!   (`tests/receivers/features.pd`).
//!
//! They need external programs, so they are `#[ignore]`d; run them with
//! `cargo test --test receivers -- --ignored` (`.ci/run` installs the programs first). A
//! missing program makes its test fail, never skip.

mod common;

use common::free_ports as ports;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const CHANNELS: usize = 8;
/// Bridge run time.
const RUN_SECONDS: &str = "2";
/// Upper bound for any wait.
const WAIT: Duration = Duration::from_secs(30);

fn receivers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/receivers")
}

/// Starts an external receiver; a missing program is a test failure with an install hint.
fn spawn(cmd: &mut Command, hint: &str) -> Child {
    match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run {:?} ({e}): {hint}",
            cmd.get_program().to_string_lossy()
        ),
    }
}

/// Kills our own child if still running (by handle, never by name).
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's pipe, forwarded through a channel by a reader thread.
fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// True once something listens on UDP `port` (IPv4 or IPv6, from /proc/net/udp{,6}).
fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").ends_with(&needle))
            })
        })
    })
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the bridge with the built-in simulator to `osc_port` and returns the number of
/// datagrams it reports as sent (from its final headless JSON line) and its stderr.
fn run_bridge(osc_port: u16) -> (u64, String) {
    // 2 s at 1 000 rows/s.
    run_bridge_with(&["--osc-port", &osc_port.to_string()], 1500)
}

/// Runs the bridge with the built-in simulator and `extra` flags; returns the datagrams it
/// reports as sent (at least `min_sent`, none dropped) and its stderr.
fn run_bridge_with(extra: &[&str], min_sent: u64) -> (u64, String) {
    let (zp, _) = ports();
    let out = Command::new(env!("CARGO_BIN_EXE_openephys-zmq2osc"))
        .args(["--simulate", "8", "--seconds", RUN_SECONDS, "--no-tui"])
        .args(["--zmq-port", &zp.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bridge failed: {stderr}");
    let last = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["final"] == true)
        .unwrap_or_else(|| panic!("no final JSON line in {stdout}"));
    let sent = last["tx"]["sent"].as_u64().unwrap();
    assert_eq!(last["tx"]["send_dropped"], 0, "{last}");
    assert!(sent > min_sent, "bridge sent only {sent}: {stderr}");
    (sent, stderr)
}

/// Starts Pure Data with `patch` (from tests/receivers) listening on `port`; returns its
/// stderr lines and the process, once it has bound the port.
fn start_pd(patch: &str, port: u16) -> (Receiver<String>, Reaper) {
    let patch = receivers_dir().join(patch);
    let mut child = spawn(
        Command::new("pd")
            .args(["-nogui", "-nosound", "-nomidi", "-stderr", "-open"])
            .arg(&patch)
            .args(["-send", &format!("port {port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "install Pure Data (apt-get install puredata-core)",
    );
    let out = lines(child.stderr.take().unwrap());
    let mut reaper = Reaper(child);
    wait_until("pd to bind", || {
        if let Ok(Some(s)) = reaper.0.try_wait() {
            panic!("pd exited early: {s}");
        }
        udp_port_bound(port)
    });
    (out, reaper)
}

/// Collects lines until `done(count)` says the receiver has everything, or it goes quiet.
fn collect(rx: &Receiver<String>, mut take: impl FnMut(&str) -> bool, expect: u64) -> u64 {
    let mut n = 0u64;
    let t = Instant::now();
    while n < expect && t.elapsed() < WAIT {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(l) => {
                if take(&l) {
                    n += 1;
                }
            }
            Err(_) => break, // quiet for 2 s after the bridge stopped: nothing more is coming
        }
    }
    n
}

fn parse_floats(tokens: &[&str]) -> Option<Vec<f32>> {
    tokens.iter().map(|t| t.parse::<f32>().ok()).collect()
}

#[test]
#[ignore = "needs python3 with python-osc (python3 -m pip install python-osc)"]
fn python_osc_asyncio_server_gets_every_message() {
    let (_, port) = ports();
    let script = receivers_dir().join("pyosc_count.py");
    let mut child = spawn(
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .args(["--channels", &CHANNELS.to_string(), "--idle", "1.0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "install Python 3 and python-osc",
    );
    let out = lines(child.stdout.take().unwrap());
    let mut err = child.stderr.take().unwrap();
    let mut reaper = Reaper(child);
    match out.recv_timeout(WAIT) {
        Ok(l) if l.starts_with("READY") => {}
        other => {
            let _ = reaper.0.wait();
            let mut e = String::new();
            let _ = err.read_to_string(&mut e);
            panic!("python-osc receiver did not start ({other:?}): {e}");
        }
    }
    let (sent, _) = run_bridge(port);
    let summary = out
        .recv_timeout(WAIT)
        .expect("no JSON summary from the receiver");
    let status = reaper.0.wait().unwrap();
    assert!(status.success(), "receiver exit {status}");
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    println!("python-osc: bridge sent {sent}, received {v}");
    assert_eq!(v["bad_args"], 0, "{v}");
    assert_eq!(v["other"], 0, "{v}");
    assert_eq!(v["first"].as_array().unwrap().len(), CHANNELS);
    // Loopback, 1 000 small datagrams/s into a 4 MiB buffer: nothing may be lost.
    assert_eq!(v["count"].as_u64().unwrap(), sent, "{v}");
}

#[test]
#[ignore = "needs oscdump (Debian: apt-get install liblo-tools)"]
fn liblo_oscdump_parses_every_message() {
    let (_, port) = ports();
    let mut child = spawn(
        Command::new("oscdump")
            .args(["-L", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "install liblo-tools (apt-get install liblo-tools)",
    );
    let out = lines(child.stdout.take().unwrap());
    let mut reaper = Reaper(child);
    wait_until("oscdump to bind", || {
        if let Ok(Some(s)) = reaper.0.try_wait() {
            panic!("oscdump exited early: {s}");
        }
        udp_port_bound(port)
    });
    let (sent, _) = run_bridge(port);
    // Lines look like: `eeb3bffb.901ecd4a /data/sample ffffffff 1.000000 … 8.000000`.
    let mut bad = Vec::new();
    let got = collect(
        &out,
        |l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ok = f.len() == 3 + CHANNELS
                && f[1] == "/data/sample"
                && f[2] == "f".repeat(CHANNELS)
                && parse_floats(&f[3..]).is_some();
            if !ok && bad.len() < 5 {
                bad.push(l.to_string());
            }
            ok
        },
        sent,
    );
    drop(reaper);
    println!("oscdump: bridge sent {sent}, parsed {got}");
    assert!(bad.is_empty(), "unexpected oscdump lines: {bad:?}");
    assert_eq!(got, sent);
}

#[test]
#[ignore = "needs Pure Data (Debian: apt-get install puredata-core)"]
fn pure_data_readme_chain_routes_every_message() {
    let (_, port) = ports();
    let (out, reaper) = start_pd("count.pd", port);
    let (sent, _) = run_bridge(port);
    // `[print SAMPLE]` prints `SAMPLE: v0 v1 … v7` for each /data/sample message.
    let mut other = Vec::new();
    let got = collect(
        &out,
        |l| match l.strip_prefix("SAMPLE: ") {
            Some(rest) => {
                let f: Vec<&str> = rest.split_whitespace().collect();
                f.len() == CHANNELS && parse_floats(&f).is_some()
            }
            None => {
                if other.len() < 5 {
                    other.push(l.to_string());
                }
                false
            }
        },
        sent,
    );
    drop(reaper);
    println!("pd: bridge sent {sent}, routed {got}; other output {other:?}");
    assert!(
        !other
            .iter()
            .any(|l| l.contains("error") || l.contains("unknown")),
        "pd complained: {other:?}"
    );
    assert_eq!(got, sent);
}

#[test]
#[ignore = "needs sclang (Debian: apt-get install supercollider-language)"]
fn supercollider_readme_recipe_gets_every_message() {
    let (_, port) = ports();
    let script = receivers_dir().join("count.scd");
    let mut child = spawn(
        Command::new("sclang")
            .arg(&script)
            .arg(port.to_string())
            .arg(CHANNELS.to_string())
            // Headless: no display, and Qt WebEngine (linked into sclang) refuses to start as
            // root inside its sandbox.
            .env("QT_QPA_PLATFORM", "offscreen")
            .env("QTWEBENGINE_DISABLE_SANDBOX", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "install SuperCollider's language (apt-get install supercollider-language)",
    );
    let out = lines(child.stdout.take().unwrap());
    let mut reaper = Reaper(child);
    let t = Instant::now();
    loop {
        match out.recv_timeout(WAIT) {
            Ok(l) if l.trim() == "READY" => break,
            Ok(l) => assert!(!l.starts_with("CANNOT_OPEN"), "sclang: {l}"),
            Err(e) => panic!("sclang did not get ready: {e}"),
        }
        assert!(t.elapsed() < WAIT, "sclang did not get ready");
    }
    wait_until("sclang to bind", || udp_port_bound(port));
    let (sent, _) = run_bridge(port);
    // `RESULT <good> <bad>` after 1.5 s without a message.
    let result = loop {
        match out.recv_timeout(WAIT) {
            Ok(l) if l.starts_with("RESULT ") => break l,
            Ok(_) => {}
            Err(e) => panic!("no RESULT line from sclang: {e}"),
        }
    };
    let _ = reaper.0.wait();
    let f: Vec<u64> = result[7..]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    println!(
        "sclang: bridge sent {sent}, OSCdef got {} good, {} bad",
        f[0], f[1]
    );
    assert_eq!(f[1], 0, "messages without {CHANNELS} floats: {result}");
    assert_eq!(f[0], sent);
}

/// Runs the bridge with the simulator and `examples/features.json`'s features output (rms and
/// alpha only) sending to `osc_port`; returns the datagrams it reports as sent.
fn run_bridge_features(osc_port: u16) -> u64 {
    let dir = common::tempdir("features-pd");
    let cfg = dir.join("features.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"outputs": [{{"host": "127.0.0.1", "port": {osc_port}, "format": "features",
                "features": ["band:alpha", "rms"]}}]}}"#
        ),
    )
    .unwrap();
    // 2 s at 60 ticks/s, two messages a tick.
    run_bridge_with(&["-c", cfg.to_str().unwrap()], 150).0
}

#[test]
#[ignore = "needs Pure Data (Debian: apt-get install puredata-core)"]
fn pure_data_features_recipe_routes_alpha_and_rms() {
    let (_, port) = ports();
    let (out, reaper) = start_pd("features.pd", port);
    let sent = run_bridge_features(port);
    // `[print ALPHA]` / `[print RMS]` print one float per channel for each message.
    let (mut alpha, mut rms, mut other) = (0u64, 0u64, Vec::new());
    collect(
        &out,
        |l| {
            let (tag, rest) = l.split_once(": ").unwrap_or((l, ""));
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ok = f.len() == CHANNELS && parse_floats(&f).is_some();
            match tag {
                "ALPHA" if ok => alpha += 1,
                "RMS" if ok => rms += 1,
                _ => {
                    if other.len() < 5 {
                        other.push(l.to_string());
                    }
                    return false;
                }
            }
            true
        },
        sent,
    );
    drop(reaper);
    println!("pd features: bridge sent {sent}, alpha {alpha}, rms {rms}; other {other:?}");
    assert!(
        !other
            .iter()
            .any(|l| l.contains("error") || l.contains("unknown")),
        "pd complained: {other:?}"
    );
    assert_eq!(alpha, rms);
    assert_eq!(alpha + rms, sent);
}
