//! What the crate carries to crates.io (`cargo package --list`): the sources and the embedded sample images the
//! build needs, the licences and the docs; no screenshots, test fixtures, python/ or scripts/.
use std::process::Command;

#[test]
fn the_crate_carries_what_the_build_needs_and_nothing_else() {
    let out = Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo package --list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = String::from_utf8(out.stdout).unwrap();
    let files: Vec<&str> = list.lines().collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "src/main.rs",
        "src/lib.rs",
        "data/seed3/cat/cat.png",
        "data/seed3/coffee/coffee.png",
        "data/seed3/rocket/rocket.png",
    ] {
        assert!(files.contains(&needed), "{needed} is not in the crate:\n{list}");
    }
    let unwanted: Vec<&&str> = files
        .iter()
        .filter(|f| {
            [
                "tests/",
                "screenshots/",
                "python/",
                "scripts/",
                ".ci/",
                "pyproject.toml",
            ]
            .iter()
            .any(|p| f.starts_with(p))
                || f.ends_with(".py")
                || f.ends_with(".jsonl")
                || f.ends_with(".safetensors")
        })
        .collect();
    assert!(unwanted.is_empty(), "the crate carries {unwanted:?}");
    // Every .png is one of the three the build embeds (include_bytes! in src/data.rs).
    let pngs = files.iter().filter(|f| f.ends_with(".png")).count();
    assert_eq!(pngs, 3, "{list}");
}
