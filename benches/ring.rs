//! Hand-off of `Box<Frame>` between two real threads through `rtrb` SPSC rings, as the engine
//! does it: the receiver thread (here the bench thread) takes a free frame (free list, refilled
//! from the return ring), writes its `seq` and pushes it into the frames ring; the shard thread
//! pops it, reads `seq` and pushes it back on the return ring. Ring sizes are the engine's
//! defaults (queue 100 + 64 headroom = 164, pool 168).
//!
//! Group `frame_handoff/2_threads` (throughput: frames):
//!
//! * `rtrb_box`: the round trip above with `Box<Frame>`, per frame. The clock starts when both
//!   threads leave a `std::sync::Barrier` and stops when the last frame is back on the
//!   receiver side.
//! * `rtrb_arc`: the same with `Arc<Frame>` (written through `Arc::get_mut`), the handle the
//!   engine is moving to.
//! * `base`: the same two threads, barrier and loop counts, with no ring (each side just
//!   touches a local frame); the clock stops when the producer sees the consumer's "done" flag.
//!   This is the harness alone: **ring cost per frame ≈ `rtrb_*` − `base`**.
//!
//! Both threads busy-spin. On this 2-core, shared VM the other core may be taken by someone
//! else, so individual samples can be slow (a descheduled spinner); read the median. For
//! scale: the engine moves 43 frames/s at 256 ch × 696 samples, so even 1 µs per frame is
//! negligible; limits.md has no ring figure (the nearest is `perf bench sched pipe`,
//! 8.8–34 µs per round trip with wake-ups, which spinning avoids).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rtrb::{Consumer, Producer, RingBuffer};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use zmq2osc::frame::Frame;

const RING: usize = 164;
const POOL: usize = RING + 4;

/// A frame handle that moves through the rings: `Box<Frame>` (the brief's and the committed
/// engine's) or `Arc<Frame>` (the engine being refactored to fan frames out to several shards;
/// the writer side then goes through `Arc::get_mut`, a refcount check).
trait Handle: Send + 'static {
    fn make() -> Self;
    fn set_seq(&mut self, seq: u64);
    fn seq(&self) -> u64;
}

impl Handle for Box<Frame> {
    fn make() -> Self {
        Box::new(Frame::new(1, 1))
    }
    #[inline]
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Handle for Arc<Frame> {
    fn make() -> Self {
        Arc::new(Frame::new(1, 1))
    }
    #[inline]
    fn set_seq(&mut self, seq: u64) {
        if let Some(f) = Arc::get_mut(self) {
            f.seq = seq;
        }
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

struct Rings<T> {
    free: Vec<T>,
    frames_tx: Producer<T>,
    frames_rx: Consumer<T>,
    ret_tx: Producer<T>,
    ret_rx: Consumer<T>,
}

impl<T: Handle> Rings<T> {
    fn new() -> Self {
        let (frames_tx, frames_rx) = RingBuffer::new(RING);
        let (ret_tx, ret_rx) = RingBuffer::new(POOL);
        Rings {
            // Tiny frames: only the pointer moves and `seq` is touched, as in the engine.
            free: (0..POOL).map(|_| T::make()).collect(),
            frames_tx,
            frames_rx,
            ret_tx,
            ret_rx,
        }
    }

    /// Moves `iters` frames producer → consumer → back; returns the time from the barrier to
    /// the last frame's return.
    fn round_trips(&mut self, iters: u64) -> Duration {
        let barrier = Barrier::new(2);
        let Rings {
            free,
            frames_tx,
            frames_rx,
            ret_tx,
            ret_rx,
        } = self;
        std::thread::scope(|s| {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                let mut n = 0u64;
                while n < iters {
                    match frames_rx.pop() {
                        Ok(f) => {
                            black_box(f.seq());
                            // The return ring holds the whole pool: cannot be full.
                            let _ = ret_tx.push(f);
                            n += 1;
                        }
                        Err(_) => spin_loop(),
                    }
                }
            });
            barrier.wait();
            let start = Instant::now();
            for i in 0..iters {
                let mut f = loop {
                    if let Some(f) = free.pop() {
                        break f;
                    }
                    while let Ok(f) = ret_rx.pop() {
                        free.push(f);
                    }
                    if free.is_empty() {
                        spin_loop();
                    }
                };
                f.set_seq(i);
                let mut f = Some(f);
                while let Some(fr) = f.take() {
                    if let Err(rtrb::PushError::Full(fr)) = frames_tx.push(fr) {
                        f = Some(fr);
                        spin_loop();
                    }
                }
            }
            // Until every frame is back.
            while free.len() < POOL {
                match ret_rx.pop() {
                    Ok(f) => free.push(f),
                    Err(_) => spin_loop(),
                }
            }
            start.elapsed()
        })
    }
}

/// Same threads, barrier and loops, no ring.
fn base(iters: u64) -> Duration {
    let barrier = Barrier::new(2);
    let done = AtomicBool::new(false);
    let mut a = Box::new(Frame::new(1, 1));
    let mut b = Box::new(Frame::new(1, 1));
    std::thread::scope(|s| {
        let (barrier, done) = (&barrier, &done);
        let b = &mut b;
        s.spawn(move || {
            barrier.wait();
            for i in 0..iters {
                b.seq = i;
                black_box(b.seq);
                black_box(&mut *b);
            }
            done.store(true, Ordering::Release);
        });
        barrier.wait();
        let start = Instant::now();
        for i in 0..iters {
            a.seq = i;
            black_box(&mut a);
        }
        while !done.load(Ordering::Acquire) {
            spin_loop();
        }
        start.elapsed()
    })
}

fn bench_ring(c: &mut Criterion) {
    let mut boxed = Rings::<Box<Frame>>::new();
    let mut arced = Rings::<Arc<Frame>>::new();
    // Sanity, outside the timing: frames go round and all come back.
    boxed.round_trips(1000);
    arced.round_trips(1000);
    assert_eq!((boxed.free.len(), arced.free.len()), (POOL, POOL));
    assert!(arced.free.iter().all(|f| Arc::strong_count(f) == 1));

    let mut g = c.benchmark_group("frame_handoff/2_threads");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtrb_box", |b| {
        b.iter_custom(|iters| boxed.round_trips(iters))
    });
    g.bench_function("rtrb_arc", |b| {
        b.iter_custom(|iters| arced.round_trips(iters))
    });
    g.bench_function("base", |b| b.iter_custom(base));
    g.finish();
    assert_eq!((boxed.free.len(), arced.free.len()), (POOL, POOL));
}

criterion_group!(benches, bench_ring);
criterion_main!(benches);
