//! Settings' model list against a loopback server: Download shows progress with rate and
//! time left and ends with the model chosen as the SAM model; Cancel stops a stalled
//! download and keeps its bytes; a wrong digest is reported and nothing is chosen.

use aicut::app::{App, Options};
use aicut::engine::EngineKind;
use aicut::models::{ModelInfo, ModelStore};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use std::path::Path;

use crate::model_server::{Behaviour, ModelServer, Setup, serve, sha256_hex};
use crate::support::*;

const LEN: usize = 600_000;

/// A store with one model, served by `server`, that must hash to `sha256`.
fn one_model(dir: &Path, server: &ModelServer, sha256: String) -> ModelStore {
    let model = ModelInfo {
        name: "test-model".into(),
        file_name: "test_model.pt".into(),
        url: server.url("test_model.pt").into(),
        size: Some(LEN as u64),
        sha256: sha256.into(),
        published_md5: None,
        licence: "Apache-2.0",
        description: "a generated file",
    };
    ModelStore::new(dir, vec![model])
}

/// An editor offering `store`'s models, with Settings open and Download clicked.
fn editor(store: ModelStore) -> Harness<'static, App> {
    let options = Options {
        models: Some(store),
        ..options(None, None)
    };
    let mut h = harness(1.0, options);
    h.get_by_label("Settings").click();
    // A window takes a few frames to size itself and appear.
    for _ in 0..5 {
        h.step();
    }
    h.get_by_label("Download").click();
    h.step();
    h
}

fn downloaded(a: &App) -> u64 {
    a.model_download()
        .and_then(|(_, p)| p.map(|p| p.done))
        .unwrap_or(0)
}

#[test]
fn download_in_settings_shows_progress_then_installs_and_chooses_the_model() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::paused(40));
    let mut h = editor(one_model(dir.path(), &server, sha256_hex(&file)));
    wait_until(&mut h, "progress", |a| downloaded(a) > 0);
    let text = h
        .get_by_label_contains("test-model: ")
        .accesskit_node()
        .label()
        .unwrap_or_default();
    assert!(text.contains("/s") && text.contains("of 600 kB"), "{text}");
    h.get_by_label("Cancel"); // offered while it runs

    let installed = dir.path().join("test_model.pt");
    let want = installed.display().to_string();
    wait_until(&mut h, "the model to be chosen", |a| {
        a.model_download().is_none() && a.settings().sam_model == want
    });
    assert_eq!(h.state().settings().engine, EngineKind::Sam);
    assert_eq!(std::fs::read(&installed).unwrap(), file);
    let messages = h.state().messages();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("installed and selected")),
        "{messages:?}"
    );
}

#[test]
fn cancel_stops_a_stalled_download_and_keeps_what_arrived() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::stalling(200_000));
    let mut h = editor(one_model(dir.path(), &server, sha256_hex(&file)));
    wait_until(&mut h, "the bytes before the stall", |a| {
        downloaded(a) >= 200_000
    });
    h.get_by_label("Cancel").click();
    wait_until(&mut h, "the download to stop", |a| {
        a.model_download().is_none()
    });
    let messages = h.state().messages();
    assert!(
        messages.iter().any(|m| m.contains("cancelled")),
        "{messages:?}"
    );
    assert_eq!(h.state().settings().sam_model, "");
    let part = dir.path().join("test_model.pt.part");
    assert_eq!(std::fs::metadata(part).unwrap().len(), 200_000);
    assert!(!dir.path().join("test_model.pt").exists());
}

#[test]
fn a_download_with_the_wrong_digest_is_reported_and_nothing_is_chosen() {
    let Setup { server, dir, .. } = serve(LEN, Behaviour::default());
    let mut h = editor(one_model(dir.path(), &server, "00".repeat(32)));
    wait_until(&mut h, "the download to end", |a| {
        a.model_download().is_none()
    });
    let messages = h.state().messages();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Could not download test-model") && m.contains("SHA-256")),
        "{messages:?}"
    );
    assert_eq!(h.state().settings().engine, EngineKind::Builtin);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
