//! `aicut serve` as a process: balances kept across a restart, SIGTERM drains.

use std::time::Duration;

use crate::api::*;
use crate::procs::Replica;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_restarted_server_keeps_its_credit_balance() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["--api-key", KEY, "--credits", "2", "--data-dir", data];
    let client = client();
    let mut first = Replica::start(&args);
    session(&client, &first.url, KEY).await;
    assert!(first.terminate().success());
    let second = Replica::start(&args);
    session(&client, &second.url, KEY).await;
    let r = initialize(&client, &second.url, KEY, None).await.unwrap();
    expect_error(r, 402).await;
    assert!(dir.path().join("credits.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_a_request_in_flight_then_exits() {
    let mut server = Replica::start(&["--api-key", KEY]);
    let url = format!("{}/v3/ai-cut/initialize/", server.url);
    // An upload sent slowly: it is in flight when the signal comes.
    let png = scene_png();
    let boundary = "aicutboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let request = client()
        .post(url)
        .bearer_auth(KEY)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Content-Length", body.len())
        .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
        .send();
    let call = tokio::spawn(request);
    let half = body.len() / 2;
    tx.send(Ok(body[..half].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Ok(body[half..].to_vec())).await.unwrap();
    drop(tx);
    let r = call
        .await
        .unwrap()
        .expect("the request in flight got its answer");
    assert_eq!(r.status().as_u16(), 200);
    assert!(server.terminate().success(), "a clean exit after draining");
}

/// A stream over a channel's receiver.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
