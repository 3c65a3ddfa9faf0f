//! `--weights`, `inspect`, `--save-weights` and `--freeze`: PyTorch's numbers (tests/fixtures/weights, made by
//! scripts/make_weights_fixture.py), strict-load errors, the round trip, and frozen-backbone semantics.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bnscope::data;
use bnscope::framework::{Framework, FrozenBn};
use bnscope::model::Preset;
use bnscope::optim::OptimizerKind;
use bnscope::trainer::{TrainConfig, Trainer};
use bnscope::weights;
use candle_core::{DType, Device, Tensor};

mod common;
use common::BIN;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/weights")
        .join(name)
}

fn expected() -> HashMap<String, Tensor> {
    weights::read(&fixture("tiny_expected.safetensors"), "fixture").unwrap()
}

/// A PyTorch-default trainer (torch framework, SGD) on the seed images, starting from the fixture.
fn trainer(size: usize, lr: f64, frozen_bn: Option<FrozenBn>) -> Trainer {
    trainer_with(size, lr, frozen_bn, data::Normalize::None)
}

fn trainer_with(size: usize, lr: f64, frozen_bn: Option<FrozenBn>, normalize: data::Normalize) -> Trainer {
    let imported = weights::import(&fixture("tiny_torchvision.safetensors"), None).unwrap();
    assert_eq!(imported.preset, Preset::Tiny);
    let mut cfg = TrainConfig::new(Preset::Tiny);
    let p = Framework::Torch.profile();
    cfg.framework = Framework::Torch;
    cfg.bn_eps = p.bn_eps;
    cfg.momentum = p.momentum;
    cfg.bn_unbiased = p.unbiased;
    cfg.adam_eps = p.adam_eps;
    cfg.optimizer = OptimizerKind::Sgd;
    cfg.lr = lr;
    cfg.image_size = size;
    cfg.weights = Some(Arc::new(imported));
    cfg.frozen_bn = frozen_bn;
    let ds = data::embedded_with(&data::LoadOptions {
        normalize,
        ..data::LoadOptions::new(size)
    })
    .unwrap();
    Trainer::new(cfg, ds, Device::Cpu, "cpu".into(), None, None).unwrap()
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `‖a − b‖∞ / ‖b‖∞`.
fn rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let s = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    d / s.max(1e-12)
}

#[test]
fn inspect_reproduces_pytorch_logits_in_eval_and_train_mode() {
    let mut t = trainer(224, 0.0, None);
    let r = t.inspect().unwrap();
    let e = expected();
    let flat = |rows: &Vec<Vec<f32>>| rows.iter().flatten().copied().collect::<Vec<f32>>();
    let eval = rel(&flat(&r.eval_running.logits), &host(&e["logits_eval"]));
    let train = rel(&flat(&r.eval_batch.logits), &host(&e["logits_train"]));
    eprintln!("largest relative differences: eval {eval:.2e}, train-mode {train:.2e}");
    assert!(eval < 1e-4, "eval-mode logits differ by {eval}");
    assert!(train < 1e-4, "train-mode logits differ by {train}");
    // inspect leaves the imported statistics as they were.
    let file = weights::read(&fixture("tiny_torchvision.safetensors"), "fixture").unwrap();
    let sd = t.model().state_dict().unwrap();
    for (k, v) in &file {
        assert_eq!(host(v), host(&sd[k]), "{k} changed by inspect");
    }
    assert_eq!(r.layers.len(), 9);
    assert!(!r.diagnosis.is_empty());
}

#[test]
fn imagenet_normalised_inputs_give_pytorchs_logits() {
    let mut t = trainer_with(224, 0.0, None, data::Normalize::Imagenet);
    let r = t.inspect().unwrap();
    let e = expected();
    let flat = |rows: &Vec<Vec<f32>>| rows.iter().flatten().copied().collect::<Vec<f32>>();
    let eval = rel(&flat(&r.eval_running.logits), &host(&e["logits_eval_imagenet"]));
    let train = rel(&flat(&r.eval_batch.logits), &host(&e["logits_train_imagenet"]));
    assert!(eval < 1e-4 && train < 1e-4, "eval {eval}, train-mode {train}");
}

#[test]
fn three_sgd_steps_match_pytorch() {
    let mut t = trainer(224, 0.01, None);
    for _ in 0..3 {
        t.run_epoch().unwrap();
    }
    let e = expected();
    let sd = t.model().state_dict().unwrap();
    let mut worst = (0f32, String::new());
    for (k, v) in &sd {
        let want = &e[&format!("sgd3.{k}")];
        let r = rel(&host(v), &host(want));
        if r > worst.0 {
            worst = (r, k.clone());
        }
    }
    eprintln!(
        "largest relative difference after 3 SGD steps: {:.2e} ({})",
        worst.0, worst.1
    );
    assert!(worst.0 < 1e-4, "{} differs by {}", worst.1, worst.0);
    // num_batches_tracked went on from the file's value.
    let t0 = weights::read(&fixture("tiny_torchvision.safetensors"), "fixture").unwrap()["bn1.num_batches_tracked"]
        .to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()[0];
    assert_eq!(t.model().bn_t() as i64, t0 + 3);
}

#[test]
fn save_weights_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let t = trainer(64, 0.0, None);
    weights::save(&out, t.model()).unwrap();
    let file = weights::read(&fixture("tiny_torchvision.safetensors"), "fixture").unwrap();
    let saved = weights::read(&out, "saved").unwrap();
    let mut a: Vec<&String> = file.keys().collect();
    let mut b: Vec<&String> = saved.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same keys as PyTorch's state_dict");
    for (k, v) in &file {
        assert_eq!(v.dims(), saved[k].dims(), "{k}: shape");
        assert_eq!(v.dtype(), saved[k].dtype(), "{k}: dtype");
        assert_eq!(host(v), host(&saved[k]), "{k}: values");
    }
    // And once more through an import.
    let again = weights::import(&out, None).unwrap();
    assert_eq!(again.preset, Preset::Tiny);
}

fn bnscope(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// Exit 2 with one line naming the file, no panic.
fn refused(path: &Path, want: &str) {
    let p = path.to_str().unwrap();
    let out = bnscope(&["inspect", "--weights", p, "--image-size", "64"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(p), "{err}");
    assert!(lines[0].contains(want), "want {want:?} in {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

fn write(path: &Path, tensors: &HashMap<String, Tensor>) {
    let mut tensors = tensors.clone();
    // safetensors has no 0-d int64 in candle's writer path; use the crate directly for exact control.
    let mut views: Vec<(String, safetensors::tensor::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, t) in tensors.drain() {
        let (dt, bytes) = match t.dtype() {
            DType::I64 => (
                safetensors::tensor::Dtype::I64,
                host_i64(&t).iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            DType::I32 => (
                safetensors::tensor::Dtype::I32,
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<i32>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            _ => (
                safetensors::tensor::Dtype::F32,
                host(&t).iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
            ),
        };
        views.push((k, dt, t.dims().to_vec(), bytes));
    }
    let v: Vec<(String, safetensors::tensor::TensorView<'_>)> = views
        .iter()
        .map(|(k, dt, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*dt, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(v, None).unwrap()).unwrap();
}

fn host_i64(t: &Tensor) -> Vec<i64> {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap()
}

#[test]
fn bad_weight_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = weights::read(&fixture("tiny_torchvision.safetensors"), "fixture").unwrap();

    let mut missing = good.clone();
    missing.remove("layer2.0.bn1.running_var");
    missing.insert(
        "layer9.0.conv1.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let p = dir.path().join("keys.safetensors");
    write(&p, &missing);
    refused(&p, "missing layer2.0.bn1.running_var; unexpected layer9.0.conv1.weight");

    let mut shape = good.clone();
    shape.insert(
        "layer1.0.conv2.weight".into(),
        Tensor::zeros((16, 16, 1, 1), DType::F32, &Device::Cpu).unwrap(),
    );
    let p = dir.path().join("shape.safetensors");
    write(&p, &shape);
    refused(
        &p,
        "shape mismatch: layer1.0.conv2.weight is [16, 16, 1, 1] in the file, [16, 16, 3, 3]",
    );

    let mut dtype = good.clone();
    dtype.insert("bn1.weight".into(), Tensor::new(&[1i32; 16], &Device::Cpu).unwrap());
    let p = dir.path().join("dtype.safetensors");
    write(&p, &dtype);
    refused(&p, "bn1.weight is I32, expected a floating-point tensor");

    let bytes = std::fs::read(fixture("tiny_torchvision.safetensors")).unwrap();
    let p = dir.path().join("cut.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    refused(&p, "cut short");

    // A model the keys do not describe, when --model says it.
    let p = fixture("tiny_torchvision.safetensors");
    let out = bnscope(&["inspect", "--weights", p.to_str().unwrap(), "--model", "resnet18"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not match resnet18 (strict load): missing"), "{err}");
}

#[test]
fn inspect_json_has_the_documented_fields() {
    let p = fixture("tiny_torchvision.safetensors");
    let out = bnscope(&[
        "inspect",
        "--weights",
        p.to_str().unwrap(),
        "--image-size",
        "64",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "model",
        "images",
        "classes",
        "eval_running",
        "eval_batch",
        "recalibrated",
        "layers",
        "diagnosis",
    ] {
        assert!(!v[k].is_null(), "{k} missing");
    }
    assert_eq!(v["eval_running"]["logits"].as_array().unwrap().len(), 3);
    let gaps: Vec<f64> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mean_gap"].as_f64().unwrap().max(l["var_gap"].as_f64().unwrap()))
        .collect();
    assert!(gaps.windows(2).all(|w| w[0] >= w[1]), "largest gap first: {gaps:?}");
}

/// Running statistics of every layer, flattened.
fn stats(t: &Trainer) -> Vec<f32> {
    t.model()
        .bn_layers()
        .iter()
        .flat_map(|b| host(b.running_mean()).into_iter().chain(host(b.running_var())))
        .collect()
}

fn backbone(t: &Trainer) -> Vec<f32> {
    t.model()
        .named_params()
        .iter()
        .filter(|(n, _)| !n.starts_with("fc."))
        .flat_map(|(_, v)| host(v.as_tensor()))
        .collect()
}

#[test]
fn frozen_backbone_inference_trains_and_evaluates_alike() {
    let mut t = trainer(64, 0.05, Some(FrozenBn::Inference));
    let (stats0, weights0) = (stats(&t), backbone(&t));
    let fc0 = host(t.model().head().0.as_tensor());
    let mut prev: Option<f32> = None;
    for _ in 0..4 {
        let m = t.run_epoch().unwrap().0;
        // The training pass normalises exactly as evaluation does: its loss is the previous epoch's evaluation
        // loss (same weights, same statistics, one full batch).
        if let Some(p) = prev {
            assert!(
                (m.train.loss - p).abs() < 1e-5,
                "train {} vs eval running before {p}",
                m.train.loss
            );
        }
        prev = Some(m.eval_running.loss);
    }
    assert_eq!(stats(&t), stats0, "running statistics never move");
    assert_eq!(backbone(&t), weights0, "the backbone stays");
    assert_ne!(host(t.model().head().0.as_tensor()), fc0, "fc trains");
}

#[test]
fn frozen_backbone_train_frozen_stats_never_moves_the_statistics() {
    let mut t = trainer(64, 0.05, Some(FrozenBn::TrainFrozenStats));
    let (stats0, weights0, t0) = (stats(&t), backbone(&t), t.model().bn_t());
    for _ in 0..3 {
        let m = t.run_epoch().unwrap().0;
        // Training normalises with the batch's statistics: its loss is evaluation-with-batch-statistics' kind.
        assert!(m.train.loss.is_finite());
    }
    assert_eq!(stats(&t), stats0);
    assert_eq!(t.model().bn_t(), t0);
    assert_eq!(backbone(&t), weights0);
}

#[test]
fn frozen_backbone_train_moves_the_statistics_at_the_momentum() {
    let mut t = trainer(64, 0.05, Some(FrozenBn::Train));
    let (weights0, t0) = (backbone(&t), t.model().bn_t());
    let before: Vec<(Vec<f32>, Vec<f32>)> = t
        .model()
        .bn_layers()
        .iter()
        .map(|b| (host(b.running_mean()), host(b.running_var())))
        .collect();
    let (_, snap) = t.run_epoch().unwrap();
    assert_eq!(t.model().bn_t(), t0 + 1);
    assert_eq!(backbone(&t), weights0);
    // PyTorch: running = 0.9·running + 0.1·batch, the variance unbiased (n/(n−1)).
    for ((rm, rv), l) in before.iter().zip(&snap.layers) {
        let n = l.n as f32;
        for c in 0..rm.len() {
            let m = 0.9 * rm[c] + 0.1 * l.batch_mean[c];
            let v = 0.9 * rv[c] + 0.1 * l.batch_var[c] * n / (n - 1.0);
            assert!(
                (l.running_mean[c] - m).abs() <= 1e-5 * (1.0 + m.abs()),
                "{} mean {c}",
                l.name
            );
            assert!(
                (l.running_var[c] - v).abs() <= 1e-5 * (1.0 + v.abs()),
                "{} var {c}",
                l.name
            );
        }
    }
}

/// Which layer to blame (#25): `bnscope inspect`'s `alone` and `prefix` evaluations (one layer, or the first k in
/// forward order, on batch statistics, the others on running ones) match PyTorch's on the tiny fixture
/// (tests/fixtures/weights/tiny_blame.json, made by scripts/make_blame_fixture.py) to 1e-4, the last prefix is the
/// all-batch evaluation, and the readable report names where the gap is made.
#[test]
fn inspect_blame_matches_pytorch() {
    let p = fixture("tiny_torchvision.safetensors");
    let args = ["inspect", "--weights", p.to_str().unwrap(), "--image-size", "224"];
    let out = bnscope(&[&args[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny_blame.json")).unwrap()).unwrap();
    let (g, w) = (got["blame"].as_array().unwrap(), want["blame"].as_array().unwrap());
    assert_eq!(g.len(), w.len());
    assert_eq!(got["blame_samples"], 3);
    let close = |a: &serde_json::Value, b: &serde_json::Value, what: &str| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{what}: bnscope {a} vs PyTorch {b}"
        );
    };
    for (a, b) in g.iter().zip(w) {
        assert_eq!(a["name"], b["name"]);
        for k in ["alone", "prefix"] {
            close(&a[k]["loss"], &b[k]["loss"], &format!("{} {k} loss", b["name"]));
            close(&a[k]["acc"], &b[k]["acc"], &format!("{} {k} acc", b["name"]));
        }
    }
    let last = g.last().unwrap();
    close(&last["prefix"]["loss"], &got["eval_batch"]["loss"], "the last prefix");
    close(
        &last["prefix"]["loss_share"],
        &serde_json::json!(1.0),
        "the last prefix's share",
    );
    let text = String::from_utf8_lossy(&bnscope(&args).stdout).into_owned();
    assert!(text.contains("Which layer to blame (blame on 3 of 3 images)"), "{text}");
    assert!(text.contains("Where the gap is made: switching the first"), "{text}");
}

/// #25: the blame pass is bounded: `--blame-samples N` evaluates the first N images only (said in the report and in
/// the JSON), its ends are evaluated on those N too (so the last prefix still closes the whole gap), progress never
/// reaches stdout, and 0 is a one-line usage error.
#[test]
fn inspect_blame_on_capped_samples() {
    let p = fixture("tiny_torchvision.safetensors");
    let args = [
        "inspect",
        "--weights",
        p.to_str().unwrap(),
        "--image-size",
        "224",
        "--blame-samples",
        "2",
    ];
    let out = bnscope(&[&args[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(got["blame_samples"], 2);
    let full: serde_json::Value = serde_json::from_slice(
        &bnscope(&[
            "inspect",
            "--weights",
            p.to_str().unwrap(),
            "--image-size",
            "224",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(full["blame_samples"], 3);
    // The three evaluations themselves still read every image.
    assert_eq!(got["eval_batch"], full["eval_batch"]);
    let last = got["blame"].as_array().unwrap().last().unwrap();
    let share = last["prefix"]["loss_share"].as_f64().unwrap();
    assert!(
        (share - 1.0).abs() < 1e-4,
        "the last prefix closes the gap on the 2 images: {share}"
    );
    assert_ne!(
        last["prefix"]["loss"],
        full["blame"].as_array().unwrap().last().unwrap()["prefix"]["loss"]
    );
    let text = String::from_utf8_lossy(&bnscope(&args).stdout).into_owned();
    assert!(text.contains("Which layer to blame (blame on 2 of 3 images)"), "{text}");
    let bad = bnscope(&["inspect", "--weights", p.to_str().unwrap(), "--blame-samples", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--blame-samples"), "{err}");
}

/// #23: `inspect` takes only the flags it uses: its help lists no training or screen flag, and one given is one
/// line naming it, exit 2, before anything is read; the flags it uses still work.
#[test]
fn inspect_takes_only_its_flags() {
    let help = String::from_utf8_lossy(&bnscope(&["inspect", "--help"]).stdout).into_owned();
    // The flags the help lists (its option lines), not the words of their explanations.
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split([' ', '<']).next().unwrap_or(""))
        .collect();
    for gone in [
        "epochs",
        "save-weights",
        "paused",
        "log",
        "resume",
        "momentum",
        "lr",
        "fps",
        "headless",
    ] {
        assert!(!flags.contains(&gone), "--{gone} in {flags:?}");
    }
    for kept in [
        "weights",
        "data",
        "json",
        "blame-samples",
        "image-size",
        "eval-batch-size",
    ] {
        assert!(flags.contains(&kept), "--{kept} not in {flags:?}");
    }
    let p = fixture("tiny_torchvision.safetensors");
    let p = p.to_str().unwrap();
    for flag in [
        &["--epochs", "3"][..],
        &["--paused"],
        &["--save-weights", "/tmp/x.safetensors"],
        &["--headless"],
    ] {
        let mut args = vec!["inspect", "--weights", p];
        args.extend_from_slice(flag);
        let out = bnscope(&args);
        assert_eq!(out.status.code(), Some(2), "{flag:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("inspect: {} is not an inspect flag", flag[0])),
            "{err}"
        );
    }
    // Training still takes them.
    assert!(String::from_utf8_lossy(&bnscope(&["--help"]).stdout).contains("--epochs"));
    let ok = bnscope(&["inspect", "--weights", p, "--image-size", "32", "--json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
}

/// #24: what a wrong file given as `--weights` or `--resume` is, in words: a bnscope checkpoint (its integer
/// `optim.step` used to be reported first), a PyTorch pickle (zip or legacy format, which used to be "cut short
/// (header too large)"), an image; plain weights given as `--resume`.
#[test]
fn a_checkpoint_or_a_pickle_given_as_weights_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.st");
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "1",
        "--image-size",
        "16",
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    refused(&ck, "a bnscope checkpoint (it holds optim.");
    refused(&ck, "continue it with --resume");
    // The same without the metadata: its optimizer moments say it.
    let mut tensors = weights::read(&fixture("tiny_torchvision.safetensors"), "fixture").unwrap();
    tensors.insert("optim.step".into(), Tensor::new(3i64, &Device::Cpu).unwrap());
    let bare = dir.path().join("bare.st");
    write(&bare, &tensors);
    refused(&bare, "a bnscope checkpoint (it holds optim.step)");

    let zip = dir.path().join("my.pt");
    std::fs::write(&zip, b"PK\x03\x04\x00\x00\x08\x00archive/data.pkl and more").unwrap();
    let legacy = dir.path().join("old.pth");
    std::fs::write(&legacy, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.").unwrap();
    for p in [&zip, &legacy] {
        refused(p, "a PyTorch pickle (torch.save), not a safetensors file");
        refused(
            p,
            &format!(
                "python scripts/export_torchvision.py MODEL out.safetensors --checkpoint {}",
                p.display()
            ),
        );
    }
    let png = dir.path().join("cat.png");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/data/seed3/cat/cat.png"), &png).unwrap();
    refused(&png, "a PNG image, not weights");

    // The other way round: plain weights, or a pickle, given as --resume.
    for (p, want) in [
        (
            fixture("tiny_torchvision.safetensors"),
            "plain weights (a PyTorch state_dict), not a bnscope checkpoint; start from them with --weights",
        ),
        (zip.clone(), "zip archive"),
    ] {
        let out = bnscope(&["--headless", "--resume", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// #24: a `num_batches_tracked` of i64::MAX (imported) that training increments is exported as i64::MAX, never
/// wrapped to a negative number.
#[test]
fn num_batches_tracked_saturates_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = weights::read(&fixture("tiny_torchvision.safetensors"), "fixture").unwrap();
    let counters: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with(".num_batches_tracked"))
        .cloned()
        .collect();
    assert!(!counters.is_empty());
    for k in &counters {
        tensors.insert(k.clone(), Tensor::new(i64::MAX, &Device::Cpu).unwrap());
    }
    let w = dir.path().join("max.st");
    write(&w, &tensors);
    let out_w = dir.path().join("out.st");
    let ck = dir.path().join("ck.st");
    // Three images at batch 1: three updates past i64::MAX.
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "1",
        "--batch-size",
        "1",
        "--image-size",
        "16",
        "--weights",
        w.to_str().unwrap(),
        "--save-weights",
        out_w.to_str().unwrap(),
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = weights::read(&out_w, "saved").unwrap();
    for k in &counters {
        assert_eq!(host_i64(&saved[k]), [i64::MAX], "{k}");
    }
    let (ckt, _) = bnscope::checkpoint::load(&ck).unwrap();
    for k in &counters {
        assert_eq!(host_i64(&ckt[k]), [i64::MAX], "{k} in the checkpoint");
    }
}
