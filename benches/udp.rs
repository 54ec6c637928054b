//! UDP send cost on loopback, **sender side only**: the receiving socket is bound but never read
//! ("blocked receiver", as in limits.md §1 second table). Its buffer fills after a few hundred
//! datagrams and the kernel then drops what arrives, while the sender keeps paying the full
//! send path (on loopback the receive path up to the socket queue runs in the sender's
//! context). No receiver thread competes for the second core, so the numbers are stable.
//!
//! One iteration sends a batch of 256 equal-size datagrams (the encoder hands the sender up to
//! `output::TRANSMIT_BATCH` = 1024 per call, in whole GSO runs) from one contiguous arena. Throughput is in
//! datagrams, so **time ÷ 256 = cost per datagram**. Groups are `udp_send_blocked/<size>`:
//!
//! * `std_send`: `std::net::UdpSocket::send` loop on a connected socket (4 MiB `SO_SNDBUF`).
//! * `sendmmsg`: `zmq2osc::net::UdpSender` with `use_gso: false` (one `sendmmsg` of 256).
//! * `gso`: `UdpSender` with `use_gso: true`: runs of ≤ 64 segments and ≤ 65 507 B per
//!   `sendmsg` (63 × 1 KB, 7 × 8 KB). GSO only applies when a run's total ≤ 65 507 B, so for
//!   60 KB datagrams no run forms and it degrades to plain `sendmmsg`: that bench is named
//!   `gso_inactive_sendmmsg` in the 60 KB group.
//! * `portable`: `UdpSender` with `force_portable: true` (one `send` per datagram via socket2).
//!
//! Compare with limits.md §1 "Blocked receiver": 1 KB ≈ 3.2–4.9 µs/datagram without GSO,
//! 0.6–0.7 µs with GSO; 8 KB ≈ 3.5–6 µs, GSO 1.2–1.3 µs; 60 KB ≈ 5.9–7.1 µs.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use socket2::SockRef;
use std::net::{SocketAddr, UdpSocket};
use zmq2osc::net::{SenderOptions, UdpSender};

const BATCH: usize = 256;

fn arena(size: usize) -> (Vec<u8>, Vec<(u32, u32)>) {
    let arena: Vec<u8> = (0..size * BATCH).map(|i| (i * 31 + 7) as u8).collect();
    let dgrams = (0..BATCH)
        .map(|i| ((i * size) as u32, size as u32))
        .collect();
    (arena, dgrams)
}

fn sender(dest: SocketAddr, use_gso: bool, force_portable: bool) -> UdpSender {
    UdpSender::connect(
        dest,
        &SenderOptions {
            use_gso,
            force_portable,
            ..Default::default()
        },
    )
    .expect("UdpSender::connect")
}

/// Prints which send path was measured, and (does not assert) anything that would make the
/// numbers mean something else.
fn report(label: &str, name: &str, tx: &UdpSender) {
    let s = tx.stats();
    eprintln!(
        "udp bench {label}/{name}: measured send path {} ({} syscalls, {} GSO super-buffers, {} GSO fallbacks)",
        tx.backend(),
        s.syscalls,
        s.gso_batches,
        s.gso_fallbacks
    );
    if s.dropped() > 0 || s.gso_fallbacks > 0 {
        eprintln!("udp bench {name}: sender-side drops or GSO fallback: {s:?}");
    }
}

fn bench_udp(c: &mut Criterion) {
    // The blocked receiver: bound, never read.
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    let dest = rx.local_addr().expect("local addr");

    for (size, label) in [(1024usize, "1KB"), (8192, "8KB"), (61_440, "60KB")] {
        let (arena, dgrams) = arena(size);
        let gso_applies = 2 * size <= zmq2osc::net::GSO_MAX_BYTES;
        let mut g = c.benchmark_group(format!("udp_send_blocked/{label}"));
        g.throughput(Throughput::Elements(BATCH as u64));

        let std_sock = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        SockRef::from(&std_sock)
            .set_send_buffer_size(4 << 20)
            .expect("SO_SNDBUF");
        std_sock.connect(dest).expect("connect");
        g.bench_function("std_send", |b| {
            b.iter(|| {
                for &(off, len) in &dgrams {
                    let d = &arena[off as usize..(off + len) as usize];
                    black_box(std_sock.send(d).ok());
                }
            })
        });
        eprintln!("udp bench {label}/std_send: measured send path std UdpSocket::send loop");

        let mut tx = sender(dest, false, false);
        if tx.backend() != "sendmmsg" {
            eprintln!("udp bench: expected backend sendmmsg, got {}", tx.backend());
        }
        g.bench_function("sendmmsg", |b| {
            b.iter(|| tx.send_batch(black_box(&arena), &dgrams))
        });
        report(label, "sendmmsg", &tx);

        let mut tx = sender(dest, true, false);
        if tx.backend() != "sendmmsg+gso" {
            eprintln!(
                "udp bench: UDP GSO unavailable here (backend {}); the gso bench measures sendmmsg",
                tx.backend()
            );
        }
        let gso_name = if gso_applies {
            "gso"
        } else {
            "gso_inactive_sendmmsg"
        };
        g.bench_function(gso_name, |b| {
            b.iter(|| tx.send_batch(black_box(&arena), &dgrams))
        });
        report(label, gso_name, &tx);
        if gso_applies && tx.stats().gso_batches == 0 && tx.backend() == "sendmmsg+gso" {
            eprintln!("udp bench: no GSO batch was sent at {label}");
        }

        let mut tx = sender(dest, false, true);
        g.bench_function("portable", |b| {
            b.iter(|| tx.send_batch(black_box(&arena), &dgrams))
        });
        report(label, "portable", &tx);
        g.finish();
    }
    drop(rx);
}

criterion_group!(benches, bench_udp);
criterion_main!(benches);
