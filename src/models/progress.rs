//! How far a download is: bytes done, the rate over the last few seconds, the time left,
//! and the words the command line and the editor show for them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::human_bytes;

/// How often progress is reported.
const REPORT_EVERY: Duration = Duration::from_millis(100);
/// The window the rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// How far a download is, reported a few times a second and once at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
    /// Bytes per second over the last few seconds.
    pub rate: f64,
    /// Time left at that rate.
    pub eta: Option<Duration>,
    /// Bytes kept from an earlier, interrupted download.
    pub resumed_from: u64,
}

impl Progress {
    /// The fraction done, 0 to 1, when the total is known.
    pub fn fraction(&self) -> Option<f32> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| (self.done as f64 / t as f64).clamp(0.0, 1.0) as f32)
    }

    /// "5.1 MB/s, 8 s left" (or only the rate while the time left is unknown).
    pub fn rate_and_eta(&self) -> String {
        let rate = format!("{}/s", human_bytes(self.rate as u64));
        match self.eta {
            Some(eta) => format!("{rate}, {} left", human_duration(eta)),
            None => rate,
        }
    }

    /// "12.3 MB of 40.7 MB (30 %), 5.1 MB/s, 8 s left".
    pub fn summary(&self) -> String {
        let amount = match (self.total, self.fraction()) {
            (Some(t), Some(f)) => format!(
                "{} of {} ({:.0} %)",
                human_bytes(self.done),
                human_bytes(t),
                f * 100.0
            ),
            _ => human_bytes(self.done),
        };
        format!("{amount}, {}", self.rate_and_eta())
    }
}

/// "8 s", "3 min 5 s", "1 h 2 min".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Bytes done over time: the rate over the last few seconds and the time left.
pub(super) struct Meter {
    pub resumed_from: u64,
    total: Option<u64>,
    samples: VecDeque<(Instant, u64)>,
    last_report: Option<Instant>,
    /// Bytes arrived since the last report.
    unreported: bool,
}

impl Meter {
    pub fn new(resumed_from: u64) -> Self {
        Meter {
            resumed_from,
            total: None,
            samples: VecDeque::new(),
            last_report: None,
            unreported: false,
        }
    }

    /// A new request starts at `done` bytes.
    pub fn begin(&mut self, done: u64, total: Option<u64>) {
        if done == 0 {
            self.resumed_from = 0;
        }
        self.total = total;
        self.samples.clear();
        self.samples.push_back((Instant::now(), done));
    }

    pub fn advance(&mut self, done: u64) {
        let now = Instant::now();
        self.samples.push_back((now, done));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    fn progress(&self) -> Progress {
        let done = self
            .samples
            .back()
            .map(|s| s.1)
            .unwrap_or(self.resumed_from);
        let rate = match (self.samples.front(), self.samples.back()) {
            (Some((t0, d0)), Some((t1, d1))) if *t1 > *t0 => {
                (d1 - d0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let eta = self
            .total
            .filter(|_| rate > 0.0)
            .map(|t| Duration::from_secs_f64(t.saturating_sub(done) as f64 / rate));
        Progress {
            done,
            total: self.total,
            rate,
            eta,
            resumed_from: self.resumed_from,
        }
    }

    /// Sends progress to `to` if enough time has passed (or `force`); otherwise leaves it
    /// for [`Self::due`].
    pub fn report(&mut self, to: &mut dyn FnMut(&Progress), force: bool) {
        let now = Instant::now();
        let due = self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY);
        if force || due {
            self.last_report = Some(now);
            self.unreported = false;
            to(&self.progress());
        } else {
            self.unreported = true;
        }
    }

    /// When progress held back by [`Self::report`] is due, so a transfer that stalls
    /// still shows what has arrived.
    pub fn due(&self) -> Option<Instant> {
        let last = self.last_report.filter(|_| self.unreported)?;
        Some(last + REPORT_EVERY)
    }
}
