//! `aicut serve --redis`: replicas that share one real `redis-server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;

use crate::api::*;
use crate::procs::{RedisServer, Replica, redis_available};

/// Two replicas over one Redis, with `KEY` and `extra` flags.
fn replicas(redis: &RedisServer, extra: &[&str]) -> (Replica, Replica) {
    let url = redis.url();
    let mut args = vec!["--redis", &url, "--api-key", KEY];
    args.extend_from_slice(extra);
    (Replica::start(&args), Replica::start(&args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_made_on_one_replica_is_segmented_and_fetched_on_another() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), false);
    let (a, b) = replicas(&redis, &[]);
    let client = client();
    let uid = session(&client, &a.url, KEY).await;
    // Four calls at once on B, which has not seen the session: one rebuild serves all.
    let calls = (1..=4).map(|n| segment(&client, &b.url, KEY, &uid, n));
    let answers = futures_util::future::join_all(calls).await;
    let mut answers = answers.into_iter().map(Result::unwrap);
    let r = answers.next().unwrap();
    assert!(answers.all(|r| r.status().is_success()));
    let v: serde_json::Value = r.json().await.unwrap();
    let url = v["output_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&b.url), "{url}");
    // The cut-out is in Redis: A serves B's link too.
    let via_a = url.replace(&b.url, &a.url);
    for link in [url, via_a] {
        let png = reqwest::get(&link).await.unwrap();
        assert_eq!(png.status().as_u16(), 200, "{link}");
        let img = image::load_from_memory(&png.bytes().await.unwrap()).unwrap();
        let rgba = img.to_rgba8();
        assert_eq!((rgba.width(), rgba.height()), (160, 120));
        assert_eq!(rgba.get_pixel(80, 60).0[3], 255);
        assert_eq!(rgba.get_pixel(0, 0).0[3], 0);
    }
    // Another key does not see the session on either replica.
    let other = Replica::start(&["--redis", &redis.url(), "--api-key", "other"]);
    let r = segment(&client, &other.url, "other", &uid, 2)
        .await
        .unwrap();
    expect_error(r, 404).await;
    let metrics = client
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("aicut_session_cache_total{result=\"rebuilt\"} 1"),
        "{text}"
    );
}

/// Calls answered so far by all clients, and calls that had to go to the other replica.
#[derive(Default)]
struct Progress {
    done: AtomicUsize,
    failovers: AtomicUsize,
    dead: AtomicBool,
}

/// One client: a session, then `calls` segment calls alternating between the replicas,
/// each retried on the other replica when one does not answer. Returns the latencies.
async fn client_run(
    urls: [String; 2],
    id: usize,
    calls: u64,
    progress: Arc<Progress>,
) -> Result<Vec<Duration>, String> {
    aicut::engine::remote::install_crypto_provider();
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let idem = format!("client-{id}");
    let mut uid = None;
    for base in [&urls[id % 2], &urls[(id + 1) % 2]] {
        // A retry of the same initialize (same Idempotency-Key) is never charged twice.
        match initialize(&client, base, KEY, Some(&idem)).await {
            Ok(r) if r.status().is_success() => {
                let got = uid_of(r).await;
                if uid.as_ref().is_some_and(|u| *u != got) {
                    return Err("a retried initialize got another session".into());
                }
                uid = Some(got);
            }
            Ok(r) => return Err(format!("initialize: {}", r.status())),
            Err(_) => continue,
        }
    }
    let uid = uid.ok_or("no replica answered initialize")?;
    let mut latencies = Vec::new();
    for n in 1..=calls {
        let first = (id + n as usize) % 2;
        let started = Instant::now();
        let mut answered = false;
        for base in [&urls[first], &urls[1 - first]] {
            match segment(&client, base, KEY, &uid, n).await {
                Ok(r) if r.status().is_success() => {
                    answered = true;
                    break;
                }
                Ok(r) => return Err(format!("segment {n}: {}", r.status())),
                // The killed replica: retry on the other.
                Err(_) if progress.dead.load(Ordering::SeqCst) => {
                    progress.failovers.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => return Err(format!("segment {n}: {e}")),
            }
        }
        if !answered {
            return Err(format!("segment {n}: no replica answered"));
        }
        latencies.push(started.elapsed());
        progress.done.fetch_add(1, Ordering::SeqCst);
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What a load run leaves: every latency, the failovers, and what still runs (Redis is
/// stopped before its folder is removed: fields drop in order).
struct Load {
    latencies: Vec<Duration>,
    failovers: usize,
    b: Replica,
    _redis: RedisServer,
    _dir: tempfile::TempDir,
}

/// 8 clients × 50 segment calls over both replicas; `kill_after`: kill -9 replica 0 once
/// that many calls have been answered.
async fn load(kill_after: Option<usize>) -> Load {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), false);
    let (mut a, b) = replicas(&redis, &["--credits", "8"]);
    let urls = [a.url.clone(), b.url.clone()];
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..8)
        .map(|id| tokio::spawn(client_run(urls.clone(), id, 50, progress.clone())))
        .collect();
    if let Some(after) = kill_after {
        while progress.done.load(Ordering::SeqCst) < after {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        progress.dead.store(true, Ordering::SeqCst);
        a.kill();
    }
    let mut all = Vec::new();
    for c in clients {
        all.extend(
            c.await
                .unwrap()
                .unwrap_or_else(|e| panic!("a client failed: {e}")),
        );
    }
    Load {
        latencies: all,
        failovers: progress.failovers.load(Ordering::SeqCst),
        b,
        _redis: redis,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_serve_8_clients_of_50_calls_without_an_error() {
    if !redis_available() {
        return;
    }
    let run = load(None).await;
    let (mut latencies, b) = (run.latencies.clone(), &run.b);
    assert_eq!(latencies.len(), 8 * 50);
    latencies.sort();
    eprintln!(
        "2 replicas x 8 clients x 50 segment calls: p50 {:.1} ms, p95 {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3
    );
    // 8 credits, each client's initialize sent twice (A then B): exactly 8 were charged.
    let r = initialize(&client(), &b.url, KEY, Some("a-ninth")).await;
    expect_error(r.unwrap(), 402).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_no_call_and_no_credit() {
    if !redis_available() {
        return;
    }
    let run = load(Some(100)).await;
    let (latencies, failovers, b) = (&run.latencies, run.failovers, &run.b);
    assert_eq!(
        latencies.len(),
        8 * 50,
        "every call answered, by one replica or the other"
    );
    assert!(
        failovers > 0,
        "replica A was killed while calls were going to it"
    );
    eprintln!("kill -9 after 100 of 400 calls: {failovers} calls retried on replica B");
    let client = client();
    // Retried initializes were charged once: all 8 credits went to the 8 clients.
    let r = initialize(&client, &b.url, KEY, Some("a-ninth")).await;
    expect_error(r.unwrap(), 402).await;
    // And a client's retry with its own key still gets its session back, free.
    let r = initialize(&client, &b.url, KEY, Some("client-3"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn balances_survive_a_redis_restart_and_a_stopped_redis_gives_503_then_recovers() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path(), true);
    let (a, b) = replicas(&redis, &["--credits", "3"]);
    let client = client();
    let uid = session(&client, &a.url, KEY).await;
    redis.stop();
    for base in [&a.url, &b.url] {
        let r = segment(&client, base, KEY, &uid, 1).await.unwrap();
        let detail = expect_error(r, 503).await;
        assert!(detail.contains("unavailable"), "{detail}");
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        let alive = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(alive.status().as_u16(), 200, "alive, just not ready");
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    for base in [&a.url, &b.url] {
        loop {
            let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
            if ready.status().is_success() {
                break;
            }
            assert!(Instant::now() < deadline, "{base} did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The session and one spent credit came back from the append-only file.
    let r = segment(&client, &b.url, KEY, &uid, 2).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for _ in 0..2 {
        session(&client, &b.url, KEY).await;
    }
    expect_error(initialize(&client, &a.url, KEY, None).await.unwrap(), 402).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_rate_limit_holds_across_replicas() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), false);
    // One request every 20 s per key: the second, on the other replica, waits.
    let (a, b) = replicas(&redis, &["--rate-limit", "0.05"]);
    let client = client();
    let r = segment(&client, &a.url, KEY, "no-such-session", 1)
        .await
        .unwrap();
    expect_error(r, 404).await;
    let r = segment(&client, &b.url, KEY, "no-such-session", 2)
        .await
        .unwrap();
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    expect_error(r, 429).await;
}
