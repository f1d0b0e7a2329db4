//! Holes found probing `aicut serve` from outside, each closed: other keys' sessions,
//! links built from the Host header, huge prompts and bodies, slow and idle clients,
//! connection floods, shutdown with requests in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aicut::engine::builtin;
use aicut::engine::store::StoreConfig;
use aicut::server::{self, Fault, Gate, KeyPolicy, ListenConfig, RunningServer, ServeConfig};
use reqwest::Client;
use serde_json::{Value, json};

use crate::common::{blob_scene, png_bytes};
use crate::wrapped::{Hooks, Wrapped};
use aicut::engine::{Engine, EngineError, SessionId};
use aicut::imageio::LoadedImage;

use crate::api::*;

async fn start(config: ServeConfig) -> RunningServer {
    aicut::engine::remote::install_crypto_provider();
    let engine = Arc::new(builtin::engine(StoreConfig::default()));
    server::spawn("127.0.0.1:0".parse().unwrap(), engine, config)
        .await
        .unwrap()
}

fn two_keys() -> ServeConfig {
    ServeConfig {
        keys: KeyPolicy::Keys(vec![KEY.into(), "other-key".into()]),
        ..Default::default()
    }
}

#[tokio::test]
async fn another_key_cannot_use_a_session() {
    let server = start(two_keys()).await;
    let client = Client::new();
    let uid = session(&client, &server.url(), KEY).await;
    let r = segment(&client, &server.url(), "other-key", &uid, 1).await;
    expect_error(r.unwrap(), 404).await;
    let r = segment(&client, &server.url(), KEY, &uid, 2).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the owner still can");
}

/// The `output_url` of one segment call sent with these extra headers.
async fn output_url_with(config: ServeConfig, headers: &[(&str, &str)]) -> (String, String) {
    let server = start(config).await;
    let client = Client::new();
    let uid = session(&client, &server.url(), KEY).await;
    let mut req = client
        .post(format!("{}/v3/ai-cut/segment/", server.url()))
        .bearer_auth(KEY)
        .json(&seg_body(&uid, 1));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let v: Value = req.send().await.unwrap().json().await.unwrap();
    (v["output_url"].as_str().unwrap().to_string(), server.url())
}

#[tokio::test]
async fn output_urls_never_come_from_the_host_header() {
    let evil = [
        ("Host", "evil.example"),
        ("X-Forwarded-Host", "evil.example"),
    ];
    let (url, base) = output_url_with(ServeConfig::default(), &evil).await;
    assert!(
        url.starts_with(&format!("{base}/v3/ai-cut/outputs/")),
        "{url}"
    );
    let public = ServeConfig {
        public_url: Some("https://cut.example.com/".into()),
        ..Default::default()
    };
    let (url, _) = output_url_with(public, &evil).await;
    assert!(
        url.starts_with("https://cut.example.com/v3/ai-cut/outputs/"),
        "{url}"
    );
    // Behind a proxy the operator trusts, its forwarded headers are used.
    let proxied = ServeConfig {
        trust_forwarded_headers: true,
        ..Default::default()
    };
    let forwarded = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "cut.example.org"),
    ];
    let (url, _) = output_url_with(proxied, &forwarded).await;
    assert!(
        url.starts_with("https://cut.example.org/v3/ai-cut/outputs/"),
        "{url}"
    );
}

#[tokio::test]
async fn too_many_dots_or_too_large_a_body_is_refused_as_json() {
    let server = start(ServeConfig::default()).await;
    let base = server.url();
    let client = Client::new();
    let uid = session(&client, &base, KEY).await;
    let dots: Vec<Value> = (0..1001).map(|i| json!({"x": i % 160, "y": 5})).collect();
    let body =
        json!({"unique_filename": uid, "greenDots": dots, "redDots": [], "request_number": 1});
    let post = |body: Vec<u8>| {
        client
            .post(format!("{base}/v3/ai-cut/segment/"))
            .bearer_auth(KEY)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let detail = expect_error(post(body.to_string().into_bytes()).await.unwrap(), 400).await;
    assert!(detail.contains("Too many dots"), "{detail}");
    let detail = expect_error(post(vec![b' '; 1 << 20]).await.unwrap(), 413).await;
    assert!(detail.contains("larger"), "{detail}");
    // An upload over its limit: 413 in the contract's words, not "Malformed upload".
    let small = start(ServeConfig {
        max_upload_bytes: 1000,
        ..Default::default()
    })
    .await;
    let r = initialize(&client, &small.url(), KEY, None).await.unwrap();
    let detail = expect_error(r, 413).await;
    assert!(!detail.contains("Malformed"), "{detail}");
}

fn quick_timeouts() -> ServeConfig {
    ServeConfig {
        body_timeout: Duration::from_millis(300),
        listen: ListenConfig {
            header_timeout: Duration::from_millis(300),
            max_connections_per_ip: 3,
            drain_deadline: Duration::from_millis(500),
        },
        ..Default::default()
    }
}

/// Reads until the server closes the connection (or 5 s pass); what it sent.
fn read_until_closed(s: &mut TcpStream) -> (bool, String) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (true, String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => return (false, String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_idle_connections_and_stalled_bodies_are_cut_off() {
    let server = start(quick_timeouts()).await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // Headers that never finish.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
        assert!(read_until_closed(&mut slow).0, "slow headers were not cut off");
        // A kept-alive connection left idle after a request.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (closed, answer) = read_until_closed(&mut idle);
        assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer}");
        // A body that stops half-way gets a JSON error, not a held connection.
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled
            .write_all(b"POST /v3/ai-cut/segment/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"uni")
            .unwrap();
        let (closed, answer) = read_until_closed(&mut stalled);
        assert!(closed, "a stalled body was not cut off");
        assert!(answer.contains("\"detail\""), "{answer}");
    })
    .await
    .unwrap();
}

/// Counts the sessions the engine is asked to prepare.
#[derive(Default)]
struct CountsPrepares(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl Hooks for CountsPrepares {
    async fn initialize(
        &self,
        inner: &Arc<dyn Engine>,
        image: Arc<LoadedImage>,
    ) -> Result<SessionId, EngineError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        inner.initialize(image).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_upload_of_the_same_file_is_not_prepared_again() {
    let engine = Wrapped::builtin(CountsPrepares::default());
    // Idempotency keys matter where sessions cost credits.
    let config = ServeConfig {
        credits: Some(5),
        ..two_keys()
    };
    let server = server::spawn("127.0.0.1:0".parse().unwrap(), engine.clone(), config)
        .await
        .unwrap();
    let (base, client) = (server.url(), client());
    let prepared = || engine.0.load(std::sync::atomic::Ordering::SeqCst);
    let first = initialize(&client, &base, KEY, Some("upload-1"))
        .await
        .unwrap();
    let id = uid_of(first).await;
    let retry = initialize(&client, &base, KEY, Some("upload-1"))
        .await
        .unwrap();
    assert_eq!(uid_of(retry).await, id);
    assert_eq!(
        prepared(),
        1,
        "the retry decoded and prepared the same file again"
    );
    // The same key with another file: that file is the session now (as before).
    let other = png_bytes(&blob_scene(120, 90).0);
    let changed = initialize_with(&client, &base, KEY, Some("upload-1"), other)
        .await
        .unwrap();
    assert_eq!(uid_of(changed).await, id);
    assert_eq!(prepared(), 2);
    let r = segment(&client, &base, KEY, &id, 1).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    let png = client
        .get(v["output_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let cut = image::load_from_memory(&png.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (cut.width(), cut.height()),
        (120, 90),
        "the new file is segmented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_under_the_body_timeout_is_cut_off_at_the_deadline() {
    let server = start(ServeConfig {
        body_deadline: Duration::from_secs(1),
        ..quick_timeouts()
    })
    .await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut reader = TcpStream::connect(addr).unwrap();
        reader
            .write_all(b"POST /v3/ai-cut/segment/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
            .unwrap();
        // One byte every 100 ms: never silent for the 300 ms body timeout, and 20 s for
        // the whole body, far past the 1 s deadline and the reader's 5 s patience.
        let mut writer = reader.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..200 {
                if writer.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (closed, answer) = read_until_closed(&mut reader);
        assert!(closed, "a trickled body was not cut off");
        assert!(answer.contains("\"detail\""), "{answer}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_hold_only_so_many_connections() {
    let config = ServeConfig {
        listen: ListenConfig {
            header_timeout: Duration::from_secs(30),
            max_connections_per_ip: 2,
            drain_deadline: Duration::from_millis(500),
        },
        ..Default::default()
    };
    let server = start(config).await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(addr).unwrap();
        let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let (closed, answer) = read_until_closed(&mut third);
        assert!(closed && answer.is_empty(), "{answer}");
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let mut again = TcpStream::connect(addr).unwrap();
        again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (_, answer) = read_until_closed(&mut again);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "a freed slot is usable: {answer}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_does_not_wait_for_half_sent_ones() {
    let gate = Gate::default();
    let held = gate.clone();
    let (reached, mut reached_rx) = tokio::sync::mpsc::unbounded_channel();
    let config = ServeConfig {
        faults: Some(Arc::new(move |ctx: &server::FaultContext| {
            let segment = ctx.route == server::Route::Segment;
            if segment {
                let _ = reached.send(());
            }
            segment.then(|| Fault::Hold(held.clone()))
        })),
        // Timeouts far beyond the drain deadline: only the deadline can end the half-sent
        // request, so a shutdown that waited for it would take a minute.
        body_timeout: Duration::from_secs(60),
        listen: ListenConfig {
            header_timeout: Duration::from_secs(60),
            ..quick_timeouts().listen
        },
        ..quick_timeouts()
    };
    let server = start(config).await;
    let base = server.url();
    let client = Client::new();
    let uid = session(&client, &base, KEY).await;
    let in_flight = tokio::spawn({
        let (client, base, uid) = (client.clone(), base.clone(), uid.clone());
        async move { segment(&client, &base, KEY, &uid, 1).await }
    });
    // A client that sends half a request and stops.
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(b"POST /v3/ai-cut/segment/ HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        .unwrap();
    reached_rx
        .recv()
        .await
        .expect("the call reached the server");
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    tokio::task::yield_now().await;
    gate.open();
    let r = in_flight
        .await
        .unwrap()
        .expect("the held call was answered");
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown ends by its deadline")
        .unwrap();
    let took = started.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?} for the half-sent request (drain deadline 0.5 s)"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let server = start(ServeConfig::default()).await;
    let base = server.url();
    let client = Client::new();
    let uid = session(&client, &base, KEY).await;
    segment(&client, &base, KEY, &uid, 1).await.unwrap();
    for path in ["/healthz", "/readyz"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "aicut_requests_total{route=\"initialize\",status=\"200\"} 1",
        "aicut_requests_total{route=\"segment\",status=\"200\"} 1",
        "aicut_request_seconds_count{route=\"segment\"} 1",
        "aicut_sessions 1",
        "aicut_session_cache_total{result=\"hit\"} 1",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
}

#[tokio::test]
async fn without_redis_balances_are_kept_in_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credits.json");
    let config = || ServeConfig {
        credits: Some(2),
        credits_file: Some(file.clone()),
        ..two_keys()
    };
    let client = Client::new();
    let first = start(config()).await;
    session(&client, &first.url(), KEY).await;
    first.shutdown().await;
    let second = start(config()).await;
    session(&client, &second.url(), KEY).await;
    expect_error(
        initialize(&client, &second.url(), KEY, None).await.unwrap(),
        402,
    )
    .await;
    // Another key's balance is its own.
    session(&client, &second.url(), "other-key").await;
}

#[tokio::test]
async fn a_retried_initialize_with_its_idempotency_key_is_charged_once() {
    let config = ServeConfig {
        credits: Some(1),
        ..two_keys()
    };
    let server = start(config).await;
    let (base, client) = (server.url(), client());
    let first = initialize(&client, &base, KEY, Some("upload-1"))
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let retry = initialize(&client, &base, KEY, Some("upload-1"))
        .await
        .unwrap();
    assert_eq!(retry.status().as_u16(), 200, "a retry is not charged");
    let (a, b) = (uid_of(first).await, uid_of(retry).await);
    assert_eq!(a, b, "and gets the same session, not a free extra one");
    let r = segment(&client, &base, KEY, &a, 1).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let other = initialize(&client, &base, KEY, Some("upload-2"))
        .await
        .unwrap();
    expect_error(other, 402).await;
    // Another key's idempotency keys are its own.
    let theirs = initialize(&client, &base, "other-key", Some("upload-1"))
        .await
        .unwrap();
    assert_ne!(uid_of(theirs).await, a);
}
