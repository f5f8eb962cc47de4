//! `/api/documents/`: streamed uploads with sniffed types and a size limit,
//! downloads with ranges and validators, verification against the stored
//! bytes, list filters, edits, deletes, ownership, and what is left on disk
//! (nothing, whenever an upload fails).
//!
//! Every file is built byte by byte here: a real PDF (with its xref), a real
//! PNG (zlib stream and CRCs), ZIP-based office documents, an ELF executable.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{
    Backend, Registered, Resp, TestApp, assert_keys, files_in, is_rfc3339_utc, media, sha256,
};

const DOCUMENTS: &str = "/api/documents/";

/// The keys of `Document` (API.md, Documents).
const DOCUMENT_KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "status",
    "verified",
    "verified_at",
    "verification_error",
    "mission",
    "owner",
    "original_filename",
    "content_type",
    "size",
    "sha256",
    "download_url",
    "uploaded_at",
    "updated_at",
];

backend_tests!(
    uploads_real_files_and_sniffs_their_type,
    refuses_executables_markup_and_archives,
    upload_validation_and_media_type,
    hostile_file_names_never_pick_the_path,
    download_headers_ranges_and_validators,
    verify_detects_changes_on_disk,
    list_filters_search_ordering_and_pages,
    patch_and_delete,
    someone_elses_document_is_not_found,
    staff_see_download_and_verify_every_document,
    text_keeps_its_declared_type_within_the_text_family,
    mission_detail_lists_its_documents,
    a_cut_off_upload_leaves_nothing,
);

backend_custom_tests!(
    size_limit_is_exact_and_keeps_nothing,
    start_up_sweeps_leftovers
);

// ---------------------------------------------------------------------------
// Files, built here
// ---------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in bytes {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A one-page PDF with a correct cross-reference table.
fn pdf_bytes(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 18 Tf 20 100 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

/// A valid 3×2 RGB PNG (a stored zlib stream).
fn png_bytes() -> Vec<u8> {
    let (width, height) = (3u32, 2u32);
    let mut raw = Vec::new();
    for row in 0..height {
        raw.push(0); // filter: none
        for column in 0..width {
            raw.extend_from_slice(&[(row * 100) as u8, (column * 80) as u8, 200]);
        }
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    let length = raw.len() as u16;
    zlib.extend_from_slice(&length.to_le_bytes());
    zlib.extend_from_slice(&(!length).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &header);
    png_chunk(&mut out, b"IDAT", &zlib);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A ZIP archive of stored entries, with its central directory.
fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let name_len = name.len() as u16;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    let central_size = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

const CONTENT_TYPES_XML: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;

fn docx_bytes() -> Vec<u8> {
    zip_bytes(&[
        ("[Content_Types].xml", CONTENT_TYPES_XML),
        ("_rels/.rels", b"<Relationships/>"),
        (
            "word/document.xml",
            b"<w:document><w:body>Hi</w:body></w:document>",
        ),
    ])
}

fn xlsx_bytes() -> Vec<u8> {
    zip_bytes(&[
        ("[Content_Types].xml", CONTENT_TYPES_XML),
        ("_rels/.rels", b"<Relationships/>"),
        ("xl/workbook.xml", b"<workbook/>"),
    ])
}

fn odt_bytes() -> Vec<u8> {
    zip_bytes(&[
        ("mimetype", b"application/vnd.oasis.opendocument.text"),
        ("content.xml", b"<office:document-content/>"),
    ])
}

/// The start of a 64-bit ELF executable.
fn elf_bytes() -> Vec<u8> {
    let mut out = b"\x7fELF\x02\x01\x01\x00".to_vec();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&[2, 0, 0x3e, 0, 1, 0, 0, 0]);
    out.extend_from_slice(&[0x78, 0, 0x40, 0, 0, 0, 0, 0]);
    out.resize(256, 0x90);
    out
}

/// A DOS/PE executable stub.
fn exe_bytes() -> Vec<u8> {
    let mut out = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    out.resize(128, 0);
    out.extend_from_slice(b"This program cannot be run in DOS mode.\r\n");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// One part of a hand-built multipart body.
struct Part<'a> {
    name: &'a str,
    /// The raw Content-Disposition parameters after `name`, e.g. `filename="a.pdf"`.
    filename: Option<String>,
    content_type: Option<&'a str>,
    body: Vec<u8>,
}

fn file_part(filename: &str, content_type: &str, body: &[u8]) -> Part<'static> {
    Part {
        name: "file",
        filename: Some(format!(
            "filename=\"{}\"",
            filename.replace('\\', "\\\\").replace('"', "\\\"")
        )),
        content_type: Some(leak(content_type)),
        body: body.to_vec(),
    }
}

fn text_part<'a>(name: &'a str, value: &str) -> Part<'a> {
    Part {
        name,
        filename: None,
        content_type: None,
        body: value.as_bytes().to_vec(),
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

const BOUNDARY: &str = "----autodocs-test-boundary-7MA4YWxkTrZu0gW";

fn multipart_body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{}\"", part.name).as_bytes(),
        );
        if let Some(filename) = &part.filename {
            out.extend_from_slice(b"; ");
            out.extend_from_slice(filename.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

async fn post_form(app: &TestApp, token: Option<&str>, parts: &[Part<'_>]) -> Resp {
    let url = app.url(DOCUMENTS);
    let mut request = app
        .client()
        .post(&url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body(parts));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    app.send(&Method::POST, &url, request).await
}

/// Uploads one file; panics unless 201. Returns the Document.
pub(crate) async fn upload(
    app: &TestApp,
    user: &Registered,
    filename: &str,
    content_type: &str,
    body: &[u8],
) -> Value {
    upload_with(app, user, filename, content_type, body, &[]).await
}

async fn upload_with(
    app: &TestApp,
    user: &Registered,
    filename: &str,
    content_type: &str,
    body: &[u8],
    fields: &[(&str, &str)],
) -> Value {
    let mut parts: Vec<Part<'_>> = fields.iter().map(|(k, v)| text_part(k, v)).collect();
    parts.push(file_part(filename, content_type, body));
    let r = post_form(app, Some(&user.access), &parts).await;
    r.assert_status(201).assert_json();
    assert_document_shape(&r.body);
    r.body
}

fn document_url(id: i64) -> String {
    format!("{DOCUMENTS}{id}/")
}

fn download_url(id: i64) -> String {
    format!("{DOCUMENTS}{id}/download/")
}

fn verify_url(id: i64) -> String {
    format!("{DOCUMENTS}{id}/verify/")
}

fn id_of(document: &Value) -> i64 {
    document["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("id is an integer: {document}"))
}

/// A raw download: status, headers, bytes.
async fn fetch(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = app
        .client()
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", app.server_log()));
    let (status, headers, bytes) =
        crate::conformance::read_checked(&method, &app.url(path), response).await;
    (status.as_u16(), headers, bytes)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name} present: {headers:?}"))
}

async fn list(app: &TestApp, user: &Registered, query: &str) -> Resp {
    app.get(&format!("{DOCUMENTS}?{query}"), Some(&user.access))
        .await
}

fn result_ids(page: &Value) -> Vec<i64> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(id_of)
        .collect()
}

async fn activities_of(app: &TestApp, user: &Registered, query: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/activities/?page_size=100&{query}"),
            Some(&user.access),
        )
        .await;
    r.assert_status(200);
    r.body["results"].as_array().cloned().unwrap_or_default()
}

fn kinds(activities: &[Value]) -> Vec<String> {
    activities
        .iter()
        .map(|a| a["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[track_caller]
fn assert_document_shape(document: &Value) {
    let ctx = document.to_string();
    assert_keys(document, DOCUMENT_KEYS, &ctx);
    assert!(document["id"].is_i64(), "{ctx}");
    assert!(document["size"].is_u64(), "{ctx}");
    assert!(document["verified"].is_boolean(), "{ctx}");
    let sha = document["sha256"].as_str().expect("sha256");
    assert!(
        sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "sha256 is lower-case hex: {ctx}"
    );
    for key in ["uploaded_at", "updated_at"] {
        assert!(
            document[key].as_str().is_some_and(is_rfc3339_utc),
            "{key}: {ctx}"
        );
    }
    assert!(
        document["verified_at"].is_null()
            || document["verified_at"].as_str().is_some_and(is_rfc3339_utc),
        "{ctx}"
    );
    let url = document["download_url"].as_str().expect("download_url");
    assert!(
        url.starts_with("http://") && url.ends_with(&download_url(id_of(document))),
        "download_url is absolute: {ctx}"
    );
}

// ---------------------------------------------------------------------------
// Disk
// ---------------------------------------------------------------------------

fn stored_files(app: &TestApp) -> Vec<String> {
    files_in(&media(app).join("documents"))
}

fn temporary_files(app: &TestApp) -> Vec<String> {
    files_in(&media(app).join(".tmp"))
}

/// Every file anywhere under the media root, relative paths.
fn everything_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn is_uuid(name: &str) -> bool {
    let groups: Vec<&str> = name.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// The stored file of a document (the only file whose bytes match its sha256).
fn stored_path(app: &TestApp, document: &Value) -> PathBuf {
    let sha = document["sha256"].as_str().expect("sha256");
    let dir = media(app).join("documents");
    stored_files(app)
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| std::fs::read(path).is_ok_and(|bytes| sha256_hex(&bytes) == sha))
        .unwrap_or_else(|| panic!("no stored file with sha256 {sha} in {}", dir.display()))
}

fn document_rows(app: &TestApp) -> i64 {
    app.db
        .query_value("SELECT CAST(count(*) AS TEXT) AS value FROM documents_document")
        .and_then(|v| v.trim().parse().ok())
        .expect("a count")
}

/// Waits until `check` holds (cleanup after a cut connection is asynchronous).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[track_caller]
fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(stored_files(app), Vec::<String>::new(), "no stored file");
    assert_eq!(
        temporary_files(app),
        Vec::<String>::new(),
        "no temporary file"
    );
    assert_eq!(document_rows(app), 0, "no document row");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

async fn uploads_real_files_and_sniffs_their_type(app: TestApp) {
    let anna = app.register("anna").await;
    let pdf = pdf_bytes("Tax return 2025");
    // The client lies about the type: the bytes decide.
    let document = upload(&app, &anna, "return.pdf", "image/png", &pdf).await;
    assert_eq!(document["content_type"], "application/pdf");
    assert_eq!(document["size"], json!(pdf.len()));
    assert_eq!(document["sha256"], json!(sha256_hex(&pdf)));
    assert_eq!(
        document["name"], "return.pdf",
        "name defaults to the file name"
    );
    assert_eq!(document["original_filename"], "return.pdf");
    assert_eq!(document["type"], "other");
    assert_eq!(document["status"], "uploaded");
    assert_eq!(document["verified"], false);
    assert_eq!(document["verified_at"], Value::Null);
    assert_eq!(document["verification_error"], "");
    assert_eq!(document["mission"], Value::Null);
    assert_eq!(document["owner"], json!(anna.id));
    let id = id_of(&document);

    // Stored under a server-chosen name, complete, nothing left in .tmp.
    let stored = stored_files(&app);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(is_uuid(&stored[0]), "{stored:?}");
    assert_eq!(
        std::fs::read(stored_path(&app, &document)).expect("stored"),
        pdf
    );
    assert_eq!(temporary_files(&app), Vec::<String>::new());

    let r = app.get(&document_url(id), Some(&anna.access)).await;
    r.assert_status(200);
    assert_eq!(r.body, document);

    // The upload wrote its activity.
    let acts = activities_of(&app, &anna, &format!("document={id}")).await;
    assert_eq!(kinds(&acts), ["document_uploaded"], "{acts:?}");
    assert_eq!(acts[0]["document"], json!(id));

    // Every allowed type, whatever the client claims.
    let text = "Kontoauszug März\nSaldo: 1.234,56 €\n".as_bytes().to_vec();
    let csv =
        b"date,amount,memo\n2026-01-02,10.50,\"coffee, large\"\n2026-01-03,3.20,bus\n".to_vec();
    let json_doc = br#"{"invoice": 42, "lines": [{"amount": 10.5}]}"#.to_vec();
    let jpeg =
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9".to_vec();
    let tiff = b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let webp = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00".to_vec();
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("pixel.png", "application/pdf", png_bytes(), "image/png"),
        ("scan.jpg", "text/plain", jpeg, "image/jpeg"),
        ("scan.tiff", "image/png", tiff, "image/tiff"),
        ("photo.webp", "application/octet-stream", webp, "image/webp"),
        ("statement.txt", "application/pdf", text, "text/plain"),
        ("bank.csv", "text/plain", csv, "text/csv"),
        ("invoice.json", "text/plain", json_doc, "application/json"),
        (
            "letter.docx",
            "application/zip",
            docx_bytes(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "sheet.xlsx",
            "application/zip",
            xlsx_bytes(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            "letter.odt",
            "application/zip",
            odt_bytes(),
            "application/vnd.oasis.opendocument.text",
        ),
    ];
    for (filename, claimed, bytes, expected) in &cases {
        let document = upload(&app, &anna, filename, claimed, bytes).await;
        assert_eq!(document["content_type"], *expected, "{filename}");
        assert_eq!(document["sha256"], json!(sha256_hex(bytes)), "{filename}");
    }
    assert_eq!(stored_files(&app).len(), cases.len() + 1);
    assert_eq!(temporary_files(&app), Vec::<String>::new());

    // name, type and mission given.
    let mission = app
        .post_json(
            "/api/missions/",
            &json!({"title": "Taxes", "type": "document_retrieval"}),
            Some(&anna.access),
        )
        .await;
    mission.assert_status(201);
    let mission_id = id_of(&mission.body);
    let document = upload_with(
        &app,
        &anna,
        "w2.pdf",
        "application/pdf",
        &pdf_bytes("W-2"),
        &[
            ("name", "  W-2 2025  "),
            ("type", "tax_return"),
            ("mission", &mission_id.to_string()),
        ],
    )
    .await;
    assert_eq!(document["name"], "W-2 2025");
    assert_eq!(document["type"], "tax_return");
    assert_eq!(document["mission"], json!(mission_id));
    let acts = activities_of(&app, &anna, &format!("document={}", id_of(&document))).await;
    assert_eq!(acts[0]["mission"], json!(mission_id), "{acts:?}");
}

async fn refuses_executables_markup_and_archives(app: TestApp) {
    let anna = app.register("anna").await;
    let refused: Vec<(&str, &str, Vec<u8>)> = vec![
        ("tool.pdf", "application/pdf", elf_bytes()),
        ("setup.pdf", "application/pdf", exe_bytes()),
        (
            "page.txt",
            "text/plain",
            b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>".to_vec(),
        ),
        (
            "logo.png",
            "image/png",
            br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec(),
        ),
        (
            "logo.txt",
            "text/plain",
            br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>"#.to_vec(),
        ),
        ("run.txt", "text/plain", b"#!/bin/sh\necho pwned\n".to_vec()),
        (
            "bundle.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            zip_bytes(&[("readme.txt", b"hello"), ("payload.exe", &exe_bytes())]),
        ),
        (
            "photo.jpg",
            "image/jpeg",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,".to_vec(),
        ),
        (
            "notes.txt",
            "text/plain",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03".to_vec(),
        ),
    ];
    for (filename, claimed, bytes) in &refused {
        let r = post_form(
            &app,
            Some(&anna.access),
            &[file_part(filename, claimed, bytes)],
        )
        .await;
        r.assert_status(415).assert_json();
        assert_keys(&r.body, &["detail", "code"], &r.describe());
        assert_eq!(r.body["code"], "unsupported_file_type", "{}", r.describe());
    }
    assert_nothing_stored(&app);
    let acts = activities_of(&app, &anna, "type=document_uploaded").await;
    assert!(acts.is_empty(), "{acts:?}");
}

async fn upload_validation_and_media_type(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let pdf = pdf_bytes("x");

    // Not authenticated.
    let r = post_form(&app, None, &[file_part("a.pdf", "application/pdf", &pdf)]).await;
    r.assert_unauthorized("not_authenticated");

    // No file part, or a browser's empty file input.
    let r = post_form(&app, Some(&anna.access), &[text_part("name", "x")]).await;
    r.assert_body(400, &json!({"file": ["No file was submitted."]}));
    let r = post_form(
        &app,
        Some(&anna.access),
        &[file_part("", "application/octet-stream", b"")],
    )
    .await;
    r.assert_body(400, &json!({"file": ["No file was submitted."]}));
    // An empty file.
    let r = post_form(
        &app,
        Some(&anna.access),
        &[file_part("empty.pdf", "application/pdf", b"")],
    )
    .await;
    r.assert_body(400, &json!({"file": ["The submitted file is empty."]}));
    // A plain field named file.
    let r = post_form(&app, Some(&anna.access), &[text_part("file", "hello")]).await;
    r.assert_field_errors(&["file"]);

    // Bad fields, reported together.
    let r = post_form(
        &app,
        Some(&anna.access),
        &[
            text_part("type", "passport"),
            text_part("mission", "abc"),
            text_part("name", &"n".repeat(256)),
            file_part("a.pdf", "application/pdf", &pdf),
        ],
    )
    .await;
    r.assert_field_errors(&["type", "mission", "name"]);
    assert_nothing_stored(&app);

    // Someone else's mission, and a mission that does not exist.
    let bens = app
        .post_json(
            "/api/missions/",
            &json!({"title": "Ben's", "type": "custom"}),
            Some(&ben.access),
        )
        .await;
    bens.assert_status(201);
    let bens = id_of(&bens.body);
    for mission in [bens, bens + 1000] {
        let r = post_form(
            &app,
            Some(&anna.access),
            &[
                text_part("mission", &mission.to_string()),
                file_part("a.pdf", "application/pdf", &pdf),
            ],
        )
        .await;
        r.assert_body(
            400,
            &json!({"mission": [format!("Invalid pk \"{mission}\" - object does not exist.")]}),
        );
    }
    // The file had been moved into place; it is gone again with the refusal.
    assert_nothing_stored(&app);

    // Not multipart at all.
    let r = app
        .post_json(DOCUMENTS, &json!({"file": "x"}), Some(&anna.access))
        .await;
    r.assert_status(415).assert_json();
    assert_eq!(
        r.body["detail"],
        "Unsupported media type \"application/json\" in request."
    );
    let r = app
        .raw(
            Method::POST,
            DOCUMENTS,
            &[("authorization", &format!("Bearer {}", anna.access))],
            Some(pdf.clone()),
        )
        .await;
    r.assert_status(415).assert_json();
    // Multipart without a boundary, or garbage.
    let r = app
        .raw(
            Method::POST,
            DOCUMENTS,
            &[
                ("authorization", &format!("Bearer {}", anna.access)),
                ("content-type", "multipart/form-data"),
            ],
            Some(b"garbage".to_vec()),
        )
        .await;
    r.assert_status(400).assert_json();
    // Methods the collection does not have.
    let r = app
        .request(Method::PUT, DOCUMENTS, Some(&anna.access), None)
        .await;
    r.assert_body(405, &json!({"detail": "Method \"PUT\" not allowed."}));
    assert_nothing_stored(&app);
}

async fn hostile_file_names_never_pick_the_path(app: TestApp) {
    let anna = app.register("anna").await;
    let text = b"hostile names\n";
    let long = format!("{}.pdf", "a".repeat(300));
    let cases: Vec<(String, &str)> = vec![
        ("filename=\"../../etc/passwd\"".to_owned(), "passwd"),
        (
            "filename=\"..\\\\..\\\\Windows\\\\win.ini\"".to_owned(),
            "win.ini",
        ),
        ("filename=\"/tmp/.bashrc\"".to_owned(), "bashrc"),
        ("filename=\"a\tb.txt\"".to_owned(), "ab.txt"),
        // Percent-encoded newline, NUL and a bidi override in the RFC 5987 form.
        (
            "filename*=UTF-8''evil%0A%00name%E2%80%AEtxt.exe".to_owned(),
            "evilnametxt.exe",
        ),
        ("filename=\"..\"".to_owned(), "file"),
    ];
    for (disposition, expected) in &cases {
        let part = Part {
            name: "file",
            filename: Some(disposition.clone()),
            content_type: Some("text/plain"),
            body: text.to_vec(),
        };
        let r = post_form(&app, Some(&anna.access), &[part]).await;
        r.assert_status(201);
        assert_eq!(r.body["original_filename"], *expected, "{disposition}");
        assert_eq!(r.body["name"], *expected, "{disposition}");
    }
    let document = upload(&app, &anna, &long, "application/pdf", &pdf_bytes("long")).await;
    let kept = document["original_filename"].as_str().expect("name");
    assert_eq!(kept.chars().count(), 255, "{kept}");
    assert!(kept.ends_with(".pdf"), "{kept}");

    // Only server-chosen names exist under the media root (besides the
    // marker naming its database, written by migrate).
    let mut everything = everything_under(&media(&app));
    everything.retain(|path| path != ".autodocs-instance");
    assert_eq!(everything.len(), cases.len() + 1, "{everything:?}");
    for path in &everything {
        let name = path
            .strip_prefix("documents/")
            .unwrap_or_else(|| panic!("{path}"));
        assert!(is_uuid(name), "{path}");
    }
    assert!(!app.db.dir.path().join("etc").exists());
}

async fn download_headers_ranges_and_validators(app: TestApp) {
    let anna = app.register("anna").await;
    let pdf = pdf_bytes("Download me");
    let size = pdf.len();
    let document = upload(
        &app,
        &anna,
        "Steuererklärung 2025 \"final\".pdf",
        "text/plain",
        &pdf,
    )
    .await;
    let id = id_of(&document);
    let path = download_url(id);
    let etag = format!("\"{}\"", sha256_hex(&pdf));

    let (status, headers, body) = fetch(&app, Method::GET, &path, &anna.access, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, pdf);
    assert_eq!(header(&headers, "content-type"), "application/pdf");
    assert_eq!(header(&headers, "content-length"), size.to_string());
    assert_eq!(header(&headers, "etag"), etag);
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"Steuererkl_rung 2025 _final_.pdf\"; \
         filename*=UTF-8''Steuererkl%C3%A4rung%202025%20%22final%22.pdf"
    );
    assert!(headers.get("x-request-id").is_some());

    // HEAD: the same headers, no body.
    let (status, head_headers, body) = fetch(&app, Method::HEAD, &path, &anna.access, &[]).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "etag",
        "content-disposition",
        "x-content-type-options",
    ] {
        assert_eq!(
            header(&head_headers, name),
            header(&headers, name),
            "{name}"
        );
    }

    // Single ranges.
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, size - 1),
        ("bytes=-16", size - 16, size - 1),
        ("bytes=5-100000", 5, size - 1),
    ] {
        let (status, headers, body) =
            fetch(&app, Method::GET, &path, &anna.access, &[("range", range)]).await;
        assert_eq!(status, 206, "{range}");
        assert_eq!(body, &pdf[start..=end], "{range}");
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes {start}-{end}/{size}"),
            "{range}"
        );
        assert_eq!(
            header(&headers, "content-length"),
            (end - start + 1).to_string()
        );
        assert_eq!(header(&headers, "etag"), etag);
    }
    // Unsatisfiable.
    for range in [format!("bytes={size}-"), "bytes=-0".to_owned()] {
        let (status, headers, body) =
            fetch(&app, Method::GET, &path, &anna.access, &[("range", &range)]).await;
        assert_eq!(status, 416, "{range}");
        assert_eq!(header(&headers, "content-range"), format!("bytes */{size}"));
        let body: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(body["detail"].is_string());
    }
    // Several ranges, other units, nonsense, a stale If-Range: the whole file.
    for headers in [
        vec![("range", "bytes=0-1,5-6")],
        vec![("range", "pages=1-2")],
        vec![("range", "bytes=9-1")],
        vec![("range", "bytes=0-9"), ("if-range", "\"not-the-etag\"")],
    ] {
        let (status, _, body) = fetch(&app, Method::GET, &path, &anna.access, &headers).await;
        assert_eq!(status, 200, "{headers:?}");
        assert_eq!(body, pdf);
    }
    let if_range: &[(&str, &str)] = &[("range", "bytes=0-3"), ("if-range", &etag)];
    let (status, _, body) = fetch(&app, Method::GET, &path, &anna.access, if_range).await;
    assert_eq!(status, 206);
    assert_eq!(body, b"%PDF");

    // Conditional requests.
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let (status, headers, body) = fetch(
            &app,
            Method::GET,
            &path,
            &anna.access,
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!(status, 304, "{tag}");
        assert!(body.is_empty());
        assert_eq!(header(&headers, "etag"), etag);
    }
    let (status, _, body) = fetch(
        &app,
        Method::GET,
        &path,
        &anna.access,
        &[("if-none-match", "\"stale\"")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, pdf);

    // Text is sent as UTF-8 text, never sniffed by the browser.
    let text = "Grüße\n".as_bytes();
    let document = upload(&app, &anna, "notes.txt", "text/html", text).await;
    let (status, headers, body) = fetch(
        &app,
        Method::GET,
        &download_url(id_of(&document)),
        &anna.access,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, text);
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");

    // A larger file streams whole.
    let mut big = b"%PDF-1.7\n".to_vec();
    let mut state = 0x2545_f491_u32;
    while big.len() < 3 * 1024 * 1024 + 17 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        big.extend_from_slice(&state.to_le_bytes());
    }
    let document = upload(&app, &anna, "big.pdf", "application/pdf", &big).await;
    assert_eq!(document["size"], json!(big.len()));
    let (status, headers, body) = fetch(
        &app,
        Method::GET,
        &download_url(id_of(&document)),
        &anna.access,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), big.len().to_string());
    assert!(body == big, "the downloaded bytes equal the uploaded ones");
    let middle = format!("bytes={}-{}", 1_000_000, 2_500_000);
    let (status, _, body) = fetch(
        &app,
        Method::GET,
        &download_url(id_of(&document)),
        &anna.access,
        &[("range", &middle)],
    )
    .await;
    assert_eq!(status, 206);
    assert!(body == big[1_000_000..=2_500_000]);

    // Without credentials.
    let r = app.get(&path, None).await;
    r.assert_unauthorized("not_authenticated");
}

async fn verify_detects_changes_on_disk(app: TestApp) {
    let anna = app.register("anna").await;
    let pdf = pdf_bytes("Verify me");
    let document = upload(&app, &anna, "v.pdf", "application/pdf", &pdf).await;
    let id = id_of(&document);
    let stored = stored_path(&app, &document);

    let verify = |expected: &'static str| {
        let app = &app;
        let anna = &anna;
        async move {
            let r = app
                .post_json(&verify_url(id), &json!({}), Some(&anna.access))
                .await;
            r.assert_status(200);
            assert_document_shape(&r.body);
            assert_eq!(r.body["status"], expected, "{}", r.describe());
            r.body
        }
    };

    let verified = verify("verified").await;
    assert_eq!(verified["verified"], true);
    assert!(verified["verified_at"].as_str().is_some_and(is_rfc3339_utc));
    assert_eq!(verified["verification_error"], "");
    assert_eq!(verified["sha256"], document["sha256"]);

    // Same size, one byte changed.
    let mut altered = pdf.clone();
    let last = altered.len() - 3;
    altered[last] ^= 0x20;
    std::fs::write(&stored, &altered).expect("alter the stored file");
    let rejected = verify("rejected").await;
    assert_eq!(rejected["verified"], false);
    assert_eq!(rejected["verified_at"], Value::Null);
    assert_eq!(rejected["verification_error"], "Checksum mismatch.");

    // A different size.
    std::fs::write(&stored, &pdf[..100]).expect("truncate the stored file");
    let rejected = verify("rejected").await;
    assert_eq!(
        rejected["verification_error"],
        format!("Size changed: recorded {} bytes, found 100.", pdf.len())
    );

    // Replaced by an executable of the same size and... the checksum catches it first;
    // a type change alone is reported when size and checksum match (see unit tests).

    // Gone.
    std::fs::remove_file(&stored).expect("remove the stored file");
    let rejected = verify("rejected").await;
    assert_eq!(
        rejected["verification_error"],
        "File is missing from storage."
    );
    let (status, _, _) = fetch(&app, Method::GET, &download_url(id), &anna.access, &[]).await;
    assert_eq!(status, 404);

    // Restored: verified again.
    std::fs::write(&stored, &pdf).expect("restore the stored file");
    verify("verified").await;

    // Filters see the status.
    let r = list(&app, &anna, "verified=true").await;
    assert_eq!(result_ids(&r.body), vec![id]);
    let r = list(&app, &anna, "status=rejected").await;
    assert_eq!(result_ids(&r.body), Vec::<i64>::new());

    let acts = activities_of(&app, &anna, &format!("document={id}")).await;
    let mut seen = kinds(&acts);
    seen.reverse(); // oldest first
    assert_eq!(
        seen,
        [
            "document_uploaded",
            "document_verified",
            "document_rejected",
            "document_rejected",
            "document_rejected",
            "document_verified"
        ],
        "{acts:?}"
    );
    let rejection = acts
        .iter()
        .find(|a| a["type"] == "document_rejected")
        .expect("a rejection");
    assert_eq!(
        rejection["details"]["reason"],
        "File is missing from storage."
    );
}

async fn list_filters_search_ordering_and_pages(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let mission = app
        .post_json(
            "/api/missions/",
            &json!({"title": "Bank", "type": "document_retrieval"}),
            Some(&anna.access),
        )
        .await;
    let mission = id_of(&mission.body);
    let small = upload_with(
        &app,
        &anna,
        "a.txt",
        "text/plain",
        b"tiny\n",
        &[("name", "Alpha statement"), ("type", "bank_statement")],
    )
    .await;
    let medium = upload_with(
        &app,
        &anna,
        "b.pdf",
        "application/pdf",
        &pdf_bytes("medium"),
        &[
            ("name", "Beta invoice"),
            ("type", "invoice"),
            ("mission", &mission.to_string()),
        ],
    )
    .await;
    let large = upload_with(
        &app,
        &anna,
        "c.png",
        "image/png",
        &[png_bytes(), vec![0; 4000]].concat(),
        &[("name", "Gamma STATEMENT 100%"), ("type", "bank_statement")],
    )
    .await;
    upload(&app, &ben, "ben.txt", "text/plain", b"ben's statement\n").await;
    let (s, m, l) = (id_of(&small), id_of(&medium), id_of(&large));
    app.post_json(&verify_url(m), &json!({}), Some(&anna.access))
        .await
        .assert_status(200);

    let r = list(&app, &anna, "").await;
    r.assert_status(200);
    assert_keys(
        &r.body,
        &["count", "next", "previous", "results"],
        &r.describe(),
    );
    assert_eq!(r.body["count"], 3);
    assert_eq!(result_ids(&r.body), vec![l, m, s], "newest first");
    for document in r.body["results"].as_array().expect("results") {
        assert_document_shape(document);
    }

    for (query, expected) in [
        ("type=bank_statement", vec![l, s]),
        ("type=invoice,bank_statement", vec![l, m, s]),
        ("status=verified", vec![m]),
        ("status=uploaded", vec![l, s]),
        ("verified=true", vec![m]),
        ("verified=false", vec![l, s]),
        (&format!("mission={mission}") as &str, vec![m]),
        ("search=statement", vec![l, s]),
        ("search=100%25", vec![l]),
        ("search=_", vec![]),
        ("ordering=size", vec![s, m, l]),
        ("ordering=-size", vec![l, m, s]),
        ("ordering=name", vec![s, m, l]),
        ("ordering=uploaded_at", vec![s, m, l]),
        ("type=bank_statement&ordering=-name", vec![l, s]),
    ] {
        let r = list(&app, &anna, query).await;
        r.assert_status(200);
        assert_eq!(result_ids(&r.body), expected, "{query}\n{}", r.describe());
    }

    for (query, field) in [
        ("type=passport", "type"),
        ("status=lost", "status"),
        ("verified=maybe", "verified"),
        ("mission=abc", "mission"),
        ("ordering=owner", "ordering"),
    ] {
        let r = list(&app, &anna, query).await;
        r.assert_field_errors(&[field]);
    }

    let r = list(&app, &anna, "page_size=2").await;
    assert_eq!(result_ids(&r.body), vec![l, m]);
    assert!(
        r.body["next"]
            .as_str()
            .is_some_and(|next| next.contains("page=2"))
    );
    let r = list(&app, &anna, "page_size=2&page=2").await;
    assert_eq!(result_ids(&r.body), vec![s]);
    let r = list(&app, &anna, "page=9").await;
    r.assert_body(404, &json!({"detail": "Invalid page."}));
}

async fn patch_and_delete(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let create = |user: &Registered, title: &str| {
        let (app, token, title) = (&app, user.access.clone(), title.to_owned());
        async move {
            let r = app
                .post_json(
                    "/api/missions/",
                    &json!({"title": title, "type": "custom"}),
                    Some(&token),
                )
                .await;
            r.assert_status(201);
            id_of(&r.body)
        }
    };
    let mission = create(&anna, "Mine").await;
    let bens = create(&ben, "Ben's").await;
    let document = upload(&app, &anna, "a.pdf", "application/pdf", &pdf_bytes("a")).await;
    let id = id_of(&document);

    let r = app
        .patch_json(
            &document_url(id),
            &json!({"name": " Renamed ", "type": "receipt", "mission": mission,
                    "size": 1, "sha256": "00", "owner": ben.id, "status": "verified"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_document_shape(&r.body);
    assert_eq!(r.body["name"], "Renamed");
    assert_eq!(r.body["type"], "receipt");
    assert_eq!(r.body["mission"], json!(mission));
    // Read-only fields ignored.
    for key in [
        "size",
        "sha256",
        "owner",
        "status",
        "original_filename",
        "uploaded_at",
    ] {
        assert_eq!(r.body[key], document[key], "{key}");
    }
    let acts = activities_of(&app, &anna, &format!("document={id}&type=document_updated")).await;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(
        acts[0]["details"]["fields"],
        json!(["name", "type", "mission"])
    );

    // Detach from the mission; the string form of an id works too.
    let r = app
        .patch_json(
            &document_url(id),
            &json!({"mission": null}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["mission"], Value::Null);
    let r = app
        .patch_json(
            &document_url(id),
            &json!({"mission": mission.to_string()}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["mission"], json!(mission));

    // Refusals.
    let r = app
        .patch_json(
            &document_url(id),
            &json!({"mission": bens}),
            Some(&anna.access),
        )
        .await;
    r.assert_body(
        400,
        &json!({"mission": [format!("Invalid pk \"{bens}\" - object does not exist.")]}),
    );
    let r = app
        .patch_json(
            &document_url(id),
            &json!({"name": "", "type": "passport"}),
            Some(&anna.access),
        )
        .await;
    r.assert_field_errors(&["name", "type"]);
    let r = app
        .put_json(&document_url(id), &json!({"name": "x"}), Some(&anna.access))
        .await;
    r.assert_body(405, &json!({"detail": "Method \"PUT\" not allowed."}));
    let r = app.get(&document_url(id), Some(&anna.access)).await;
    assert_eq!(r.body["mission"], json!(mission));
    assert_eq!(r.body["name"], "Renamed");

    // Delete: the row, then the file.
    assert_eq!(stored_files(&app).len(), 1);
    let r = app.delete(&document_url(id), Some(&anna.access)).await;
    r.assert_status(204);
    assert!(r.text.is_empty());
    app.get(&document_url(id), Some(&anna.access))
        .await
        .assert_not_found();
    app.delete(&document_url(id), Some(&anna.access))
        .await
        .assert_not_found();
    let (status, _, _) = fetch(&app, Method::GET, &download_url(id), &anna.access, &[]).await;
    assert_eq!(status, 404);
    assert_nothing_stored(&app);
    let acts = activities_of(&app, &anna, "type=document_deleted").await;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0]["details"]["document_id"], json!(id));
    assert_eq!(acts[0]["details"]["name"], "Renamed");
    assert_eq!(acts[0]["mission"], json!(mission));
    // Earlier activities of the document survive it.
    let acts = activities_of(&app, &anna, "type=document_uploaded").await;
    assert_eq!(acts.len(), 1);
}

async fn someone_elses_document_is_not_found(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let pdf = pdf_bytes("private");
    let document = upload(&app, &anna, "private.pdf", "application/pdf", &pdf).await;
    let id = id_of(&document);

    // Staff see it (`staff_see_download_and_verify_every_document`); other
    // users do not.
    for user in [&ben] {
        app.get(&document_url(id), Some(&user.access))
            .await
            .assert_not_found();
        app.patch_json(
            &document_url(id),
            &json!({"name": "mine"}),
            Some(&user.access),
        )
        .await
        .assert_not_found();
        app.post_json(&verify_url(id), &json!({}), Some(&user.access))
            .await
            .assert_not_found();
        let r = app.get(&download_url(id), Some(&user.access)).await;
        r.assert_not_found();
        let (status, _, body) =
            fetch(&app, Method::HEAD, &download_url(id), &user.access, &[]).await;
        assert_eq!(status, 404);
        assert!(body.is_empty());
        app.delete(&document_url(id), Some(&user.access))
            .await
            .assert_not_found();
        let r = list(&app, user, "").await;
        assert_eq!(r.body["count"], 0);
        let r = list(&app, user, "search=private").await;
        assert_eq!(r.body["count"], 0);
        // `?owner=` is for staff: anyone else still sees only their own.
        let r = list(&app, user, &format!("owner={}", anna.id)).await;
        r.assert_status(200);
        assert_eq!(r.body["count"], 0, "{}", r.describe());
        // Nor can an activity point at it.
        let r = app
            .post_json(
                "/api/activities/",
                &json!({"type": "note", "message": "x", "document": id}),
                Some(&user.access),
            )
            .await;
        r.assert_body(
            400,
            &json!({"document": [format!("Invalid pk \"{id}\" - object does not exist.")]}),
        );
    }
    // Unknown ids.
    for path in [
        document_url(id + 1000),
        download_url(id + 1000),
        format!("{DOCUMENTS}abc/"),
    ] {
        app.get(&path, Some(&anna.access)).await.assert_not_found();
    }

    // Untouched, and still Anna's.
    let r = app.get(&document_url(id), Some(&anna.access)).await;
    assert_eq!(r.body, document);
    let (status, _, body) = fetch(&app, Method::GET, &download_url(id), &anna.access, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, pdf);
    let r = app
        .post_json(
            "/api/activities/",
            &json!({"type": "note", "message": "read it", "document": id}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body["document"], json!(id));
}

/// Staff see every document as they see every mission: the list (all, or
/// one owner's with `?owner=`), the detail, the bytes (GET, HEAD, Range),
/// verification, edits; the activities name the staff user who acted.
/// Other users still get 404.
async fn staff_see_download_and_verify_every_document(app: TestApp) {
    let anna = app.register("anna").await;
    let ben = app.register("ben").await;
    let staff = app.create_superuser("boss").await;
    let r = app
        .post_json(
            "/api/missions/",
            &json!({"title": "Taxes", "type": "document_retrieval"}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(201);
    let mission = id_of(&r.body);
    let pdf = pdf_bytes("anna's return");
    let document = upload_with(
        &app,
        &anna,
        "return.pdf",
        "application/pdf",
        &pdf,
        &[("mission", &mission.to_string())],
    )
    .await;
    let id = id_of(&document);
    let bens = upload(&app, &ben, "ben.txt", "text/plain", b"ben's note\n").await;

    // The list: everyone's; `?owner=` narrows it; a bad owner is a 400.
    let r = list(&app, &staff, "").await;
    r.assert_status(200);
    let mut all = result_ids(&r.body);
    all.sort_unstable();
    assert_eq!(all, vec![id, id_of(&bens)], "{}", r.describe());
    let r = list(&app, &staff, &format!("owner={}", anna.id)).await;
    assert_eq!(result_ids(&r.body), vec![id], "{}", r.describe());
    assert_eq!(r.body["results"][0], document);
    let r = list(&app, &staff, &format!("owner={}", staff.id)).await;
    assert_eq!(r.body["count"], 0, "{}", r.describe());
    let r = list(&app, &staff, "owner=abc").await;
    r.assert_status(400);
    assert!(r.body.get("owner").is_some(), "{}", r.describe());

    // The document the mission detail lists is reachable.
    let r = app
        .get(&format!("/api/missions/{mission}/"), Some(&staff.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["documents"][0]["id"], json!(id), "{}", r.describe());
    let r = app.get(&document_url(id), Some(&staff.access)).await;
    r.assert_status(200);
    assert_eq!(r.body, document);
    assert_eq!(r.body["owner"], json!(anna.id));

    // The bytes, whole, by HEAD and by range.
    let (status, headers, body) =
        fetch(&app, Method::GET, &download_url(id), &staff.access, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, pdf);
    assert_eq!(header(&headers, "content-type"), "application/pdf");
    let (status, headers, body) =
        fetch(&app, Method::HEAD, &download_url(id), &staff.access, &[]).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "content-length"), pdf.len().to_string());
    let (status, _, body) = fetch(
        &app,
        Method::GET,
        &download_url(id),
        &staff.access,
        &[("range", "bytes=0-7")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(body, &pdf[..8]);

    // Verification, recorded as the staff user's action on Anna's document.
    let r = app
        .post_json(&verify_url(id), &json!({}), Some(&staff.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["status"], "verified", "{}", r.describe());
    assert_eq!(r.body["owner"], json!(anna.id));
    let acts = activities_of(
        &app,
        &staff,
        &format!("document={id}&type=document_verified"),
    )
    .await;
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0]["user"], json!(staff.id), "names the staff user");
    assert_eq!(acts[0]["details"]["owner"], json!(anna.id));
    assert_eq!(acts[0]["mission"], json!(mission));

    // Edits, as on missions.
    let r = app
        .patch_json(
            &document_url(id),
            &json!({"type": "tax_return"}),
            Some(&staff.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["type"], "tax_return");
    assert_eq!(r.body["owner"], json!(anna.id), "still Anna's");

    // Ben still sees nothing of Anna's.
    app.get(&document_url(id), Some(&ben.access))
        .await
        .assert_not_found();
    app.get(&download_url(id), Some(&ben.access))
        .await
        .assert_not_found();
    app.post_json(&verify_url(id), &json!({}), Some(&ben.access))
        .await
        .assert_not_found();
    let r = list(&app, &ben, "").await;
    assert_eq!(result_ids(&r.body), vec![id_of(&bens)]);

    // Staff may delete it, as they may delete a mission.
    app.delete(&document_url(id_of(&bens)), Some(&staff.access))
        .await
        .assert_status(204);
    app.get(&document_url(id_of(&bens)), Some(&ben.access))
        .await
        .assert_not_found();
}

/// Within the text family the client's declared type and file name decide
/// when the content fits both: a note with commas stays `text/plain`, the
/// same bytes named `.csv` are `text/csv`; both verify. Outside the family
/// the content decides: a PDF declared `text/plain` is a PDF.
async fn text_keeps_its_declared_type_within_the_text_family(app: TestApp) {
    let anna = app.register("anna").await;
    let note = b"Call Anna, then Ben.\nBuy milk, eggs and bread, then cook.\nTax papers, in the blue folder.\n";
    for (filename, declared, expected) in [
        ("notes.txt", "text/plain", "text/plain"),
        ("data.csv", "text/csv", "text/csv"),
        ("data.csv", "text/plain", "text/csv"),
        ("upload", "text/csv", "text/csv"),
        ("notes.txt", "application/json", "text/plain"),
    ] {
        let document = upload(&app, &anna, filename, declared, note).await;
        assert!(
            document["content_type"]
                .as_str()
                .is_some_and(|t| t.starts_with(expected)),
            "{filename} declared {declared}: {document}"
        );
        let r = app
            .post_json(
                &verify_url(id_of(&document)),
                &json!({}),
                Some(&anna.access),
            )
            .await;
        r.assert_status(200);
        assert_eq!(
            r.body["status"],
            "verified",
            "{filename} declared {declared} still verifies: {}",
            r.describe()
        );
        assert_eq!(r.body["verification_error"], "", "{}", r.describe());
    }
    let json_doc = br#"{"total": 42, "lines": [1, 2]}"#;
    let document = upload(&app, &anna, "totals.json", "application/json", json_doc).await;
    assert_eq!(document["content_type"], "application/json");
    let document = upload(&app, &anna, "totals.txt", "text/plain", json_doc).await;
    assert!(
        document["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/plain")),
        "{document}"
    );

    let pdf = pdf_bytes("not text");
    let document = upload(&app, &anna, "notes.txt", "text/plain", &pdf).await;
    assert_eq!(document["content_type"], "application/pdf", "{document}");
    let r = app
        .post_json(
            &verify_url(id_of(&document)),
            &json!({}),
            Some(&anna.access),
        )
        .await;
    assert_eq!(r.body["status"], "verified", "{}", r.describe());
    let r = post_form(
        &app,
        Some(&anna.access),
        &[file_part("notes.txt", "text/plain", &elf_bytes())],
    )
    .await;
    r.assert_status(415);
}

async fn mission_detail_lists_its_documents(app: TestApp) {
    let anna = app.register("anna").await;
    let r = app
        .post_json(
            "/api/missions/",
            &json!({"title": "Taxes", "type": "document_retrieval"}),
            Some(&anna.access),
        )
        .await;
    let mission = id_of(&r.body);
    assert_eq!(r.body["documents"], json!([]));
    assert_eq!(r.body["document_count"], 0);
    let first = upload_with(
        &app,
        &anna,
        "1.pdf",
        "application/pdf",
        &pdf_bytes("1"),
        &[("mission", &mission.to_string())],
    )
    .await;
    let second = upload_with(
        &app,
        &anna,
        "2.txt",
        "text/plain",
        b"two\n",
        &[("mission", &mission.to_string())],
    )
    .await;
    upload(&app, &anna, "loose.txt", "text/plain", b"loose\n").await;

    let r = app
        .get(&format!("/api/missions/{mission}/"), Some(&anna.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["document_count"], 2);
    let documents = r.body["documents"].as_array().expect("documents");
    assert_eq!(documents, &vec![second.clone(), first.clone()]);
    let r = app.get("/api/missions/", Some(&anna.access)).await;
    assert_eq!(r.body["results"][0]["document_count"], 2);

    // Deleting the mission keeps its documents, detached.
    app.delete(&format!("/api/missions/{mission}/"), Some(&anna.access))
        .await
        .assert_status(204);
    let r = app
        .get(&document_url(id_of(&first)), Some(&anna.access))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["mission"], Value::Null);
    assert_eq!(stored_files(&app).len(), 3);
}

async fn a_cut_off_upload_leaves_nothing(app: TestApp) {
    let anna = app.register("anna").await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let prelude = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    );
    let head = format!(
        "POST {DOCUMENTS} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 10000000\r\n\r\n{prelude}",
        anna.access
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let line = b"a line of a statement that will never be complete\n";
    let mut sent = 0;
    while sent < 2 * 1024 * 1024 {
        stream
            .write_all(line)
            .await
            .expect("send a part of the file");
        sent += line.len();
    }
    stream.flush().await.expect("flush");
    // The server is receiving it into a temporary file.
    eventually("a temporary file appears", || {
        !temporary_files(&app).is_empty()
    })
    .await;
    drop(stream);
    eventually("the temporary file is removed", || {
        temporary_files(&app).is_empty()
    })
    .await;
    assert_nothing_stored(&app);

    // Cut right after the whole file but before the closing boundary.
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST {DOCUMENTS} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000\r\n\r\n{prelude}\
         complete text\r\n",
        anna.access
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    drop(stream);
    eventually("no temporary file", || temporary_files(&app).is_empty()).await;
    assert_nothing_stored(&app);

    // The server is fine afterwards.
    upload(&app, &anna, "ok.txt", "text/plain", b"fine\n").await;
    assert_eq!(stored_files(&app).len(), 1);
    let acts = activities_of(&app, &anna, "type=document_uploaded").await;
    assert_eq!(
        acts.len(),
        1,
        "only the complete upload is recorded: {acts:?}"
    );
}

async fn size_limit_is_exact_and_keeps_nothing(backend: Backend) {
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__UPLOADS__MAX_BYTES", "4096")]).await;
    let anna = app.register("anna").await;
    let mut text = Vec::new();
    while text.len() < 4096 {
        text.extend_from_slice(b"0123456789abcdef\n");
    }
    text.truncate(4096);
    // Exactly the limit is fine.
    let document = upload(&app, &anna, "limit.txt", "text/plain", &text).await;
    assert_eq!(document["size"], 4096);
    let stored = stored_files(&app);
    // One byte more is not.
    let mut over = text.clone();
    over.push(b'\n');
    let r = post_form(
        &app,
        Some(&anna.access),
        &[file_part("over.txt", "text/plain", &over)],
    )
    .await;
    r.assert_status(413).assert_json();
    assert_eq!(r.body["code"], "file_too_large", "{}", r.describe());
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("4096"))
    );
    assert_eq!(stored_files(&app), stored);
    eventually("no temporary file", || temporary_files(&app).is_empty()).await;

    // Far over, announced: refused before it is read.
    let big = vec![b'x'; 8 * 1024 * 1024];
    let outcome = app
        .client()
        .post(app.url(DOCUMENTS))
        .bearer_auth(&anna.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body(&[file_part("big.txt", "text/plain", &big)]))
        .send()
        .await;
    // The server may close the connection before the client finished sending.
    if let Ok(response) = outcome {
        assert_eq!(response.status().as_u16(), 413);
    }
    // Far over, streamed without a length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = std::iter::once(Ok(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.txt\"\r\n\r\n"
    )
    .into_bytes()))
    .chain((0..64).map(|_| Ok(vec![b'y'; 64 * 1024])))
    .collect();
    let outcome = app
        .client()
        .post(app.url(DOCUMENTS))
        .bearer_auth(&anna.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(response) = outcome {
        assert_eq!(response.status().as_u16(), 413);
    }
    eventually("no temporary file", || temporary_files(&app).is_empty()).await;
    assert_eq!(stored_files(&app), stored);
    let r = list(&app, &anna, "").await;
    assert_eq!(r.body["count"], 1);
    let acts = activities_of(&app, &anna, "type=document_uploaded").await;
    assert_eq!(acts.len(), 1);
}

async fn start_up_sweeps_leftovers(backend: Backend) {
    let root = tempfile::tempdir().expect("media root");
    let tmp = root.path().join(".tmp");
    let files = root.path().join("documents");
    std::fs::create_dir_all(&tmp).expect("tmp");
    std::fs::create_dir_all(&files).expect("documents");
    let old = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
    let backdate = |path: &Path| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(old))
            .expect("backdate");
    };
    // A crashed upload and a file whose row never committed, both old...
    let dead_upload = tmp.join("0b4f0c1e-2f6a-4c55-9b1e-3f2d6f7a8b9c.part");
    std::fs::write(&dead_upload, b"half").expect("write");
    backdate(&dead_upload);
    let orphan = files.join("5d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a");
    std::fs::write(&orphan, b"orphan").expect("write");
    backdate(&orphan);
    // ...and an upload another process is receiving right now, and a stray file.
    let fresh_upload = tmp.join("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d.part");
    std::fs::write(&fresh_upload, b"in flight").expect("write");
    let stray = files.join("README");
    std::fs::write(&stray, b"not ours").expect("write");
    backdate(&stray);

    let media = root.path().display().to_string();
    let app = TestApp::spawn_with_env(backend, &[("AUTODOCS__STORAGE__MEDIA_ROOT", &media)]).await;
    assert!(!dead_upload.exists(), "a dead upload is swept");
    // This database references none of the media root's files: nothing
    // proves the old file is garbage, so it stays (tests/api/sweep.rs).
    assert!(orphan.exists(), "a file of unknown origin is never deleted");
    assert!(fresh_upload.exists(), "an upload in flight is spared");
    assert!(
        stray.exists(),
        "files that are not storage keys are left alone"
    );

    // Documents uploaded now are kept by later sweeps.
    let anna = app.register("anna").await;
    let document = upload(&app, &anna, "keep.txt", "text/plain", b"keep\n").await;
    assert_eq!(files_in(&files).len(), 3, "{:?}", files_in(&files));
    assert_eq!(document["size"], 5);
}
