//! Held-out sets: `--val-split` (the last images of each class) and the checks on a `--val` folder.
use std::time::Duration;

use anyhow::Result;

use super::dataset::{Dataset, Store};
use crate::error::usage;

impl Dataset {
    /// The images `idx` (data order kept) as a data set of their own, named `source`.
    fn subset(&self, idx: &[usize], source: String) -> Dataset {
        let per = self.image_len();
        let store = match &self.store {
            Store::Memory(p) => Store::Memory(idx.iter().flat_map(|&i| &p[i * per..(i + 1) * per]).copied().collect()),
            Store::Bytes(b) => Store::Bytes(idx.iter().flat_map(|&i| &b[i * per..(i + 1) * per]).copied().collect()),
            Store::Files(f) => Store::Files(idx.iter().map(|&i| f[i].clone()).collect()),
            Store::Drawn { marks, ids } => Store::Drawn {
                marks: marks.clone(),
                ids: idx.iter().map(|&i| ids[i]).collect(),
            },
        };
        Dataset {
            classes: self.classes.clone(),
            names: idx.iter().map(|&i| self.names[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            size: self.size,
            source,
            ignored: 0,
            file_ids: if self.file_ids.len() == self.len() {
                idx.iter().map(|&i| self.file_ids[i]).collect()
            } else {
                Vec::new()
            },
            normalize: self.normalize,
            memory_bound: self.memory_bound,
            load_time: Duration::ZERO,
            store,
        }
    }

    /// `--val-split F`: the last ⌈F·n⌉ images of each class (in data order, i.e. by sorted file name) become the
    /// held-out set, the others stay for training. Deterministic. A class left without a training image is a
    /// one-line error; `frac` must be in (0, 1).
    pub fn split_held_out(self, frac: f64) -> Result<(Dataset, Dataset)> {
        if !(frac > 0.0 && frac < 1.0) {
            return Err(usage(format!(
                "--val-split {frac}: must be a fraction between 0 and 1 (0.2 holds out the last 20% of each class)"
            )));
        }
        let (mut train, mut held) = (Vec::new(), Vec::new());
        for (label, class) in self.classes.iter().enumerate() {
            let members: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == label).collect();
            let n = members.len();
            // ⌈F·n⌉, without the rounding error of F·n (0.1·30 is 3.0000000000000004 in f64).
            let k = (frac * n as f64 - 1e-9).ceil().max(1.0) as usize;
            if k >= n {
                return Err(usage(format!(
                    "--val-split {frac}: class {} has {n} image{}; holding out {k} leaves none to train on",
                    crate::terminal::printable(class),
                    if n == 1 { "" } else { "s" }
                )));
            }
            train.extend_from_slice(&members[..n - k]);
            held.extend_from_slice(&members[n - k..]);
        }
        train.sort_unstable();
        held.sort_unstable();
        let t = self.subset(&train, self.source.clone());
        let mut t = Dataset {
            ignored: self.ignored,
            load_time: self.load_time,
            ..t
        };
        // Every file read stays an input that no output may overwrite.
        t.file_ids = self.file_ids.clone();
        let pct = (frac * 1e4).round() / 1e2;
        let h = self.subset(&held, format!("{} (last {pct}% of each class)", self.source));
        Ok((t, h))
    }

    /// A `--val DIR` set must have the training set's classes, in the same order, and its image size.
    pub fn check_held_out(&self, val: &Dataset, flag: &str) -> Result<()> {
        if val.classes != self.classes {
            return Err(usage(format!(
                "{flag} {}: its classes ({}) differ from the training data's ({}); the held-out set needs the same \
                 class folders",
                crate::terminal::printable(&val.source),
                crate::terminal::printable(&val.classes.join(", ")),
                crate::terminal::printable(&self.classes.join(", "))
            )));
        }
        if val.size != self.size || val.normalize != self.normalize {
            anyhow::bail!("the held-out set was loaded at another size or normalisation than the training set");
        }
        Ok(())
    }
}
