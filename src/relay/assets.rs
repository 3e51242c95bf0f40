//! Static files: the demo page (`--www`) at `/` and the built npm package (`--pkg`) at `/pkg/`.
//!
//! Compression: the package is served from precompressed copies when the client accepts them.
//! `scripts/build-pkg.sh` writes a `.br` (brotli) and a `.gz` (gzip) beside each of its files
//! that shrinks, and the response then carries `Content-Encoding` (the 1.2 MB `.wasm` travels as
//! about 290 KB of brotli); a client that accepts neither gets the plain bytes. The page's own
//! files are small and edited in place, so a precompressed copy could go stale beside them:
//! they are gzipped as they are served instead. Both say `Vary: Accept-Encoding`, so a shared
//! cache keeps the variants apart.
//!
//! Caching: none of these names carries a content hash (the page imports `/pkg/ants_coord.js`,
//! whose glue loads `/pkg/ants_coord_bg.wasm`), and a glue file of one build with the `.wasm`
//! of another fails to instantiate. So nothing may be reused unchecked: every file is
//! `no-cache`, stored and revalidated with `If-Modified-Since` (a `304` with no body on a repeat
//! visit). The package adds `public`: it is the same bytes for every visitor, so a shared cache
//! may keep it too.

use std::path::Path;

use axum::http::{header, HeaderValue};
use tower_http::compression::Compression;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeader;

/// `Cache-Control` of the page's own files (`--www`).
const PAGE_CACHE_CONTROL: &str = "no-cache";
/// `Cache-Control` of the npm package's files (`/pkg/`).
const PKG_CACHE_CONTROL: &str = "public, no-cache";

/// The page's files: gzipped as served, revalidated on every visit.
pub(crate) type Page = Compression<SetResponseHeader<ServeDir, HeaderValue>>;

/// The package's files: precompressed copies, revalidated on every visit.
pub(crate) type Package = SetResponseHeader<SetResponseHeader<ServeDir, HeaderValue>, HeaderValue>;

/// The demo page's directory, served at `/`.
pub(crate) fn page(dir: &Path) -> Page {
    let files = SetResponseHeader::overriding(
        ServeDir::new(dir),
        header::CACHE_CONTROL,
        HeaderValue::from_static(PAGE_CACHE_CONTROL),
    );
    Compression::new(files)
}

/// The built npm package's directory, served at `/pkg/`.
pub(crate) fn package(dir: &Path) -> Package {
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    let cached = SetResponseHeader::overriding(
        files,
        header::CACHE_CONTROL,
        HeaderValue::from_static(PKG_CACHE_CONTROL),
    );
    SetResponseHeader::appending(
        cached,
        header::VARY,
        HeaderValue::from_static("accept-encoding"),
    )
}
