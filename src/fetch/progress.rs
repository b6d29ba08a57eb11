//! Download progress: a bar with bytes, rate and ETA when stderr is a terminal, and one
//! line at the start and one at the end otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    bytes: u64,
}

impl Progress {
    pub fn start(label: &str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| terminal_bar(label, total));
        if bar.is_none() {
            eprintln!("Downloading {label}");
        }
        Progress {
            label: label.to_string(),
            bar,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// The transfer restarts or resumes at `at` bytes.
    pub fn set_position(&mut self, at: u64) {
        self.bytes = at;
        if let Some(b) = &self.bar {
            b.set_position(at);
        }
    }

    pub fn add(&mut self, n: u64) {
        self.bytes += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => {
                let secs = self.started.elapsed().as_secs_f64();
                eprintln!(
                    "Downloaded {}: {} bytes in {secs:.1}s",
                    self.label, self.bytes
                );
            }
        }
    }
}

fn terminal_bar(label: &str, total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(t) => (
            ProgressBar::new(t),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg} {spinner} {bytes} {binary_bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("Downloading {label}"));
    bar
}
