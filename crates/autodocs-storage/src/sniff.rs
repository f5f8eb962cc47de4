//! Content sniffing: the type of a file from its bytes, never from a name or
//! a client's `Content-Type`.
//!
//! A [`Sniffer`] is fed the bytes in order, in chunks of any size. It keeps
//! the first [`SNIFF_WINDOW`] bytes aside and checks the whole stream for
//! valid UTF-8 without NUL bytes; [`Sniffer::verdict`] then decides:
//!
//! 1. binary types by their magic bytes (with [`infer`], tightened where its
//!    matchers are loose): PDF, PNG, JPEG, TIFF, WebP, and the ZIP-based
//!    DOCX, XLSX (an OOXML part under `word/` or `xl/`) and ODT (a
//!    `mimetype` entry of `application/vnd.oasis.opendocument.text`);
//! 2. otherwise, if the whole file is UTF-8 text: markup (HTML, SVG, XML,
//!    anything starting like a tag) and scripts (`#!`) are refused; JSON is
//!    an object or array that parses (or, past the window, starts like one);
//!    CSV has the same number of commas on each of its first lines; the
//!    rest is plain text;
//! 3. anything else (executables, archives, other media…) is refused.
//!
//! Within the text family the content often fits more than one member (a
//! note whose lines contain commas is also CSV; a JSON array is also text):
//! [`Sniffer::text_fit`] says which, and the domain lets the client's
//! declared type and file name choose among them
//! ([`AllowedContentType::resolve`]).
//!
//! Upload and verification use the same sniffer on the same bytes, so a
//! file that did not change always sniffs the same.

use autodocs_domain::document::{AllowedContentType, TextFit};

/// How many leading bytes the binary and text checks look at.
pub const SNIFF_WINDOW: usize = 8 * 1024;

/// Most lines the CSV check looks at.
const CSV_LINES: usize = 20;

/// Incremental UTF-8 validation across chunk boundaries.
#[derive(Debug, Clone, Default)]
struct Utf8State {
    /// Bytes of a character split by a chunk boundary (at most 3).
    pending: Vec<u8>,
    invalid: bool,
}

impl Utf8State {
    fn feed(&mut self, mut data: &[u8]) {
        if self.invalid {
            return;
        }
        // Complete a character split by the previous chunk.
        while !self.pending.is_empty() {
            let Some((&byte, rest)) = data.split_first() else {
                return;
            };
            self.pending.push(byte);
            data = rest;
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.clear(),
                Err(error) if error.error_len().is_some() => {
                    self.invalid = true;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(error) = std::str::from_utf8(data) {
            match error.error_len() {
                Some(_) => self.invalid = true,
                // The chunk ends inside a character: keep its start.
                None => self.pending.extend_from_slice(&data[error.valid_up_to()..]),
            }
        }
    }

    /// Whether everything fed is valid UTF-8 and no character was left open.
    fn is_valid(&self) -> bool {
        !self.invalid && self.pending.is_empty()
    }
}

/// Sniffs a stream of bytes.
#[derive(Debug, Clone, Default)]
pub struct Sniffer {
    head: Vec<u8>,
    size: u64,
    utf8: Utf8State,
    has_nul: bool,
}

impl Sniffer {
    /// A sniffer that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < SNIFF_WINDOW {
            let take = chunk.len().min(SNIFF_WINDOW - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.size += chunk.len() as u64;
        if !self.has_nul && !self.utf8.invalid {
            self.has_nul = chunk.contains(&0);
            if !self.has_nul {
                self.utf8.feed(chunk);
            }
        }
    }

    /// How many bytes were fed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The allowed type of everything fed, or `None` if it is not one.
    pub fn verdict(&self) -> Option<AllowedContentType> {
        self.judge().map(|(kind, _)| kind)
    }

    /// The text-family members the content fits besides its verdict (all
    /// false for anything that is not text).
    pub fn text_fit(&self) -> TextFit {
        self.judge().map(|(_, fit)| fit).unwrap_or_default()
    }

    fn judge(&self) -> Option<(AllowedContentType, TextFit)> {
        if self.head.is_empty() {
            return None;
        }
        if let Some(kind) = binary_type(&self.head) {
            return Some((kind, TextFit::default()));
        }
        if !self.has_nul && self.utf8.is_valid() {
            let complete = self.size <= self.head.len() as u64;
            return text_type(&self.head, complete);
        }
        None
    }
}

/// Sniffs a whole buffer.
pub fn sniff(bytes: &[u8]) -> Option<AllowedContentType> {
    let mut sniffer = Sniffer::new();
    sniffer.feed(bytes);
    sniffer.verdict()
}

/// Sniffs a whole buffer, then lets the client's declared type and file
/// name choose within the text family, as an upload does.
pub fn sniff_with_hints(
    bytes: &[u8],
    declared: Option<&str>,
    filename: &str,
) -> Option<AllowedContentType> {
    let mut sniffer = Sniffer::new();
    sniffer.feed(bytes);
    let hints = [
        declared.and_then(AllowedContentType::text_hint_of_mime),
        AllowedContentType::text_hint_of_filename(filename),
    ];
    sniffer
        .verdict()
        .map(|kind| kind.resolve(sniffer.text_fit(), &hints))
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// An allowed binary type recognised by its magic bytes.
fn binary_type(head: &[u8]) -> Option<AllowedContentType> {
    use AllowedContentType as Kind;
    // infer's image and PDF matchers look at few bytes (or anywhere in the
    // first KiB, for PDF); each is tightened to the full signature at offset 0.
    if head.starts_with(b"%PDF-") && infer::archive::is_pdf(head) {
        return Some(Kind::Pdf);
    }
    if head.starts_with(PNG_SIGNATURE) && infer::image::is_png(head) {
        return Some(Kind::Png);
    }
    if infer::image::is_jpeg(head) {
        return Some(Kind::Jpeg);
    }
    if head.starts_with(b"RIFF") && infer::image::is_webp(head) {
        return Some(Kind::Webp);
    }
    if infer::image::is_tiff(head) {
        return Some(Kind::Tiff);
    }
    if head.starts_with(b"PK\x03\x04") {
        return office_type(head);
    }
    None
}

/// DOCX, XLSX or ODT inside a ZIP; any other ZIP is an archive (refused).
fn office_type(head: &[u8]) -> Option<AllowedContentType> {
    use AllowedContentType as Kind;
    if infer::odf::is_odt(head) {
        return Some(Kind::Odt);
    }
    if infer::doc::is_docx(head) {
        return Some(Kind::Docx);
    }
    if infer::doc::is_xlsx(head) {
        return Some(Kind::Xlsx);
    }
    // infer only follows the first few entries in its own way; look at the
    // name of every local file header in the window.
    let names = zip_entry_names(head);
    let is_ooxml = names.iter().any(|name| *name == b"[Content_Types].xml");
    if !is_ooxml {
        return None;
    }
    if names.iter().any(|name| name.starts_with(b"word/")) {
        Some(Kind::Docx)
    } else if names.iter().any(|name| name.starts_with(b"xl/")) {
        Some(Kind::Xlsx)
    } else {
        None
    }
}

/// The file names of the ZIP local file headers found in `head`.
fn zip_entry_names(head: &[u8]) -> Vec<&[u8]> {
    const SIGNATURE: &[u8] = b"PK\x03\x04";
    const HEADER: usize = 30;
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(offset) = head[at..]
        .windows(SIGNATURE.len())
        .position(|window| window == SIGNATURE)
    {
        let start = at + offset;
        if start + HEADER > head.len() {
            break;
        }
        let length = usize::from(u16::from_le_bytes([head[start + 26], head[start + 27]]));
        let end = (start + HEADER + length).min(head.len());
        names.push(&head[start + HEADER..end]);
        at = start + SIGNATURE.len();
    }
    names
}

/// The type of a UTF-8 text whose first bytes are `head` (`complete` when
/// `head` is the whole file), and the text-family members it also fits.
fn text_type(head: &[u8], complete: bool) -> Option<(AllowedContentType, TextFit)> {
    use AllowedContentType as Kind;
    // The window may end inside a character: lossy decoding only affects the end.
    let text = String::from_utf8_lossy(head);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let body = text.trim_start();
    if is_markup(body) || body.starts_with("#!") {
        return None;
    }
    let fit = TextFit {
        json: is_json(text, body, complete),
    };
    let kind = if fit.json {
        Kind::Json
    } else if is_csv(text, complete) {
        Kind::Csv
    } else {
        Kind::PlainText
    };
    Some((kind, fit))
}

/// Starts like a tag, a declaration or a comment: HTML, SVG, XML and kin,
/// which a browser could render or run.
fn is_markup(body: &str) -> bool {
    let mut chars = body.chars();
    chars.next() == Some('<')
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '!' | '?' | '/'))
}

/// An object or an array: parsed when the whole file is at hand, judged by
/// its first tokens otherwise.
fn is_json(text: &str, body: &str, complete: bool) -> bool {
    let mut chars = body.chars();
    let opener = chars.next();
    if !matches!(opener, Some('{' | '[')) {
        return false;
    }
    if complete {
        return serde_json::from_str::<serde_json::Value>(text).is_ok();
    }
    let next = chars.find(|c| !c.is_whitespace());
    match opener {
        Some('{') => matches!(next, Some('"' | '}')),
        _ => matches!(
            next,
            Some('{' | '[' | '"' | ']' | '-' | '0'..='9' | 't' | 'f' | 'n')
        ),
    }
}

/// What sniffing alone calls CSV: at least two lines, each with the same
/// (non-zero) number of commas outside double quotes. (Any text may be CSV
/// when the client says so.)
fn is_csv(text: &str, complete: bool) -> bool {
    let mut lines: Vec<&str> = text.lines().collect();
    if !complete {
        // The last line may be cut by the window.
        lines.pop();
    }
    let counts: Vec<usize> = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .take(CSV_LINES)
        .map(|line| commas_outside_quotes(line))
        .collect();
    counts.len() >= 2 && counts[0] > 0 && counts.iter().all(|count| *count == counts[0])
}

fn commas_outside_quotes(line: &str) -> usize {
    let mut quoted = false;
    let mut commas = 0;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            _ => {}
        }
    }
    commas
}

#[cfg(test)]
mod tests {
    use super::*;
    use AllowedContentType as Kind;

    fn pdf() -> Vec<u8> {
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec()
    }

    fn png() -> Vec<u8> {
        let mut bytes = PNG_SIGNATURE.to_vec();
        bytes.extend_from_slice(b"\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89");
        bytes
    }

    /// A stored (uncompressed) ZIP local file header and data.
    fn zip_entry(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"PK\x03\x04".to_vec();
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0, 0, 0, 0]); // crc (unchecked here)
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|(name, data)| zip_entry(name, data))
            .collect()
    }

    #[test]
    fn binary_types_by_magic() {
        assert_eq!(sniff(&pdf()), Some(Kind::Pdf));
        assert_eq!(sniff(&png()), Some(Kind::Png));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), Some(Kind::Jpeg));
        assert_eq!(
            sniff(b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00"),
            Some(Kind::Tiff)
        );
        assert_eq!(
            sniff(b"MM\x00*\x00\x00\x00\x08\x00\x00\x00\x00"),
            Some(Kind::Tiff)
        );
        assert_eq!(
            sniff(b"RIFF\x24\x00\x00\x00WEBPVP8 \x00\x00"),
            Some(Kind::Webp)
        );
    }

    #[test]
    fn loose_magic_is_not_enough() {
        // "WEBP" at offset 8 without RIFF, "%PDF" later in the text, "\x89PNG" alone.
        assert_eq!(sniff(b"\x01\x02\x03\x04\x05\x06\x07\x08WEBP\x00"), None);
        assert_eq!(sniff(b"hello %PDF-1.4 world"), Some(Kind::PlainText));
        assert_eq!(sniff(b"\x89PNG\x00\x00"), None);
    }

    #[test]
    fn office_documents_and_archives() {
        let docx = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("_rels/.rels", b"<Relationships/>"),
            ("word/document.xml", b"<w:document/>"),
        ]);
        assert_eq!(sniff(&docx), Some(Kind::Docx));
        let xlsx = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("_rels/.rels", b"<Relationships/>"),
            ("xl/workbook.xml", b"<workbook/>"),
        ]);
        assert_eq!(sniff(&xlsx), Some(Kind::Xlsx));
        let odt = zip(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", b"<office:document-content/>"),
        ]);
        assert_eq!(sniff(&odt), Some(Kind::Odt));
        let pptx = zip(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("_rels/.rels", b"<Relationships/>"),
            ("ppt/presentation.xml", b"<p/>"),
        ]);
        assert_eq!(sniff(&pptx), None);
        let plain_zip = zip(&[("notes.txt", b"hello"), ("run.exe", b"MZ")]);
        assert_eq!(sniff(&plain_zip), None);
    }

    #[test]
    fn executables_and_other_binaries_are_refused() {
        assert_eq!(
            sniff(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"),
            None
        );
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00"), None);
        assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00\x00\x00\x00"), None);
        assert_eq!(sniff(b"\x1f\x8b\x08\x00\x00\x00\x00\x00"), None);
        assert_eq!(sniff(b"text then \xff\xfe invalid"), None);
        assert_eq!(sniff(b"text with a \x00 NUL"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn markup_and_scripts_are_refused() {
        for refused in [
            &b"<!DOCTYPE html><html><body>x</body></html>"[..],
            b"  \n<html><script>alert(1)</script></html>",
            b"\xef\xbb\xbf<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"<?xml version=\"1.0\"?><svg/>",
            b"<?xml version=\"1.0\"?><note/>",
            b"<!-- comment --><p>x</p>",
            b"#!/bin/sh\nrm -rf /\n",
        ] {
            assert_eq!(sniff(refused), None, "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn text_json_and_csv() {
        assert_eq!(
            sniff(b"Hello, world.\nSecond line.\n"),
            Some(Kind::PlainText)
        );
        assert_eq!(
            sniff("Grüße aus Köln ✓\n".as_bytes()),
            Some(Kind::PlainText)
        );
        assert_eq!(sniff(b"<3 you"), Some(Kind::PlainText));
        assert_eq!(sniff(b"{\"a\": [1, 2, {\"b\": null}]}\n"), Some(Kind::Json));
        assert_eq!(sniff(b"  [1, 2, 3]"), Some(Kind::Json));
        assert_eq!(sniff(b"{not json at all"), Some(Kind::PlainText));
        assert_eq!(
            sniff(b"date,amount,memo\n2026-01-02,10.50,\"coffee, large\"\n2026-01-03,3.20,bus\n"),
            Some(Kind::Csv)
        );
        assert_eq!(sniff(b"one, two\nthree four\n"), Some(Kind::PlainText));
        assert_eq!(sniff(b"just one, line"), Some(Kind::PlainText));
    }

    /// Content, declared type, file name, and the kind expected.
    type HintCase<'a> = (&'a [u8], Option<&'a str>, &'a str, Option<Kind>);

    #[test]
    fn declared_type_and_name_choose_within_the_text_family() {
        let note = b"Call Anna, then Ben.\nBuy milk, then eggs.\n";
        assert_eq!(sniff(note), Some(Kind::Csv), "commas alone look like CSV");
        let cases: [HintCase; 14] = [
            // Commas in a note stay plain text when the client says so.
            (note, Some("text/plain"), "notes.txt", Some(Kind::PlainText)),
            (note, Some("text/plain"), "notes", Some(Kind::PlainText)),
            (note, None, "notes.txt", Some(Kind::PlainText)),
            (
                note,
                Some("application/octet-stream"),
                "notes.txt",
                Some(Kind::PlainText),
            ),
            // The same bytes as CSV, by name or by declared type.
            (note, Some("text/csv"), "data.csv", Some(Kind::Csv)),
            (note, Some("text/plain"), "data.csv", Some(Kind::Csv)),
            (note, Some("text/csv"), "upload", Some(Kind::Csv)),
            (note, None, "upload", Some(Kind::Csv)),
            // JSON that parses; declared JSON that does not falls back.
            (
                b"[1, 2, 3]",
                Some("application/json"),
                "a.json",
                Some(Kind::Json),
            ),
            (
                b"[1, 2, 3]",
                Some("text/plain"),
                "a.txt",
                Some(Kind::PlainText),
            ),
            (note, Some("application/json"), "data", Some(Kind::Csv)),
            (
                b"{broken",
                Some("application/json"),
                "x.json",
                Some(Kind::PlainText),
            ),
            // Outside the family sniffing decides.
            (&pdf(), Some("text/plain"), "notes.txt", Some(Kind::Pdf)),
            (
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00",
                Some("text/plain"),
                "notes.txt",
                None,
            ),
        ];
        for (bytes, declared, name, expected) in cases {
            assert_eq!(
                sniff_with_hints(bytes, declared, name),
                expected,
                "{declared:?} {name}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Markup stays refused whatever the client says.
        assert_eq!(
            sniff_with_hints(
                b"<html><script>x</script></html>",
                Some("text/plain"),
                "a.txt"
            ),
            None
        );
        // Ragged rows and a single column are CSV only when the client says so.
        let ragged = b"name,amount\nAnna,10,extra\nBen\n";
        assert_eq!(sniff(ragged), Some(Kind::PlainText));
        assert_eq!(
            sniff_with_hints(ragged, Some("text/csv"), "data.csv"),
            Some(Kind::Csv)
        );
        assert_eq!(
            sniff_with_hints(ragged, Some("text/plain"), "notes.txt"),
            Some(Kind::PlainText)
        );
        assert_eq!(
            sniff_with_hints(b"alpha\nbeta\n", Some("text/csv"), "list.csv"),
            Some(Kind::Csv)
        );
        assert_eq!(sniff(b"alpha\nbeta\n"), Some(Kind::PlainText));
    }

    #[test]
    fn large_text_is_judged_by_its_window_and_checked_whole() {
        let mut json = b"[".to_vec();
        while json.len() < 3 * SNIFF_WINDOW {
            json.extend_from_slice(b"{\"k\": \"v\"},");
        }
        json.extend_from_slice(b"{}]");
        assert_eq!(sniff(&json), Some(Kind::Json));

        let mut csv = Vec::new();
        while csv.len() < 3 * SNIFF_WINDOW {
            csv.extend_from_slice(b"a,b,c\n");
        }
        assert_eq!(sniff(&csv), Some(Kind::Csv));

        // Invalid UTF-8 far past the window still makes it binary.
        let mut late_binary = csv.clone();
        late_binary.extend_from_slice(b"\xff\xfe\xfd");
        assert_eq!(sniff(&late_binary), None);
    }

    #[test]
    fn utf8_split_across_chunks_at_any_point() {
        let text = "Zoë schrieb: 東京 🚀 naïve café\n".repeat(700);
        let bytes = text.as_bytes();
        for chunk in [1, 2, 3, 5, 7, 4096, 8191] {
            let mut sniffer = Sniffer::new();
            for piece in bytes.chunks(chunk) {
                sniffer.feed(piece);
            }
            assert_eq!(sniffer.size(), bytes.len() as u64);
            assert_eq!(sniffer.verdict(), Some(Kind::PlainText), "chunk {chunk}");
        }
        // A character cut off at the very end is not valid UTF-8.
        let mut sniffer = Sniffer::new();
        sniffer.feed(&"é".as_bytes()[..1]);
        assert_eq!(sniffer.verdict(), None);
    }
}
