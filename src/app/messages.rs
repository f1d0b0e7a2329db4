//! What the editor tells the user: short-lived toasts, and a banner for a lasting problem
//! with the engine that names the next step.

use std::time::{Duration, Instant};

/// How long a toast that is not an error stays.
const TOAST_TIME: Duration = Duration::from_secs(6);
/// Toasts on screen at once; the oldest goes first.
const MAX_TOASTS: usize = 5;

/// A non-modal message; errors stay until closed.
#[derive(Debug, Clone)]
pub struct Toast {
    pub text: String,
    pub error: bool,
    pub until: Option<Instant>,
}

/// A lasting problem with the engine, shown above the canvas with the next step.
#[derive(Debug, Clone)]
pub struct Banner {
    pub text: String,
    pub action: BannerAction,
}

impl Banner {
    /// A problem the settings can fix.
    pub fn settings(text: String) -> Self {
        Banner {
            text,
            action: BannerAction::Settings,
        }
    }
}

/// The button a banner offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BannerAction {
    None,
    Retry,
    NewSession,
    Settings,
}

impl BannerAction {
    /// The button's label, if the banner has a button besides "Dismiss".
    pub fn label(self) -> Option<&'static str> {
        match self {
            BannerAction::Retry => Some("Retry"),
            BannerAction::NewSession => Some("Start a new session (costs 1 credit)"),
            BannerAction::Settings => Some("Open Settings"),
            BannerAction::None => None,
        }
    }
}

/// The toasts and the banner on screen.
#[derive(Default)]
pub(crate) struct Messages {
    pub toasts: Vec<Toast>,
    pub banner: Option<Banner>,
}

impl Messages {
    pub fn toast(&mut self, text: impl Into<String>, error: bool, now: Instant) {
        self.toasts.push(Toast {
            text: text.into(),
            error,
            until: (!error).then(|| now + TOAST_TIME),
        });
        if self.toasts.len() > MAX_TOASTS {
            self.toasts.remove(0);
        }
    }

    /// Drops the toasts whose time is up; returns when the next one will be.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.toasts.retain(|t| t.until.is_none_or(|u| u > now));
        self.toasts.iter().filter_map(|t| t.until).min()
    }

    pub fn dismiss_banner_if(&mut self, cond: impl Fn(BannerAction) -> bool) {
        if self.banner.as_ref().is_some_and(|b| cond(b.action)) {
            self.banner = None;
        }
    }

    /// Every message's text (toasts, then the banner).
    pub fn texts(&self) -> Vec<String> {
        let toasts = self.toasts.iter().map(|t| t.text.clone());
        toasts
            .chain(self.banner.iter().map(|b| b.text.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_expire_errors_stay_and_only_the_newest_five_are_kept() {
        let t0 = Instant::now();
        let mut m = Messages::default();
        m.toast("saved", false, t0);
        m.toast("broken", true, t0);
        assert_eq!(m.expire(t0), Some(t0 + TOAST_TIME));
        assert_eq!(m.expire(t0 + TOAST_TIME), None);
        assert_eq!(m.texts(), ["broken"]);
        for i in 0..6 {
            m.toast(format!("n{i}"), true, t0);
        }
        assert_eq!(m.texts(), ["n1", "n2", "n3", "n4", "n5"]);
    }
}
