//! Downsampling by F: `average` (float32 sequential sum ÷ F, bit-exact with the original's
//! numpy mean) or `decimate` (sample F−1 of each group, no filter). A group carries across
//! frames; `reset_group` (in `pipeline`) discards an unfinished one at a discontinuity.

use super::{OutputPipeline, NAN_COL};
use crate::config::DownsamplingMethod;
use crate::frame::Frame;

impl OutputPipeline {
    /// Feeds input sample `j` of `f` (every column); true when it completes an output row
    /// (then in `self.row`, its first input sample in `self.row_start`).
    pub(super) fn take_sample(&mut self, f: &Frame, j: usize) -> bool {
        let n = self.n;
        let factor = self.fmt.factor;
        if factor == 1 {
            for (i, &ch) in self.cols.iter().enumerate() {
                self.row[i] = if ch == NAN_COL {
                    f32::NAN
                } else {
                    f.sample(ch, j)
                };
            }
            self.row_start = f.sample_num.saturating_add(j as i64);
            return true;
        }
        if self.pos == 0 {
            self.group_start = f.sample_num.saturating_add(j as i64);
        }
        match self.fmt.method {
            DownsamplingMethod::Average => {
                if self.pos == 0 {
                    for (i, &ch) in self.cols.iter().enumerate() {
                        self.acc[i] = if ch == NAN_COL {
                            f32::NAN
                        } else {
                            f.sample(ch, j)
                        };
                    }
                } else {
                    for (i, &ch) in self.cols.iter().enumerate() {
                        if ch != NAN_COL {
                            self.acc[i] += f.sample(ch, j);
                        }
                    }
                }
            }
            // Lowpass rows come from `process_lowpass`; here it can only mean F = 1.
            DownsamplingMethod::Decimate | DownsamplingMethod::Lowpass => {
                if self.pos == factor - 1 {
                    for (i, &ch) in self.cols.iter().enumerate() {
                        self.acc[i] = if ch == NAN_COL {
                            f32::NAN
                        } else {
                            f.sample(ch, j)
                        };
                    }
                }
            }
        }
        self.pos += 1;
        if self.pos < factor {
            return false;
        }
        self.pos = 0;
        self.row_start = self.group_start;
        match self.fmt.method {
            DownsamplingMethod::Average => {
                let d = factor as f32;
                for i in 0..n {
                    self.row[i] = self.acc[i] / d;
                }
            }
            DownsamplingMethod::Decimate | DownsamplingMethod::Lowpass => {
                self.row[..n].copy_from_slice(&self.acc[..n])
            }
        }
        true
    }
}
