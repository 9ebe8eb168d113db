//! Output helpers: JSON lines on stdout, durations for people.

// Environment reads belong to the edge, and this is the edge: NO_COLOR and TERM: the terminal's own variables.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// True when colour may be written to a stream that `is_terminal`: not with `NO_COLOR` set
/// (to anything but the empty string, <https://no-color.org>), nor with `TERM=dumb`.
fn colour_allowed(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// True when stderr takes colour.
pub(crate) fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    colour_allowed(std::io::stderr().is_terminal())
}

/// True when stdout takes colour.
pub(crate) fn stdout_colour() -> bool {
    use std::io::IsTerminal;
    colour_allowed(std::io::stdout().is_terminal())
}

/// `text` in `style` when `colour`, else as it is.
pub(crate) fn paint(text: &str, style: anstyle::Style, colour: bool) -> String {
    if colour {
        format!("{style}{text}{style:#}")
    } else {
        text.to_owned()
    }
}

/// Bold red, for errors.
pub(crate) const ERROR_STYLE: anstyle::Style = anstyle::Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Red)));
/// Bold yellow, for warnings.
pub(crate) const WARNING_STYLE: anstyle::Style = anstyle::Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Yellow)));
/// Green, for a good state.
pub(crate) const GOOD_STYLE: anstyle::Style =
    anstyle::Style::new().fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Green)));

/// `kimi-vault: error: `, in colour on a terminal.
pub(crate) fn error_prefix() -> String {
    format!(
        "kimi-vault: {} ",
        paint("error:", ERROR_STYLE, stderr_colour())
    )
}

/// Set when writing to stdout failed (a closed pipe, as in `kimi-vault doctor | head`).
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// `println!` that never panics: a failed write (a closed pipe) is remembered, and the command
/// then exits 1 instead of printing a panic.
macro_rules! outln {
    () => {
        $crate::cli::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// A line of a command's result for people (SPEC §3 streams: results on stdout, progress and
/// diagnostics on stderr): on stdout, or on stderr with `--json`, whose stdout holds only JSON.
macro_rules! resln {
    ($json:expr, $($arg:tt)*) => {
        if $json {
            eprintln!($($arg)*)
        } else {
            $crate::cli::output::write_line(format_args!($($arg)*))
        }
    };
}
pub(crate) use resln;

/// Writes one line on stdout; remembers a failure. Human output often quotes outside text (a
/// server's field, another tool's file name, a path): whatever a command put in the line,
/// control, bidi and zero-width characters reach the terminal escaped (newlines and tabs pass;
/// a line that needs no escaping costs one scan).
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    let text = match args.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(args.to_string()),
    };
    write_styled_line(&kimi_vault::sanitize::for_terminal_multiline(&text));
}

/// Writes one line that carries this program's own colour ([`paint`]) on stdout, unescaped; the
/// caller has escaped every piece of outside text in it (`sanitize::for_terminal`). Remembers a
/// failure.
pub(crate) fn write_styled_line(shown: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{shown}").is_err() {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
    }
}

/// True when a write to stdout failed.
pub(crate) fn stdout_failed() -> bool {
    STDOUT_FAILED.load(Ordering::Relaxed)
}

/// serde_json's compact output, except that the characters a terminal must never get raw
/// (DEL, C1 controls such as the one-character CSI U+009B, bidi and zero-width characters;
/// serde_json escapes only C0) are written as `\uXXXX` escapes: the value stays exact, and a
/// `--json` read on a terminal cannot drive it.
struct TerminalSafe;

impl serde_json::ser::Formatter for TerminalSafe {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if kimi_vault::sanitize::is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                // Every such character is in the Basic Multilingual Plane: one escape.
                write!(writer, "\\u{:04x}", c as u32)?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serializes `value` as one line of JSON into `out`, terminal-safe ([`TerminalSafe`]). The
/// output types of the commands are plain data: serializing them cannot fail (an error is a
/// bug, and a panic names it).
pub(crate) fn json_to_writer<T: serde::Serialize + ?Sized, W: std::io::Write>(
    out: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, TerminalSafe);
    value.serialize(&mut ser)
}

/// `value` as one line of JSON, terminal-safe ([`TerminalSafe`]).
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    json_to_writer(&mut out, value).expect("a command's output serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Prints one JSON value (a command's output type) and a newline on stdout, flushed.
pub(crate) fn json_line<T: serde::Serialize + ?Sized>(value: &T) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", json_text(value))
        .and_then(|()| out.flush())
        .is_err()
    {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
    }
}

/// `value`, which holds a secret, as one line of JSON and a newline, in a buffer wiped on drop.
/// `room`: at least the line's length, reserved up front so that the buffer never grows (a
/// grown `Vec` leaves its old allocation unwiped). Written to stdout at once by the caller.
pub(crate) fn wiped_json_line<T: serde::Serialize + ?Sized>(
    value: &T,
    room: usize,
) -> serde_json::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(room.saturating_add(1)));
    json_to_writer(NoGrow(&mut line), value)?;
    line.push(b'\n');
    Ok(line)
}

/// A writer into a `Vec` that fails rather than grow it (growing would leave an unwiped copy
/// of what was written so far in the freed block).
struct NoGrow<'a>(&'a mut Vec<u8>);

impl std::io::Write for NoGrow<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One byte stays free for the newline.
        if self.0.len() + buf.len() >= self.0.capacity() {
            return Err(std::io::Error::other(
                "the room reserved for a secret line was too small",
            ));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a whole line (a [`wiped_json_line`]) to stdout in one write, flushed.
pub(crate) fn write_stdout(line: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(line).and_then(|()| out.flush())
}

/// [`write_stdout`], a failure remembered ([`stdout_failed`]) instead of returned.
pub(crate) fn write_stdout_or_remember(line: &[u8]) {
    if write_stdout(line).is_err() {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
    }
}

/// A quantity for `--json` ([`json_number`]), as a field of an output type.
pub(crate) fn number<S: serde::Serializer>(n: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&json_number(*n), s)
}

/// "14m 3s", "2h 5m", "3d 4h": the one format of a duration for people, everywhere (expiry,
/// uptime, the usage windows' reset, the clock's drift).
pub(crate) fn span(secs: u64) -> String {
    let s = secs;
    if s >= 86_400 {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// "in 14m 3s" or "3m 0s ago".
pub(crate) fn relative(secs: i64) -> String {
    let text = span(secs.unsigned_abs());
    if secs < 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// A bar of `width` cells, filled to `fraction` (0 to 1).
pub(crate) fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

/// A quantity for people: whole numbers without decimals, others with at most two.
pub(crate) fn quantity(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        let s = format!("{n:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A quantity for `--json`: an integer when whole, else a float.
pub(crate) fn json_number(n: Option<f64>) -> serde_json::Value {
    match n {
        Some(n) if n.fract() == 0.0 && n.abs() < 9e15 => serde_json::Value::from(n as i64),
        Some(n) => serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into),
        None => serde_json::Value::Null,
    }
}

/// The local time zone's offset now (UTC when it cannot be told). Call before any thread is
/// started: the `time` crate refuses to read the zone in a multi-threaded process.
pub(crate) fn local_offset() -> time::UtcOffset {
    time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC)
}

/// "Wed 11 Feb 17:32" in the given offset.
pub(crate) fn local_time(unix: i64, offset: time::UtcOffset) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix) else {
        return unix.to_string();
    };
    let t = t.to_offset(offset);
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short] [day padding:none] [month repr:short] [hour]:[minute]",
    )
    .expect("a valid format description");
    t.format(&format).unwrap_or_else(|_| unix.to_string())
}

/// Pads `text` to `width` characters (not bytes).
pub(crate) fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n >= width {
        text.to_owned()
    } else {
        format!("{text}{}", " ".repeat(width - n))
    }
}

/// Prints a table: a header row and the rows, each column padded to its widest cell plus two
/// spaces, the last column unpadded; trailing spaces trimmed.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let line = |cells: [&str; N]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&pad(c, widths[i]));
            }
        }
        outln!("{}", s.trim_end());
    };
    line(header);
    for r in rows {
        line(std::array::from_fn(|i| r[i].as_str()));
    }
}

/// `{"error":{"code","message"}}`: what every command but `login` prints with `--json` when
/// it fails (the exit code and the message of stderr).
#[derive(serde::Serialize)]
pub(crate) struct ErrorJson<'a> {
    error: ErrorBody<'a>,
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: u8,
    message: &'a str,
}

impl<'a> ErrorJson<'a> {
    pub(crate) fn new(code: u8, message: &'a str) -> Self {
        ErrorJson {
            error: ErrorBody { code, message },
        }
    }
}

/// `{"id","name","level"}` of a stored account (`user_id`, `nickname`, `user_level_name`), null
/// when it is not known (SPEC §3): exact values, as `--json` carries them. People get
/// [`account_words`] of the same account.
#[derive(serde::Serialize)]
pub(crate) struct AccountJson<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) level: Option<&'a str>,
}

impl<'a> AccountJson<'a> {
    /// The account's JSON, `None` (null) when it is not known.
    pub(crate) fn of(account: Option<&'a kimi_vault::store::Account>) -> Option<Self> {
        account.map(|a| AccountJson {
            id: &a.user_id,
            name: a.nickname.as_deref(),
            level: a.level_name.as_deref(),
        })
    }
}

impl AccountJson<'_> {
    /// "moonwalker (id u_123, Vivace)" for people; every part from Kimi made safe for a
    /// terminal.
    pub(crate) fn words(&self) -> String {
        let safe = |s: &str| kimi_vault::sanitize::for_terminal(s).into_owned();
        let id = format!("id {}", safe(self.id));
        let details = match self.level {
            Some(level) => format!("{id}, {}", safe(level)),
            None => id,
        };
        match self.name {
            Some(name) => format!("{} ({details})", safe(name)),
            None => details,
        }
    }
}

/// [`AccountJson::words`] of a stored account.
pub(crate) fn account_words(a: &kimi_vault::store::Account) -> String {
    AccountJson::of(Some(a))
        .map(|j| j.words())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_text_escapes_what_a_terminal_must_not_get_raw_and_keeps_the_value() {
        let value = serde_json::json!({"a": "x\u{9b}31m\u{7f}\u{202e}\u{200b}\u{1b}é✓"});
        let text = super::json_text(&value);
        assert_eq!(text, r#"{"a":"x\u009b31m\u007f\u202e\u200b\u001bé✓"}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn a_wiped_json_line_never_grows_its_buffer() {
        // The worst case of an escaped secret: every character a \uXXXX escape.
        #[derive(serde::Serialize)]
        struct Secret<'a> {
            access_token: &'a str,
        }
        let token = "\u{1}".repeat(100);
        let room = token.len() * 6 + 64;
        let line = super::wiped_json_line(
            &Secret {
                access_token: &token,
            },
            room,
        )
        .unwrap();
        assert_eq!(line.capacity(), room + 1, "the buffer was not reallocated");
        assert!(line.ends_with(b"}\n"));
        let back: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(back["access_token"], token.as_str());
        // Too little room is an error, in release builds too, never a grown (copied) buffer.
        assert!(
            super::wiped_json_line(
                &Secret {
                    access_token: &token
                },
                token.len()
            )
            .is_err()
        );
    }
}
