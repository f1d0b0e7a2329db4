//! The broken-file corpus (`common::broken`) through two front doors: `aicut cut` gives one
//! clear line and a failure exit for each, `aicut serve` a 400 with a JSON detail. The
//! editor runs the same corpus in `tests/editor/files.rs`. Never a panic.

mod common;

use std::process::Command;

use aicut::engine::builtin;
use aicut::engine::store::StoreConfig;
use aicut::server::{self, ServeConfig};
use common::broken::corpus;
use serde_json::Value;

#[test]
fn aicut_cut_gives_one_clear_line_and_fails_for_each() {
    let dir = tempfile::tempdir().unwrap();
    for file in corpus() {
        let path = dir.path().join(file.name);
        std::fs::write(&path, &file.bytes).unwrap();
        let out = dir.path().join("out.png");
        let o = Command::new(env!("CARGO_BIN_EXE_aicut"))
            .arg("cut")
            .arg(&path)
            .args(["--green", "1,0", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {stderr}", file.name);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{}: {stderr}",
            file.name
        );
        let line = stderr.to_lowercase();
        assert!(
            line.starts_with("aicut: error: "),
            "{}: {stderr}",
            file.name
        );
        assert!(
            line.contains(&file.name.to_lowercase()) && line.contains(file.expect),
            "{} should say {:?}: {stderr}",
            file.name,
            file.expect
        );
        assert!(!out.exists(), "{}: nothing written", file.name);
    }
}

/// Inputs the fuzzer found (see `tests/formats/fuzz_regressions.rs`): one line, nothing
/// else on stderr (the TIFF one once made the `tiff` crate print a debug line first).
#[test]
fn fuzz_findings_give_exactly_one_line() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz");
    let out = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let o = Command::new(env!("CARGO_BIN_EXE_aicut"))
            .arg("cut")
            .arg(&path)
            .args(["--green", "0,0", "-o"])
            .arg(out.path().join("o.png"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {stderr}", path.display());
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{}: {stderr}",
            path.display()
        );
        assert!(stderr.contains("damaged"), "{stderr}");
    }
}

#[tokio::test]
async fn aicut_serve_answers_400_with_a_json_detail_for_each() {
    aicut::engine::remote::install_crypto_provider();
    let engine = std::sync::Arc::new(builtin::engine(StoreConfig::default()));
    let running = server::spawn(
        "127.0.0.1:0".parse().unwrap(),
        engine,
        ServeConfig::default(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    for file in corpus() {
        let part = reqwest::multipart::Part::bytes(file.bytes).file_name(file.name);
        let r = client
            .post(format!("{}/v3/ai-cut/initialize/", running.url()))
            .bearer_auth("any")
            .multipart(reqwest::multipart::Form::new().part("image", part))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{}", file.name);
        let v: Value = r.json().await.unwrap();
        let detail = v["detail"].as_str().unwrap_or_default().to_lowercase();
        assert!(
            detail.contains(file.expect),
            "{} should say {:?}: {v}",
            file.name,
            file.expect
        );
    }
}
