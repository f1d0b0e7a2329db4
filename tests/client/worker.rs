//! The worker over the AI Cut client, against a server that misbehaves on purpose. The
//! test's clock is paused: the worker's waits pass in no time, and calls are held at the
//! server by gates the test opens, not by delays.

use std::time::Duration;

use aicut::engine::{Dot, EngineError, Prompt};
use aicut::server::{Fault, Gate, KeyPolicy, Route, ServeConfig};
use aicut::worker::{Command, Event, WorkerPolicy};

use crate::common::ManualClock;
use crate::harness::*;

const KEY: &str = "secret-key-123";
const TIMEOUT: Duration = Duration::from_secs(10);

fn status(status: u16, detail: &str) -> Option<Fault> {
    Some(Fault::Status {
        status,
        detail: detail.into(),
        retry_after_s: None,
    })
}

/// Starts the server and a worker over the client, opens the scene and clicks its middle.
async fn start_and_click(config: ServeConfig) -> (Backend, TestWorker, (f64, f64)) {
    let backend = Backend::start(config).await;
    let w = backend.worker(backend.remote(KEY, TIMEOUT), policy());
    let click = w.open_and_click();
    (backend, w, click)
}

/// A config whose segment calls (those `which` picks by request_number) wait at the gate.
fn holding_segments(seen: &Seen, which: fn(Option<u64>) -> bool) -> (Gate, ServeConfig) {
    let gate = Gate::default();
    let held = gate.clone();
    let config = ServeConfig {
        faults: Some(hook(seen, move |route, n, _| {
            (route == Route::Segment && which(n)).then(|| Fault::Hold(held.clone()))
        })),
        ..Default::default()
    };
    (gate, config)
}

#[tokio::test(start_paused = true)]
async fn a_wrong_key_is_401_and_never_appears_in_messages() {
    let seen = Seen::default();
    let config = ServeConfig {
        keys: KeyPolicy::Keys(vec!["the-real-key".into()]),
        faults: recorder(&seen),
        ..Default::default()
    };
    let (_backend, w, _) = start_and_click(config).await;
    let events = w.until(is_failed).await;
    let err = failed(&events).unwrap();
    assert!(matches!(err, EngineError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("key"), "{err}");
    for e in &events {
        assert!(!format!("{e:?}").contains(KEY), "the key leaked into {e:?}");
    }
    assert_eq!(seen.count(Route::Initialize), 1, "401 is not retried");
}

#[tokio::test(start_paused = true)]
async fn spent_credits_are_402_and_never_retried() {
    let seen = Seen::default();
    let config = ServeConfig {
        credits: Some(0),
        faults: recorder(&seen),
        ..Default::default()
    };
    let (_backend, w, _) = start_and_click(config).await;
    let events = w.until(is_failed).await;
    assert!(matches!(
        failed(&events).unwrap(),
        EngineError::InsufficientCredits(_)
    ));
    // An hour on the paused clock: any retry the worker had planned would have started.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let later = w.delivered();
    let retried = |e: &Event| matches!(e, Event::Initializing { .. } | Event::Retrying { .. });
    assert!(!later.iter().any(retried), "{later:?}");
    assert_eq!(seen.count(Route::Initialize), 1, "402 is not retried");
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_reinitializes_with_consent_and_numbers_keep_increasing() {
    let seen = Seen::default();
    let clock = ManualClock::default();
    let config = ServeConfig {
        faults: recorder(&seen),
        session_ttl: Duration::from_secs(60),
        clock: clock.clock(),
        ..Default::default()
    };
    let (_backend, w, (x, y)) = start_and_click(config).await;
    w.until(is_mask).await;
    clock.advance(Duration::from_secs(61)); // the session expires on the server
    let newest = Prompt {
        green: vec![Dot::new(x, y)],
        red: vec![Dot::new(3.0, 3.0)],
    };
    w.send(Command::Prompt(newest.clone()));
    w.until(|e| matches!(e, Event::SessionExpired { .. })).await;
    let initializes = seen.count(Route::Initialize);
    assert_eq!(initializes, 1, "no new credit spent without consent");
    w.send(Command::Reinitialize);
    let events = w.until(is_mask).await;
    let Some(Event::Mask {
        request_number,
        prompt: shown,
        ..
    }) = events.last()
    else {
        unreachable!()
    };
    assert_eq!(*shown, newest, "all dots are replayed");
    assert_eq!(*request_number, 3);
    assert_eq!(seen.count(Route::Initialize), 2);
    let numbers = seen.numbers();
    assert_eq!(
        numbers,
        [1, 2, 3],
        "numbers increase across re-initialization"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_for_retry_after_then_sends_only_the_newest_prompt() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, nth| {
            (route == Route::Segment && nth == 1).then(|| Fault::Status {
                status: 429,
                detail: "Rate limit exceeded".into(),
                retry_after_s: Some(1),
            })
        })),
        ..Default::default()
    };
    let (_backend, w, (x, y)) = start_and_click(config).await;
    let events = w.until(|e| matches!(e, Event::Retrying { .. })).await;
    let paused_at = tokio::time::Instant::now();
    let Some(Event::Retrying { after, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*after, Duration::from_secs(1), "Retry-After is honoured");
    // The user keeps clicking during the pause: only the newest prompt goes out after it.
    let newest = prompt(x + 4.0, y);
    w.send(Command::Prompt(prompt(x + 2.0, y)));
    w.send(Command::Prompt(newest.clone()));
    let events = w.until(is_mask).await;
    assert!(
        paused_at.elapsed() >= Duration::from_secs(1),
        "sent before Retry-After"
    );
    let Some(Event::Mask { prompt: shown, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*shown, newest);
    let calls = seen.count(Route::Segment);
    assert_eq!(calls, 2, "one rejected call, then one with the newest dots");
}

#[tokio::test(start_paused = true)]
async fn server_errors_timeouts_and_dropped_connections_are_retried() {
    let seen = Seen::default();
    let never = Gate::default(); // held past the client's timeout
    let config = ServeConfig {
        faults: Some(hook(&seen, move |route, _, nth| match (route, nth) {
            (Route::Initialize, 1) => status(503, "busy"),
            (Route::Segment, 1) => Some(Fault::Hold(never.clone())),
            (Route::Segment, 2) => Some(Fault::DropConnection),
            (Route::Output, 1) => status(502, "bad gateway"),
            _ => None,
        })),
        ..Default::default()
    };
    let backend = Backend::start(config).await;
    // Room for a slow machine's extra timeouts beyond the four faults.
    let policy = WorkerPolicy {
        max_retries: 8,
        ..policy()
    };
    // A real timeout: the client's HTTP runs on the backend's real clock.
    let w = backend.worker(backend.remote(KEY, Duration::from_secs(2)), policy);
    w.open_and_click();
    let events = w.until(is_mask).await;
    assert!(failed(&events).is_none());
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { error, .. } => Some(error.to_string()),
            _ => None,
        })
        .collect();
    let retried = |needle: &str| reasons.iter().filter(|r| r.contains(needle)).count();
    assert_eq!(retried("HTTP 503"), 1, "503 on initialize: {reasons:?}");
    assert_eq!(retried("HTTP 502"), 1, "502 on the download: {reasons:?}");
    assert_eq!(
        retried("request failed"),
        1,
        "a dropped connection: {reasons:?}"
    );
    // The held call times out; a loaded machine may add timeouts, nothing else.
    let timeouts = retried("did not answer in time");
    assert!(timeouts >= 1, "the held call times out: {reasons:?}");
    assert_eq!(reasons.len(), 3 + timeouts, "{reasons:?}");
    let numbers = seen.numbers();
    assert!(numbers.windows(2).all(|p| p[0] < p[1]), "{numbers:?}");
}

#[tokio::test(start_paused = true)]
async fn server_failures_are_retried_a_bounded_number_of_times() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, _| {
            (route == Route::Segment)
                .then(|| status(500, "down"))
                .flatten()
        })),
        ..Default::default()
    };
    let (_backend, w, _) = start_and_click(config).await;
    let events = w.until(is_failed).await;
    let err = failed(&events).unwrap();
    assert!(matches!(err, EngineError::Transport(_)), "{err:?}");
    let calls = seen.count(Route::Segment);
    assert_eq!(calls, 1 + WorkerPolicy::default().max_retries as usize);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_answer_is_a_clear_error_and_not_retried() {
    let seen = Seen::default();
    let config = ServeConfig {
        faults: Some(hook(&seen, |route, _, _| {
            (route == Route::Segment).then_some(Fault::Malformed)
        })),
        ..Default::default()
    };
    let (_backend, w, _) = start_and_click(config).await;
    let events = w.until(is_failed).await;
    let err = failed(&events).unwrap();
    assert!(matches!(err, EngineError::Protocol(_)), "{err:?}");
    assert!(err.to_string().contains("unexpected response"), "{err}");
    let calls = seen.count(Route::Segment);
    assert_eq!(calls, 1, "a malformed answer is not retried");
}

#[tokio::test(start_paused = true)]
async fn an_older_response_arriving_late_never_replaces_a_newer_one() {
    let seen = Seen::default();
    let (first, config) = holding_segments(&seen, |n| n == Some(1));
    let backend = Backend::start(config).await;
    let w = backend.worker(backend.remote(KEY, TIMEOUT), policy());
    let (img, (x, y)) = scene();
    w.send(Command::Open(img));
    w.until(|e| matches!(e, Event::Ready { .. })).await;
    w.send(Command::Prompt(prompt(x, y)));
    w.send(Command::Prompt(prompt(x + 3.0, y)));
    let events = w.until(is_mask).await;
    let Some(Event::Mask { request_number, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*request_number, 2);
    // Request 1 is answered now; the worker is idle once it has it.
    first.open();
    let events = w
        .until(|e| matches!(e, Event::Busy { busy: false, .. }))
        .await;
    for e in events {
        if let Event::Mask { request_number, .. } = e {
            panic!("a stale result (request {request_number}) was delivered after request 2");
        }
    }
    assert_eq!(seen.numbers().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn closing_the_image_cancels_its_calls_in_flight() {
    let (gate, config) = holding_segments(&Seen::default(), |_| true);
    let backend = Backend::start(config).await;
    let calls = Calls::new(backend.remote(KEY, TIMEOUT));
    let w = backend.worker(calls.clone(), policy());
    w.open_and_click();
    backend.wait_for_calls(&calls, |s| s.in_flight == 1).await;
    w.send(Command::Close);
    w.until(|e| matches!(e, Event::Busy { busy: false, .. }))
        .await;
    backend.wait_for_calls(&calls, |s| s.cancelled == 1).await;
    gate.open();
    let masks = w.delivered().into_iter().filter(is_mask).count();
    assert_eq!(masks, 0, "the cancelled call delivered a mask");
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_clicks_coalesces_into_the_calls_in_flight_plus_one_with_the_newest() {
    let seen = Seen::default();
    let (gate, config) = holding_segments(&seen, |_| true);
    let backend = Backend::start(config).await;
    let calls = Calls::new(backend.remote(KEY, TIMEOUT));
    let w = backend.worker(calls.clone(), policy());
    let (img, (x, y)) = scene();
    w.send(Command::Open(img));
    w.until(|e| matches!(e, Event::Ready { .. })).await;
    let clicks: Vec<Prompt> = (0..10).map(|i| prompt(x + i as f64, y)).collect();
    for p in &clicks {
        w.send(Command::Prompt(p.clone()));
    }
    let in_flight = WorkerPolicy::default().max_in_flight;
    backend
        .wait_for_calls(&calls, |s| s.started == in_flight)
        .await;
    gate.open();
    let newest = clicks.last();
    w.until(|e| matches!(e, Event::Mask { prompt, .. } if Some(prompt) == newest))
        .await;
    assert_eq!(calls.stats().peak, in_flight, "never more calls in flight");
    let sent = seen.count(Route::Segment);
    assert_eq!(sent, in_flight + 1, "10 clicks became {sent} calls");
}

#[tokio::test(start_paused = true)]
async fn previews_wait_for_real_prompts_go_one_at_a_time_newest_first_and_are_never_results() {
    let seen = Seen::default();
    let (gate, config) = holding_segments(&seen, |n| n == Some(1));
    let backend = Backend::start(config).await;
    let calls = Calls::new(backend.remote(KEY, TIMEOUT));
    let w = backend.worker(calls.clone(), policy());
    let (img, (x, y)) = scene();
    w.send(Command::Open(img));
    w.until(|e| matches!(e, Event::Ready { .. })).await;
    w.send(Command::Prompt(prompt(x, y)));
    backend.wait_for_calls(&calls, |s| s.in_flight == 1).await;
    // The pointer sweeps while the click's call runs: five looks asked for.
    let looks: Vec<Prompt> = (1..=5)
        .map(|i| {
            let mut p = prompt(x, y);
            p.green.push(Dot::new(x + 10.0 * i as f64, y));
            p
        })
        .collect();
    for p in &looks {
        w.send(Command::Preview(Some(p.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.stats().started, 1, "no look while a real prompt runs");
    gate.open();
    let events = w.until(|e| matches!(e, Event::Preview { .. })).await;
    let Some(Event::Preview { prompt: shown, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(Some(shown), looks.last(), "only the newest look is sent");
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, Event::Mask { prompt, .. } if looks.contains(prompt))),
        "a look never arrives as a result"
    );
    assert_eq!(seen.count(Route::Segment), 2, "the click and one look");
    assert_eq!(calls.stats().peak, 1, "one call at a time");
    // A look withdrawn before it is sent is never sent; the next click goes as usual,
    // numbered after the look (the hosted API wants increasing numbers).
    w.send(Command::Preview(None));
    w.send(Command::Prompt(looks[0].clone()));
    let events = w.until(is_mask).await;
    let Some(Event::Mask { request_number, .. }) = events.last() else {
        unreachable!()
    };
    assert_eq!(*request_number, 3);
}
