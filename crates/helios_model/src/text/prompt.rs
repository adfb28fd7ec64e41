//! Prompt cleaning, as the Helios pipelines do it before tokenizing.
//!
//! Port of `prompt_clean` / `basic_clean` / `whitespace_clean` in diffusers
//! `pipelines/helios/pipeline_helios.py` (0.42.1):
//!
//! ```python
//! def basic_clean(text):
//!     text = ftfy.fix_text(text)
//!     text = html.unescape(html.unescape(text))
//!     return text.strip()
//!
//! def whitespace_clean(text):
//!     text = re.sub(r"\s+", " ", text)
//!     return text.strip()
//! ```
//!
//! `html.unescape` is reproduced exactly: its reference pattern and longest-prefix rule, the named
//! references of the WHATWG table (the one CPython's `html.entities.html5` holds, here from the
//! `htmlize` crate, with the legacy names that may omit `;`), and its handling of numeric references
//! (HTML's windows-1252 remapping, U+FFFD for surrogates and out-of-range values, invalid code points
//! dropped, where `htmlize::unescape` would keep them as the HTML spec does). And `\s` / `strip()` use Python's notion of whitespace (`str.isspace`, which adds
//! U+001C..U+001F to Unicode's `White_Space`).
//!
//! **Not reproduced:** `ftfy.fix_text` (mojibake repair, e.g. `cafÃ©` → `café`, curly-quote and
//! ligature fixes). There is no Rust port of ftfy; on clean UTF-8 text it is the identity, and the
//! golden fixtures were generated without it for the same reason.

/// The pipeline's `prompt_clean`: [`basic_clean`] then [`whitespace_clean`].
pub fn prompt_clean(text: &str) -> String {
    whitespace_clean(&basic_clean(text))
}

/// The pipeline's `basic_clean` without ftfy: `html.unescape` twice, then `strip()`.
pub fn basic_clean(text: &str) -> String {
    let text = html_unescape(&html_unescape(text));
    text.trim_matches(is_py_space).to_string()
}

/// The pipeline's `whitespace_clean`: every run of whitespace becomes one space, then `strip()`.
pub fn whitespace_clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if is_py_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out.trim_matches(is_py_space).to_string()
}

/// Python's `str.isspace` (and the `\s` of a `str` regex).
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `html.unescape`: replaces the character references matched by
/// `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`.
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '&'
            && let Some((replacement, consumed)) = char_ref(&chars[i + 1..])
        {
            out.push_str(&replacement);
            i += 1 + consumed;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The replacement of the reference at the start of `rest` (the text after `&`) and how many chars
/// it spans, or `None` where the regex does not match.
fn char_ref(rest: &[char]) -> Option<(String, usize)> {
    let semicolon = |end: usize| usize::from(rest.get(end) == Some(&';'));
    if rest.first() == Some(&'#') {
        let decimal = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if decimal > 0 {
            let end = 1 + decimal;
            return Some((numeric_ref(&rest[1..end], 10), end + semicolon(end)));
        }
        if matches!(rest.get(1), Some('x' | 'X')) {
            let hex = rest[2..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if hex > 0 {
                let end = 2 + hex;
                return Some((numeric_ref(&rest[2..end], 16), end + semicolon(end)));
            }
        }
        return None;
    }
    let len = rest
        .iter()
        .take(32)
        .take_while(|c| !matches!(c, '\t' | '\n' | '\u{c}' | ' ' | '<' | '&' | '#' | ';'))
        .count();
    if len == 0 {
        return None;
    }
    let end = len + semicolon(len);
    Some((named_ref(&rest[..end]), end))
}

/// `_replace_charref` for `&#...`: digits in `radix`.
fn numeric_ref(digits: &[char], radix: u32) -> String {
    // Python's int() is unbounded; anything past u32 is > 0x10FFFF either way.
    let num = digits.iter().try_fold(0u32, |acc, c| {
        let d = c.to_digit(radix)?;
        acc.checked_mul(radix)?.checked_add(d)
    });
    let Some(num) = num else {
        return '\u{FFFD}'.to_string();
    };
    if let Some(c) = invalid_charref(num) {
        return c.to_string();
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        return '\u{FFFD}'.to_string();
    }
    if is_invalid_codepoint(num) {
        return String::new();
    }
    char::from_u32(num).map(String::from).unwrap_or_default()
}

/// Python's `html._invalid_charrefs`: the numeric references HTML maps to another character (`&#128;`
/// is `€`, windows-1252 style).
fn invalid_charref(num: u32) -> Option<char> {
    Some(match num {
        0x00 => '\u{fffd}',
        0x0d => '\r',
        0x80 => '\u{20ac}',
        0x82 => '\u{201a}',
        0x83 => '\u{192}',
        0x84 => '\u{201e}',
        0x85 => '\u{2026}',
        0x86 => '\u{2020}',
        0x87 => '\u{2021}',
        0x88 => '\u{2c6}',
        0x89 => '\u{2030}',
        0x8a => '\u{160}',
        0x8b => '\u{2039}',
        0x8c => '\u{152}',
        0x8e => '\u{17d}',
        0x91 => '\u{2018}',
        0x92 => '\u{2019}',
        0x93 => '\u{201c}',
        0x94 => '\u{201d}',
        0x95 => '\u{2022}',
        0x96 => '\u{2013}',
        0x97 => '\u{2014}',
        0x98 => '\u{2dc}',
        0x99 => '\u{2122}',
        0x9a => '\u{161}',
        0x9b => '\u{203a}',
        0x9c => '\u{153}',
        0x9e => '\u{17e}',
        0x9f => '\u{178}',
        // 0x81, 0x8d, 0x8f, 0x90 and 0x9d map to themselves.
        0x81 | 0x8d | 0x8f | 0x90 | 0x9d => char::from_u32(num)?,
        _ => return None,
    })
}

/// Python's `html._invalid_codepoints` (those not already in `_invalid_charrefs`).
fn is_invalid_codepoint(cp: u32) -> bool {
    matches!(cp, 0x1..=0x8 | 0xB | 0xE..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF)
        || (cp & 0xFFFE) == 0xFFFE
}

/// `_replace_charref` for a name: the whole name if known, else its longest known prefix (at least
/// two chars) followed by the rest, else the text unchanged.
fn named_ref(name: &[char]) -> String {
    // htmlize's keys are the whole reference, `&name;` (or `&name` for the legacy ones).
    let lookup = |n: &[char]| {
        let key: String = std::iter::once('&').chain(n.iter().copied()).collect();
        htmlize::ENTITIES
            .get(key.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    if let Some(v) = lookup(name) {
        return v.to_string();
    }
    for x in (2..name.len()).rev() {
        if let Some(v) = lookup(&name[..x]) {
            return v.chars().chain(name[x..].iter().copied()).collect();
        }
    }
    std::iter::once('&').chain(name.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's table is the WHATWG one CPython's `html.entities.html5` holds: 2231 references,
    /// 106 of them legacy names that may omit `;`.
    #[test]
    fn entity_table_is_the_html5_one() {
        assert_eq!(htmlize::ENTITIES.len(), 2231);
        assert_eq!(
            htmlize::ENTITIES
                .keys()
                .filter(|k| !k.ends_with(b";"))
                .count(),
            106
        );
        assert_eq!(
            html_unescape("&vsubnE;&NotEqualTilde;&fjlig;"),
            "\u{2acb}\u{fe00}\u{2242}\u{338}fj"
        );
    }

    /// Expected values from CPython 3.11 `html.unescape`.
    #[test]
    fn html_unescape_matches_python() {
        let cases = [
            ("a &amp; b", "a & b"),
            ("&lt;b&gt;", "<b>"),
            ("&amp;amp;", "&amp;"),
            ("&ampx", "&x"),
            ("&notit;", "¬it;"),
            ("&notin;", "∉"),
            ("&hearts; &HEARTS;", "♥ &HEARTS;"),
            ("&#65;&#x42;&#X43", "ABC"),
            ("&#128;&#0;&#xD800;&#1114112;", "€\u{FFFD}\u{FFFD}\u{FFFD}"),
            ("&#x81;&#13;&#x9f;", "\u{81}\r\u{178}"),
            ("&#1;x&#xFFFF;", "x"),
            ("&#;&#x;&;& ", "&#;&#x;&;& "),
            ("&#99999999999999999999;", "\u{FFFD}"),
            ("caf&eacute", "café"),
            ("&unknownentity;", "&unknownentity;"),
        ];
        for (input, want) in cases {
            assert_eq!(html_unescape(input), want, "input {input:?}");
        }
    }

    #[test]
    fn prompt_clean_unescapes_twice_and_collapses_whitespace() {
        assert_eq!(
            prompt_clean("  A red car\t\n drives &amp;amp; stops.  "),
            "A red car drives & stops."
        );
        assert_eq!(prompt_clean("a\u{a0}\u{3000}b\u{1c}c"), "a b c");
        assert_eq!(prompt_clean(""), "");
        assert_eq!(prompt_clean(" \t "), "");
        assert_eq!(
            prompt_clean("A red car drives along a  coastal road at sunset, waves crash. "),
            "A red car drives along a coastal road at sunset, waves crash."
        );
    }
}
