//! `docs/log.schema.json` (#27): the fixture logs and the logs bnscope writes follow it, and it refuses what the
//! reader refuses, so that other writers (the hook, the callback, users' scripts) can check their output with it.
use std::path::Path;

use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/log.schema.json")).unwrap();
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::new(&s).expect("a valid draft 2020-12 schema")
}

/// Every line of `log` against the schema; the errors as text.
fn errors(v: &jsonschema::Validator, log: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in std::fs::read_to_string(log).unwrap().lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Value = serde_json::from_str(line).unwrap();
        for e in v.iter_errors(&rec) {
            out.push(format!("{}:{}: {e} at {}", log.display(), i + 1, e.instance_path()));
        }
    }
    out
}

#[test]
fn every_fixture_log_follows_the_schema() {
    let v = schema();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            let errs = errors(&v, &p);
            assert!(errs.is_empty(), "{}", errs.join("\n"));
            n += 1;
        }
    }
    assert!(n >= 5, "{n} fixture logs");
}

#[test]
fn the_schema_refuses_what_the_format_forbids() {
    let v = schema();
    let bad = [
        r#"{"type":"run","schema":1,"convention":"torch","bn_layers":[]}"#,
        r#"{"type":"run","schema":1,"convention":"keras"}"#,
        r#"{"type":"run","schema":2,"convention":"keras","bn_layers":[]}"#,
        r#"{"type":"epoch","momentum":0.9}"#,
        r#"{"type":"epoch","epoch":1,"train":{"loss":"high"}}"#,
        r#"{"type":"bn","epoch":1,"layers":[{"mean_gap":0.1}]}"#,
        r#"{"type":"event","epoch":1,"what":"momentum","value":"fast"}"#,
        r#"{"type":"end","epochs":3}"#,
        r#"{"type":"inspect","samples":4}"#,
        r#"{"epoch":1}"#,
    ];
    for line in bad {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert!(!v.is_valid(&rec), "accepted {line}");
    }
    let good = [
        r#"{"type":"run","schema":1,"convention":"keras","bn_layers":[{"name":"bn1","channels":8}]}"#,
        r#"{"type":"epoch","epoch":1,"train":{"loss":null,"acc":0.5},"future_field":[1,2]}"#,
        r#"{"type":"event","epoch":1,"what":"pace","value":null}"#,
        r#"{"type":"a_future_record"}"#,
    ];
    for line in good {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert!(v.is_valid(&rec), "refused {line}");
    }
}

/// A log the real binary writes (every record type a headless run writes, the per-channel arrays and the EMA
/// figures included).
#[cfg(feature = "train")]
#[test]
fn a_log_bnscope_writes_follows_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bnscope"))
        .args([
            "--headless",
            "--epochs",
            "2",
            "--log-bn",
            "full",
            "--ema",
            "0.9",
            "--log",
        ])
        .arg(&log)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&log).unwrap();
    for kind in ["\"run\"", "\"epoch\"", "\"bn\"", "\"end\"", "running_mean", "eval_ema"] {
        assert!(text.contains(kind), "{kind} not in the log");
    }
    let errs = errors(&schema(), &log);
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
