//! Downloading one model file: streamed into `<file>.part`, resumed with an HTTP Range
//! request after an interruption, verified by SHA-256 over the whole file, and only then
//! renamed to its final name. The final name therefore only ever holds a verified file;
//! a wrong digest deletes the `.part`; a dropped connection or a cancel keeps it, so the
//! next fetch continues where this one stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::sync::watch;

use super::human_bytes;
use super::part::PartFile;
pub use super::part::hex;
use super::progress::Meter;
pub use super::progress::{Progress, human_duration};

/// What to download, where to, and what it must hash to.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub url: String,
    /// The final file; the download goes to [`part_path`] beside it first.
    pub dest: PathBuf,
    /// The SHA-256 the whole file must have.
    pub sha256: [u8; 32],
    /// The size the file must have, when known: a server offering another size is refused
    /// before anything is transferred.
    pub size: Option<u64>,
    /// How often a transfer that broke off after making progress is resumed in this call.
    pub retries: u32,
}

impl FetchRequest {
    pub fn new(url: impl Into<String>, dest: impl Into<PathBuf>, sha256: [u8; 32]) -> Self {
        FetchRequest {
            url: url.into(),
            dest: dest.into(),
            sha256,
            size: None,
            retries: 3,
        }
    }
}

/// Where the download of `dest` collects: `<dest>.part`, in the same folder so the final
/// rename is atomic.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Stops a download promptly, even one waiting on a silent server. Cheap to clone; the
/// editor keeps one per running download.
#[derive(Debug, Clone)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken(Arc::new(watch::channel(false).0))
    }
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`Self::cancel`] has been called.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Why a download did not install a file. Every message says what became of the bytes.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("'{0}' is not a valid http(s) URL")]
    BadUrl(String),
    #[error(
        "could not connect to {host} ({detail}). Check the network connection; nothing was installed"
    )]
    Connect { host: String, detail: String },
    #[error("{url} answered HTTP {status}; nothing was installed")]
    Http { url: String, status: u16 },
    #[error(
        "the connection to {host} broke off ({detail}); {kept} is kept in {part} and the next \
         download resumes there"
    )]
    Interrupted {
        host: String,
        detail: String,
        kept: String,
        part: PathBuf,
    },
    #[error(
        "the downloaded file's SHA-256 is {actual}, but {expected} was expected: it is damaged or \
         not the published file. It was deleted; nothing was installed"
    )]
    Digest { expected: String, actual: String },
    #[error(
        "the server offers {offered} bytes but the model has {expected}: not the published file; \
         nothing was installed"
    )]
    Size { offered: u64, expected: u64 },
    #[error("the download was cancelled; {kept} is kept and the next download resumes there")]
    Cancelled { kept: String },
    #[error("{0} is being downloaded by another aicut already")]
    Busy(PathBuf),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up HTTP: {0}")]
    Setup(String),
}

impl FetchError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, FetchError::Cancelled { .. })
    }
}

/// What a finished download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub bytes: u64,
    /// Bytes that came from an earlier, interrupted download.
    pub resumed_from: u64,
    /// Whether any request asked for a range (a resume).
    pub used_range: bool,
}

/// A pause before resuming a broken transfer, so a flapping link is not hammered.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// Downloads `req.url` to `req.dest`: resumes a `.part` left by an earlier try, verifies
/// the SHA-256, renames into place. `progress` is called a few times a second.
pub async fn fetch(
    req: &FetchRequest,
    cancel: &CancelToken,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Fetched, FetchError> {
    let url = reqwest::Url::parse(&req.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| FetchError::BadUrl(req.url.clone()))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = client()?;
    let part_path = part_path(&req.dest);
    if let Some(dir) = req.dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io_err("create the folder", dir))?;
    }
    let mut part = PartFile::open(&part_path).await?;
    let mut meter = Meter::new(part.len);
    let mut used_range = false;
    let mut retries_left = req.retries;
    loop {
        let mut http = Http {
            client: &client,
            url: url.clone(),
            req,
            cancel,
            used_range: &mut used_range,
        };
        let (progressed, detail) = match http.transfer(&mut part, &mut meter, progress).await {
            Ok(()) => break,
            Err(Step::Fatal(e)) => return Err(part.fail(e).await),
            Err(Step::Broke { progressed, detail }) => (progressed, detail),
        };
        meter.report(progress, true);
        if !progressed || retries_left == 0 {
            let kept = human_bytes(part.len);
            let e = FetchError::Interrupted {
                host,
                detail,
                kept,
                part: part_path,
            };
            return Err(part.fail(e).await);
        }
        retries_left -= 1;
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }
    meter.report(progress, true);
    let bytes = part.len;
    part.install(&req.sha256, &req.dest).await?;
    Ok(Fetched {
        path: req.dest.clone(),
        bytes,
        resumed_from: meter.resumed_from,
        used_range,
    })
}

/// The HTTP client for downloads: no overall time limit (files are gigabytes), but a
/// silent connection fails after a while instead of hanging.
fn client() -> Result<reqwest::Client, FetchError> {
    crate::engine::remote::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::limited(10))
        .user_agent(concat!("aicut/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Setup(e.to_string()))
}

pub(super) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io { what, path, source }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than
/// "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// How one HTTP request ended, short of success.
enum Step {
    /// The transfer broke off (connection dropped, server stalled); resumable.
    Broke { progressed: bool, detail: String },
    /// Not worth retrying.
    Fatal(FetchError),
}

impl From<FetchError> for Step {
    fn from(e: FetchError) -> Self {
        Step::Fatal(e)
    }
}

/// One download request's context.
struct Http<'a> {
    client: &'a reqwest::Client,
    url: reqwest::Url,
    req: &'a FetchRequest,
    cancel: &'a CancelToken,
    /// Set once a request asks for a range (a resume).
    used_range: &'a mut bool,
}

impl Http<'_> {
    /// One request: from where the `.part` ends to the end of the file.
    async fn transfer(
        &mut self,
        part: &mut PartFile,
        meter: &mut Meter,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<(), Step> {
        let response = self.send(part).await?;
        let total = accept_response(&response, self.req, part).await?;
        meter.begin(part.len, total);
        meter.report(progress, true);
        let start = part.len;
        let mut body = response.bytes_stream();
        loop {
            let due = meter.due();
            let chunk = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Step::Fatal(cancelled(part))),
                c = body.next() => c,
                _ = sleep_until(due), if due.is_some() => {
                    meter.report(progress, true);
                    continue;
                }
            };
            match chunk {
                Some(Ok(bytes)) => {
                    part.write(&bytes).await?;
                    meter.advance(part.len);
                    meter.report(progress, false);
                }
                Some(Err(e)) => {
                    return Err(Step::Broke {
                        progressed: part.len > start,
                        detail: root_cause(&e),
                    });
                }
                None => break,
            }
        }
        if total.is_some_and(|t| part.len < t) {
            return Err(Step::Broke {
                progressed: part.len > start,
                detail: "the server closed the connection early".into(),
            });
        }
        Ok(())
    }

    /// Sends the GET, with a Range header when the `.part` holds bytes already.
    async fn send(&mut self, part: &mut PartFile) -> Result<reqwest::Response, Step> {
        if self.req.size.is_some_and(|size| part.len > size) {
            part.truncate().await?;
        }
        let mut get = self.client.get(self.url.clone());
        if part.len > 0 {
            get = get.header(RANGE, format!("bytes={}-", part.len));
            *self.used_range = true;
        }
        let response = tokio::select! {
            _ = self.cancel.cancelled() => return Err(Step::Fatal(cancelled(part))),
            r = get.send() => r,
        };
        response.map_err(|e| {
            Step::Fatal(FetchError::Connect {
                host: self.url.host_str().unwrap_or_default().to_string(),
                detail: root_cause(&e),
            })
        })
    }
}

/// Checks the status and sizes of a response and lines the `.part` up with it; returns the
/// whole file's size when the server says it.
async fn accept_response(
    response: &reqwest::Response,
    req: &FetchRequest,
    part: &mut PartFile,
) -> Result<Option<u64>, Step> {
    let from = part.len;
    let total = match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((start, total)) if start == from => total,
                _ => {
                    // Not the range asked for: start again from the beginning.
                    part.truncate().await?;
                    return Err(Step::Broke {
                        progressed: true,
                        detail: "the server answered with another range".into(),
                    });
                }
            }
        }
        StatusCode::OK => {
            // The server ignores ranges (or there was nothing to resume): from zero.
            if from > 0 {
                part.truncate().await?;
            }
            response.content_length()
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            part.truncate().await?;
            return Err(Step::Broke {
                progressed: true,
                detail: "the server refused to resume; starting over".into(),
            });
        }
        status => {
            return Err(Step::Fatal(FetchError::Http {
                url: req.url.clone(),
                status: status.as_u16(),
            }));
        }
    };
    if let (Some(expected), Some(offered)) = (req.size, total)
        && expected != offered
    {
        return Err(Step::Fatal(FetchError::Size { offered, expected }));
    }
    Ok(total)
}

/// "bytes 100-199/1000" as (100, Some(1000)); "bytes 100-199/*" as (100, None).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

async fn sleep_until(t: Option<std::time::Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t.into()).await;
    }
}

fn cancelled(part: &PartFile) -> FetchError {
    FetchError::Cancelled {
        kept: human_bytes(part.len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_with_and_without_a_total() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-2/3"), None);
    }

    #[test]
    fn the_part_file_sits_beside_the_final_one() {
        assert_eq!(
            part_path(Path::new("/d/models/mobile_sam.pt")),
            Path::new("/d/models/mobile_sam.pt.part")
        );
    }

    #[tokio::test]
    async fn a_cancel_wakes_a_waiter_and_is_remembered() {
        let token = CancelToken::new();
        let waiter = token.clone();
        let task = tokio::spawn(async move { waiter.cancelled().await });
        assert!(!token.is_cancelled());
        token.cancel();
        task.await.unwrap();
        assert!(token.is_cancelled());
        token.cancelled().await;
    }
}
