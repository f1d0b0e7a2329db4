//! Model downloads against a real loopback HTTP server: progress, resume after a dropped
//! connection (with a Range request), servers that ignore ranges, a wrong digest, a wrong
//! size, nobody listening, cancelling a stalled transfer, and `aicut model fetch` / `list`
//! run as the real binary.

#[path = "common/model_server.rs"]
mod model_server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicut::models::{CancelToken, FetchError, FetchRequest, Progress, fetch};
use model_server::{Behaviour, ModelServer, Setup, refused_url, serve, sha256, sha256_hex};

const LEN: usize = 1_000_000;

fn request(url: String, dir: &Path, file: &[u8]) -> FetchRequest {
    FetchRequest::new(url, dir.join("model.pt"), sha256(file))
}

async fn run(req: &FetchRequest) -> (Result<aicut::models::Fetched, FetchError>, Vec<Progress>) {
    let mut seen = Vec::new();
    let r = fetch(req, &CancelToken::new(), &mut |p| seen.push(p.clone())).await;
    (r, seen)
}

/// Nothing is left in `dir`: neither the final file nor a `.part`.
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn progress_is_reported_with_rate_and_time_left_and_the_file_is_installed() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::paused(25));
    let req = request(server.url("model.pt"), dir.path(), &file);
    let (r, seen) = run(&req).await;
    let done = r.unwrap();
    assert_eq!(
        (done.bytes, done.resumed_from, done.used_range),
        (LEN as u64, 0, false)
    );
    assert_eq!(std::fs::read(&done.path).unwrap(), file);
    assert!(seen.len() >= 3, "{} progress reports", seen.len());
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(seen.iter().all(|p| p.total == Some(LEN as u64)));
    assert_eq!(seen.last().unwrap().done, LEN as u64);
    let mid = seen.iter().find(|p| p.done > 0 && p.done < LEN as u64);
    let mid = mid.expect("a report part-way");
    assert!(mid.rate > 0.0 && mid.eta.is_some(), "{mid:?}");
    assert!(!dir.path().join("model.pt.part").exists());
    assert_eq!(server.ranges(), [None]);
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_with_a_range_request_and_the_digest_matches() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::dropping_once(300_000));
    let (r, _) = run(&request(server.url("model.pt"), dir.path(), &file)).await;
    let done = r.unwrap();
    assert!(done.used_range);
    assert_eq!(std::fs::read(&done.path).unwrap(), file);
    let ranges = server.ranges();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    let from: u64 = ranges[1]
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .expect("the second request asks for the rest");
    assert!(from > 0 && from <= 300_000, "resumed from {from}");
}

#[tokio::test]
async fn an_interrupted_download_is_kept_and_the_next_fetch_resumes_it() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::dropping_once(400_000));
    let req = FetchRequest {
        retries: 0,
        ..request(server.url("model.pt"), dir.path(), &file)
    };
    let err = run(&req).await.0.unwrap_err();
    assert!(matches!(err, FetchError::Interrupted { .. }), "{err}");
    assert!(err.to_string().contains("resumes"), "{err}");
    assert!(!req.dest.exists(), "nothing under the final name");
    let kept = std::fs::metadata(dir.path().join("model.pt.part"))
        .unwrap()
        .len();
    assert!(kept > 0 && kept <= 400_000, "kept {kept}");

    let (r, seen) = run(&req).await;
    let done = r.unwrap();
    assert_eq!(done.resumed_from, kept);
    assert!(done.used_range);
    assert_eq!(seen[0].resumed_from, kept);
    assert_eq!(std::fs::read(&req.dest).unwrap(), file);
    assert_eq!(server.ranges()[1], Some(format!("bytes={kept}-")));
}

#[tokio::test]
async fn a_server_that_ignores_ranges_is_downloaded_again_from_the_start() {
    let behaviour = Behaviour {
        ignore_range: true,
        ..Behaviour::dropping_once(200_000)
    };
    let Setup { file, server, dir } = serve(LEN, behaviour);
    let (r, _) = run(&request(server.url("model.pt"), dir.path(), &file)).await;
    let done = r.unwrap();
    assert_eq!(done.resumed_from, 0);
    assert_eq!(std::fs::read(&done.path).unwrap(), file);
    assert!(
        server.ranges()[1].is_some(),
        "it asked for a range and got 200"
    );
}

#[tokio::test]
async fn a_wrong_digest_deletes_the_download_and_says_so() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::default());
    let req = request(server.url("model.pt"), dir.path(), b"another file");
    let err = run(&req).await.0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Digest { .. }), "{msg}");
    assert!(
        msg.contains(&sha256_hex(&file)),
        "names the digest it got: {msg}"
    );
    assert!(
        msg.contains("deleted") && msg.contains("nothing was installed"),
        "{msg}"
    );
    assert_empty(dir.path());
}

#[tokio::test]
async fn a_file_of_another_size_is_refused_before_it_is_downloaded() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::default());
    let req = FetchRequest {
        size: Some(LEN as u64 + 1),
        ..request(server.url("model.pt"), dir.path(), &file)
    };
    let err = run(&req).await.0.unwrap_err();
    assert!(matches!(err, FetchError::Size { .. }), "{err}");
    assert_empty(dir.path());
}

#[tokio::test]
async fn nobody_listening_gives_a_clear_message_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(refused_url(), dir.path(), b"x");
    let err = run(&req).await.0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Connect { .. }), "{msg}");
    assert!(msg.contains("could not connect to 127.0.0.1"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(msg.contains("nothing was installed"), "{msg}");
    assert_empty(dir.path());
}

#[tokio::test]
async fn an_http_error_is_reported_with_its_status() {
    let Setup { server, dir, .. } = serve(10, Behaviour::default());
    let req = request(server.url("missing/model.pt"), dir.path(), b"x");
    let err = run(&req).await.0.unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 404, .. }), "{err}");
    assert_empty(dir.path());
}

/// Starts a download from a server that stalls after `at` bytes; returns it once those
/// bytes have arrived.
async fn stalled_download(
    server: &ModelServer,
    dir: &Path,
    file: &[u8],
    at: u64,
) -> (
    tokio::task::JoinHandle<Result<aicut::models::Fetched, FetchError>>,
    CancelToken,
) {
    let req = request(server.url("model.pt"), dir, file);
    let cancel = CancelToken::new();
    let done = Arc::new(AtomicU64::new(0));
    let (task_cancel, task_done) = (cancel.clone(), done.clone());
    let task = tokio::spawn(async move {
        fetch(&req, &task_cancel, &mut |p| {
            task_done.store(p.done, Ordering::SeqCst)
        })
        .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while done.load(Ordering::SeqCst) < at {
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (task, cancel)
}

#[tokio::test]
async fn cancel_stops_a_stalled_download_at_once_and_keeps_its_bytes() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::stalling(200_000));
    let (task, cancel) = stalled_download(&server, dir.path(), &file, 200_000).await;
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops promptly")
        .unwrap();
    let err = r.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let part = dir.path().join("model.pt.part");
    assert_eq!(std::fs::metadata(part).unwrap().len(), 200_000);
    assert!(!dir.path().join("model.pt").exists());
}

#[tokio::test]
async fn a_second_download_of_the_same_file_is_refused_while_the_first_runs() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::stalling(100_000));
    let (task, cancel) = stalled_download(&server, dir.path(), &file, 100_000).await;
    let err = run(&request(server.url("model.pt"), dir.path(), &file))
        .await
        .0
        .unwrap_err();
    assert!(matches!(err, FetchError::Busy(_)), "{err}");
    cancel.cancel();
    assert!(task.await.unwrap().unwrap_err().is_cancelled());
}

// ---- the binary: aicut model fetch / list, --model NAME ----

/// The binary with its data folder in `data` (XDG_DATA_HOME: Linux only) and plain
/// progress lines.
#[cfg(target_os = "linux")]
fn aicut(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aicut"));
    c.env("XDG_DATA_HOME", data)
        .env("CI", "true")
        .env_remove("AICUT_MODEL_MIRROR")
        .env_remove("AICUT_SAM_MODEL");
    c
}

#[cfg(target_os = "linux")]
fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn model_fetch_from_a_mirror_installs_the_file_and_model_list_shows_it() {
    let Setup { file, server, dir } = serve(LEN, Behaviour::dropping_once(250_000));
    let data = dir;
    let url = server.url("mirror/mobile_sam.pt");
    let o = aicut(data.path())
        .env("AICUT_TEST_MODEL_SHA256", sha256_hex(&file))
        .args(["model", "fetch", "mobile-sam", "--url", &url])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    let installed = data.path().join("aicut/models/mobile_sam.pt");
    assert_eq!(std::fs::read(&installed).unwrap(), file);
    assert!(out.contains("installed mobile-sam"), "{out}");
    assert!(
        err.contains(&url) && err.contains("MB"),
        "progress lines: {err}"
    );
    assert!(server.ranges()[1].is_some(), "resumed with a range");

    let o = aicut(data.path()).args(["model", "list"]).output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let row = out.lines().find(|l| l.starts_with("mobile-sam")).unwrap();
    assert!(
        row.contains(" installed ") && row.contains("Apache-2.0"),
        "{row}"
    );
    assert!(row.ends_with(&installed.display().to_string()), "{row}");
    let row = out.lines().find(|l| l.starts_with("sam-vit-h")).unwrap();
    assert!(
        row.contains("not installed") && row.contains("2.6 GB"),
        "{row}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn model_fetch_with_nobody_listening_fails_clearly_and_installs_nothing() {
    let data = tempfile::tempdir().unwrap();
    let o = aicut(data.path())
        .args(["model", "fetch", "sam-vit-b", "--url", &refused_url()])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("could not connect"), "{err}");
    assert!(err.contains("nothing was installed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let models = data.path().join("aicut/models");
    let left = std::fs::read_dir(&models).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "files left in {}", models.display());
}

#[cfg(target_os = "linux")]
#[test]
fn a_model_name_that_is_not_installed_says_how_to_fetch_it() {
    let data = tempfile::tempdir().unwrap();
    let o = aicut(data.path())
        .args(["cut", "photo.jpg", "--green", "1,1", "-o", "out.png"])
        .args(["--engine", "sam", "--model", "sam-vit-b"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("sam-vit-b is not installed: run aicut model fetch sam-vit-b"),
        "{err}"
    );
    let o = aicut(data.path())
        .args(["model", "fetch", "sam-vit-x"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("known models: mobile-sam"),
        "{err}"
    );
}
