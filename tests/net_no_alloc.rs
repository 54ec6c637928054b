//! `send_batch` must not allocate: a counting global allocator (per thread, so the test harness's
//! own threads do not disturb it) checks 100 calls after a warm-up, on the sendmmsg, GSO and
//! portable paths.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::UdpSocket;

use zmq2osc::net::{SenderOptions, UdpSender, BATCH_MAX};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // try_with: the thread-local may already be gone while a thread is being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: delegates every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

/// Warm-up call, then 100 calls of `BATCH_MAX` datagrams of `len` bytes; returns the sender.
fn check(opts: &SenderOptions, len: usize, mixed: bool) -> UdpSender {
    // The receiver is never read: the kernel drops what does not fit, the sender is unaffected.
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tx = UdpSender::connect(rx.local_addr().unwrap(), opts).unwrap();
    let lens: Vec<usize> = (0..BATCH_MAX)
        .map(|i| if mixed { len + i % 7 } else { len })
        .collect();
    let arena = vec![0xA5u8; lens.iter().sum()];
    let mut dgrams = Vec::with_capacity(BATCH_MAX);
    let mut off = 0;
    for l in &lens {
        dgrams.push((off as u32, *l as u32));
        off += l;
    }
    assert_eq!(tx.send_batch(&arena, &dgrams).sent, BATCH_MAX); // warm-up
    let before = allocs();
    for _ in 0..100 {
        let out = tx.send_batch(&arena, &dgrams);
        assert_eq!(out.sent, BATCH_MAX);
    }
    let after = allocs();
    assert_eq!(after - before, 0, "send_batch allocated ({})", tx.backend());
    assert_eq!(tx.stats().datagrams_sent, 101 * BATCH_MAX as u64);
    tx
}

#[test]
fn sendmmsg_path_does_not_allocate() {
    let opts = SenderOptions {
        use_gso: false,
        ..Default::default()
    };
    let tx = check(&opts, 1304, true);
    assert!(tx.backend() == "sendmmsg" || tx.backend() == "portable");
    assert_eq!(tx.stats().gso_batches, 0);
}

#[test]
fn gso_path_does_not_allocate() {
    let tx = check(&SenderOptions::default(), 1304, false);
    if tx.backend() == "sendmmsg+gso" {
        assert!(tx.stats().gso_batches > 0);
    } else {
        eprintln!("UDP GSO unsupported here: only the non-GSO path was checked");
    }
}

#[test]
fn portable_path_does_not_allocate() {
    let opts = SenderOptions {
        force_portable: true,
        ..Default::default()
    };
    let tx = check(&opts, 1304, true);
    assert_eq!(tx.backend(), "portable");
}

/// The counter works (guards against a vacuous pass).
#[test]
fn counter_sees_allocations() {
    let before = allocs();
    let v = std::hint::black_box(vec![1u8; 100]);
    drop(v);
    assert!(allocs() > before);
}
