//! `osc-sink`: receives the bridge's OSC output on UDP, checks every value against the
//! simulator's `pattern` signal and reports delivered / lost / duplicated / reordered / torn
//! rows and the kernel's drops for its own socket. With `--any` it checks no value and
//! measures any stream (a real GUI, a replay): rows, rate, sizes, gaps and reorders from the
//! sample-number arguments, kernel drops and an inter-arrival histogram.

use clap::Parser;
use oe_testkit::sink::{pattern_wrap, Layout, Method, Sink, SinkConfig};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "osc-sink",
    about = "OSC receiver that verifies the simulator's signal (or, with --any, measures any stream)"
)]
struct Opt {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:10000")]
    bind: std::net::SocketAddr,
    /// Channels 0..N expected (as given to the simulator).
    #[arg(long, default_value_t = 32)]
    channels: u32,
    /// "sample" or "batch" (values checked against the simulator's pattern), or "any".
    #[arg(long, default_value = "sample")]
    mode: String,
    /// Any stream, no value check (same as --mode any): messages per address, rows
    /// (…/sample = 1, …/batch/<k> = k), rate, datagram sizes, gaps and reorders from the
    /// sample-number arguments (output option "sample_number": two ints, hi/lo), kernel drops
    /// and a histogram of inter-arrival times.
    #[arg(long)]
    any: bool,
    /// Downsampling factor F of the bridge.
    #[arg(long, default_value_t = 1)]
    factor: u32,
    /// "average" or "decimate".
    #[arg(long, default_value = "average")]
    method: String,
    /// OSC base address.
    #[arg(long, default_value = "/data")]
    base: String,
    /// SO_RCVBUF request in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    rcvbuf: usize,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

fn main() -> std::process::ExitCode {
    let o = Opt::parse();
    let layout = match o.mode.as_str() {
        _ if o.any => Layout::Any,
        "any" => Layout::Any,
        "sample" => Layout::Sample,
        "batch" => Layout::Batch,
        m => {
            eprintln!("error: unknown --mode {m}");
            return std::process::ExitCode::from(2);
        }
    };
    let method = match o.method.as_str() {
        "average" => Method::Average,
        "decimate" => Method::Decimate,
        m => {
            eprintln!("error: unknown --method {m}");
            return std::process::ExitCode::from(2);
        }
    };
    let cfg = SinkConfig {
        bind: o.bind,
        recv_buffer_bytes: o.rcvbuf,
        base_address: o.base.clone(),
        layout,
        channels: (0..o.channels.max(1)).collect(),
        wrap: pattern_wrap(o.channels.max(1) - 1),
        factor: o.factor.max(1),
        method,
        block_clock: None,
    };
    let sink = match Sink::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", o.bind);
            return std::process::ExitCode::from(3);
        }
    };
    eprintln!(
        "osc-sink: listening on {} (SO_RCVBUF {} KiB) for {} s",
        sink.local_addr(),
        sink.effective_recv_buffer() / 1024,
        o.seconds
    );
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(o.seconds.max(0.0));
    let mut last_rows = 0;
    while Instant::now() < end {
        std::thread::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        );
        let r = sink.report();
        eprintln!(
            "[{:6.1}s] rows {} (+{}/s) clean {} lost {} dup {} reordered {} torn {} bad {} kernel drops {}",
            t0.elapsed().as_secs_f64(),
            r.rows,
            r.rows - last_rows,
            r.clean_rows,
            r.lost_rows,
            r.duplicated_rows,
            r.reordered_rows,
            r.torn_rows,
            r.bad_values,
            r.kernel_drops
        );
        last_rows = r.rows;
    }
    let r = sink.stop();
    if layout == Layout::Any {
        let a = &r.any;
        let secs = match (r.first_at, r.last_at) {
            (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        };
        println!(
            "messages {} rows {} rate {:.1} rows/s bytes {}..{} max_args {} numbered {} gaps {} gap_samples {} reorders {} malformed {} kernel_drops {} max_interarrival_us {}",
            a.messages,
            a.rows,
            if secs > 0.0 { a.rows as f64 / secs } else { 0.0 },
            a.min_bytes,
            a.max_bytes,
            a.max_args,
            a.numbered,
            a.gaps,
            a.gap_samples,
            a.reorders,
            r.malformed,
            r.kernel_drops,
            a.max_gap_us
        );
        for (addr, n) in &a.addresses {
            println!("  {addr} {n}");
        }
        println!("inter-arrival times:");
        print!("{}", a.histogram_text());
        return std::process::ExitCode::SUCCESS;
    }
    let total = r.rows + r.lost_rows;
    println!(
        "rows {} clean {} lost {} duplicated {} reordered {} torn {} bad_values {} malformed {} kernel_drops {} delivered {:.6}",
        r.rows,
        r.clean_rows,
        r.lost_rows,
        r.duplicated_rows,
        r.reordered_rows,
        r.torn_rows,
        r.bad_values,
        r.malformed,
        r.kernel_drops,
        if total > 0 { r.rows as f64 / total as f64 } else { 0.0 }
    );
    std::process::ExitCode::SUCCESS
}
