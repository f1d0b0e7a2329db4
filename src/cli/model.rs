//! `aicut model list` and `aicut model fetch NAME [--url URL]`: the known models and a
//! verified download with a progress bar (plain lines where stderr is not a terminal).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::runtime;
use crate::models::{
    CancelToken, FetchError, InstallState, ModelStore, Progress, fetch as download, human_bytes,
};

/// What `aicut model` does.
#[derive(clap::Subcommand, Debug)]
pub enum ModelCommand {
    /// List the known models: size, licence, whether installed, and where.
    List,
    /// Download a model from its official location, verify its SHA-256 and install it.
    ///
    /// Names: mobile-sam (40.7 MB), sam-vit-b (375 MB), sam-vit-l (1.2 GB), sam-vit-h
    /// (2.6 GB). An interrupted download resumes where it stopped; Ctrl-C keeps what has
    /// arrived for the next try. Use it with --engine sam --model NAME.
    Fetch(FetchArgs),
}

/// The arguments of `aicut model fetch`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The model's name (see `aicut model list`).
    name: String,
    /// Download from this URL instead (a mirror); the pinned SHA-256 is still checked.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

/// Runs `aicut model ...`.
pub fn run(command: ModelCommand) -> Result<(), String> {
    let store = ModelStore::user()?;
    match command {
        ModelCommand::List => {
            print!("{}", list_table(&store));
            Ok(())
        }
        ModelCommand::Fetch(args) => fetch(&store, &args),
    }
}

/// The table `aicut model list` prints.
pub fn list_table(store: &ModelStore) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "SIZE".into(),
        "LICENCE".into(),
        "STATE".into(),
        "FILE".into(),
    ]];
    for m in &store.models {
        let state = match store.state(m) {
            InstallState::Installed => "installed".to_string(),
            InstallState::Missing => "not installed".into(),
            InstallState::Partial(n) => format!("partly ({}), fetch resumes", human_bytes(n)),
        };
        rows.push([
            m.name.to_string(),
            m.size.map(human_bytes).unwrap_or_else(|| "?".into()),
            m.licence.into(),
            state,
            store.path(m).display().to_string(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "\nModels folder: {}\nFetch one with: aicut model fetch NAME\n",
        store.dir.display()
    ));
    out
}

/// Downloads one model, showing progress on stderr; Ctrl-C stops it and keeps the bytes.
fn fetch(store: &ModelStore, args: &FetchArgs) -> Result<(), String> {
    let model = store.get(args.name.trim())?;
    let path = store.path(model);
    if store.state(model) == InstallState::Installed {
        println!("{} is already installed: {}", model.name, path.display());
        return Ok(());
    }
    let req = store.request(model, args.url.as_deref())?;
    eprintln!(
        "aicut model: fetching {} ({}) from {}",
        model.name,
        model
            .size
            .map(human_bytes)
            .unwrap_or_else(|| "size unknown".into()),
        req.url
    );
    let mut reporter = Reporter::new(model.size);
    let cancel = CancelToken::new();
    let result = runtime()?.block_on(async {
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        download(&req, &cancel, &mut |p| reporter.update(p)).await
    });
    reporter.finish();
    match result {
        Ok(done) => {
            println!(
                "installed {} ({}, SHA-256 verified) at {}",
                model.name,
                human_bytes(done.bytes),
                done.path.display()
            );
            Ok(())
        }
        Err(e @ FetchError::Connect { .. }) if args.url.is_none() => Err(format!(
            "{}: {e}. (--url URL fetches from a mirror.)",
            model.name
        )),
        Err(e) => Err(format!("{}: {e}", model.name)),
    }
}

/// Progress on stderr: a bar on a terminal; a line every few seconds otherwise (logs, CI).
enum Reporter {
    Bar(ProgressBar),
    Lines {
        last: Option<Instant>,
        resumed_told: bool,
        finished_told: bool,
    },
}

/// How often plain progress lines are written.
const LINE_EVERY: Duration = Duration::from_secs(2);

impl Reporter {
    fn new(total: Option<u64>) -> Self {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        if ci || !std::io::stderr().is_terminal() {
            return Reporter::Lines {
                last: None,
                resumed_told: false,
                finished_told: false,
            };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:30.cyan/blue} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Reporter::Bar(bar)
    }

    fn update(&mut self, p: &Progress) {
        match self {
            Reporter::Bar(bar) => {
                if let Some(total) = p.total {
                    bar.set_length(total);
                }
                bar.set_position(p.done);
                bar.set_message(p.summary());
            }
            Reporter::Lines {
                last,
                resumed_told,
                finished_told,
            } => {
                if p.resumed_from > 0 && !*resumed_told {
                    *resumed_told = true;
                    eprintln!(
                        "  resuming after {} already downloaded",
                        human_bytes(p.resumed_from)
                    );
                }
                let finished = p.total == Some(p.done);
                let due = last.is_none_or(|t| t.elapsed() >= LINE_EVERY);
                if (due || finished) && !*finished_told {
                    *last = Some(Instant::now());
                    *finished_told = finished;
                    eprintln!("  {}", p.summary());
                }
            }
        }
    }

    fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::CATALOG;

    #[test]
    fn the_list_names_size_licence_state_and_file_of_every_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path(), CATALOG.to_vec());
        std::fs::write(dir.path().join("mobile_sam.pt"), b"x").unwrap();
        std::fs::write(dir.path().join("sam_vit_h_4b8939.pth.part"), [0u8; 2000]).unwrap();
        let table = list_table(&store);
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_string()
        };
        let mobile = line("mobile-sam");
        assert!(mobile.contains("40.7 MB") && mobile.contains("Apache-2.0"));
        assert!(mobile.contains(" installed "), "{mobile}");
        assert!(mobile.ends_with(&dir.path().join("mobile_sam.pt").display().to_string()));
        assert!(line("sam-vit-b").contains("not installed"));
        assert!(line("sam-vit-h").contains("partly (2 kB), fetch resumes"));
        assert!(table.contains(&format!("Models folder: {}", dir.path().display())));
    }
}
