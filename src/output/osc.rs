//! Hand-written, allocation-free OSC 1.0 encoding of the bridge's float messages.
//!
//! The bytes are identical to python-osc 1.9.3 (the original bridge's encoder): address and
//! type-tag strings NUL-terminated and padded to 4 bytes, arguments big-endian. `rosc` is used
//! only in tests, to decode what we produce. The message assembly around these helpers
//! (bundles, splitting) is in `super::encode`.

/// Largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// `n` rounded up to a multiple of 4.
#[inline]
pub const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Size of an OSC string (with its NUL and padding) of `len` bytes.
#[inline]
pub const fn osc_str_len(len: usize) -> usize {
    pad4(len + 1)
}

/// Writes an OSC string (NUL + padding) at the start of `out`; returns bytes written.
/// `out` must be at least [`osc_str_len`] long.
#[inline]
pub fn put_str(out: &mut [u8], s: &[u8]) -> usize {
    let n = osc_str_len(s.len());
    out[..s.len()].copy_from_slice(s);
    out[s.len()..n].fill(0);
    n
}

/// Writes a type-tag string `,` + `prefix` + `f`×`nf` (NUL-padded); returns bytes written.
#[inline]
pub fn put_tags(out: &mut [u8], prefix: &[u8], nf: usize) -> usize {
    let len = 1 + prefix.len() + nf;
    let n = osc_str_len(len);
    out[0] = b',';
    out[1..1 + prefix.len()].copy_from_slice(prefix);
    out[1 + prefix.len()..len].fill(b'f');
    out[len..n].fill(0);
    n
}

/// Writes floats big-endian; returns bytes written.
#[inline]
pub fn put_floats(out: &mut [u8], vals: &[f32]) -> usize {
    for (dst, v) in out.chunks_exact_mut(4).zip(vals) {
        dst.copy_from_slice(&v.to_bits().to_be_bytes());
    }
    vals.len() * 4
}

/// Size of a message with address length `addr`, type prefix length `prefix` (after `,`),
/// `nf` floats and `extra` bytes of non-float arguments.
#[inline]
pub const fn message_len(addr: usize, prefix: usize, nf: usize, extra: usize) -> usize {
    osc_str_len(addr) + osc_str_len(1 + prefix + nf) + extra + 4 * nf
}

/// Decimal digits of `v` into `buf`; returns the used tail slice.
pub fn itoa(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

// Address templates moved to `super::address`; re-exported here for existing users.
pub use super::address::{
    format_address, format_channel_address, validate_address_template, AddressVars,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn spec_sample_message_bytes() {
        // §3.8: /data/sample [3.0, 1003.0, 2003.0, 3003.0], 40 bytes.
        let want = hex("2f646174 612f7361 6d706c65 00000000 2c666666 66000000 40400000 447ac000 44fa6000 453bb000");
        let mut out = vec![0u8; message_len(12, 0, 4, 0)];
        let mut n = put_str(&mut out, b"/data/sample");
        n += put_tags(&mut out[n..], b"", 4);
        n += put_floats(&mut out[n..], &[3.0, 1003.0, 2003.0, 3003.0]);
        assert_eq!(n, 40);
        assert_eq!(out, want);
    }

    #[test]
    fn spec_single_float_messages() {
        let mut out = vec![0u8; 24];
        let mut n = put_str(&mut out, b"/data/sample");
        n += put_tags(&mut out[n..], b"", 1);
        n += put_floats(&mut out[n..], &[1.5]);
        assert_eq!(
            &out[..n],
            &hex("2f646174 612f7361 6d706c65 00000000 2c660000 3fc00000")[..]
        );
        let mut out = vec![0u8; 16];
        let mut n = put_str(&mut out, b"/ch000");
        n += put_tags(&mut out[n..], b"", 1);
        n += put_floats(&mut out[n..], &[1.5]);
        assert_eq!(&out[..n], &hex("2f636830 30300000 2c660000 3fc00000")[..]);
    }

    #[test]
    fn sizes_match_spec_formula() {
        // sample mode 16 + pad4(N+2) + 4N: 32 ch = 180 B, 384 ch = 1940 B (§3.8).
        assert_eq!(message_len(12, 0, 32, 0), 180);
        assert_eq!(message_len(12, 0, 384, 0), 1940);
        assert_eq!(message_len(12, 0, 256, 0), 1300);
        assert_eq!(message_len(12, 0, 1024, 0), 5140);
        // batch 32 ch × 10 = 1624 B.
        assert_eq!(message_len("/data/batch/10".len(), 1, 320, 4), 1624);
    }

    #[test]
    fn channel_address_templates() {
        assert_eq!(format_channel_address("/ch{:03d}", 7).unwrap(), "/ch007");
        assert_eq!(
            format_channel_address("/ch{:03d}", 1234).unwrap(),
            "/ch1234"
        );
        assert_eq!(format_channel_address("/c/{}", 12).unwrap(), "/c/12");
        assert_eq!(format_channel_address("/c/{0}", 3).unwrap(), "/c/3");
        assert_eq!(
            format_channel_address("/c/{0:02d}/x", 3).unwrap(),
            "/c/03/x"
        );
        assert_eq!(format_channel_address("/c{:3d}", 3).unwrap(), "/c  3");
        assert_eq!(format_channel_address("/{{a}}/{}", 3).unwrap(), "/{a}/3");
        assert!(format_channel_address("/ch", 1).is_err());
        assert!(format_channel_address("/ch{nope}", 1).is_err());
        assert!(format_channel_address("/ch{", 1).is_err());
        assert!(format_channel_address("ch{}", 1).is_err());
    }

    #[test]
    fn new_templates() {
        let v = AddressVars {
            base: "/oe",
            stream: "Rhythm Data",
            name: "Fp 1",
            ch: 7,
            index: 2,
        };
        assert_eq!(
            format_address("{base}/{stream}/{name}", &v).unwrap(),
            "/oe/Rhythm_Data/Fp_1"
        );
        assert_eq!(format_address("{base}/ch{ch:03}", &v).unwrap(), "/oe/ch007");
        assert_eq!(format_address("/i{index}", &v).unwrap(), "/i2");
        assert!(validate_address_template("{base}/{stream}").is_err());
        assert!(validate_address_template("{base}/{name}").is_ok());
    }

    #[test]
    fn itoa_digits() {
        let mut b = [0u8; 20];
        assert_eq!(itoa(0, &mut b), b"0");
        assert_eq!(itoa(1000, &mut b), b"1000");
        assert_eq!(itoa(u64::MAX, &mut b), b"18446744073709551615");
    }
}
