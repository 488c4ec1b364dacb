//! The fuzzers' input format: a few `\n`-terminated lines, then optionally header lines
//! (`name: value`) up to an empty line, then the rest as a raw body. Every byte string is
//! a valid input (a missing line reads as empty), so libFuzzer's mutations never fall
//! off the format, and a crash artifact reads like the request that caused it.

use std::sync::OnceLock;

use hookline_domain::Headers;

/// Whether `HOOKLINE_FUZZ_TRACE` is set: targets then print each input's outcome, to see
/// what a corpus exercises (`HOOKLINE_FUZZ_TRACE=1 <target binary> -runs=0 <corpus>`).
pub fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("HOOKLINE_FUZZ_TRACE").is_some())
}

/// A cursor over the input's lines.
pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    /// Starts at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// The next line without its `\n` (empty at the end of the input).
    pub fn line(&mut self) -> &'a [u8] {
        match self.rest.iter().position(|b| *b == b'\n') {
            Some(end) => {
                let line = &self.rest[..end];
                self.rest = &self.rest[end + 1..];
                line
            }
            None => std::mem::take(&mut self.rest),
        }
    }

    /// The next line as text (invalid UTF-8 replaced).
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.line()).into_owned()
    }

    /// The next line read as a decimal number, `default` when it is not one.
    pub fn number(&mut self, default: i64) -> i64 {
        std::str::from_utf8(self.line())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default)
    }

    /// Header lines up to the first empty line: the name is what stands before the first
    /// `:`, the value what follows it, one leading space removed. A line without `:` is a
    /// header with an empty value.
    pub fn headers(&mut self) -> Headers {
        let mut pairs = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = match line.iter().position(|b| *b == b':') {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (line, &[][..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            pairs.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
        }
        Headers::new(pairs)
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Picks one of `names` by `wanted`: the name itself if listed, otherwise one chosen by
/// the bytes (so every input selects something and mutations move between them).
pub fn pick(names: &[&str], wanted: &[u8]) -> usize {
    names
        .iter()
        .position(|name| name.as_bytes() == wanted)
        .unwrap_or_else(|| {
            let sum: usize = wanted.iter().map(|b| usize::from(*b)).sum();
            sum % names.len()
        })
}
