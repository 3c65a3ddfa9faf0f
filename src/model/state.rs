//! The model as named tensors (checkpoints) and its FLOP count (`bench`).
use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};

use super::{Block, ResNet};

impl ResNet {
    /// Floating-point operations of one training step (forward + backward ≈ 3× forward) per image, counting a
    /// multiply-accumulate as 2 FLOPs and only convolutions and the classifier.
    pub fn train_flops_per_image(&self, h: usize, w: usize) -> f64 {
        3.0 * self.forward_flops_per_image(h, w)
    }

    /// Forward FLOPs per image (convolutions and classifier, 2 per MAC).
    pub fn forward_flops_per_image(&self, h: usize, w: usize) -> f64 {
        let mut macs = 0usize;
        let (mut sh, mut sw);
        let (m, oh, ow) = self.stem_conv.macs(h, w);
        macs += m;
        sh = self.stem_pool.window().out_size(oh);
        sw = self.stem_pool.window().out_size(ow);
        for b in &self.blocks {
            let parts = b.parts();
            let n_main = match b {
                Block::Basic { .. } => 2,
                Block::Bottleneck { .. } => 3,
            };
            let (mut h2, mut w2) = (sh, sw);
            for (c, _) in &parts[..n_main] {
                let (m, oh, ow) = c.macs(h2, w2);
                macs += m;
                h2 = oh;
                w2 = ow;
            }
            if let Some((c, _)) = parts.get(n_main) {
                macs += c.macs(sh, sw).0;
            }
            sh = h2;
            sw = w2;
        }
        macs += self.fc_weight.elem_count();
        2.0 * macs as f64
    }

    /// Parameters, running statistics and t as named tensors (for checkpoints).
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        let mut m = HashMap::new();
        for (name, v) in self.named_params() {
            m.insert(name, v.as_tensor().clone());
        }
        for bn in self.bn_layers() {
            m.insert(format!("{}.running_mean", bn.name()), bn.running_mean().clone());
            m.insert(format!("{}.running_var", bn.name()), bn.running_var().clone());
            // A 0-d int64, as PyTorch's `num_batches_tracked` buffer.
            let t = Tensor::new(i64::try_from(bn.t()).unwrap_or(i64::MAX), &Device::Cpu)?;
            m.insert(format!("{}.num_batches_tracked", bn.name()), t);
        }
        Ok(m)
    }

    /// Loads what [`Self::state_dict`] wrote. Every tensor must be present with the right shape. Checkpoints from
    /// bnscope before tiny took torchvision's names (`stem.conv`, `stem.bn`) and with a 1-element
    /// `num_batches_tracked` load too.
    pub fn load_state_dict(&mut self, sd: &HashMap<String, Tensor>) -> std::result::Result<(), String> {
        let get = |name: &str, want: &[usize]| -> std::result::Result<&Tensor, String> {
            let t = sd
                .get(name)
                .or_else(|| legacy_name(name).and_then(|old| sd.get(&old)))
                .ok_or_else(|| format!("tensor {name} is missing"))?;
            let counter = name.ends_with(".num_batches_tracked") && t.elem_count() == 1;
            if t.dims() != want && !counter {
                return Err(format!("tensor {name} has shape {:?}, expected {:?}", t.dims(), want));
            }
            Ok(t)
        };
        for (name, v) in self.named_params() {
            let t = get(&name, v.dims())?;
            let t = t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_device(v.device()))
                .map_err(|e| e.to_string())?;
            v.set(&t).map_err(|e| e.to_string())?;
        }
        for bn in self.bn_layers_mut() {
            let c = bn.channels();
            let mean = get(&format!("{}.running_mean", bn.name()), &[c])?.clone();
            let var = get(&format!("{}.running_var", bn.name()), &[c])?.clone();
            let t = get(&format!("{}.num_batches_tracked", bn.name()), &[])?
                .to_dtype(DType::I64)
                .and_then(|t| t.flatten_all()?.to_vec1::<i64>())
                .map_err(|e| e.to_string())?[0];
            bn.set_running_stats(mean, var, t.max(0) as u64)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The name a tensor had in checkpoints of bnscope's tiny before it took torchvision's names.
fn legacy_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("conv1.") {
        return Some(format!("stem.conv.{rest}"));
    }
    name.strip_prefix("bn1.").map(|rest| format!("stem.bn.{rest}"))
}
