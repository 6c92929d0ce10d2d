//! Escaping: every piece of text that reaches the page goes through here.

use std::fmt::Write;

/// `text` safe as element content and inside a double- or single-quoted
/// attribute value, in HTML and in inline SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls other than tab and newlines are not valid HTML text.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(out, "&#xFFFD;");
            }
            c => out.push(c),
        }
    }
    out
}

/// ` name="value"`, the value escaped.
pub fn attr(name: &str, value: &str) -> String {
    format!(" {name}=\"{}\"", escape(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("O’Brien — Café"), "O’Brien — Café");
        assert_eq!(escape("a\u{0}b\u{1b}c\nd"), "a&#xFFFD;b&#xFFFD;c\nd");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(attr("data-value", "\"a\""), " data-value=\"&quot;a&quot;\"");
    }
}
