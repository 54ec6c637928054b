//! Portable send loop: one `send` per datagram through `socket2` (std/socket2 APIs only, so it
//! builds on macOS and Windows). Used on every non-Linux target, on Linux with
//! `SenderOptions::force_portable`, and after `sendmmsg` reported `ENOSYS`.
#![forbid(unsafe_code)]

use super::{classify, BatchOutcome, ErrClass, Shared};

/// Sends `arena[off..off + len]` for each `(off, len)` in `dgrams` (all in bounds), in order,
/// with the error policy documented on `UdpSender::send_batch`.
pub(super) fn send(sh: &mut Shared, arena: &[u8], dgrams: &[(u32, u32)]) -> BatchOutcome {
    let mut out = BatchOutcome::default();
    for &(off, len) in dgrams {
        let d = &arena[off as usize..off as usize + len as usize];
        loop {
            sh.stats.syscalls += 1;
            match sh.socket.send(d) {
                Ok(n) => {
                    sh.stats.datagrams_sent += 1;
                    sh.stats.bytes_sent += n as u64;
                    out.sent += 1;
                    break;
                }
                Err(e) => match classify(&e) {
                    ErrClass::Interrupted => continue,
                    ErrClass::WouldBlock if sh.wait_would_block() => continue,
                    class => {
                        sh.count_drop(class, 1, &e);
                        out.dropped += 1;
                        break;
                    }
                },
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    /// Test 5: the portable loop passes the mixed-size round trip (1000 datagrams, in order).
    #[test]
    fn portable_mixed_sizes_arrive_intact_in_order() {
        let opts = SenderOptions {
            force_portable: true,
            ..Default::default()
        };
        let st = mixed_sizes_roundtrip(&opts, "portable");
        assert_eq!(st.syscalls, 1000);
        assert_eq!(st.gso_batches, 0);
    }

    #[test]
    fn portable_ignores_gso_injection() {
        let (rx, _) = receiver();
        let opts = SenderOptions {
            force_portable: true,
            ..Default::default()
        };
        let mut tx = UdpSender::connect(rx.local_addr().unwrap(), &opts).unwrap();
        tx.inject_gso_error(22);
        let (arena, dgrams) = arena(&[1304; 20]);
        assert_eq!(tx.send_batch(&arena, &dgrams).sent, 20);
        expect(&rx, &arena, &dgrams);
        assert_eq!(tx.stats().gso_fallbacks, 0);
    }
}
