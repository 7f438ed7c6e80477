//! Text from outside (a payload, a topic) made safe to print: whatever reaches the receiver's
//! log, its report or an error message goes through [`escape`], so a plate, an inventory or
//! a fault message cannot move the terminal's cursor, colour it (ANSI escapes), forge a log
//! line (a newline) or reverse the text around it (bidirectional overrides).

use std::borrow::Cow;
use std::fmt;

/// `s` with every control character (newlines, tabs and ESC included), every character Rust
/// does not print as itself (format characters such as U+202E, unassigned code points) and
/// the backslash written as Rust escapes (`\n`, `\u{1b}`, `\\`); other text, letters of any
/// script included, is left as it is. Borrowed when nothing needed escaping.
#[must_use]
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays a string escaped ([`escape`]), for `format!` and tracing fields (`%Escaped(s)`).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

fn needs_escape(c: char) -> bool {
    // `escape_debug` leaves printable characters as they are and writes everything else as
    // `\u{…}` or a short escape; it escapes quotes too, which are left as they are here.
    c == '\\' || c.is_control() || (c.escape_debug().next() == Some('\\') && c != '"' && c != '\'')
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_ansi_escapes_and_newlines_are_written_as_escapes() {
        assert_eq!(escape("777KZA02"), "777KZA02");
        assert!(matches!(
            escape("KZ-ICD-0001"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escape("A\x1b[31mRED\x1b[0m\nFAKE LINE"),
            "A\\u{1b}[31mRED\\u{1b}[0m\\nFAKE LINE"
        );
        assert_eq!(escape("tab\there\r"), "tab\\there\\r");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(escape("\0"), "\\0");
        // Letters of other scripts and quotes are left as they are.
        assert_eq!(escape("Алматы \"ok\" 'é'"), "Алматы \"ok\" 'é'");
    }
}
