//! `aicut serve` over loopback: the contract, every error row, expiry, eviction, load.

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

fn scene_png() -> (Vec<u8>, (f64, f64)) {
    let (img, _, c) = blob_scene(160, 120);
    (png_bytes(&img), c)
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
    let r = initialize(client, base, KEY, scene_png().0).await;
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
async fn the_contract_end_to_end() {
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
async fn unauthorized_requests_get_401() {
    let config = ServeConfig {
        keys: KeyPolicy::Keys(vec![KEY.into()]),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let (png, _) = scene_png();
    expect_error(
        initialize(&client, &base, "wrong-key", png.clone()).await,
        401,
    )
    .await;
    let no_header = client
        .post(format!("{base}/v3/ai-cut/segment/"))
        .json(&seg_body("x", 1))
        .send()
        .await
        .unwrap();
    expect_error(no_header, 401).await;
    let basic = client
        .post(format!("{base}/v3/ai-cut/segment/"))
        .header("Authorization", format!("Basic {KEY}"))
        .json(&seg_body("x", 1))
        .send()
        .await
        .unwrap();
    expect_error(basic, 401).await;
    assert_eq!(
        initialize(&client, &base, KEY, png).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_configured_keys_any_non_empty_token_works() {
    let server = start_default().await;
    let client = reqwest::Client::new();
    let (png, _) = scene_png();
    assert_eq!(
        initialize(&client, &server.url(), "anything", png.clone())
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
async fn bad_requests_get_400_with_a_reason() {
    let config = ServeConfig {
        max_upload_bytes: 200_000,
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await;

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
            json!({"unique_filename": uid, "greenDots": [{"x": 1, "y": 1}], "request_number": 1}),
            "redDots",
        ),
        (
            json!({"unique_filename": uid, "greenDots": [{"x": 1, "y": 1}], "redDots": []}),
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
            json!({"unique_filename": uid, "greenDots": [{"x": 1, "y": 1}], "redDots": [{"x": -3, "y": 1}], "request_number": 1}),
            "outside",
        ),
        (
            json!({"unique_filename": uid, "greenDots": [{"x": 1, "y": 1}], "redDots": [], "request_number": -1}),
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
    let malformed = client
        .post(format!("{base}/v3/ai-cut/segment/"))
        .bearer_auth(KEY)
        .header("Content-Type", "application/json")
        .body("{\"unique_filename\": ")
        .send()
        .await
        .unwrap();
    assert!(expect_error(malformed, 400).await.contains("JSON"));

    let detail = expect_error(
        initialize(&client, &base, KEY, b"not an image at all".to_vec()).await,
        400,
    )
    .await;
    assert!(detail.contains("not"), "{detail}");
    let wrong_field = client
        .post(format!("{base}/v3/ai-cut/initialize/"))
        .bearer_auth(KEY)
        .multipart(
            reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(scene_png().0)),
        )
        .send()
        .await
        .unwrap();
    assert!(expect_error(wrong_field, 400).await.contains("image"));
    let not_multipart = client
        .post(format!("{base}/v3/ai-cut/initialize/"))
        .bearer_auth(KEY)
        .json(&json!({"image": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(not_multipart, 400).await;
    let big = initialize(&client, &base, KEY, vec![0u8; 400_000]).await;
    expect_error(big, 413).await;
}

#[tokio::test]
async fn spent_credits_give_402_on_initialize_but_segment_stays_free() {
    let config = ServeConfig {
        credits: Some(1),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    // A failed initialize does not use the credit.
    expect_error(initialize(&client, &base, KEY, b"junk".to_vec()).await, 400).await;
    let uid = session(&client, &base).await;
    expect_error(initialize(&client, &base, KEY, scene_png().0).await, 402).await;
    for n in 1..=3 {
        assert_eq!(
            segment(&client, &base, seg_body(&uid, n)).await.status(),
            StatusCode::OK
        );
    }
    // Credits are per key.
    assert_eq!(
        initialize(&client, &base, "other-key", scene_png().0)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limit_gives_429_with_retry_after() {
    let config = ServeConfig {
        rate_limit: Some(1.0),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await;
    let r = segment(&client, &base, seg_body(&uid, 1)).await;
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    expect_error(r, 429).await;
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        segment(&client, &base, seg_body(&uid, 2)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_expired_and_evicted_sessions_get_404() {
    let store = StoreConfig {
        idle_ttl: Duration::from_millis(600),
        ..Default::default()
    };
    let (server, _) = start(ServeConfig::default(), store).await;
    let base = server.url();
    let client = reqwest::Client::new();
    expect_error(
        segment(&client, &base, seg_body("no-such-session", 1)).await,
        404,
    )
    .await;
    let uid = session(&client, &base).await;
    assert_eq!(
        segment(&client, &base, seg_body(&uid, 1)).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let detail = expect_error(segment(&client, &base, seg_body(&uid, 2)).await, 404).await;
    assert!(detail.contains("expired"), "{detail}");
    server.shutdown().await;

    // A cap that holds about two sessions of this size evicts the least recently used.
    let (server, engine) = start(ServeConfig::default(), StoreConfig::default()).await;
    let one = session(&client, &server.url()).await;
    let per_session = engine.sessions().total_bytes();
    server.shutdown().await;
    let store = StoreConfig {
        memory_cap_bytes: per_session * 2 + per_session / 2,
        ..Default::default()
    };
    let (server, engine) = start(ServeConfig::default(), store).await;
    let base = server.url();
    let a = session(&client, &base).await;
    let b = session(&client, &base).await;
    assert_eq!(
        segment(&client, &base, seg_body(&a, 1)).await.status(),
        StatusCode::OK
    ); // a is fresher
    let c = session(&client, &base).await;
    expect_error(segment(&client, &base, seg_body(&b, 1)).await, 404).await;
    assert_eq!(
        segment(&client, &base, seg_body(&a, 2)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        segment(&client, &base, seg_body(&c, 1)).await.status(),
        StatusCode::OK
    );
    assert!(engine.sessions().total_bytes() <= store.memory_cap_bytes);
    let _ = one;
}

#[tokio::test]
async fn output_urls_expire_and_resist_path_tricks() {
    let config = ServeConfig {
        output_ttl: Duration::from_millis(700),
        ..Default::default()
    };
    let (server, _) = start(config, StoreConfig::default()).await;
    let base = server.url();
    let client = reqwest::Client::new();
    let uid = session(&client, &base).await;
    let v: Value = segment(&client, &base, seg_body(&uid, 1))
        .await
        .json()
        .await
        .unwrap();
    let url = v["output_url"].as_str().unwrap().to_string();
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
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
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = client.get(&url).send().await.unwrap();
    expect_error(r, 404).await;
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
