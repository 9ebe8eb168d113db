//! The tracing subscriber: the library's warnings always, its notes at `-v`, detail at `-vv`,
//! on stderr as `kimi-vault: warning: …` / `kimi-vault: …`, every line scrubbed of the secrets
//! this process holds. Only the kimi-vault crates are listened to (the HTTP stack's own
//! tracing could name headers).

use std::fmt::Write as _;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

struct Lines;

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut text = String::new();
        ctx.format_fields(Writer::new(&mut text), event)?;
        let prefix = match *event.metadata().level() {
            Level::ERROR => "kimi-vault: error: ",
            Level::WARN => "kimi-vault: warning: ",
            _ => "kimi-vault: ",
        };
        let mut line = String::with_capacity(prefix.len() + text.len() + 1);
        // Scrubbed of secrets, then escaped to one line: a log line may quote a server's answer, a path or
        // a request line (control, bidi and zero-width characters shown escaped).
        let scrubbed = kimi_vault::scrub(&text);
        let _ = write!(
            line,
            "{prefix}{}",
            kimi_vault::sanitize::for_terminal(&scrubbed)
        );
        writeln!(writer, "{line}")
    }
}

/// Installs the subscriber for `-v` count `verbose`.
pub(crate) fn init(verbose: u8) {
    let max = match verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        _ => Level::DEBUG,
    };
    let layer = tracing_subscriber::fmt::layer()
        .event_format(Lines)
        .with_writer(std::io::stderr)
        .with_filter(filter_fn(move |meta| {
            meta.target().starts_with("kimi_vault") && *meta.level() <= max
        }));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}
