//! The HTML reports of `anpr eval --html` and `anpr bench --html`: one self-contained page
//! each, for people who look at the figures rather than read them.
//!
//! # Contract
//!
//! - A page is one file with nothing to fetch: styles inline, images as `data:` URIs, charts
//!   as inline SVG. It opens the same offline, from a mail attachment or a USB stick.
//! - It shows the same counts and rates as the command's text output, formatted the same way
//!   (so a test compares the two), and more besides: every miss with its plate crop
//!   ([`eval_page`]), latency histograms and frames per second over time ([`bench_page`]).
//! - Every text that comes from labels, reads, file names or paths is HTML-escaped
//!   ([`escape`]).

mod bench_page;
mod eval_page;

pub use bench_page::bench_page;
pub use eval_page::{EvalPage, eval_page};

pub use anpr_types::html::escape;

/// `bytes` as a `data:` URI of type `mime` (base64).
#[must_use]
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = format!("data:{mime};base64,");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A whole page: `title` (escaped here) and `body` (HTML, already escaped where needed).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n{body}\n\
         </body>\n</html>\n",
        escape(title),
        escape(title)
    )
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.plate { font-family: ui-monospace, monospace; font-size: 1.1em; }
.c { display: inline-block; text-align: center; padding: 0 1px; margin: 0 1px; }
.c sub { display: block; font-size: 0.65em; color: #444; }
.none { color: #999; } .miss img { display: block; image-rendering: auto; }
figure { display: inline-block; margin: 0.5em; } .note { color: #555; font-size: 0.9em; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape(r#"<b>"A&B"</b> 'x'"#),
            "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt; &#39;x&#39;"
        );
    }

    #[test]
    fn bytes_become_base64_data_uris() {
        assert_eq!(data_uri("text/plain", b""), "data:text/plain;base64,");
        assert_eq!(data_uri("a/b", b"f"), "data:a/b;base64,Zg==");
        assert_eq!(data_uri("a/b", b"fo"), "data:a/b;base64,Zm8=");
        assert_eq!(data_uri("a/b", b"foo"), "data:a/b;base64,Zm9v");
        assert_eq!(data_uri("a/b", b"foobar"), "data:a/b;base64,Zm9vYmFy");
        assert_eq!(data_uri("a/b", &[255, 254, 253]), "data:a/b;base64,//79");
    }
}
