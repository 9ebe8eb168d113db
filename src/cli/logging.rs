//! The tracing subscriber: the library's warnings always, its notes at `-v`, detail at `-vv`,
//! on stderr as `kimi-vault: warning: …` / `kimi-vault: …`, every line scrubbed of the secrets
//! this process holds. Only the kimi-vault crates are listened to (the HTTP stack's own
//! tracing could name headers).

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber, span};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

/// The subscriber: a filter and a line format, nothing else. The library opens no spans, so
/// none are kept. It is not tracing-subscriber's `Registry` + `fmt` layer: creating a
/// `Registry` allocates and fills a table for 4,096 threads, 33 k instructions and a handful of
/// page faults on every run, a sixth of a warm `token`. The fields are still formatted by
/// tracing-subscriber's `DefaultFields`, exactly as its `fmt` layer does.
struct Lines {
    max: Level,
}

impl Lines {
    fn line(&self, event: &Event<'_>) -> Option<String> {
        let mut text = String::new();
        DefaultFields::new()
            .format_fields(Writer::new(&mut text), event)
            .ok()?;
        let colour = crate::cli::output::stderr_colour();
        let prefix = match *event.metadata().level() {
            Level::ERROR => crate::cli::output::error_prefix(),
            Level::WARN => format!(
                "kimi-vault: {} ",
                crate::cli::output::paint("warning:", crate::cli::output::WARNING_STYLE, colour)
            ),
            _ => "kimi-vault: ".to_owned(),
        };
        let mut line = String::with_capacity(prefix.len() + text.len() + 1);
        // Scrubbed of secrets, then escaped to one line: a log line may quote a server's answer, a path or
        // a request line (control, bidi and zero-width characters shown escaped).
        let scrubbed = kimi_vault::scrub(&text);
        let _ = writeln!(
            line,
            "{prefix}{}",
            kimi_vault::sanitize::for_terminal(&scrubbed)
        );
        Some(line)
    }
}

impl Subscriber for Lines {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target().starts_with("kimi_vault") && *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        if let Some(line) = self.line(event) {
            // One write of the whole line (stderr is unbuffered).
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Installs the subscriber for `-v` count `verbose`.
pub(crate) fn init(verbose: u8) {
    let max = match verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        _ => Level::DEBUG,
    };
    let _ = tracing::subscriber::set_global_default(Lines { max });
}
