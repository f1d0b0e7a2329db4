//! The AI Cut calls the tests make, with reqwest.

use reqwest::{Client, Response};
use serde_json::{Value, json};

use crate::common::{blob_scene, png_bytes};

pub const KEY: &str = "test-key";

/// A client (the crypto provider reqwest needs installed first).
pub fn client() -> Client {
    aicut::engine::remote::install_crypto_provider();
    Client::new()
}

pub fn scene_png() -> Vec<u8> {
    png_bytes(&blob_scene(160, 120).0)
}

/// An initialize call, with an `Idempotency-Key` when given.
pub async fn initialize(
    client: &Client,
    base: &str,
    key: &str,
    idempotency: Option<&str>,
) -> reqwest::Result<Response> {
    initialize_with(client, base, key, idempotency, scene_png()).await
}

/// An initialize call uploading `png`.
pub async fn initialize_with(
    client: &Client,
    base: &str,
    key: &str,
    idempotency: Option<&str>,
    png: Vec<u8>,
) -> reqwest::Result<Response> {
    let part = reqwest::multipart::Part::bytes(png).file_name("photo.png");
    let mut req = client
        .post(format!("{base}/v3/ai-cut/initialize/"))
        .bearer_auth(key)
        .multipart(reqwest::multipart::Form::new().part("image", part));
    if let Some(k) = idempotency {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await
}

/// The session id of a successful initialize.
pub async fn session(client: &Client, base: &str, key: &str) -> String {
    let r = initialize(client, base, key, None).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    uid_of(r).await
}

pub async fn uid_of(r: Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["unique_filename"].as_str().unwrap().to_string()
}

pub fn seg_body(uid: &str, n: u64) -> Value {
    json!({"unique_filename": uid, "greenDots": [{"x": 80, "y": 60}], "redDots": [], "request_number": n})
}

pub async fn segment(
    client: &Client,
    base: &str,
    key: &str,
    uid: &str,
    n: u64,
) -> reqwest::Result<Response> {
    client
        .post(format!("{base}/v3/ai-cut/segment/"))
        .bearer_auth(key)
        .json(&seg_body(uid, n))
        .send()
        .await
}

/// Asserts a JSON error with the given status, returning its detail.
pub async fn expect_error(r: Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let v: Value = r.json().await.expect("errors are JSON");
    let detail = v["detail"].as_str().expect("a detail field").to_string();
    assert!(!detail.is_empty());
    detail
}
