//! Text that came from outside (server answers, other tools' files, paths, request lines), made
//! safe for a terminal or a log line: control characters (C0, DEL, C1), bidi controls and
//! zero-width or invisible separators are shown escaped (`\x1b`, `\u{202e}`), never raw, so a
//! hostile server cannot write to the clipboard (OSC 52), move the cursor, or make a name read
//! differently from what it is. Everything else passes unchanged.
//!
//! `--json` output does not go through here: JSON carries exact values, escaped by the serializer.
//! This is display, not secrecy: secrets are kept out by `redact`, before or after this step.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must never reach a terminal raw (`--json` output escapes it as `\uXXXX`).
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'        // C0 controls (ESC, BEL, CR, backspace, newline, tab ...)
        | '\u{7f}'..='\u{9f}'     // DEL and the C1 controls (U+009B is a one-character CSI)
        | '\u{ad}'                // soft hyphen: invisible
        | '\u{61c}'               // Arabic letter mark (bidi)
        | '\u{180e}'              // Mongolian vowel separator (zero-width)
        | '\u{200b}'..='\u{200f}' // zero-width space/non-joiner/joiner, LRM, RLM
        | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
        | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
        | '\u{feff}'              // zero-width no-break space (BOM)
        | '\u{fff9}'..='\u{fffb}' // interlinear annotation controls
    )
}

fn escape_into(out: &mut String, c: char) {
    let _ = if (c as u32) < 0x80 {
        write!(out, "\\x{:02x}", c as u32)
    } else {
        write!(out, "\\u{{{:x}}}", c as u32)
    };
}

/// `text` with every unsafe character escaped; one line (newlines and tabs escaped too).
/// Borrows when nothing needs escaping (the common case costs one scan).
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// As [`for_terminal`], but newlines and tabs pass: for multi-line text such as an error body.
/// Carriage returns are still escaped (they can overwrite what was printed before them).
pub fn for_terminal_multiline(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let keep = |c: char| keep_lines && (c == '\n' || c == '\t');
    let first = text.char_indices().find(|&(_, c)| is_unsafe(c) && !keep(c));
    let Some((at, _)) = first else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..at]);
    for c in text[at..].chars() {
        if is_unsafe(c) && !keep(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            for_terminal("kimi-for-coding 262144"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            for_terminal("Überraschung ✓ 模型"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn controls_bidi_and_zero_width_are_escaped() {
        assert_eq!(
            for_terminal("a\u{1b}]52;c;aGk=\u{7}b"),
            "a\\x1b]52;c;aGk=\\x07b"
        );
        assert_eq!(for_terminal("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(for_terminal("x\u{7f}"), "x\\x7f");
        assert_eq!(for_terminal("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(for_terminal("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(for_terminal("l1\nl2\r"), "l1\\x0al2\\x0d");
        assert_eq!(for_terminal_multiline("l1\n\tl2\r"), "l1\n\tl2\\x0d");
    }

    #[test]
    fn output_never_holds_an_unsafe_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!for_terminal(&all).chars().any(is_unsafe));
        assert!(
            !for_terminal_multiline(&all)
                .chars()
                .any(|c| is_unsafe(c) && c != '\n' && c != '\t')
        );
    }
}
