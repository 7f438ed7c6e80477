//! Camera URIs: which schemes the device opens, and how a URI is shown without its password.
//!
//! Contract: [`redact_uri`] and [`redact_text`] are total (any input, never a panic) and never
//! return the password of a URI they were given. The password is taken generously: everything
//! from the first `:` after `scheme://` up to the last `@` of the URI is replaced by `***`, so
//! the user name stays (a technician sees which account a camera uses) and a password that
//! holds a raw `@`, `/` or `?` is still hidden whole. A URI without `@` after `scheme://` is
//! shown as it is. This is hand-parsed rather than left to the `url` crate: `url` parses
//! `rtsp://` well, but redaction must also cover the strings it refuses (a mistyped URI is
//! exactly the one that ends up in an error), and it would bring its IDNA tables into this
//! dependency-free crate.

use std::ops::Range;

/// The URI schemes a camera may use; anything else is refused when the configuration is loaded
/// and when a source is opened. A plain file path (no `://`) is allowed too.
///
/// `rtspt` is RTSP with its media interleaved on the TCP connection (what GStreamer's
/// `rtspsrc` does for that scheme), for cameras behind links that drop UDP.
pub const CAMERA_SCHEMES: &[&str] = &["file", "rtsp", "rtsps", "rtspt", "v4l2"];

/// What stands in for a password.
pub const MASK: &str = "***";

/// The scheme of a URI (the text before `://`, lower-cased); `None` for a plain path.
#[must_use]
pub fn uri_scheme(uri: &str) -> Option<String> {
    uri.find("://").map(|i| uri[..i].to_ascii_lowercase())
}

/// Whether a camera URI may be opened: a plain file path, or a URI of one of
/// [`CAMERA_SCHEMES`] without the characters no URI holds raw (blanks, control characters,
/// double quotes, angle brackets, backticks, backslashes). The error says why and how to fix
/// it, and shows the URI with its password masked.
pub fn check_camera_uri(uri: &str) -> Result<(), String> {
    let Some(scheme) = uri_scheme(uri) else {
        return Ok(());
    };
    if !CAMERA_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!(
            "`{}`: the scheme `{scheme}://` is not one the device opens; use a file path, \
             file://, rtsp://, rtsps://, rtspt:// (RTSP over TCP) or v4l2:///dev/videoN",
            redact_uri(uri)
        ));
    }
    if uri.chars().any(ends_uri) {
        return Err(format!(
            "`{}` holds a blank, a control character or one of \" < > ` \\, which a URI cannot \
             hold as they are; percent-encode them (a space is %20, also inside a user name or \
             password)",
            redact_uri(uri)
        ));
    }
    Ok(())
}

/// Byte range of what [`redact_uri`] masks: from after the first `:` that follows `://` to
/// the last `@`; `None` when the URI carries no password.
fn password_span(uri: &str) -> Option<Range<usize>> {
    let start = uri.find("://")? + 3;
    let rest = &uri[start..];
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(start + colon + 1..start + at)
}

/// The password of a URI as [`redact_uri`] takes it (see the module doc); `None` when there
/// is none. Raw: a percent-encoded password is returned encoded.
#[must_use]
pub fn uri_password(uri: &str) -> Option<&str> {
    password_span(uri).map(|r| &uri[r])
}

/// The URI with its password replaced by `***`: `rtsp://admin:secret@10.0.0.5/stream` is
/// shown as `rtsp://admin:***@10.0.0.5/stream`. Anything else is returned as it is.
#[must_use]
pub fn redact_uri(uri: &str) -> String {
    match password_span(uri) {
        Some(r) => format!("{}{MASK}{}", &uri[..r.start], &uri[r.end..]),
        None => uri.to_string(),
    }
}

/// Whether `c` may stand in a URI scheme (RFC 3986: letters, digits, `+`, `-`, `.`).
fn scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// Whether `c` ends a URI written in running text: a character no URI holds raw (RFC 3986),
/// which [`check_camera_uri`] refuses in a camera URI.
fn ends_uri(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '`' | '\\')
}

/// `text` with every URI in it (`scheme://` up to the first character no URI holds raw)
/// shown as [`redact_uri`] shows it: for messages that come from elsewhere (GStreamer) and may quote a
/// URI.
#[must_use]
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let sep = from + found;
        let start = text[..sep]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| scheme_char(c))
            .last()
            .map_or(sep, |(i, _)| i)
            .max(done);
        let end = text[sep..].find(ends_uri).map_or(text.len(), |i| sep + i);
        out.push_str(&text[done..start]);
        out.push_str(&redact_uri(&text[start..end]));
        done = end;
        from = end.max(sep + 3);
        if from >= text.len() {
            break;
        }
    }
    out.push_str(&text[done..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_password_is_masked_and_the_rest_kept() {
        assert_eq!(
            redact_uri("rtsp://admin:secret@10.0.0.5/stream"),
            "rtsp://admin:***@10.0.0.5/stream"
        );
        assert_eq!(
            redact_uri("rtsp://:secret@10.0.0.5:554/s"),
            "rtsp://:***@10.0.0.5:554/s"
        );
        assert_eq!(
            redact_uri("rtsp://admin:p@ss/w?rd@cam/x"),
            "rtsp://admin:***@cam/x"
        );
        for same in [
            "rtsp://10.0.0.5:554/stream",
            "rtsp://admin@10.0.0.5/stream",
            "/var/clips/a:b@c.mp4",
            "file:///tmp/a%20b.mp4",
            "",
        ] {
            assert_eq!(redact_uri(same), same);
        }
        assert_eq!(
            uri_password("rtsps://u:p%40ss@h/x"),
            Some("p%40ss"),
            "the raw, encoded form"
        );
    }

    #[test]
    fn uris_in_running_text_are_masked() {
        assert_eq!(
            redact_text(
                "No URI handler for \"rtsp://a:b1@h/x\"; tried rtsp://c:d2@h2 and file:///x."
            ),
            "No URI handler for \"rtsp://a:***@h/x\"; tried rtsp://c:***@h2 and file:///x."
        );
        assert_eq!(redact_text("://a:b@c"), "://a:***@c");
        assert_eq!(redact_text("x://"), "x://");
        assert_eq!(redact_text("plain"), "plain");
    }

    #[test]
    fn only_allow_listed_schemes_open() {
        for ok in [
            "/tmp/a.mp4",
            "clips/a.mp4",
            "file:///tmp/a.mp4",
            "rtsp://h/s",
            "RTSP://h/s",
            "rtsps://u:p@h/s",
            "rtspt://h/s",
            "v4l2:///dev/video0",
        ] {
            assert!(check_camera_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://h/x",
            "udp://0.0.0.0:5000",
            "appsrc://",
            "fd://0",
            "smb://u:hunter22@h/x",
        ] {
            let err = check_camera_uri(bad).expect_err(bad);
            assert!(err.contains("rtsp://"), "names the fix: {err}");
            assert!(!err.contains("hunter22"), "{err}");
        }
        let err = check_camera_uri("rtsp://u:pa ss@h/x").expect_err("blank");
        assert!(err.contains("%20") && !err.contains("pa ss"), "{err}");
    }

    /// The password as a URI parser would take it: the authority ends at the first `/`, `?`
    /// or `#`; the user information at its last `@` (WHATWG) or its first (a naive parser);
    /// the password begins after the first `:` of the user information.
    fn parsed_passwords(s: &str) -> Vec<Range<usize>> {
        let Some(i) = s.find("://") else {
            return Vec::new();
        };
        let start = i + 3;
        let rest = &s[start..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        [authority.rfind('@'), authority.find('@')]
            .into_iter()
            .flatten()
            .filter_map(|at| {
                let colon = authority[..at].find(':')?;
                Some(start + colon + 1..start + at)
            })
            .collect()
    }

    proptest! {
        /// Whatever the string, what a parser would take for the password lies inside what
        /// is masked, and nothing else changes.
        #[test]
        fn what_any_parser_takes_for_the_password_is_masked(
            s in "[a-z:/@?#%. 0-9]{0,40}"
        ) {
            let out = redact_uri(&s);
            for pw in parsed_passwords(&s) {
                let span = password_span(&s).expect("a password was parsed, so one is masked");
                prop_assert!(span.start <= pw.start && pw.end <= span.end, "{s:?}: {pw:?} vs {span:?}");
            }
            let expected = password_span(&s)
                .map_or_else(|| s.clone(), |r| format!("{}***{}", &s[..r.start], &s[r.end..]));
            prop_assert_eq!(out, expected);
        }

        /// A camera URI with credentials, alone or quoted in a message, never shows its
        /// password; user, host and path stay.
        #[test]
        fn no_camera_uri_ever_shows_its_password(
            scheme in "(rtsp|rtsps|file|http)",
            user in "[a-z]{0,8}",
            password in "[A-Z][A-Z0-9:@/?#%!$&'()*+,;=~.-]{0,16}",
            host in "[a-z0-9.]{1,12}(:[0-9]{1,5})?",
            path in "(/[a-z0-9._%?=&#-]{0,12}){0,3}",
            before in "[a-z .,;(\\[{]{0,10}",
            after in "[a-z .,;)\\]}]{0,10}",
        ) {
            let uri = format!("{scheme}://{user}:{password}@{host}{path}");
            let shown = redact_uri(&uri);
            prop_assert_eq!(&shown, &format!("{scheme}://{user}:***@{host}{path}"));
            let text = redact_text(&format!("{before}\"{uri}\" or {uri}{after}"));
            prop_assert!(!text.contains(&password), "{text}");
            prop_assert!(text.contains(&shown), "{text}");
            prop_assert_eq!(uri_password(&uri), Some(password.as_str()));
        }
    }
}
