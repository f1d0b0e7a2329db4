//! Frame timing for measuring the editor's UI thread, off unless asked for.

use std::time::{Duration, Instant};

/// `AICUT_FRAME_STATS=1`: repaint continuously and print frame times to stderr every two
/// seconds (for measuring; off by default).
pub(crate) struct FrameStats {
    last: Instant,
    window_start: Instant,
    frames: u32,
    sum: Duration,
    max: Duration,
    /// Time spent in `App::ui` itself (our UI-thread work, without rendering).
    ui_sum: Duration,
    ui_max: Duration,
}

impl FrameStats {
    pub fn from_env() -> Option<Self> {
        std::env::var_os("AICUT_FRAME_STATS").map(|_| FrameStats {
            last: Instant::now(),
            window_start: Instant::now(),
            frames: 0,
            sum: Duration::ZERO,
            max: Duration::ZERO,
            ui_sum: Duration::ZERO,
            ui_max: Duration::ZERO,
        })
    }

    pub fn frame(&mut self, busy: bool, ui_time: Duration) {
        let now = Instant::now();
        let dt = now - self.last;
        self.last = now;
        self.frames += 1;
        self.sum += dt;
        self.max = self.max.max(dt);
        self.ui_sum += ui_time;
        self.ui_max = self.ui_max.max(ui_time);
        if now - self.window_start >= Duration::from_secs(2) {
            eprintln!(
                "aicut frame stats: {} frames, frame mean {:.1} ms, max {:.1} ms; \
                 ui() mean {:.2} ms, max {:.2} ms; engine busy: {busy}",
                self.frames,
                self.sum.as_secs_f64() * 1000.0 / self.frames as f64,
                self.max.as_secs_f64() * 1000.0,
                self.ui_sum.as_secs_f64() * 1000.0 / self.frames as f64,
                self.ui_max.as_secs_f64() * 1000.0,
            );
            self.window_start = now;
            self.frames = 0;
            self.sum = Duration::ZERO;
            self.max = Duration::ZERO;
            self.ui_sum = Duration::ZERO;
            self.ui_max = Duration::ZERO;
        }
    }
}
