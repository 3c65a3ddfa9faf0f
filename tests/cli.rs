//! The real binary: bad input ends in one line naming the culprit and exit code 2; good runs print and log.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::BIN;

fn bnscope(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("binary runs")
}

fn rgb(w: u32, h: u32, seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x as u8).wrapping_mul(seed), (y as u8).wrapping_add(seed), seed])
    })
}

/// A valid two-class folder: `root/a/0.png`, `root/b/0.png`.
fn two_classes(root: &Path) {
    for (i, c) in ["a", "b"].iter().enumerate() {
        std::fs::create_dir_all(root.join(c)).unwrap();
        rgb(20, 20, 10 + i as u8).save(root.join(c).join("0.png")).unwrap();
    }
}

fn png_bytes(img: &image::DynamicImage) -> Vec<u8> {
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
        .unwrap();
    v
}

/// A small PNG whose header declares `w×h` RGBA8 pixels (a decompression bomb's shape): IHDR, a tiny IDAT, IEND.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    v.extend_from_slice(&chunk);
    v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    for (kind, data) in [
        (&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01][..]),
        (b"IEND", &[]),
    ] {
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        v.extend_from_slice(&chunk);
        v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    v
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn palette_png(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 4, 4);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(vec![255, 0, 0, 0, 255, 0, 0, 0, 255]);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&[0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
        .unwrap();
}

/// Makes a FIFO at `p` and returns its path as text.
fn fifo(p: &Path) -> String {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    p.display().to_string()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

enum Expect {
    /// Exit 2, one stderr line containing every fragment.
    Fail(&'static [&'static str]),
    /// Exit 0 with `n` images loaded.
    Ok(usize),
}

/// Builds a case's input under the temp dir and returns the arguments.
type Setup = Box<dyn Fn(&Path) -> Vec<String>>;

struct Case {
    name: &'static str,
    setup: Setup,
    expect: Expect,
}

fn case(name: &'static str, expect: Expect, setup: impl Fn(&Path) -> Vec<String> + 'static) -> Case {
    Case {
        name,
        setup: Box::new(setup),
        expect,
    }
}

fn data_arg(p: &Path) -> Vec<String> {
    vec!["--data".into(), p.display().to_string()]
}

/// A two-class folder plus one extra file in class `a`.
fn with_file(root: &Path, name: &str, bytes: &[u8]) -> Vec<String> {
    two_classes(root);
    std::fs::write(root.join("a").join(name), bytes).unwrap();
    data_arg(root)
}

fn flags(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bad_input_table() {
    let cases = vec![
        case(
            "data dir missing",
            Expect::Fail(&["--data", "nope", "no such directory"]),
            |r| data_arg(&r.join("nope")),
        ),
        case("data is a file", Expect::Fail(&["not a directory"]), |r| {
            std::fs::write(r.join("f"), b"x").unwrap();
            data_arg(&r.join("f"))
        }),
        case("empty dir", Expect::Fail(&["no class folders"]), data_arg),
        case("files but no class folders", Expect::Fail(&["no class folders"]), |r| {
            rgb(4, 4, 1).save(r.join("x.png")).unwrap();
            data_arg(r)
        }),
        case("single class", Expect::Fail(&["only one class", "a"]), |r| {
            std::fs::create_dir(r.join("a")).unwrap();
            rgb(4, 4, 1).save(r.join("a/x.png")).unwrap();
            data_arg(r)
        }),
        case(
            "class without images",
            Expect::Fail(&["empty", "has no .png/.jpg/.jpeg images"]),
            |r| {
                two_classes(r);
                std::fs::create_dir(r.join("empty")).unwrap();
                std::fs::write(r.join("empty/notes.txt"), b"hi").unwrap();
                data_arg(r)
            },
        ),
        case(
            "thousands of classes",
            Expect::Fail(&["1001 class folders", "1000"]),
            |r| {
                for i in 0..1001 {
                    std::fs::create_dir(r.join(format!("c{i:04}"))).unwrap();
                }
                data_arg(r)
            },
        ),
        case("truncated png", Expect::Fail(&["bad.png", "cannot decode"]), |r| {
            let full = png_bytes(&image::DynamicImage::ImageRgb8(rgb(30, 30, 3)));
            with_file(r, "bad.png", &full[..full.len() / 2])
        }),
        case("zero-byte file", Expect::Fail(&["zero.png", "empty file"]), |r| {
            with_file(r, "zero.png", b"")
        }),
        case(
            "text renamed .png",
            Expect::Fail(&["text.png", "not a PNG or JPEG"]),
            |r| with_file(r, "text.png", b"hello, I am not an image\n"),
        ),
        case(
            "decompression bomb header",
            Expect::Fail(&["bomb.png", "20000", "limit"]),
            |r| with_file(r, "bomb.png", &png_header_only(20000, 20000)),
        ),
        case("symlink loop", Expect::Fail(&["loop.png"]), |r| {
            two_classes(r);
            std::os::unix::fs::symlink(r.join("a/loop.png"), r.join("a/loop.png")).unwrap();
            data_arg(r)
        }),
        case("jpeg named .png", Expect::Ok(3), |r| {
            let mut v = Vec::new();
            image::DynamicImage::ImageRgb8(rgb(16, 16, 5))
                .write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Jpeg)
                .unwrap();
            with_file(r, "photo.png", &v)
        }),
        case("16-bit png", Expect::Ok(3), |r| {
            let img = image::DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(8, 8, |x, _| {
                image::Rgb([x as u16 * 8000, 0, 65535])
            }));
            with_file(r, "deep.png", &png_bytes(&img))
        }),
        case("grayscale", Expect::Ok(3), |r| {
            let img =
                image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(8, 8, |x, _| image::Luma([x as u8 * 30])));
            with_file(r, "gray.png", &png_bytes(&img))
        }),
        case("grayscale+alpha", Expect::Ok(3), |r| {
            let img = image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(8, 8, |x, _| {
                image::LumaA([x as u8, 128])
            }));
            with_file(r, "ga.png", &png_bytes(&img))
        }),
        case("rgba", Expect::Ok(3), |r| {
            let img = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(8, 8, |x, y| {
                image::Rgba([x as u8, y as u8, 9, 10])
            }));
            with_file(r, "rgba.png", &png_bytes(&img))
        }),
        case("palette png", Expect::Ok(3), |r| {
            two_classes(r);
            palette_png(&r.join("a/pal.png"));
            data_arg(r)
        }),
        case("1x1 image", Expect::Ok(3), |r| {
            with_file(r, "dot.png", &png_bytes(&image::DynamicImage::ImageRgb8(rgb(1, 1, 7))))
        }),
        case("non-UTF-8 file name", Expect::Ok(3), |r| {
            use std::os::unix::ffi::OsStrExt;
            two_classes(r);
            let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
            rgb(8, 8, 4).save(r.join("a").join(name)).unwrap();
            data_arg(r)
        }),
        case("hidden files and other files are skipped", Expect::Ok(2), |r| {
            two_classes(r);
            std::fs::write(r.join("a/.DS_Store"), b"junk").unwrap();
            std::fs::write(r.join("a/._0.png"), b"junk").unwrap();
            std::fs::write(r.join("a/README.txt"), b"notes").unwrap();
            std::fs::create_dir(r.join(".hidden_class")).unwrap();
            data_arg(r)
        }),
        case("momentum above 1", Expect::Fail(&["--momentum", "1.5"]), |_| {
            flags(&["--momentum", "1.5"])
        }),
        case("momentum negative", Expect::Fail(&["--momentum", "-0.1"]), |_| {
            flags(&["--momentum", "-0.1"])
        }),
        case("momentum NaN", Expect::Fail(&["--momentum", "NaN"]), |_| {
            flags(&["--momentum", "NaN"])
        }),
        case("negative lr", Expect::Fail(&["--lr", "-1"]), |_| flags(&["--lr", "-1"])),
        case("NaN lr", Expect::Fail(&["--lr", "NaN"]), |_| flags(&["--lr", "NaN"])),
        case("lr 0 is valid", Expect::Ok(3), |_| flags(&["--lr", "0"])),
        case("image size 0", Expect::Fail(&["--image-size 0"]), |_| {
            flags(&["--image-size", "0"])
        }),
        case("image size 100000", Expect::Fail(&["--image-size 100000"]), |_| {
            flags(&["--image-size", "100000"])
        }),
        case("batch size 0", Expect::Fail(&["--batch-size 0"]), |_| {
            flags(&["--batch-size", "0"])
        }),
        case("unknown model", Expect::Fail(&["vgg", "--model"]), |_| {
            flags(&["--model", "vgg"])
        }),
        case("unknown flag", Expect::Fail(&["--frobnicate"]), |_| {
            flags(&["--frobnicate"])
        }),
        case("epochs 0", Expect::Fail(&["--epochs 0"]), |_| flags(&["--epochs", "0"])),
        // #17: a pace so slow that one epoch's wait overflows a Duration or an Instant.
        case(
            "pace 1e-19",
            Expect::Fail(&["--pace 1e-19", "between 0.01 and 1000"]),
            |_| flags(&["--pace", "1e-19"]),
        ),
        case("pace 1e-300", Expect::Fail(&["--pace 1e-300", "between"]), |_| {
            flags(&["--pace", "1e-300"])
        }),
        case("pace 5e-324", Expect::Fail(&["--pace 5e-324", "between"]), |_| {
            flags(&["--pace", "5e-324"])
        }),
        case("pace negative", Expect::Fail(&["--pace -1", "between"]), |_| {
            flags(&["--pace", "-1"])
        }),
        case("pace huge", Expect::Fail(&["--pace 1000000", "between"]), |_| {
            flags(&["--pace", "1e6"])
        }),
        case("pace 0 is full speed", Expect::Ok(3), |_| flags(&["--pace", "0"])),
        case("resume missing", Expect::Fail(&["--resume", "none.safetensors"]), |r| {
            vec!["--resume".into(), r.join("none.safetensors").display().to_string()]
        }),
        case(
            "resume corrupt",
            Expect::Fail(&["--resume", "bad.safetensors", "not a safetensors"]),
            |r| {
                std::fs::write(r.join("bad.safetensors"), b"garbage garbage garbage").unwrap();
                vec!["--resume".into(), r.join("bad.safetensors").display().to_string()]
            },
        ),
        case(
            "log into a missing dir",
            Expect::Fail(&["--log", "does/not/exist.jsonl", "directory does not exist"]),
            |r| vec!["--log".into(), r.join("does/not/exist.jsonl").display().to_string()],
        ),
        case("log is a directory", Expect::Fail(&["--log"]), |r| {
            vec!["--log".into(), r.display().to_string()]
        }),
        // #17: no output over an input or another output, no special files, nothing the user did not ask for.
        case(
            "log is the checkpoint",
            Expect::Fail(&["--log", "same file as --checkpoint"]),
            |r| {
                let x = r.join("x").display().to_string();
                vec!["--log".into(), x.clone(), "--checkpoint".into(), x]
            },
        ),
        case(
            "log is a data image",
            Expect::Fail(&["--log", "0.png", "one of the --data images"]),
            |r| {
                let mut args = data_arg(r);
                two_classes(r);
                args.extend(["--log".into(), r.join("a/0.png").display().to_string()]);
                args
            },
        ),
        case(
            "log exists and is not a bnscope log",
            Expect::Fail(&["--log", "notes.txt", "not a bnscope log", "--overwrite-log"]),
            |r| {
                std::fs::write(r.join("notes.txt"), b"my notes\n").unwrap();
                vec!["--log".into(), r.join("notes.txt").display().to_string()]
            },
        ),
        case("log is a FIFO", Expect::Fail(&["--log", "ff", "FIFO"]), |r| {
            vec!["--log".into(), fifo(&r.join("ff"))]
        }),
        case("resume is a FIFO", Expect::Fail(&["--resume", "ff", "FIFO"]), |r| {
            vec!["--resume".into(), fifo(&r.join("ff"))]
        }),
        case(
            "a FIFO named .png in a class",
            Expect::Fail(&["evil.png", "FIFO"]),
            |r| {
                two_classes(r);
                fifo(&r.join("a/evil.png"));
                data_arg(r)
            },
        ),
        case(
            "checkpoint is a FIFO",
            Expect::Fail(&["--checkpoint", "ff", "FIFO"]),
            |r| vec!["--checkpoint".into(), fifo(&r.join("ff"))],
        ),
        case(
            "checkpoint is a device",
            Expect::Fail(&["--checkpoint /dev/full", "character device"]),
            |_| flags(&["--checkpoint", "/dev/full"]),
        ),
        case(
            "checkpoint is a directory",
            Expect::Fail(&["--checkpoint", "is a directory", "model.st"]),
            |r| vec!["--checkpoint".into(), r.display().to_string()],
        ),
        case(
            "checkpoint ends in a slash",
            Expect::Fail(&["--checkpoint", "cdir/", "names a directory"]),
            |r| vec!["--checkpoint".into(), format!("{}/cdir/", r.display())],
        ),
        case(
            "checkpoint into a missing dir",
            Expect::Fail(&["--checkpoint", "its directory does not exist"]),
            |r| vec!["--checkpoint".into(), r.join("no/x.st").display().to_string()],
        ),
        case(
            "checkpoint over a file that is no checkpoint",
            Expect::Fail(&["--checkpoint", "notes", "not a bnscope checkpoint"]),
            |r| {
                std::fs::write(r.join("notes"), b"my notes\n").unwrap();
                vec!["--checkpoint".into(), r.join("notes").display().to_string()]
            },
        ),
        case(
            "checkpoint is a data image",
            Expect::Fail(&["--checkpoint", "0.png", "one of the --data images"]),
            |r| {
                two_classes(r);
                let mut args = data_arg(r);
                args.extend(["--checkpoint".into(), r.join("b/0.png").display().to_string()]);
                args
            },
        ),
        case(
            "cuda in a cpu build",
            Expect::Fail(&["--device cuda", "--features cuda"]),
            |_| {
                if cfg!(feature = "cuda") {
                    flags(&["--device", "cuda:99"])
                } else {
                    flags(&["--device", "cuda"])
                }
            },
        ),
        case("unknown device", Expect::Fail(&["--device tpu"]), |_| {
            flags(&["--device", "tpu"])
        }),
        // #24: a held-out folder that is the training folder is not held out.
        case(
            "val is the data folder",
            Expect::Fail(&["--val", "the same folder as --data", "training images"]),
            |r| {
                two_classes(r);
                let mut args = data_arg(r);
                args.extend(["--val".into(), r.display().to_string()]);
                args
            },
        ),
        case(
            "val is the data folder through a link",
            Expect::Fail(&["--val", "link", "the same folder as --data"]),
            |r| {
                two_classes(&r.join("d"));
                std::os::unix::fs::symlink("d", r.join("link")).unwrap();
                let mut args = data_arg(&r.join("d"));
                args.extend(["--val".into(), format!("{}/link/", r.display())]);
                args
            },
        ),
        case(
            "val shares an image with the data",
            Expect::Fail(&["--val", "a/x.png", "also a --data image"]),
            |r| {
                two_classes(&r.join("d"));
                two_classes(&r.join("v"));
                std::fs::hard_link(r.join("d/a/0.png"), r.join("v/a/x.png")).unwrap();
                let mut args = data_arg(&r.join("d"));
                args.extend(["--val".into(), r.join("v").display().to_string()]);
                args
            },
        ),
    ];
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args = (c.setup)(dir.path());
        args.extend(flags(&[
            "--headless",
            "--epochs",
            "1",
            "--image-size",
            "16",
            "--device",
            "cpu",
        ]));
        // Cases that pass one of these flags keep their own value (clap refuses a flag given twice).
        for flag in ["--device", "--image-size", "--epochs"] {
            if args.iter().filter(|a| *a == flag).count() > 1 {
                let pos = args.iter().rposition(|a| a == flag).unwrap();
                args.drain(pos..pos + 2);
            }
        }
        let out = Command::new(BIN)
            .args(&args)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let problem = match &c.expect {
            Expect::Fail(frags) => {
                let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                if out.status.code() != Some(2) {
                    Some(format!("exit {:?}, want 2", out.status.code()))
                } else if lines.len() != 1 {
                    Some(format!("{} stderr lines, want 1", lines.len()))
                } else if !lines[0].starts_with("bnscope: error: ") {
                    Some("stderr does not start with 'bnscope: error: '".into())
                } else if stderr.contains("panicked") || stderr.contains("backtrace") {
                    Some("panic".into())
                } else {
                    frags
                        .iter()
                        .find(|f| !stderr.contains(*f))
                        .map(|f| format!("stderr lacks {f:?}"))
                }
            }
            Expect::Ok(n) => {
                if out.status.code() != Some(0) {
                    Some(format!("exit {:?}, want 0", out.status.code()))
                } else if !stdout.contains(&format!("({n} images")) {
                    Some(format!("stdout does not report {n} images"))
                } else if !stdout.contains("epoch 1/1") {
                    Some("no epoch line".into())
                } else {
                    None
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!(
                "{}: {p}\n  args: {args:?}\n  stderr: {stderr}\n  stdout: {stdout}",
                c.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn unreadable_image_names_the_file() {
    if is_root() {
        eprintln!("skipped: running as root, file permissions do not stop reads");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    two_classes(dir.path());
    let f = dir.path().join("a/0.png");
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = bnscope(&[
        "--data",
        &dir.path().display().to_string(),
        "--headless",
        "--epochs",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0.png"));
}

#[test]
fn a_failed_start_leaves_an_existing_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("old.jsonl");
    std::fs::write(&log, "{\"keep\":true}\n").unwrap();
    let out = bnscope(&[
        "--data",
        "/definitely/not/here",
        "--log",
        &log.display().to_string(),
        "--headless",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "{\"keep\":true}\n");
}

fn read_jsonl(p: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}")))
        .collect()
}

#[test]
fn headless_run_prints_logs_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let ckpt = dir.path().join("run.safetensors");
    let (log_s, ckpt_s) = (log.display().to_string(), ckpt.display().to_string());
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "3",
        "--log",
        &log_s,
        "--log-bn",
        "full",
        "--checkpoint",
        &ckpt_s,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("momentum 0.99 (Keras) = 0.01 (PyTorch/candle)"),
        "{stdout}"
    );
    for e in 1..=3 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("epoch {e}/3 ")))
            .expect("epoch line");
        for part in [
            "loss ",
            " acc ",
            "| eval running: loss ",
            "| eval batch: ",
            "| m 0.99 (torch 0.01) |",
            "ms/step",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
    }
    let recs = read_jsonl(&log);
    let types: Vec<&str> = recs.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["run", "epoch", "bn", "epoch", "bn", "epoch", "bn", "end"]);
    let run = &recs[0];
    for k in [
        "model",
        "image_size",
        "batch_size",
        "classes",
        "images",
        "momentum",
        "convention",
        "device",
        "seed",
        "bn_layers",
    ] {
        assert!(!run[k].is_null(), "run lacks {k}");
    }
    assert_eq!(run["convention"], "keras");
    assert_eq!(run["momentum"], 0.99);
    assert_eq!(run["images"], 3);
    assert_eq!(run["bn_layers"].as_array().unwrap().len(), 9);
    assert_eq!(run["bn_layers"][0]["name"], "bn1");
    let ep = &recs[5];
    assert_eq!(ep["epoch"], 3);
    assert_eq!(ep["step"], 3);
    for k in ["train", "eval_running", "eval_batch"] {
        assert!(ep[k]["loss"].is_number() && ep[k]["acc"].is_number(), "{k}");
    }
    assert_eq!(ep["predictions_running"].as_array().unwrap().len(), 3);
    assert_eq!(ep["predictions_batch"][0].as_array().unwrap().len(), 3);
    assert!(ep["step_ms"].as_f64().unwrap() > 0.0);
    let bn = &recs[6];
    assert_eq!(bn["t"], 3);
    let l0 = &bn["layers"][0];
    for k in [
        "name",
        "mean_gap",
        "var_gap",
        "running_mean",
        "running_var",
        "batch_mean",
        "batch_var",
    ] {
        assert!(!l0[k].is_null(), "bn layer lacks {k}");
    }
    assert_eq!(l0["running_mean"].as_array().unwrap().len(), 16);
    assert_eq!(recs[7]["reason"], "done");
    assert_eq!(recs[7]["epochs"], 3);

    // Resume continues at epoch 4 with the same classes; --epochs counts the total.
    let log2 = dir.path().join("resumed.jsonl");
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "5",
        "--resume",
        &ckpt_s,
        "--log",
        &log2.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("epoch 4/5") && stdout.contains("epoch 5/5") && !stdout.contains("epoch 3/5"),
        "{stdout}"
    );
    let recs = read_jsonl(&log2);
    assert_eq!(recs[1]["epoch"], 4);
    // The resumed running stats continue: t counts on from 3.
    assert_eq!(recs[2]["t"], 4);

    // A checkpoint of another model is refused.
    let out = bnscope(&[
        "--headless",
        "--model",
        "resnet18",
        "--image-size",
        "32",
        "--resume",
        &ckpt_s,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checkpoint is for model tiny"));
}

#[test]
fn summary_log_has_gaps_only_and_torch_convention_gives_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    let out = bnscope(&["--headless", "--epochs", "2", "--log", &a.display().to_string()]);
    assert!(out.status.success());
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "2",
        "--momentum",
        "0.01",
        "--momentum-convention",
        "torch",
        "--log",
        &b.display().to_string(),
    ]);
    assert!(out.status.success());
    let (ra, rb) = (read_jsonl(&a), read_jsonl(&b));
    let bn = &ra[2]["layers"][0];
    assert!(bn["mean_gap"].is_number() && bn.get("running_mean").is_none());
    for (x, y) in ra.iter().zip(&rb) {
        if x["type"] == "epoch" {
            for k in [
                "train",
                "eval_running",
                "eval_batch",
                "predictions_running",
                "predictions_batch",
                "momentum",
            ] {
                assert_eq!(x[k], y[k], "{k}");
            }
        }
    }
}

#[test]
fn no_tty_means_headless_with_a_notice() {
    let out = bnscope(&["--epochs", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a terminal; running headless"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch 1/1"));
}

#[test]
fn sigterm_in_headless_writes_the_end_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sig.jsonl");
    let ckpt = dir.path().join("sig.safetensors");
    let mut child = Command::new(BIN)
        .args([
            "--headless",
            "--epochs",
            "100000",
            "--log",
            &log.display().to_string(),
            "--checkpoint",
            &ckpt.display().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    // Wait for two epochs.
    let mut seen = 0;
    for l in lines.by_ref() {
        if l.unwrap().starts_with("epoch ") {
            seen += 1;
            if seen == 2 {
                break;
            }
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in lines {}
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    let recs = read_jsonl(&log);
    let end = recs.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["reason"], "signal");
    // The checkpoint was written on the way out, and resumes where the log ended.
    let epochs = end["epochs"].as_u64().unwrap();
    let next = (epochs + 1).to_string();
    let out = bnscope(&["--headless", "--epochs", &next, "--resume", &ckpt.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("epoch {next}/{next}")));
    let _ = std::io::stderr().flush();
}

#[test]
fn trainer_failures_end_headless_runs_with_a_message() {
    for (fault, text) in [
        ("panic@2", "trainer panicked: injected fault at epoch 2"),
        ("error@3", "injected fault at epoch 3"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("f.jsonl");
        let out = Command::new(BIN)
            .args(["--headless", "--epochs", "5", "--log", &log.display().to_string()])
            .env("BNSCOPE_FAULT", fault)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {stderr}");
        assert!(stderr.contains(text), "{fault}: {stderr}");
        assert!(!stderr.contains("panicked at"), "no raw panic output: {stderr}");
        let end = read_jsonl(&log).pop().unwrap();
        assert_eq!(end["reason"], "error");
        assert!(end["message"].as_str().unwrap().contains(text));
    }
}

#[test]
fn divergence_stops_a_headless_run_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("d.jsonl");
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "20",
        "--lr",
        "10",
        "--log",
        &log.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    // The same words as the TUI's: one `bnscope: error:` line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("diverged"))
        .expect("a divergence line");
    assert!(
        line.starts_with("bnscope: error: training diverged at epoch "),
        "{stderr}"
    );
    assert!(line.ends_with("; try a smaller --lr"), "{stderr}");
    let recs = read_jsonl(&log);
    assert!(recs.iter().any(|r| r["type"] == "event" && r["what"] == "diverged"));
    assert_eq!(recs.last().unwrap()["reason"], "diverged");
    assert!(recs.iter().filter(|r| r["type"] == "epoch").count() < 20);
}

#[test]
fn kill_9_leaves_a_valid_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("k.jsonl");
    let mut child = Command::new(BIN)
        .args([
            "--headless",
            "--epochs",
            "100000",
            "--log-bn",
            "full",
            "--log",
            &log.display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&log)
        .map(|s| s.matches("\"type\":\"epoch\"").count())
        .unwrap_or(0)
        < 4
    {
        assert!(std::time::Instant::now() < deadline, "no epochs logged");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "the last record is complete");
    let recs = read_jsonl(&log);
    assert_eq!(recs[0]["type"], "run");
    let epochs: Vec<u64> = recs
        .iter()
        .filter(|r| r["type"] == "epoch")
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, (1..=epochs.len() as u64).collect::<Vec<_>>());
}

/// `bench --json` prints one object in the documented shape for each kernel set; the three kernel sets train the
/// same network, so all report plausible, positive timings (speed itself is a benchmark, not a test).
#[test]
fn bench_json_has_the_documented_shape() {
    for kernels in ["own", "ops", "candle"] {
        let out = bnscope(&[
            "bench",
            "--model",
            "tiny",
            "--image-size",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--json",
            "--kernels",
            kernels,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kernels}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert!(v["device"].as_str().unwrap().starts_with("cpu"));
        assert_eq!(v["threads"], 1);
        let r = &v["results"].as_array().unwrap()[0];
        assert_eq!(r["model"], "tiny");
        assert_eq!(r["image_size"], 16);
        assert_eq!(r["batch_size"], 3);
        assert_eq!(r["kernels"], kernels);
        for key in ["median_ms", "min_ms", "max_ms", "images_per_s", "gflops", "peak_rss_mb"] {
            assert!(r[key].as_f64().unwrap() > 0.0, "{kernels}: {key} = {}", r[key]);
        }
        assert!(r["min_ms"].as_f64() <= r["median_ms"].as_f64() && r["median_ms"].as_f64() <= r["max_ms"].as_f64());
    }
}

/// A run of 10 epochs and a run of 5 resumed to 10 give the same epoch records: the resume restores the settings,
/// the shuffle generator and the start weight, not only the weights (batch 3: one step an epoch; batch 2: two,
/// in shuffled order).
#[test]
fn a_resumed_run_continues_exactly() {
    for batch in ["3", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let common = ["--headless", "--batch-size", batch, "--momentum", "0.9", "--lr", "0.01"];
        let whole = bnscope(&[&common[..], &["--epochs", "10", "--log", &p("whole.jsonl")]].concat());
        assert!(whole.status.success(), "{}", String::from_utf8_lossy(&whole.stderr));
        let first = bnscope(
            &[
                &common[..],
                &["--epochs", "5", "--checkpoint", &p("c5.st"), "--log", &p("a.jsonl")],
            ]
            .concat(),
        );
        assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
        // No settings repeated: they come from the checkpoint.
        let rest = bnscope(&[
            "--headless",
            "--epochs",
            "10",
            "--resume",
            &p("c5.st"),
            "--log",
            &p("b.jsonl"),
        ]);
        assert!(rest.status.success(), "{}", String::from_utf8_lossy(&rest.stderr));
        assert!(
            String::from_utf8_lossy(&rest.stderr).is_empty(),
            "{}",
            String::from_utf8_lossy(&rest.stderr)
        );
        let epochs = |f: &str| -> Vec<Value> {
            read_jsonl(&dir.path().join(f))
                .into_iter()
                .filter(|r| r["type"] == "epoch")
                .collect()
        };
        let (whole, resumed) = (epochs("whole.jsonl"), epochs("b.jsonl"));
        assert_eq!(resumed.len(), 5);
        let run = read_jsonl(&dir.path().join("b.jsonl"))[0].clone();
        assert_eq!(run["resumed_from"], p("c5.st"));
        assert_eq!(run["batch_size"].as_u64().unwrap().to_string(), batch);
        for (a, b) in whole[5..].iter().zip(&resumed) {
            assert_eq!(a["epoch"], b["epoch"]);
            for k in ["t", "init_weight", "momentum", "step"] {
                assert_eq!(a[k], b[k], "batch {batch} epoch {} {k}", a["epoch"]);
            }
            for part in ["train", "eval_running", "eval_batch"] {
                assert_eq!(
                    a[part]["acc"], b[part]["acc"],
                    "batch {batch} epoch {} {part}",
                    a["epoch"]
                );
                let (x, y) = (a[part]["loss"].as_f64().unwrap(), b[part]["loss"].as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-5,
                    "batch {batch} epoch {} {part} loss {x} vs {y}",
                    a["epoch"]
                );
            }
        }
    }
}

/// A flag given with --resume overrides the checkpoint's value and says so in one line.
#[test]
fn a_flag_overrides_the_checkpoint_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("c.st").display().to_string();
    let out = bnscope(&["--headless", "--epochs", "2", "--checkpoint", &ck]);
    assert!(out.status.success());
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "3",
        "--resume",
        &ck,
        "--momentum",
        "0.9",
        "--framework",
        "torch",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("--momentum (Keras convention) 0.9 overrides the checkpoint's 0.99"),
        "{err}"
    );
    assert!(
        err.contains("--framework torch overrides the checkpoint's keras"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}

/// One value per channel (tiny at 8 px, batch 1) is never silent: one warning line headless, an event in the log.
#[test]
fn one_value_per_channel_is_named_headless_and_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("n1.jsonl");
    let out = bnscope(&[
        "--headless",
        "--epochs",
        "3",
        "--image-size",
        "8",
        "--batch-size",
        "1",
        "--log",
        &log.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("bnscope: warning: one value per channel"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("layer3.0.bn2"), "{err}");
    let recs = read_jsonl(&log);
    let ev: Vec<&Value> = recs.iter().filter(|r| r["what"] == "one_value_per_channel").collect();
    assert_eq!(ev.len(), 1);
    assert!(ev[0]["value"].as_str().unwrap().contains("layer3.0.bn2"));
    let bn = recs.iter().find(|r| r["type"] == "bn").unwrap();
    assert!(bn["layers"].as_array().unwrap().iter().any(|l| l["n"] == 1), "{bn}");
}

/// A quick run: headless, tiny at 16 px, one thread.
fn quick(extra: &[&str]) -> Output {
    let mut args = vec!["--headless", "--image-size", "16", "--device", "cpu"];
    args.extend_from_slice(extra);
    bnscope(&args)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// #17: `--log` never truncates. A bnscope log is appended to (a new `run` record starts the new run), anything
/// else is refused unless `--overwrite-log`, and a log that is the resumed checkpoint is refused outright.
#[test]
fn the_log_is_appended_to_and_never_overwrites_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let ck = dir.path().join("ck.st");
    let (log_s, ck_s) = (log.display().to_string(), ck.display().to_string());
    let out = quick(&["--epochs", "2", "--log", &log_s, "--checkpoint", &ck_s]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let first = std::fs::read_to_string(&log).unwrap();
    let out = quick(&["--epochs", "3", "--log", &log_s, "--resume", &ck_s]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let both = std::fs::read_to_string(&log).unwrap();
    assert!(
        both.starts_with(&first),
        "the first run's records are kept as they were"
    );
    let recs = read_jsonl(&log);
    let kinds: Vec<&str> = recs.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "run").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 2, "{kinds:?}");

    // The log would overwrite the checkpoint it resumes from: refused, the checkpoint untouched.
    let ck_bytes = std::fs::read(&ck).unwrap();
    let out = quick(&["--epochs", "4", "--resume", &ck_s, "--log", &ck_s, "--overwrite-log"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("the same file as --resume"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(&ck).unwrap(), ck_bytes);

    // Something else: refused and untouched; with --overwrite-log it is replaced.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    let out = quick(&["--epochs", "1", "--log", &notes.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out).trim(),
        format!(
            "bnscope: error: --log {}: exists and is not a bnscope log; move it away or pass --overwrite-log",
            notes.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
    let out = quick(&[
        "--epochs",
        "1",
        "--log",
        &notes.display().to_string(),
        "--overwrite-log",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_jsonl(&notes)[0]["type"], "run");
}

/// #17: a checkpoint symlink is written through (the link stays, its target is replaced, with its permissions),
/// the start-up check never touches `FILE.tmp`, and no temporary file is left behind.
#[test]
fn checkpoints_write_through_symlinks_and_touch_nothing_else() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("models")).unwrap();
    std::os::unix::fs::symlink("models/real.st", d.join("latest.st")).unwrap();
    // Files a careless earlier scheme would have clobbered.
    std::fs::write(d.join("latest.st.tmp"), "notes\n").unwrap();
    std::fs::write(d.join("precious"), "precious\n").unwrap();
    std::os::unix::fs::symlink("precious", d.join("models/real.st.tmp")).unwrap();
    let link = d.join("latest.st").display().to_string();
    let out = quick(&["--epochs", "1", "--checkpoint", &link]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(std::fs::symlink_metadata(d.join("latest.st"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(d.join("models/real.st").is_file());
    std::fs::set_permissions(d.join("models/real.st"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = quick(&["--epochs", "2", "--resume", &link, "--checkpoint", &link]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch 2/2"));
    let mode = std::fs::metadata(d.join("models/real.st"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "the replaced checkpoint keeps its permissions");
    assert_eq!(std::fs::read_to_string(d.join("latest.st.tmp")).unwrap(), "notes\n");
    assert_eq!(std::fs::read_to_string(d.join("precious")).unwrap(), "precious\n");
    let mut names: Vec<String> = std::fs::read_dir(d.join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["real.st", "real.st.tmp"], "no temporary file left behind");
    // A failed start leaves the same directory as it was.
    let out = quick(&["--checkpoint", &link, "--log", "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(d.join("latest.st.tmp")).unwrap(), "notes\n");
}

/// A headless run that keeps going until killed.
fn long_run(extra: &[&str]) -> std::process::Child {
    let mut args = vec![
        "--headless",
        "--image-size",
        "16",
        "--device",
        "cpu",
        "--epochs",
        "1000000",
    ];
    args.extend_from_slice(extra);
    Command::new(BIN)
        .args(&args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for a running child's first epoch line.
fn first_epoch(child: &mut std::process::Child) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert!(lines.any(|l| l.unwrap().starts_with("epoch ")), "the first run trains");
    // Keep reading, so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
}

/// #17: two processes never share a log or a checkpoint: the second is refused, naming the first.
#[test]
fn a_log_or_checkpoint_in_use_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shared.jsonl").display().to_string();
    let ck = dir.path().join("shared.st").display().to_string();
    let mut first = long_run(&["--log", &log, "--checkpoint", &ck]);
    first_epoch(&mut first);
    let pid = first.id().to_string();
    let out = quick(&["--epochs", "1", "--log", &log]);
    let (code, err) = (out.status.code(), stderr_of(&out));
    let ck_out = quick(&["--epochs", "1", "--checkpoint", &ck]);
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    assert_eq!(code, Some(2), "{err}");
    // The holder is named from /proc/locks; where that lookup comes up empty (seen for in-process locks under a
    // parallel test run) the line says "another process" instead.
    assert!(
        err.contains("--log")
            && (err.contains(&format!("in use by process {pid} (bnscope)"))
                || err.contains("in use by another process")),
        "{err}"
    );
    assert_eq!(ck_out.status.code(), Some(2), "{}", stderr_of(&ck_out));
    assert!(
        stderr_of(&ck_out).contains("two runs cannot share one checkpoint"),
        "{}",
        stderr_of(&ck_out)
    );
    // Every line of the shared log is whole: nobody interleaved with the first run.
    read_jsonl(&PathBuf::from(&log));
}

/// Runs the binary with a file-size limit of `bytes` (as a full disk would stop it, but reproducibly), SIGXFSZ
/// ignored so that writes fail with EFBIG.
fn with_file_size_limit(bytes: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RAYON_NUM_THREADS", "1");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// #17: a log that cannot be written (a full disk) names `--log`, and leaves no half line; a checkpoint that cannot
/// be written names `--checkpoint`, fails the run and leaves no temporary file.
#[test]
fn write_failures_name_the_file_and_leave_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let log_s = log.display().to_string();
    let out = with_file_size_limit(
        64 * 1024,
        &["--headless", "--epochs", "100000", "--log-bn", "full", "--log", &log_s],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "bnscope: error: --log {log_s}: cannot write the log: File too large"
        )),
        "{err}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "no half line at the end");
    let recs = read_jsonl(&log);
    assert!(recs.iter().filter(|r| r["type"] == "epoch").count() >= 1);

    let ck = dir.path().join("ck.st").display().to_string();
    let log2 = dir.path().join("ck.jsonl");
    let out = with_file_size_limit(
        200 * 1024,
        &[
            "--headless",
            "--epochs",
            "2",
            "--checkpoint",
            &ck,
            "--log",
            &log2.display().to_string(),
        ],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "bnscope: error: --checkpoint {ck}: cannot write the checkpoint: File too large"
        )),
        "{err}"
    );
    let end = read_jsonl(&log2).pop().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("end"), Some("error"))
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ck.jsonl", "run.jsonl"], "no checkpoint, no temporary file");
}

/// #17: resuming a checkpoint that is already at or past `--epochs` (or the headless default of 20) says so.
#[test]
fn resuming_past_the_epochs_asked_for_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("c5.st").display().to_string();
    let out = quick(&["--epochs", "5", "--checkpoint", &ck]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = quick(&["--epochs", "3", "--resume", &ck]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains(&format!("--epochs 3: the checkpoint {ck} is already at epoch 5")),
        "{}",
        stderr_of(&out)
    );
    assert!(stderr_of(&out).contains("pass --epochs 6 or more"));
    let out = quick(&["--epochs", "5", "--resume", &ck]);
    assert_eq!(out.status.code(), Some(2), "nothing left to train");
    // Past the headless default of 20.
    let ck25 = dir.path().join("c25.st").display().to_string();
    let out = quick(&["--epochs", "25", "--checkpoint", &ck25]);
    assert_eq!(out.status.code(), Some(0));
    let out = quick(&["--resume", &ck25]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("past the 20 a headless run trains by default"),
        "{}",
        stderr_of(&out)
    );
}

/// #17: `bench` refuses what it cannot do in one line, exit 2, before allocating anything: counts that overflow or
/// would allocate terabytes, an uncapped batch, flags `--all` would silently ignore.
#[test]
fn bench_refuses_impossible_sizes_and_ignored_flags() {
    let max = u64::MAX.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--steps", &max],
            "--steps 18446744073709551615: must be between 1 and 100000",
        ),
        (vec!["--steps", "1000000000000"], "--steps 1000000000000"),
        (vec!["--steps", "0"], "--steps 0"),
        (
            vec!["--warmup", &max, "--steps", "1"],
            "--warmup 18446744073709551615: at most 100000",
        ),
        (
            vec!["--breakdown", "--warmup", &max, "--steps", "1"],
            "--warmup 18446744073709551615",
        ),
        (vec!["--breakdown", "--steps", &max], "--steps 18446744073709551615"),
        (
            vec!["--batch-size", "100000"],
            "--batch-size 100000: must be between 1 and 4096",
        ),
        (
            vec!["--all", "--image-size", "5"],
            "'--all' cannot be used with '--image-size",
        ),
        (
            vec!["--all", "--model", "resnet18"],
            "'--all' cannot be used with '--model",
        ),
        (
            vec!["--all", "--batch-size", "7"],
            "'--all' cannot be used with '--batch-size",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["bench"];
        all.extend(&args);
        let out = bnscope(&all);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("bnscope: error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

/// #17: `bench --breakdown --json` prints JSON, not the table.
#[test]
fn bench_breakdown_json_is_json() {
    let out = bnscope(&[
        "bench",
        "--breakdown",
        "--json",
        "--image-size",
        "16",
        "--steps",
        "2",
        "--warmup",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let r = &v["results"][0];
    assert_eq!(
        (r["model"].as_str(), r["image_size"].as_u64()),
        (Some("tiny"), Some(16))
    );
    for k in ["forward_ms", "backward_ms", "optimizer_ms", "total_ms"] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{k}");
    }
}

/// #17: control characters in names never reach the terminal raw: headless output and errors escape them.
#[test]
fn names_with_control_characters_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "\x1b]0;pwned\x07\x1b[31mred";
    two_classes(dir.path());
    std::fs::rename(dir.path().join("a"), dir.path().join(evil)).unwrap();
    let d = dir.path().display().to_string();
    let out = quick(&["--epochs", "1", "--data", &d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("classes \\x1b]0;pwned\\x07\\x1b[31mred, b"), "{stdout}");
    assert!(!stdout.contains('\x1b') && !stdout.contains('\x07'), "{stdout}");
    // An error naming a file in that folder.
    std::fs::write(dir.path().join(evil).join("bad.png"), b"not an image").unwrap();
    let out = quick(&["--epochs", "1", "--data", &d]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\\x1b]0;pwned\\x07\\x1b[31mred/bad.png: not a PNG or JPEG"),
        "{err}"
    );
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err}");
}

/// A resume with the same --log appends: the earlier run's records stay, a new `run` record says `resumed_from`,
/// and the epochs go on from where they stopped.
#[test]
fn a_resume_appends_to_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl").display().to_string();
    let ck = dir.path().join("c.st").display().to_string();
    let first = bnscope(&["--headless", "--epochs", "3", "--checkpoint", &ck, "--log", &log]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let rest = bnscope(&["--headless", "--epochs", "5", "--resume", &ck, "--log", &log]);
    assert!(rest.status.success(), "{}", String::from_utf8_lossy(&rest.stderr));
    let recs = read_jsonl(&PathBuf::from(&log));
    let runs: Vec<&Value> = recs.iter().filter(|r| r["type"] == "run").collect();
    assert_eq!(runs.len(), 2);
    assert!(runs[0]["resumed_from"].is_null());
    assert_eq!(runs[1]["resumed_from"], ck);
    assert_eq!(runs[1]["start_epoch"], 3);
    let epochs: Vec<u64> = recs
        .iter()
        .filter(|r| r["type"] == "epoch")
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3, 4, 5]);
    assert_eq!(recs.iter().filter(|r| r["type"] == "end").count(), 2);
}

/// `bnscope replay` prints a finished log as the live headless run printed it (the same numbers), for bnscope's own
/// logs and those of the Python hook and callback; bad logs get one line.
#[test]
fn replay_prints_what_the_run_printed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("r.jsonl");
    let live = bnscope(&["--headless", "--epochs", "4", "--log", &log.display().to_string()]);
    assert!(live.status.success());
    let replay = bnscope(&["replay", &log.display().to_string()]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    // Both without the totals and timings: `epoch 3/4` → `epoch 3`, no `| … ms/step`.
    let strip = |l: &str| {
        let l = l
            .split(" | ")
            .filter(|p| !p.ends_with("ms/step"))
            .collect::<Vec<_>>()
            .join(" | ");
        l.replace("/4 ", " ")
    };
    let lines = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("epoch "))
            .map(strip)
            .collect()
    };
    assert_eq!(lines(&live), lines(&replay));
    assert_eq!(lines(&replay).len(), 4);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    let torch = bnscope(&["replay", &fixtures.join("torch_resnet18.jsonl").display().to_string()]);
    let text = String::from_utf8_lossy(&torch.stdout);
    assert!(torch.status.success());
    assert!(
        text.contains("source torch · resnet18 · framework torch") && text.contains("20 BN layers"),
        "{text}"
    );
    assert!(text.contains("never reached acc 1.000 (last 0.333)"), "{text}");
    let ranks = bnscope(&[
        "replay",
        &fixtures.join("ddp.rank0.jsonl").display().to_string(),
        &fixtures.join("ddp.rank1.jsonl").display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&ranks.stdout);
    assert!(text.contains("rank 0 of 2") && text.contains("rank 1 of 2"), "{text}");
    // The two ranks (no SyncBatchNorm, one image each) drifted apart, and the replay says so.
    assert!(
        text.contains("ranks at epoch 5: running means 8.0% (1) apart at most"),
        "{text}"
    );
    assert!(text.contains("SyncBatchNorm"), "{text}");
    let same = bnscope(&[
        "replay",
        &fixtures.join("ddp.rank0.jsonl").display().to_string(),
        &fixtures.join("ddp.rank0.jsonl").display().to_string(),
    ]);
    // The same log given twice is no pair of ranks (#24): one line, exit 2.
    let err = String::from_utf8_lossy(&same.stderr);
    assert_eq!(same.status.code(), Some(2), "{err}");
    assert!(err.contains("are the same file") && err.lines().count() == 1, "{err}");
    // A log with one broken line and one unknown record: shown, the skips counted on stderr.
    let mut content = std::fs::read_to_string(&log).unwrap();
    content = content.replacen("\n", "\n{\"type\":\"from-the-future\"}\nnot json\n", 1);
    std::fs::write(&log, content).unwrap();
    let out = bnscope(&["replay", &log.display().to_string()]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped 1 line(s) that are not JSON records and 1 record(s) of an unknown type"),
        "{err}"
    );
    // Not a log, a newer schema, a missing file: exit 2, one line.
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello\n").unwrap();
    let newer = dir.path().join("new.jsonl");
    std::fs::write(&newer, "{\"type\":\"run\",\"schema\":9}\n").unwrap();
    for (f, want) in [
        (other, "not a bnscope log"),
        (newer, "schema 9"),
        (dir.path().join("none.jsonl"), "cannot read the log"),
    ] {
        let out = bnscope(&["replay", &f.display().to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{err}");
    }
}

/// `bnscope watch` follows a log like `tail -F`: it waits for the file, takes a line split across writes only once
/// it is whole, starts over after a truncation, and stops on SIGINT with 130.
#[test]
fn watch_follows_a_growing_log() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("w.jsonl");
    let out_path = dir.path().join("out.txt");
    let mut child = Command::new(BIN)
        .args(["watch", &log.display().to_string()])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(700));
    pause();
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(
        f,
        "{{\"type\":\"run\",\"schema\":1,\"source\":\"torch\",\"bn_layers\":[]}}"
    )
    .unwrap();
    write!(f, "{{\"type\":\"epoch\",\"epoch\":1,\"train\":{{\"loss\":0.5,").unwrap();
    f.flush().unwrap();
    pause();
    let half = std::fs::read_to_string(&out_path).unwrap();
    assert!(half.contains("waiting for") && half.contains("source torch"), "{half}");
    assert!(!half.contains("epoch 1"), "a half line is not shown: {half}");
    writeln!(f, "\"acc\":1.0}}}}").unwrap();
    f.flush().unwrap();
    pause();
    drop(f);
    std::fs::write(
        &log,
        "{\"type\":\"run\",\"schema\":1,\"bn_layers\":[]}\n{\"type\":\"epoch\",\"epoch\":7}\n",
    )
    .unwrap();
    pause();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        out.contains("epoch 1  loss 0.5000 acc 1.000 | eval running: not in this log"),
        "{out}"
    );
    assert!(
        out.contains("truncated; starting over") || out.contains("replaced; starting over"),
        "{out}"
    );
    assert!(out.contains("epoch 7"), "{out}");
}

/// Bad input to `replay`/`watch` (flags and files): one line naming the flag or file, exit 2, never a panic.
#[test]
fn replay_and_watch_refuse_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello\n").unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logs/keras_small.jsonl");
    let notes = notes.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["watch", "--headless", &notes], "notes.txt: not a bnscope log"),
        (
            &["watch", "--headless", fixture, fixture],
            "watch --headless follows one file (2 given)",
        ),
        (&["watch", "--pace", "0", fixture], "--pace 0: must be between"),
        (&["replay", "--pace", "nan", fixture], "--pace NaN: must be between"),
        (&["replay", "--epoch", "99", fixture], "--epoch 99: "),
        (&["replay", "--headless", "/"], "/: a directory, not a log file"),
    ];
    for (args, want) in cases {
        let out = bnscope(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

#[test]
fn resume_refuses_another_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("gn.st");
    let ck = ck.to_str().unwrap();
    let out = bnscope(&["--headless", "--norm", "group", "--epochs", "1", "--checkpoint", ck]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bnscope(&["--headless", "--epochs", "2", "--resume", ck]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("add --norm group"), "{err}");
    let out = bnscope(&["--headless", "--epochs", "2", "--resume", ck, "--norm", "group"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// --- #24: a user's file is never destroyed or overwritten ---

/// The fixture weights (a torchvision-named tiny state_dict) copied to `dir/w.st`.
fn weights_copy(dir: &Path) -> PathBuf {
    let w = dir.join("w.st");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/weights/tiny_torchvision.safetensors"
        ),
        &w,
    )
    .unwrap();
    w
}

/// Asserts exit 2 with one `bnscope: error:` line holding every fragment, and no epoch trained.
fn assert_refused(out: &Output, frags: &[&str], what: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("bnscope: error: "), "{what}: {err}");
    for f in frags {
        assert!(err.contains(f), "{what}: no {f:?} in {err}");
    }
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("epoch 1"),
        "{what}: refused before training"
    );
}

/// The same file under another name: `same` (the path itself), `symlink`, `hardlink`.
fn alias(kind: &str, target: &Path, dir: &Path, n: usize) -> PathBuf {
    let p = dir.join(format!("alias{n}-{kind}"));
    match kind {
        "same" => return target.to_path_buf(),
        "symlink" => std::os::unix::fs::symlink(target, &p).unwrap(),
        _ => std::fs::hard_link(target, &p).unwrap(),
    }
    p
}

/// #24: every output (`--log`, `--checkpoint`, `--save-weights`) against every input (`--resume`, `--weights`,
/// a `--data` image, a `--val` image) and every other output, as the same path, through a symlink and through a
/// hard link: refused at start-up naming both, the input byte for byte as it was.
#[test]
fn no_output_is_written_over_an_input_or_another_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = d.join("ck.st");
    let out = quick(&["--epochs", "1", "--checkpoint", ck.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let w = weights_copy(d);
    let (train, val) = (d.join("train"), d.join("val"));
    two_classes(&train);
    two_classes(&val);
    let (train_s, val_s) = (train.display().to_string(), val.display().to_string());
    let inputs: Vec<(&str, PathBuf, Vec<String>)> = vec![
        ("--resume", ck.clone(), vec![]),
        ("--weights", w.clone(), vec![]),
        ("--data", train.join("a/0.png"), vec!["--data".into(), train_s.clone()]),
        (
            "--val",
            val.join("b/0.png"),
            vec!["--data".into(), train_s.clone(), "--val".into(), val_s.clone()],
        ),
    ];
    let mut n = 0;
    let mut tried = 0;
    for (input, file, extra) in &inputs {
        let before = std::fs::read(file).unwrap();
        for out_flag in ["--log", "--checkpoint", "--save-weights"] {
            if (out_flag, *input) == ("--checkpoint", "--resume") {
                continue; // a resumed run writes its own checkpoint on
            }
            for kind in ["same", "symlink", "hardlink"] {
                n += 1;
                let p = alias(kind, file, d, n);
                let mut args: Vec<String> = extra.clone();
                if input.starts_with("--r") || input.starts_with("--w") {
                    args.extend([input.to_string(), file.display().to_string()]);
                }
                args.extend([out_flag.into(), p.display().to_string()]);
                if out_flag == "--log" {
                    args.push("--overwrite-log".into());
                }
                args.extend(flags(&["--epochs", "3"]));
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let res = quick(&refs);
                let what = format!("{out_flag} over {input} ({kind})");
                let want: &[&str] = if input.starts_with("--d") || input.starts_with("--v") {
                    &[out_flag, &format!("one of the {input} images")]
                } else {
                    &[out_flag, input]
                };
                assert_refused(&res, want, &what);
                assert_eq!(std::fs::read(file).unwrap(), before, "{what}: the input is untouched");
                tried += 1;
                if kind != "same" {
                    std::fs::remove_file(&p).unwrap();
                }
            }
        }
    }
    assert_eq!(tried, 33);
    // Outputs against each other, also through links.
    let a = d.join("out.st");
    for (x, y) in [
        ("--log", "--checkpoint"),
        ("--log", "--save-weights"),
        ("--checkpoint", "--save-weights"),
    ] {
        for kind in ["same", "symlink"] {
            n += 1;
            std::fs::write(&a, b"").unwrap();
            let p = alias(kind, &a, d, n);
            let res = quick(&["--epochs", "1", x, a.to_str().unwrap(), y, p.to_str().unwrap()]);
            assert_refused(&res, &[x, y, "the same file"], &format!("{x} and {y} ({kind})"));
        }
    }
    // The binary itself is an input too.
    let res = quick(&["--epochs", "1", "--log", BIN, "--overwrite-log"]);
    assert_refused(&res, &["--log", "the bnscope binary"], "--log over the binary");
}

/// #24, the reproductions: `--save-weights` onto the `--resume` checkpoint, and `--log` onto the `--weights` file
/// with `--overwrite-log`, each used to destroy the file; `--overwrite-log` empties logs only, never weights, a
/// checkpoint or an image that is at the path.
#[test]
fn save_weights_over_the_resumed_checkpoint_and_overwrite_log_over_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = d.join("ck.st").display().to_string();
    let out = quick(&["--epochs", "2", "--checkpoint", &ck]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let before = std::fs::read(&ck).unwrap();
    let out = quick(&["--resume", &ck, "--epochs", "3", "--save-weights", &ck]);
    assert_refused(
        &out,
        &[&format!("--save-weights {ck}: the same file as --resume {ck}")],
        "save-weights over resume",
    );
    assert_eq!(std::fs::read(&ck).unwrap(), before);
    // The checkpoint still resumes.
    let out = quick(&["--resume", &ck, "--epochs", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let w = weights_copy(d);
    let ws = w.display().to_string();
    let wbytes = std::fs::read(&w).unwrap();
    let out = quick(&["--weights", &ws, "--log", &ws, "--overwrite-log", "--epochs", "1"]);
    assert_refused(&out, &["--log", "the same file as --weights"], "log over weights");
    assert_eq!(std::fs::read(&w).unwrap(), wbytes);
    // Not an input of this run, but no log either: left as it is.
    let img = d.join("cat.png");
    std::fs::write(&img, png_bytes(&image::DynamicImage::ImageRgb8(rgb(8, 8, 1)))).unwrap();
    let pickle = d.join("model.pt");
    std::fs::write(&pickle, b"PK\x03\x04 a torch.save zip").unwrap();
    let legacy = d.join("legacy.pt");
    std::fs::write(&legacy, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    let bin = d.join("blob.bin");
    std::fs::write(&bin, b"abc\0def").unwrap();
    for (p, kind) in [
        (&w, "a safetensors file"),
        (&PathBuf::from(&ck), "a safetensors file"),
        (&img, "a PNG image"),
        (&pickle, "zip archive"),
        (&legacy, "pickle"),
        (&bin, "binary data"),
    ] {
        let before = std::fs::read(p).unwrap();
        let out = quick(&["--epochs", "1", "--log", p.to_str().unwrap(), "--overwrite-log"]);
        assert_refused(&out, &["--log", kind, "--overwrite-log only empties logs"], kind);
        assert_eq!(std::fs::read(p).unwrap(), before, "{kind}");
    }
}

/// #24: `--save-weights` where it cannot be written is found at start-up (exit 2, nothing trained), as `--log`
/// and `--checkpoint` are; and two runs never write one weights file.
#[test]
fn save_weights_is_checked_and_locked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A read-only file system (also for root, which file permissions do not stop).
    let out = quick(&["--epochs", "1", "--save-weights", "/proc/bnscope-weights.st"]);
    assert_refused(
        &out,
        &["--save-weights /proc/bnscope-weights.st: cannot write there"],
        "read-only fs",
    );
    let out = quick(&["--epochs", "1", "--save-weights", d.to_str().unwrap()]);
    assert_refused(&out, &["--save-weights", "is a directory"], "a directory");
    let out = quick(&["--epochs", "1", "--save-weights", "/dev/null"]);
    assert_refused(&out, &["--save-weights /dev/null", "not a regular file"], "a device");
    // A checkpoint of another run is not replaced by plain weights (it could not be resumed again).
    let ck = d.join("other.st");
    let out = quick(&["--epochs", "1", "--checkpoint", ck.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let before = std::fs::read(&ck).unwrap();
    let out = quick(&["--epochs", "1", "--save-weights", ck.to_str().unwrap()]);
    assert_refused(
        &out,
        &["--save-weights", "a bnscope checkpoint is there"],
        "over a checkpoint",
    );
    assert_eq!(std::fs::read(&ck).unwrap(), before);
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        let ro = d.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let p = ro.join("w.st");
        let out = quick(&["--epochs", "1", "--save-weights", p.to_str().unwrap()]);
        assert_refused(
            &out,
            &["--save-weights", "cannot write there", "permission denied"],
            "ro dir",
        );
        let f = d.join("ro.st");
        std::fs::copy(weights_copy(d), &f).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
        let out = quick(&["--epochs", "1", "--save-weights", f.to_str().unwrap()]);
        assert_refused(&out, &["--save-weights", "read-only"], "ro file");
    }
    let w = d.join("shared.st").display().to_string();
    let mut first = long_run(&["--save-weights", &w]);
    first_epoch(&mut first);
    let out = quick(&["--epochs", "1", "--save-weights", &w]);
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    first.wait().unwrap();
    assert_refused(
        &out,
        &["--save-weights", "in use by", "two runs cannot share one weights file"],
        "locked",
    );
    // The first run wrote its weights on SIGTERM; the refused one wrote nothing.
    assert!(Path::new(&w).is_file());
}

// --- #24: messages that mislead ---

/// #24: a lesson given a flag that contradicts its story is refused in one line naming the flag and the lesson;
/// flags that keep the story true still run it.
#[test]
fn lessons_refuse_flags_that_contradict_their_story() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--scenario", "groupnorm", "--norm", "batch"],
            "--norm batch: contradicts the lesson groupnorm",
        ),
        (
            &["--scenario", "seed", "--momentum", "0.5"],
            "--momentum 0.5: contradicts the lesson seed",
        ),
        (
            &[
                "--scenario",
                "seed",
                "--momentum",
                "0.5",
                "--momentum-convention",
                "torch",
            ],
            "--momentum 0.5: contradicts the lesson seed",
        ),
        (
            &["--scenario", "seed", "--cumulative"],
            "--cumulative: contradicts the lesson seed",
        ),
        (
            &["--scenario", "seed", "--norm", "group"],
            "--norm group: contradicts the lesson seed",
        ),
        (
            &["--scenario", "shifted-eval", "--val-transform", "none"],
            "--val-transform none: contradicts the lesson shifted-eval",
        ),
        (
            &["--scenario", "shifted-eval", "--val-transform", "invert"],
            "--val-transform invert: contradicts the lesson shifted-eval",
        ),
        (
            &["--scenario", "ema", "--norm", "layer"],
            "--norm layer: contradicts the lesson ema",
        ),
        (
            &["--scenario", "small-batch", "--batch-size", "8"],
            "--batch-size 8: contradicts the lesson small-batch",
        ),
        (
            &["--scenario", "small-batch", "--eval-batch-size", "4"],
            "--eval-batch-size 4: contradicts the lesson small-batch",
        ),
        (
            &["--scenario", "small-batch", "--image-size", "32"],
            "--image-size 32: contradicts the lesson small-batch",
        ),
        (
            &["--scenario", "frozen-backbone", "--frozen-bn", "train"],
            "--frozen-bn train: contradicts the lesson frozen-backbone",
        ),
        (
            &["--scenario", "frozen-backbone", "--norm", "group"],
            "--norm group: contradicts the lesson frozen-backbone",
        ),
        // GroupNorm has no BatchNorm mode to choose.
        (
            &["--norm", "group", "--freeze", "backbone", "--frozen-bn", "inference"],
            "--frozen-bn inference with --norm group: GroupNorm layers have no running statistics",
        ),
    ];
    for (args, want) in cases {
        let mut a = args.to_vec();
        a.extend(["--headless", "--epochs", "1"]);
        let out = bnscope(&a);
        assert_refused(&out, &[want], &format!("{args:?}"));
    }
    // The story's own values, given explicitly, are no contradiction; the seed stays at momentum 0.99 under
    // --framework torch (whose default is 0.1 = Keras 0.9).
    for args in [
        &[
            "--scenario",
            "seed",
            "--momentum",
            "0.01",
            "--momentum-convention",
            "torch",
        ][..],
        &["--scenario", "seed", "--framework", "torch"],
        &["--scenario", "groupnorm", "--norm", "group"],
    ] {
        let mut a = args.to_vec();
        a.extend(["--headless", "--epochs", "1"]);
        let out = bnscope(&a);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if args.contains(&"seed") {
            assert!(stdout.contains("momentum 0.99 (Keras)"), "{args:?}: {stdout}");
        }
    }
}

/// #24: a lesson's own values over a resumed checkpoint's are called the lesson's, not flags the user gave.
#[test]
fn a_lesson_over_a_checkpoint_says_the_values_are_the_lessons() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.st").display().to_string();
    let out = bnscope(&[
        "--headless",
        "--data",
        "shapes:150",
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--checkpoint",
        &ck,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = bnscope(&[
        "--headless",
        "--scenario",
        "small-batch",
        "--resume",
        &ck,
        "--epochs",
        "2",
    ]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("--lr 0.003 overrides"), "{err}");
    assert!(
        err.contains("the lesson small-batch sets --lr 0.003 over the checkpoint's 0.001"),
        "{err}"
    );
    assert!(
        err.contains("the lesson small-batch sets --batch-size 2 over the checkpoint's 32"),
        "{err}"
    );
    // A flag given by the user is still the user's.
    let out = bnscope(&[
        "--headless",
        "--scenario",
        "small-batch",
        "--resume",
        &ck,
        "--epochs",
        "2",
        "--lr",
        "0.01",
    ]);
    let err = stderr_of(&out);
    assert!(err.contains("--lr 0.01 overrides the checkpoint's 0.001"), "{err}");
}

/// #24: GroupNorm runs say what is true of GroupNorm: no momentum or BatchNorm convention in the opening line,
/// GroupNorm layers (not BN layers), and a frozen backbone whose layers have no statistics to freeze.
#[test]
fn group_norm_runs_do_not_describe_batchnorm() {
    let out = bnscope(&["--headless", "--norm", "group", "--freeze", "backbone", "--epochs", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap();
    assert!(first.contains("GroupNorm (ε 1e-3, no running statistics)"), "{first}");
    assert!(first.ends_with("9 GroupNorm layers"), "{first}");
    assert!(!first.contains("BN") && !first.contains("momentum"), "{first}");
    assert!(!stdout.contains("BatchNorm layers in"), "{stdout}");
    assert!(stdout.contains("no running statistics to freeze"), "{stdout}");
    let out = bnscope(&["--headless", "--norm", "layer", "--epochs", "1"]);
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap().to_string();
    assert!(first.ends_with("9 LayerNorm layers"), "{first}");
}
