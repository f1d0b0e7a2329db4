//! A small mailbox for the tools' background work (preview and outline pictures,
//! candidate thumbnails, batch listing and sidecars): a job runs on its own short-lived
//! thread, sends its result here and wakes the UI, which takes results each frame.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

pub(crate) struct Inbox<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl<T: Send + 'static> Inbox<T> {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = channel();
        Inbox { tx, rx, wake }
    }

    /// Runs `job` on a thread named `aicut-<name>`; returns whether the thread started.
    pub fn spawn(&self, name: &str, job: impl FnOnce() -> T + Send + 'static) -> bool {
        let (tx, wake) = (self.tx.clone(), self.wake.clone());
        let started = std::thread::Builder::new()
            .name(format!("aicut-{name}"))
            .spawn(move || {
                let _ = tx.send(job());
                wake();
            });
        if let Err(e) = &started {
            tracing::error!(error = %e, "could not start a background thread");
        }
        started.is_ok()
    }

    /// A sender for results that come from elsewhere (the clipboard's own thread).
    pub fn sender(&self) -> Sender<T> {
        self.tx.clone()
    }

    /// The next finished result, if any; never blocks.
    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}
