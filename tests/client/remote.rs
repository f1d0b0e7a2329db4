//! The AI Cut client alone against `aicut serve`: where the key goes, what is uploaded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicut::engine::EngineError;
use aicut::engine::builtin;
use aicut::engine::store::StoreConfig;
use aicut::imageio::LoadedImage;
use aicut::server::{self, Fault, KeyPolicy, Route, RunningServer, ServeConfig};
use image::DynamicImage;

use crate::common::exif_with_orientation;
use crate::harness::*;

const KEY: &str = "secret-key-123";
const TIMEOUT: Duration = Duration::from_secs(10);

async fn serve(bind: SocketAddr, config: ServeConfig) -> RunningServer {
    aicut::engine::remote::install_crypto_provider();
    let engine = Arc::new(builtin::engine(StoreConfig::default()));
    server::spawn(bind, engine, config).await.unwrap()
}

/// A second listener, standing in for a CDN: records the headers it gets, then relays the
/// PNG from `api`. Returns its URL.
async fn recording_relay(api: SocketAddr, recorded: Arc<Mutex<Vec<http::HeaderMap>>>) -> String {
    let cdn = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", cdn.local_addr().unwrap());
    let relay = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(req.headers().clone());
            let url = format!("http://{api}{}", req.uri().path());
            let bytes = reqwest::get(url).await.unwrap().bytes().await.unwrap();
            ([(http::header::CONTENT_TYPE, "image/png")], bytes)
        }
    });
    tokio::spawn(async move { axum::serve(cdn, relay).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_reaches_an_output_url_on_another_host() {
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api_listener.local_addr().unwrap();
    drop(api_listener);
    let recorded: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let cdn_url = recording_relay(api_addr, recorded.clone()).await;
    let seen = Seen::default();
    let config = ServeConfig {
        public_url: Some(cdn_url),
        keys: KeyPolicy::Keys(vec![KEY.into()]),
        faults: recorder(&seen),
        ..Default::default()
    };
    let server = serve(api_addr, config).await;
    let client = remote(&server.url(), KEY, TIMEOUT);
    let (img, (x, y)) = scene();
    let session = client.initialize(img).await.unwrap();
    let mask = client.segment(&session, &prompt(x, y), 1).await.unwrap();
    assert_eq!(mask.dimensions(), (160, 120));
    assert_eq!(mask.get_pixel(x as u32, y as u32).0[0], 255);

    let recorded = recorded.lock().unwrap();
    assert_eq!(
        recorded.len(),
        1,
        "the output was fetched from the other host"
    );
    for headers in recorded.iter() {
        assert!(
            headers.get(http::header::AUTHORIZATION).is_none(),
            "the key reached the CDN"
        );
        assert!(!format!("{headers:?}").contains(KEY));
    }
    let api_saw_key = seen
        .all()
        .iter()
        .all(|c| c.route == Route::Output || c.headers.get(http::header::AUTHORIZATION).is_some());
    assert!(api_saw_key, "the API itself did receive the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reoriented_images_are_uploaded_as_the_pixels_the_user_sees() {
    let server = serve("127.0.0.1:0".parse().unwrap(), ServeConfig::default()).await;
    // A JPEG whose EXIF says "rotate 90": the service must see the turned 120x160 grid.
    let (img, _, _) = crate::common::blob_scene(160, 120);
    let stored = image::imageops::rotate270(&img);
    let mut bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    use image::ImageEncoder;
    enc.set_exif_metadata(exif_with_orientation(6)).unwrap();
    enc.write_image(
        stored.as_raw(),
        stored.width(),
        stored.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let loaded = aicut::imageio::decode_bytes(bytes, "turned.jpg", &Default::default()).unwrap();
    assert!(loaded.reoriented);
    assert_eq!((loaded.width(), loaded.height()), (160, 120));
    let (upload, name, mime) = loaded.upload_bytes().unwrap();
    assert_eq!(
        (name.as_str(), mime),
        ("turned.png", "image/png"),
        "lossless PNG of the oriented pixels"
    );
    let sent = image::load_from_memory(&upload).unwrap();
    assert_eq!((sent.width(), sent.height()), (160, 120));

    let client = remote(&server.url(), KEY, TIMEOUT);
    let session = client.initialize(Arc::new(loaded)).await.unwrap();
    // A dot valid only in the oriented grid (x >= 120) is accepted by the server.
    let mask = client
        .segment(&session, &prompt(150.0, 10.0), 1)
        .await
        .unwrap();
    assert_eq!(mask.dimensions(), (160, 120));
}

/// An initialize whose answer is lost on the way back is retried with the same
/// `Idempotency-Key`, so the service charges it once; the next image is a new upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_upload_after_a_lost_answer_is_charged_once() {
    let seen = Seen::default();
    let config = ServeConfig {
        credits: Some(1),
        faults: Some(hook(&seen, |route, _, nth| {
            (route == Route::Initialize && nth == 1).then_some(Fault::LoseAnswer)
        })),
        ..Default::default()
    };
    let server = serve("127.0.0.1:0".parse().unwrap(), config).await;
    let client = remote(&server.url(), KEY, TIMEOUT);
    let scene = || {
        let (img, _, _) = crate::common::blob_scene(160, 120);
        Arc::new(LoadedImage::from_pixels(
            "s.png",
            DynamicImage::ImageRgb8(img).to_rgba8(),
        ))
    };
    let photo = scene();
    let lost = client.initialize(photo.clone()).await.unwrap_err();
    assert!(matches!(lost, EngineError::Transport(_)), "{lost:?}");
    // The only credit was spent on the lost call: a second charge would be 402.
    let session = client.initialize(photo.clone()).await.unwrap();
    client
        .segment(&session, &prompt(80.0, 60.0), 1)
        .await
        .unwrap();
    let other = client.initialize(scene()).await.unwrap_err();
    assert!(
        matches!(other, EngineError::InsufficientCredits(_)),
        "{other:?}"
    );

    let keys: Vec<String> = (seen.all().iter())
        .filter(|c| c.route == Route::Initialize)
        .map(|c| c.headers["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1], "the retry sends the same key");
    assert_ne!(keys[1], keys[2], "another image gets its own key");
}
