//! The relay's static files: the page at `/` and the npm package at `/pkg/`, served from their
//! precompressed copies when the client accepts them, with caching headers.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

use common::relay::*;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// A response split into its lowercased header lines and its body bytes.
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn get(addr: SocketAddr, path: &str, accept_encoding: Option<&str>) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accept = accept_encoding
        .map(|a| format!("Accept-Encoding: {a}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if response.header("transfer-encoding") == Some("chunked") {
        response.body = dechunk(&response.body);
    } else if let Some(length) = response.header("content-length") {
        assert_eq!(length.parse::<usize>().unwrap(), response.body.len());
    }
    response
}

/// The payload of a `Transfer-Encoding: chunked` body (RFC 9112 section 7.1).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n");
        raw = &raw[size + 2..];
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Writes `name` and, as `scripts/build-pkg.sh` does for pkg/, its `.gz` copy into `dir`.
fn write_with_gzip(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.gz")), gzip(bytes)).unwrap();
}

/// Something shaped like a `.wasm` module that compresses well, as a real one does.
fn wasm_like() -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    for i in 0..20_000u32 {
        bytes.extend_from_slice(&(i % 251).to_le_bytes());
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_wasm_is_served_gzip_when_accepted_with_cache_headers() {
    let root = temp_dir("assets");
    let (www, pkg) = (root.join("www"), root.join("pkg"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    let wasm = wasm_like();
    write_with_gzip(&pkg, "ants_coord_bg.wasm", &wasm);
    let html = "<!doctype html><title>demo</title><p>".to_owned() + &"ants ".repeat(200);
    std::fs::write(www.join("index.html"), &html).unwrap();
    let relay = start_relay_with(root.join("data"), |c| c.www = Some(www.clone())).await;
    let addr = relay.local_addr();

    let zipped = get(addr, "/pkg/ants_coord_bg.wasm", Some("gzip, deflate")).await;
    assert!(
        zipped.status.starts_with("HTTP/1.1 200"),
        "{}",
        zipped.status
    );
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert_eq!(zipped.header("content-type"), Some("application/wasm"));
    assert_eq!(zipped.header("cache-control"), Some("public, no-cache"));
    assert!(
        zipped.header("last-modified").is_some(),
        "revalidation needs Last-Modified"
    );
    assert_eq!(zipped.header("vary"), Some("accept-encoding"));
    assert!(
        zipped.body.len() < wasm.len() / 2,
        "{} bytes sent",
        zipped.body.len()
    );
    assert_eq!(gunzip(&zipped.body), wasm);

    let plain = get(addr, "/pkg/ants_coord_bg.wasm", None).await;
    assert!(plain.status.starts_with("HTTP/1.1 200"), "{}", plain.status);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("cache-control"), Some("public, no-cache"));
    assert_eq!(plain.body, wasm);

    // A client that accepts only an encoding with no copy on disk gets the plain bytes too.
    let brotli_only = get(addr, "/pkg/ants_coord_bg.wasm", Some("br")).await;
    assert_eq!(brotli_only.header("content-encoding"), None);
    assert_eq!(brotli_only.body, wasm);

    // The page: gzipped as it is served (no copy on disk to go stale), revalidated on every
    // visit so an edit shows at once.
    let page = get(addr, "/index.html", Some("gzip")).await;
    assert!(page.status.starts_with("HTTP/1.1 200"), "{}", page.status);
    assert_eq!(page.header("content-encoding"), Some("gzip"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("vary"), Some("accept-encoding"));
    assert_eq!(gunzip(&page.body), html.as_bytes());
    let root_page = get(addr, "/", None).await;
    assert!(
        root_page.status.starts_with("HTTP/1.1 200"),
        "{}",
        root_page.status
    );
    assert_eq!(root_page.header("content-encoding"), None);
    assert_eq!(root_page.body, html.as_bytes());
    assert_eq!(root_page.header("cache-control"), Some("no-cache"));
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_visit_revalidates_to_304_without_a_body() {
    let root = temp_dir("assets-304");
    let (www, pkg) = (root.join("www"), root.join("pkg"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&pkg).unwrap();
    write_with_gzip(&pkg, "ants_coord_bg.wasm", &wasm_like());
    let relay = start_relay_with(root.join("data"), |c| c.www = Some(www.clone())).await;
    let addr = relay.local_addr();

    let first = get(addr, "/pkg/ants_coord_bg.wasm", Some("gzip")).await;
    let modified = first.header("last-modified").unwrap().to_owned();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /pkg/ants_coord_bg.wasm HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\
         If-Modified-Since: {modified}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 304"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "a 304 has no body: {text}");
    relay.shutdown().await.unwrap();
}
