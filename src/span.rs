//! Where things were written: byte spans in a source file, values that keep theirs, and
//! the files themselves. Plans, diagnostics and every unit share this vocabulary, so
//! none of them has to reach into another's module to point at a line.

use std::ops::Range;
use std::sync::Arc;

/// Byte range in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn new(start: usize, len: usize) -> Self {
        Span { start, len }
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end.saturating_sub(r.start))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.len).into()
    }
}

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub span: Span,
}

/// A source file that problems point into.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<String>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: String) -> Self {
        SourceFile {
            name: name.into(),
            text: Arc::new(text),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        // Line breaks as YAML (and miette's quote of the line) know them: LF, CRLF, or a
        // lone CR.
        let line = before.matches('\n').count() + before.matches('\r').count()
            - before.matches("\r\n").count()
            + 1;
        let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_at_lf_crlf_and_a_lone_cr() {
        let f = SourceFile::new("p", "a: 1\nb: 2\r\nc: 3\rd: é4".to_owned());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(f.text.find("b:").unwrap()), (2, 1));
        assert_eq!(f.line_col(f.text.find("c:").unwrap()), (3, 1));
        assert_eq!(f.line_col(f.text.find("d:").unwrap()), (4, 1));
        assert_eq!(f.line_col(f.text.find('4').unwrap()), (4, 5));
    }
}
