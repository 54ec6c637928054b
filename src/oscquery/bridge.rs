//! What the bridge's outputs look like as an OSCQuery namespace: every address each output
//! sends to, with its exact type tag string, for the current layout (channel set, stream,
//! rate, names). The controller calls [`snapshot`] again whenever the layout changes.

use super::namespace::{HostInfo, Method, Snapshot};
use crate::output::address::{AddressTemplate, AddressVars};
use crate::output::{LayoutInfo, Mode, OutputSpec};

/// The channels an output carries in output order, and the argument count of one row (sparse
/// layouts put channel c at argument c).
fn columns(spec: &OutputSpec, layout: &LayoutInfo) -> (Vec<u32>, usize) {
    let f = &spec.format;
    let chans: Vec<u32> = match &f.selection {
        Some(sel) => sel.clone(),
        None => layout.channels.clone(),
    };
    let n = if f.sparse {
        chans.iter().max().map_or(0, |m| *m as usize + 1)
    } else {
        chans.len()
    };
    (chans, n)
}

fn name_of(spec: &OutputSpec, layout: &LayoutInfo, ch: u32) -> String {
    spec.format
        .names
        .iter()
        .chain(layout.names.iter())
        .find(|(c, _)| *c == ch)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| format!("CH{}", u64::from(ch) + 1))
}

/// Bytes of an OSC message to `path` with `ints` int and `floats` float arguments.
fn message_bytes(path: &str, ints: usize, floats: usize) -> usize {
    let pad = |n: usize| (n + 4) & !3; // a NUL-terminated string padded to 4 bytes
    pad(path.len()) + pad(1 + ints + floats) + 4 * (ints + floats)
}

/// The `…/part` messages a too-large message is split into (README, "Splitting").
fn part_method(whole: &str, what: &str) -> Method {
    Method {
        path: format!("{whole}/part"),
        type_tag: "iiii".into(),
        description: format!(
            "parts of {whole} messages larger than the output's max_datagram: int seq, int \
             part, int parts, int offset, then the message's own ints and a slice of its \
             floats from offset (so the type tag string varies); {what}"
        ),
    }
}

/// The methods of one output for `layout` (`None` before the first block: only the
/// addresses that do not depend on the channel set).
pub fn methods(spec: &OutputSpec, layout: Option<&LayoutInfo>) -> Vec<Method> {
    let f = &spec.format;
    let base = f.base_address.as_str();
    let sn = if f.sample_number { "ii" } else { "" };
    let dest = format!("output '{}' to {}:{}", spec.name, spec.host, spec.port);
    let down = if f.factor > 1 {
        format!(", downsampled by {} ({})", f.factor, f.method.as_str())
    } else {
        String::new()
    };
    let mut out = Vec::new();
    if let Some(l) = layout {
        let (chans, n) = columns(spec, l);
        let rate = l.rate / f.factor.max(1) as f64;
        let what = format!(
            "{n} channels of stream \"{}\" ({}{}), {} Hz input{down}; {dest}{}",
            l.stream,
            if f.sparse {
                "sparse: argument = channel number"
            } else {
                "in output order"
            },
            if f.selection.is_some() {
                ", selected"
            } else {
                ""
            },
            l.rate,
            if f.sample_number {
                "; first two ints: sample number (high, low)"
            } else {
                ""
            },
        );
        if let (Some(fc), Mode::PerChannel) = (&f.features, f.mode) {
            // `address` with `{feature}`: one message per feature, channel and tick.
            let templates = crate::output::spec::channel_templates(f).unwrap_or_default();
            for (feat, t) in fc.features.iter().zip(templates) {
                let Ok(t) = AddressTemplate::compile(&t) else {
                    continue;
                };
                for (i, ch) in chans.iter().enumerate() {
                    let name = name_of(spec, l, *ch);
                    out.push(Method {
                        path: t.format(&AddressVars {
                            base,
                            stream: &l.stream,
                            name: &name,
                            ch: *ch,
                            index: i as u32,
                        }),
                        type_tag: format!("{sn}f"),
                        description: format!(
                            "feature {} of channel {ch} ({name}), {} values/s; {dest}",
                            feat.label(),
                            fc.feature_rate
                        ),
                    });
                }
            }
        } else if let Some(fc) = &f.features {
            // A features output sends no rows: one message per feature and tick.
            for feat in &fc.features {
                out.push(Method {
                    path: format!(
                        "{base}/features/{}",
                        crate::output::spec::feature_address_name(feat)
                    ),
                    type_tag: format!("{sn}{}", "f".repeat(n)),
                    description: format!(
                        "feature {} of {n} channels, {} values/s over {} ms windows (normalize {}): {what}",
                        feat.label(),
                        fc.feature_rate,
                        fc.feature_window_ms,
                        fc.normalize.as_str()
                    ),
                });
            }
        } else {
            match f.mode {
                Mode::Sample => {
                    let path = format!("{base}/sample");
                    if message_bytes(&path, sn.len(), n) <= f.max_datagram {
                        out.push(Method {
                            path,
                            type_tag: format!("{sn}{}", "f".repeat(n)),
                            description: format!("one row per message, {rate} rows/s: {what}"),
                        });
                    } else if f.split {
                        out.push(part_method(&path, &what));
                    }
                }
                Mode::Batch => {
                    // Only the batch sizes that fit one datagram are sent as such; larger ones go
                    // out as `…/part` messages (outputs that split) or are refused (the original's
                    // format), so they are not listed one by one.
                    let mut too_big = false;
                    for k in 1..=f.batch_size.max(1) {
                        let path = format!("{base}/batch/{k}");
                        let ints = 1 + sn.len();
                        if message_bytes(&path, ints, n * k) > f.max_datagram {
                            too_big = true;
                            break;
                        }
                        out.push(Method {
                            path,
                            type_tag: format!("i{sn}{}", "f".repeat(n * k)),
                            description: format!(
                                "{k} rows (int N = channels, then channel-major floats; {} rows \
                             per full batch, fewer when flushed early), {rate} rows/s: {what}",
                                f.batch_size
                            ),
                        });
                    }
                    if too_big && f.split {
                        // Full batches (a batch flushed early goes to `…/batch/<k>/part` of its k).
                        let full = format!("{base}/batch/{}", f.batch_size.max(1));
                        out.push(part_method(&full, &what));
                    }
                }
                Mode::Blob => out.push(Method {
                    path: format!("{base}/blob"),
                    type_tag: format!("ii{sn}b"),
                    description: format!(
                        "int N channels, int k rows, one blob of N*k big-endian float32 \
                     (channel-major), up to {} rows per message, {rate} rows/s: {what}",
                        f.batch_size
                    ),
                }),
                Mode::PerChannel => {
                    if let Ok(t) = AddressTemplate::compile(&f.channel_address_format) {
                        for (i, ch) in chans.iter().enumerate() {
                            let name = name_of(spec, l, *ch);
                            let path = t.format(&AddressVars {
                                base,
                                stream: &l.stream,
                                name: &name,
                                ch: *ch,
                                index: i as u32,
                            });
                            out.push(Method {
                            path,
                            type_tag: format!("{sn}f"),
                            description: format!(
                                "channel {ch} ({name}) of stream \"{}\", {rate} values/s{down}; {dest}",
                                l.stream
                            ),
                        });
                        }
                    }
                }
            }
        }
    }
    if f.events {
        out.push(Method {
            path: format!("{base}/ttl"),
            type_tag: "iiiiii".into(),
            description: format!(
                "TTL events: line, state, sample number (high, low), word (high, low); {dest}"
            ),
        });
    }
    if f.spikes {
        out.push(Method {
            path: format!("{base}/spike"),
            type_tag: "iiis".into(),
            description: format!(
                "spikes: sorted id, sample number (high, low), electrode{}; {dest}",
                if f.spike_waveform {
                    ", then the waveform floats (channel-major)"
                } else {
                    ""
                }
            ),
        });
    }
    if f.status {
        out.push(Method {
            path: format!("{base}/status"),
            type_tag: "iiiiiiif".into(),
            description: format!(
                "once a second: blocks received, datagrams sent, dropped by policy, upstream \
                 missing messages, malformed, incomplete blocks, channels, rate; {dest}"
            ),
        });
    }
    if f.notices {
        out.push(Method {
            path: format!("{base}/notice"),
            type_tag: "isf".into(),
            description: format!("on layout changes: channels, stream, rate; {dest}"),
        });
    }
    out
}

/// The whole namespace of `specs` for `layout`.
pub fn snapshot(name: &str, specs: &[OutputSpec], layout: Option<&LayoutInfo>) -> Snapshot {
    let first = specs.first();
    Snapshot {
        host: HostInfo {
            name: name.to_string(),
            osc_ip: first.map_or_else(String::new, |s| s.host.clone()),
            osc_port: first.map_or(0, |s| s.port),
        },
        description: match layout {
            Some(l) => format!(
                "Open Ephys ZMQ Interface bridged to OSC: {} output(s); {}",
                specs.len(),
                l.describe()
            ),
            None => format!(
                "Open Ephys ZMQ Interface bridged to OSC: {} output(s); waiting for the first \
                 block (the data addresses appear once the channel set is known)",
                specs.len()
            ),
        },
        methods: specs.iter().flat_map(|s| methods(s, layout)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputFormat;

    fn layout() -> LayoutInfo {
        LayoutInfo {
            generation: 1,
            stream: "probe".into(),
            channels: vec![0, 1, 2],
            rate: 30000.0,
            names: vec![(1, "Fp2".into())],
        }
    }

    fn spec(mode: Mode) -> OutputSpec {
        OutputSpec {
            name: "o".into(),
            host: "127.0.0.1".into(),
            port: 9000,
            format: OutputFormat {
                mode,
                batch_size: 2,
                ..Default::default()
            },
            pacing: false,
            multicast_ttl: 1,
            source: None,
        }
    }

    #[test]
    fn a_features_output_lists_one_address_per_feature() {
        let mut s = spec(Mode::Sample);
        s.format.features = Some(crate::dsp::features::FeatureConfig {
            features: ["rms", "band:alpha", "band:8-12"]
                .iter()
                .map(|n| crate::dsp::features::Feature::parse(n).unwrap())
                .collect(),
            ..Default::default()
        });
        let got: Vec<_> = methods(&s, Some(&layout()))
            .into_iter()
            .map(|m| (m.path, m.type_tag))
            .collect();
        let want: Vec<_> = ["rms", "band_alpha", "band_8-12"]
            .iter()
            .map(|n| (format!("/data/features/{n}"), "fff".to_string()))
            .collect();
        assert_eq!(got, want);
        s.format.mode = Mode::PerChannel;
        s.format.channel_address_format = "{base}/f/{feature}/{ch}".into();
        let got: Vec<_> = methods(&s, Some(&layout()))
            .into_iter()
            .map(|m| m.path)
            .collect();
        assert_eq!(got.len(), 9);
        assert_eq!(
            (got[0].as_str(), got[8].as_str()),
            ("/data/f/rms/0", "/data/f/band_8-12/2")
        );
    }

    #[test]
    fn each_mode_has_its_addresses_and_types() {
        let l = layout();
        let m = methods(&spec(Mode::Sample), Some(&l));
        assert_eq!(
            (m[0].path.as_str(), m[0].type_tag.as_str()),
            ("/data/sample", "fff")
        );
        let m = methods(&spec(Mode::Batch), Some(&l));
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.path.as_str(), m.type_tag.as_str()))
            .collect();
        assert_eq!(
            got,
            [("/data/batch/1", "ifff"), ("/data/batch/2", "iffffff")]
        );
        let m = methods(&spec(Mode::Blob), Some(&l));
        assert_eq!(m[0].type_tag, "iib");
        let mut s = spec(Mode::PerChannel);
        s.format.channel_address_format = "{base}/{stream}/{name}".into();
        s.format.sample_number = true;
        let paths: Vec<_> = methods(&s, Some(&l))
            .into_iter()
            .map(|m| (m.path, m.type_tag))
            .collect();
        assert_eq!(
            paths,
            [
                ("/data/probe/CH1".to_string(), "iif".to_string()),
                ("/data/probe/Fp2".into(), "iif".into()),
                ("/data/probe/CH3".into(), "iif".into())
            ]
        );
    }

    #[test]
    fn only_what_fits_a_datagram_is_listed() {
        let mut l = layout();
        l.channels = (0..1024).collect();
        let mut s = spec(Mode::Batch);
        s.format.batch_size = 1000;
        s.format.max_datagram = 65507;
        let m = methods(&s, Some(&l));
        // A row of 1024 floats takes 5 KiB (4 bytes + 1 type tag each): 12 rows fit 65 507
        // bytes, 13 do not; without splitting nothing more is sent.
        assert_eq!(m.len(), 12);
        assert_eq!(m.last().unwrap().path, "/data/batch/12");
        s.format.split = true;
        let m = methods(&s, Some(&l));
        assert_eq!(m.len(), 13);
        assert_eq!(m.last().unwrap().path, "/data/batch/1000/part");
        let mut s = spec(Mode::Sample);
        s.format.max_datagram = 1472;
        s.format.split = true;
        let m = methods(&s, Some(&l));
        assert_eq!(m[0].path, "/data/sample/part");
    }

    #[test]
    fn selection_sparse_extras_and_no_layout_yet() {
        let l = layout();
        let mut s = spec(Mode::Sample);
        s.format.selection = Some(vec![2, 0]);
        s.format.sparse = true;
        s.format.events = true;
        s.format.status = true;
        let m = methods(&s, Some(&l));
        assert_eq!(m[0].type_tag, "fff"); // channels 0..=2 as arguments 0..=2
        assert_eq!(m[1].path, "/data/ttl");
        assert_eq!(m[2].path, "/data/status");
        let before = methods(&s, None);
        assert_eq!(before.len(), 2, "only the layout-independent addresses");
        let snap = snapshot("b", &[s], None);
        assert_eq!(snap.host.osc_port, 9000);
        assert!(snap.description.contains("waiting for the first block"));
    }
}
