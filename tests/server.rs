//! `aicut serve` over loopback: the contract, every error row, expiry, eviction, load.
//! Time is the server's injected clock, moved by hand: no test waits for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aicut::engine::builtin;
use aicut::engine::local::LocalEngine;
use aicut::engine::store::StoreConfig;
use aicut::server::{self, KeyPolicy, RunningServer, ServeConfig};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "test-key";

async fn start(config: ServeConfig, store: StoreConfig) -> (RunningServer, Arc<LocalEngine>) {
    aicut::engine::remote::install_crypto_provider();
    let engine = Arc::new(builtin::engine(store));
    let server = server::spawn("127.0.0.1:0".parse().unwrap(), engine.clone(), config)
        .await
        .unwrap();
    (server, engine)
}

async fn start_default() -> RunningServer {
    start(ServeConfig::default(), StoreConfig::default())
        .await
        .0
}

/// A server whose clock the test moves.
async fn start_with_clock(config: ServeConfig) -> (RunningServer, ManualClock) {
    let clock = ManualClock::default();
    let config = ServeConfig {
        clock: clock.clock(),
        ..config
    };
    (start(config, StoreConfig::default()).await.0, clock)
}

fn scene_png() -> Vec<u8> {
    png_bytes(&blob_scene(160, 120).0)
}

async fn initialize(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("photo.png");
    client
        .post(format!("{base}/v3/ai-cut/initialize/"))
        .bearer_auth(key)
        .multipart(reqwest::multipart::Form::new().part("image", part))
        .send()
        .await
        .unwrap()
}

async fn session(client: &reqwest::Client, base: &str) -> String {
    let r = initialize(client, base, KEY, scene_png()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["unique_filename"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn segment(client: &reqwest::Client, base: &str, body: Value) -> reqwest::Response {
    client
        .post(format!("{base}/v3/ai-cut/segment/"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn seg_body(uid: &str, n: u64) -> Value {
    json!({"unique_filename": uid, "greenDots": [{"x": 80, "y": 60}], "redDots": [], "request_number": n})
}

/// The status of a segment call with one green dot in the middle.
async fn segment_status(client: &reqwest::Client, base: &str, uid: &str, n: u64) -> StatusCode {
    segment(client, base, seg_body(uid, n)).await.status()
}

/// Asserts a JSON error with the given status, returning its detail.
async fn expect_error(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    assert!(
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "errors are JSON"
    );
    let v: Value = r.json().await.unwrap();
    let detail = v["detail"].as_str().expect("a detail field").to_string();
    assert!(!detail.is_empty());
    detail
}

#[tokio::test]
async fn each_segment_call_gives_a_cutout_downloadable_without_the_key() {
    let server = start_default().await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await;
    assert!(uuid::Uuid::parse_str(&uid).is_ok());
    for n in [1u64, 2] {
        let r = segment(&client, &base, seg_body(&uid, n)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["unique_filename"], uid.as_str());
        assert_eq!(v["request_number"], n);
        let url = v["output_url"].as_str().unwrap();
        assert!(
            url.starts_with(&base),
            "absolute URL on the same server: {url}"
        );
        // No Authorization header: the URL alone must be enough.
        let png = reqwest::get(url).await.unwrap();
        assert_eq!(png.status(), StatusCode::OK);
        assert_eq!(png.headers()["content-type"], "image/png");
        let img = image::load_from_memory(&png.bytes().await.unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (160, 120));
        assert!(img.color().has_alpha());
        let rgba = img.to_rgba8();
        assert_eq!(rgba.get_pixel(0, 0).0[3], 0);
        assert_eq!(rgba.get_pixel(80, 60).0[3], 255);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_missing_or_non_bearer_key_gets_401() {
    let config = ServeConfig {
        keys: KeyPolicy::Keys(vec![KEY.into()]),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    expect_error(
        initialize(&client, &base, "wrong-key", scene_png()).await,
        401,
    )
    .await;
    let segment_call = || {
        client
            .post(format!("{base}/v3/ai-cut/segment/"))
            .json(&seg_body("x", 1))
    };
    expect_error(segment_call().send().await.unwrap(), 401).await;
    let basic = segment_call().header("Authorization", format!("Basic {KEY}"));
    expect_error(basic.send().await.unwrap(), 401).await;
    assert_eq!(
        initialize(&client, &base, KEY, scene_png()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_configured_keys_any_non_empty_token_works() {
    let server = start_default().await;
    let client = reqwest::Client::new();
    assert_eq!(
        initialize(&client, &server.url(), "anything", scene_png())
            .await
            .status(),
        StatusCode::OK
    );
    let empty = client
        .post(format!("{}/v3/ai-cut/initialize/", server.url()))
        .header("Authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    expect_error(empty, 401).await;
}

#[tokio::test]
async fn a_segment_body_with_a_missing_or_invalid_field_gets_400_naming_it() {
    let server = start_default().await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await;
    let green = json!([{"x": 1, "y": 1}]);
    let cases = [
        (
            json!({"greenDots": [], "redDots": [], "request_number": 1}),
            "unique_filename",
        ),
        (
            json!({"unique_filename": uid, "redDots": [], "request_number": 1}),
            "greenDots",
        ),
        (
            json!({"unique_filename": uid, "greenDots": green, "request_number": 1}),
            "redDots",
        ),
        (
            json!({"unique_filename": uid, "greenDots": green, "redDots": []}),
            "request_number",
        ),
        (
            json!({"unique_filename": uid, "greenDots": [{"x": "a", "y": 1}], "redDots": [], "request_number": 1}),
            "point",
        ),
        (
            json!({"unique_filename": uid, "greenDots": [[1, 2]], "redDots": [], "request_number": 1}),
            "point",
        ),
        (
            json!({"unique_filename": uid, "greenDots": [{"x": 160, "y": 1}], "redDots": [], "request_number": 1}),
            "outside",
        ),
        (
            json!({"unique_filename": uid, "greenDots": green, "redDots": [{"x": -3, "y": 1}], "request_number": 1}),
            "outside",
        ),
        (
            json!({"unique_filename": uid, "greenDots": green, "redDots": [], "request_number": -1}),
            "request_number",
        ),
    ];
    for (body, word) in cases {
        let detail = expect_error(segment(&client, &base, body.clone()).await, 400).await;
        assert!(
            detail.to_lowercase().contains(&word.to_lowercase()),
            "{body}: {detail}"
        );
    }
}

#[tokio::test]
async fn a_segment_body_that_is_not_json_gets_400() {
    let server = start_default().await;
    let malformed = reqwest::Client::new()
        .post(format!("{}/v3/ai-cut/segment/", server.url()))
        .bearer_auth(KEY)
        .header("Content-Type", "application/json")
        .body("{\"unique_filename\": ")
        .send()
        .await
        .unwrap();
    assert!(expect_error(malformed, 400).await.contains("JSON"));
}

#[tokio::test]
async fn an_upload_that_is_not_an_image_or_not_in_the_field_image_gets_400() {
    let server = start_default().await;
    let base = server.url();
    let client = reqwest::Client::new();
    let detail = expect_error(
        initialize(&client, &base, KEY, b"not an image at all".to_vec()).await,
        400,
    )
    .await;
    assert!(detail.contains("not"), "{detail}");
    let upload = || {
        client
            .post(format!("{base}/v3/ai-cut/initialize/"))
            .bearer_auth(KEY)
    };
    let wrong_field =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(scene_png()));
    let r = upload().multipart(wrong_field).send().await.unwrap();
    assert!(expect_error(r, 400).await.contains("image"));
    let not_multipart = upload().json(&json!({"image": "x"})).send().await.unwrap();
    expect_error(not_multipart, 400).await;
}

#[tokio::test]
async fn an_upload_over_the_size_limit_gets_413() {
    let config = ServeConfig {
        max_upload_bytes: 200_000,
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let client = reqwest::Client::new();
    let big = initialize(&client, &server.url(), KEY, vec![0u8; 400_000]).await;
    expect_error(big, 413).await;
}

#[tokio::test]
async fn spent_credits_give_402_on_initialize_but_segment_stays_free() {
    let config = ServeConfig {
        credits: Some(1),
        keys: KeyPolicy::Keys(vec![KEY.into(), "other-key".into()]),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    // A failed initialize does not use the credit.
    expect_error(initialize(&client, &base, KEY, b"junk".to_vec()).await, 400).await;
    let uid = session(&client, &base).await;
    expect_error(initialize(&client, &base, KEY, scene_png()).await, 402).await;
    for n in 1..=3 {
        assert_eq!(
            segment_status(&client, &base, &uid, n).await,
            StatusCode::OK
        );
    }
    // Credits are per key.
    assert_eq!(
        initialize(&client, &base, "other-key", scene_png())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_configured_keys_a_fresh_token_gets_no_fresh_credits() {
    let config = ServeConfig {
        credits: Some(2),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    for token in ["first", "second"] {
        let r = initialize(&client, &base, token, scene_png()).await;
        assert_eq!(r.status(), StatusCode::OK, "{token}");
    }
    // Any token is accepted, so they all draw on one balance.
    expect_error(initialize(&client, &base, "third", scene_png()).await, 402).await;
}

#[tokio::test]
async fn a_call_over_the_rate_gets_429_with_retry_after_and_passes_once_that_has_passed() {
    let config = ServeConfig {
        rate_limit: Some(1.0),
        ..Default::default()
    };
    let (server, clock) = start_with_clock(config).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await; // the one call this second allows
    for _ in 0..2 {
        let r = segment(&client, &base, seg_body(&uid, 1)).await;
        assert_eq!(r.headers()["retry-after"], "1", "whole seconds, rounded up");
        expect_error(r, 429).await;
        clock.advance(Duration::from_millis(500));
    }
    assert_eq!(
        segment_status(&client, &base, &uid, 2).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_sessions_and_sessions_idle_past_the_ttl_get_404() {
    let config = ServeConfig {
        session_ttl: Duration::from_secs(30 * 60),
        ..Default::default()
    };
    let (server, clock) = start_with_clock(config).await;
    let base = server.url();
    let client = reqwest::Client::new();
    expect_error(
        segment(&client, &base, seg_body("no-such-session", 1)).await,
        404,
    )
    .await;
    let uid = session(&client, &base).await;
    for n in 1..=2 {
        clock.advance(Duration::from_secs(20 * 60));
        let status = segment_status(&client, &base, &uid, n).await;
        assert_eq!(status, StatusCode::OK, "each call restarts the idle time");
    }
    clock.advance(Duration::from_secs(30 * 60 + 1));
    let detail = expect_error(segment(&client, &base, seg_body(&uid, 3)).await, 404).await;
    assert!(detail.contains("expired"), "{detail}");
}

#[tokio::test]
async fn the_engine_evicts_its_least_recently_used_session_under_its_memory_cap() {
    let client = reqwest::Client::new();
    let (server, engine) = start(ServeConfig::default(), StoreConfig::default()).await;
    session(&client, &server.url()).await;
    let per_session = engine.sessions().total_bytes();
    server.shutdown().await;
    // A cap that holds about two sessions of this size.
    let store = StoreConfig {
        memory_cap_bytes: per_session * 2 + per_session / 2,
        ..Default::default()
    };
    let (server, engine) = start(ServeConfig::default(), store).await;
    let base = server.url();
    let a = session(&client, &base).await;
    let b = session(&client, &base).await;
    assert_eq!(segment_status(&client, &base, &a, 1).await, StatusCode::OK); // a is fresher
    let c = session(&client, &base).await;
    expect_error(segment(&client, &base, seg_body(&b, 1)).await, 404).await;
    assert_eq!(segment_status(&client, &base, &a, 2).await, StatusCode::OK);
    assert_eq!(segment_status(&client, &base, &c, 1).await, StatusCode::OK);
    assert!(engine.sessions().total_bytes() <= store.memory_cap_bytes);
}

#[tokio::test]
async fn a_session_the_server_evicts_under_its_memory_cap_is_closed_on_the_engine() {
    // What one session holds: its pixels and the engine's prepared state.
    let (server, engine) = start(ServeConfig::default(), StoreConfig::default()).await;
    session(&reqwest::Client::new(), &server.url()).await;
    let per_session = engine.sessions().total_bytes();
    server.shutdown().await;
    let config = ServeConfig {
        session_memory_cap: per_session * 2 + per_session / 2,
        ..Default::default()
    };
    let (server, engine) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let a = session(&client, &base).await;
    let b = session(&client, &base).await;
    assert_eq!(segment_status(&client, &base, &a, 1).await, StatusCode::OK); // a is fresher
    let c = session(&client, &base).await;
    assert_eq!(engine.sessions().len(), 2, "b's prepared state was freed");
    expect_error(segment(&client, &base, seg_body(&b, 1)).await, 404).await;
    assert_eq!(segment_status(&client, &base, &a, 2).await, StatusCode::OK);
    assert_eq!(segment_status(&client, &base, &c, 1).await, StatusCode::OK);
}

/// A server with one cut-out made: (server, its clock, the cut-out's URL, the session).
async fn one_output(config: ServeConfig) -> (RunningServer, ManualClock, String, String) {
    let (server, clock) = start_with_clock(config).await;
    let client = reqwest::Client::new();
    let uid = session(&client, &server.url()).await;
    let r = segment(&client, &server.url(), seg_body(&uid, 1)).await;
    let v: Value = r.json().await.unwrap();
    let url = v["output_url"].as_str().unwrap().to_string();
    (server, clock, url, uid)
}

#[tokio::test]
async fn an_output_url_expires_a_fixed_time_after_the_segment_call() {
    let config = ServeConfig {
        output_ttl: Duration::from_secs(600),
        ..Default::default()
    };
    let (_server, clock, url, _) = one_output(config).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(299));
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "downloads do not extend the link"
        );
    }
    clock.advance(Duration::from_secs(3));
    expect_error(client.get(&url).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn output_urls_serve_nothing_but_their_own_token() {
    let (server, _, url, uid) = one_output(ServeConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let token = url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".png")
        .to_string();
    let tricks = [
        format!("{base}/v3/ai-cut/outputs/{token}"),
        format!("{base}/v3/ai-cut/outputs/{token}.png.png"),
        format!(
            "{base}/v3/ai-cut/outputs/{}.png",
            token.to_uppercase().replace('-', "")
        ),
        format!("{base}/v3/ai-cut/outputs/..%2F..%2Fetc%2Fpasswd"),
        format!("{base}/v3/ai-cut/outputs/%2e%2e/initialize/"),
        format!("{base}/v3/ai-cut/outputs/../../../etc/passwd"),
        format!("{base}/v3/ai-cut/outputs/{}.png", uuid::Uuid::new_v4()),
        format!("{base}/v3/ai-cut/outputs/{uid}.png"),
        format!("{base}/v3/ai-cut/outputs/"),
    ];
    for t in &tricks {
        let r = client.get(t).send().await.unwrap();
        // The client may normalise `%2e%2e` into another route (405 there); nothing leaks.
        assert!(
            matches!(r.status().as_u16(), 404 | 405),
            "{t}: {}",
            r.status()
        );
        assert_ne!(r.headers()["content-type"], "image/png", "{t}");
    }
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn load_8_sessions_by_50_segment_calls_without_error_within_the_caps() {
    let output_cap = 4 * 1024 * 1024;
    let session_cap = 256 * 1024 * 1024;
    let config = ServeConfig {
        output_memory_cap: output_cap,
        ..Default::default()
    };
    let store = StoreConfig {
        memory_cap_bytes: session_cap,
        ..Default::default()
    };
    let (server, engine) = start(config, store).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for s in 0..8u64 {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let uid = session(&client, &base).await;
            for n in 1..=50u64 {
                let x = 60 + (n * 7 + s) % 40;
                let body = json!({"unique_filename": uid, "greenDots": [{"x": x, "y": 60}],
                                  "redDots": [{"x": 3, "y": 3}], "request_number": n});
                let r = segment(&client, &base, body).await;
                assert_eq!(r.status(), StatusCode::OK, "session {s} call {n}");
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["request_number"], n);
                let png = client
                    .get(v["output_url"].as_str().unwrap())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    png.status(),
                    StatusCode::OK,
                    "session {s} call {n} download"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(engine.sessions().len(), 8);
    assert!(engine.sessions().total_bytes() <= session_cap);
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_on_one_session_each_echo_their_number() {
    let server = start_default().await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await;
    let calls = (1..=12u64).map(|n| {
        let (client, base, uid) = (client.clone(), base.clone(), uid.clone());
        tokio::spawn(async move {
            let v: Value = segment(&client, &base, seg_body(&uid, n))
                .await
                .json()
                .await
                .unwrap();
            v["request_number"].as_u64().unwrap()
        })
    });
    let mut got = Vec::new();
    for c in calls {
        got.push(c.await.unwrap());
    }
    assert_eq!(got, (1..=12).collect::<Vec<_>>());
}
