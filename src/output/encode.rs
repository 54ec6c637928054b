//! Message assembly: addresses, OSC messages with int/string/float/blob arguments, bundles,
//! splitting of messages above the datagram limit into `…/part` messages, and the datagram
//! arena handed to the [`Transmit`] in batches.

use super::osc::{self, MAX_UDP_PAYLOAD};
use super::{Addr, BundleMode, OutputPipeline, Transmit, TRANSMIT_BATCH};

impl OutputPipeline {
    /// Copies the address of `a` into `buf`; returns its length.
    pub(super) fn address(&self, a: Addr, buf: &mut [u8; 256], suffix: &[u8]) -> usize {
        let mut digits = [0u8; 20];
        let (p1, p2): (&[u8], &[u8]) = match a {
            Addr::Sample => (&self.addr_sample, b""),
            Addr::Batch(k) => (&self.addr_batch, osc::itoa(k as u64, &mut digits)),
            Addr::Blob => (&self.addr_blob, b""),
            Addr::Channel(i) => {
                let (o, l) = self.chan_off[i];
                (&self.chan_addrs[o as usize..(o + l) as usize], b"")
            }
            Addr::Ttl => (&self.addr_ttl, b""),
            Addr::Spike => (&self.addr_spike, b""),
            Addr::Status => (&self.addr_status, b""),
            Addr::Notice => (&self.addr_notice, b""),
            Addr::Feature(i) => {
                let (o, l) = self.feat_off[i];
                (&self.addr_features[o as usize..(o + l) as usize], b"")
            }
        };
        let mut len = 0;
        for part in [p1, p2, suffix] {
            let take = part.len().min(buf.len() - len);
            buf[len..len + take].copy_from_slice(&part[..take]);
            len += take;
        }
        len
    }

    /// Writes one OSC message — address `a`, int args `ints`, an optional string arg `text`
    /// (after the ints), then `nf` floats from `self.scratch` (as `f` args or one blob) —
    /// wrapped in a bundle if configured, split into `…/part` messages if it exceeds the
    /// datagram limit and splitting is on, else refused and counted.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_message(
        &mut self,
        tx: &mut dyn Transmit,
        a: Addr,
        ints: &[i32],
        text: &[u8],
        nf: usize,
        blob: bool,
        timetag: u64,
    ) {
        let bundled = self.fmt.bundle != BundleMode::Off;
        let bundle_overhead = if bundled { 20 } else { 0 };
        let mut abuf = [0u8; 256];
        let alen = self.address(a, &mut abuf, b"");
        let has_text = !text.is_empty() || matches!(a, Addr::Spike | Addr::Notice);
        let size = |alen: usize, ni: usize, nf: usize| {
            let ntags = ni + usize::from(has_text) + if blob { 1 } else { nf };
            osc::osc_str_len(alen)
                + osc::osc_str_len(1 + ntags)
                + 4 * ni
                + if has_text {
                    osc::osc_str_len(text.len())
                } else {
                    0
                }
                + if blob { 4 + osc::pad4(4 * nf) } else { 4 * nf }
                + bundle_overhead
        };
        let whole = size(alen, ints.len(), nf);
        let limit = self.fmt.max_datagram;
        if whole <= limit {
            self.write_message(
                tx,
                &abuf[..alen],
                ints,
                text,
                has_text,
                0,
                nf,
                blob,
                timetag,
                whole,
            );
            return;
        }
        if !self.fmt.split {
            self.counters.oversize += 1;
            return;
        }
        // Split: `{address}/part` with ints (seq, part, parts, offset) + the original ints,
        // then a slice of the floats. A receiver reassembles by seq, placing each slice at
        // its offset.
        let plen = self.address(a, &mut abuf, b"/part");
        let mut pints = [0i32; 12];
        let pni = 4 + ints.len();
        pints[4..pni].copy_from_slice(ints);
        let fixed = size(plen, pni, 0);
        if fixed + 8 > limit {
            self.counters.oversize += 1;
            return;
        }
        let mut chunk = (limit - fixed) / if blob { 4 } else { 5 };
        while chunk > 1 && size(plen, pni, chunk) > limit {
            chunk -= 1;
        }
        let parts = nf.div_ceil(chunk.max(1));
        self.part_seq = self.part_seq.wrapping_add(1) & 0x7fff_ffff;
        self.counters.split_messages += 1;
        for p in 0..parts {
            let off = p * chunk;
            let len = chunk.min(nf - off);
            pints[0] = self.part_seq as i32;
            pints[1] = p as i32;
            pints[2] = parts as i32;
            pints[3] = off as i32;
            let total = size(plen, pni, len);
            self.write_message(
                tx,
                &abuf[..plen],
                &pints[..pni],
                text,
                has_text,
                off,
                len,
                blob,
                timetag,
                total,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_message(
        &mut self,
        tx: &mut dyn Transmit,
        addr: &[u8],
        ints: &[i32],
        text: &[u8],
        has_text: bool,
        f_off: usize,
        nf: usize,
        blob: bool,
        timetag: u64,
        total: usize,
    ) {
        let Some(s) = self.reserve(total, tx) else {
            return;
        };
        let buf = &mut self.arena[s..s + total];
        let mut p = 0;
        if self.fmt.bundle != BundleMode::Off {
            buf[..8].copy_from_slice(b"#bundle\0");
            buf[8..16].copy_from_slice(&timetag.to_be_bytes());
            buf[16..20].copy_from_slice(&((total - 20) as u32).to_be_bytes());
            p = 20;
        }
        p += osc::put_str(&mut buf[p..], addr);
        // Type tags: , i… [s] (f… | b)
        let ntags = ints.len() + usize::from(has_text) + if blob { 1 } else { nf };
        let tl = osc::osc_str_len(1 + ntags);
        buf[p] = b',';
        let mut t = p + 1;
        for _ in ints {
            buf[t] = b'i';
            t += 1;
        }
        if has_text {
            buf[t] = b's';
            t += 1;
        }
        if blob {
            buf[t] = b'b';
            t += 1;
        } else {
            buf[t..t + nf].fill(b'f');
            t += nf;
        }
        buf[t..p + tl].fill(0);
        p += tl;
        for v in ints {
            buf[p..p + 4].copy_from_slice(&v.to_be_bytes());
            p += 4;
        }
        if has_text {
            p += osc::put_str(&mut buf[p..], text);
        }
        let vals = &self.scratch[f_off..f_off + nf];
        if blob {
            buf[p..p + 4].copy_from_slice(&((4 * nf) as u32).to_be_bytes());
            p += 4;
            p += osc::put_floats(&mut buf[p..], vals);
            let padded = osc::pad4(4 * nf) - 4 * nf;
            buf[p..p + padded].fill(0);
            p += padded;
        } else {
            p += osc::put_floats(&mut buf[p..], vals);
        }
        debug_assert_eq!(p, total);
    }

    /// Room for one datagram of `len` bytes at the end of the arena (flushing first when
    /// full). `None` (counted) when it exceeds the UDP limit.
    pub(super) fn reserve(&mut self, len: usize, tx: &mut dyn Transmit) -> Option<usize> {
        if len > MAX_UDP_PAYLOAD {
            self.counters.oversize += 1;
            return None;
        }
        if self.arena_used + len > self.arena.len() || self.dgrams.len() == TRANSMIT_BATCH {
            self.send_arena(tx);
        }
        let start = self.arena_used;
        self.arena_used += len;
        self.dgrams.push((start as u32, len as u32));
        self.counters.datagrams += 1;
        self.counters.bytes += len as u64;
        Some(start)
    }

    pub(super) fn send_arena(&mut self, tx: &mut dyn Transmit) {
        if !self.dgrams.is_empty() {
            tx.transmit(&self.arena[..self.arena_used], &self.dgrams);
            // Unit tests: what was sent becomes garbage, so a byte a datagram does not write
            // shows up as a difference (the bridge itself never reads it).
            #[cfg(test)]
            self.arena[..self.arena_used].fill(0xA5);
            self.arena_used = 0;
            self.dgrams.clear();
        }
        self.sent_rows = self.arena_rows_end;
        while let Some(&(target, arrival, ts)) = self.fifo.front() {
            if target > self.sent_rows {
                break;
            }
            self.fifo.pop_front();
            tx.block_sent(arrival, ts);
        }
    }
}
