//! GraphiQL at `/`, with everything it loads served by this server from files embedded in the
//! binary: GraphiQL, React (production builds) and the graphql-ws client, pinned and checked
//! against the npm registry's integrity hashes by `scripts/vendor-graphiql.sh` (see
//! `assets/graphiql/assets.lock`), plus the page's own script and style sheet. Each file is
//! served under a name holding a hash of its content, so it may be cached for a year; the page
//! itself is revalidated on every load, and its `Content-Security-Policy` lets it run and style
//! only with the server's own files and talk only to the server.

use std::sync::LazyLock;

use poem::{
    IntoResponse, Response, handler,
    http::{StatusCode, header},
    web::Path,
};
use sha2::{Digest, Sha256};

/// Where the embedded files are served.
pub const ASSETS_PATH: &str = "/graphiql/assets";

/// The policy of the page: scripts, styles and connections of this origin only (no inline
/// script or style, no `eval`); images and fonts also from `data:` URLs, which GraphiQL's
/// style sheet embeds.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The document the editor opens with: the README's first queries, and how to sign in.
pub const DEFAULT_DOCUMENT: &str = include_str!("../../assets/graphiql/default.graphql");

/// One embedded file.
struct Asset {
    /// Its name in `assets/graphiql/`.
    file: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        Asset {
            file: $file,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../assets/graphiql/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files the page loads, in the order it loads them.
static ASSETS: [Asset; 7] = [
    asset!("graphiql.min.css", CSS),
    asset!("page.css", CSS),
    asset!("react.production.min.js", JS),
    asset!("react-dom.production.min.js", JS),
    asset!("graphiql.min.js", JS),
    asset!("graphql-ws.min.js", JS),
    asset!("page.js", JS),
];

/// An embedded file with the name it is served under: `stem.<12 hex digits of its SHA-256>.ext`.
struct Served {
    asset: &'static Asset,
    name: String,
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            let name = match asset.file.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{}.{hash}", asset.file),
            };
            Served { asset, name }
        })
        .collect()
});

fn url_of(file: &str) -> String {
    let name = SERVED
        .iter()
        .find(|served| served.asset.file == file)
        .map_or(file, |served| served.name.as_str());
    format!("{ASSETS_PATH}/{name}")
}

/// A JSON text safe inside a `<script type="application/json">` block.
fn json_in_html(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

static PAGE: LazyLock<String> = LazyLock::new(|| {
    let config = serde_json::json!({
        "endpoint": "/graphql",
        "subscriptionEndpoint": "/graphql/ws",
        "defaultQuery": DEFAULT_DOCUMENT,
    });
    let styles: String = SERVED
        .iter()
        .filter(|served| served.asset.content_type == CSS)
        .map(|served| {
            format!(
                "    <link rel=\"stylesheet\" href=\"{}\">\n",
                url_of(served.asset.file)
            )
        })
        .collect();
    let scripts: String = SERVED
        .iter()
        .filter(|served| served.asset.content_type == JS)
        .map(|served| {
            format!(
                "    <script src=\"{}\"></script>\n",
                url_of(served.asset.file)
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="robots" content="noindex">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>GraphiQL</title>
    <link rel="icon" href="data:,">
{styles}  </head>
  <body>
    <p class="sign-in-help">Sign in with <code>signUp</code> or <code>login</code>, then put
      <code>{{"Authorization": "Bearer &lt;accessToken&gt;"}}</code> in the Headers pane
      (subscriptions send it over <code>/graphql/ws</code> too), or run <code>login</code> with
      <code>cookie: true</code>: the browser then keeps the session in cookies and this page sends
      the <code>X-CSRF-Token</code> header mutations need.</p>
    <div id="graphiql">Loading…</div>
    <script type="application/json" id="graphiql-config">{config}</script>
{scripts}  </body>
</html>
"#,
        config = json_in_html(&config),
    )
});

/// `GET /`: the page.
#[handler]
pub fn page() -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .body(PAGE.as_str())
}

/// `GET /graphiql/assets/:name`: an embedded file, by its hashed name.
#[handler]
pub fn asset_file(Path(name): Path<String>) -> Response {
    match SERVED.iter().find(|served| served.name == name) {
        Some(served) => Response::builder()
            .content_type(served.asset.content_type)
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(served.asset.bytes),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(file here, SHA-256)` of every line of `assets.lock`.
    fn locked() -> Vec<(String, String)> {
        include_str!("../../assets/graphiql/assets.lock")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 6, "a malformed line of assets.lock: {line}");
                assert!(fields[2].starts_with("sha512-"), "no integrity: {line}");
                (fields[4].to_owned(), fields[5].to_owned())
            })
            .collect()
    }

    #[test]
    fn the_embedded_third_party_files_are_those_of_the_lock() {
        let locked = locked();
        // Every embedded file is either ours (page.*) or locked with its hash.
        for asset in &ASSETS {
            if asset.file.starts_with("page.") {
                continue;
            }
            let (_, sha) = locked
                .iter()
                .find(|(file, _)| file == asset.file)
                .unwrap_or_else(|| panic!("{} is not in assets.lock", asset.file));
            let digest: String = Sha256::digest(asset.bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(&digest, sha, "{} differs from assets.lock", asset.file);
        }
        // And every locked script or style sheet is served.
        for (file, _) in &locked {
            if file.ends_with(".js") || file.ends_with(".css") {
                assert!(
                    ASSETS.iter().any(|asset| asset.file == file),
                    "{file} is locked but not served"
                );
            }
        }
    }

    #[test]
    fn the_page_loads_only_hashed_files_of_its_own() {
        let html = PAGE.as_str();
        for served in SERVED.iter() {
            assert!(html.contains(&format!("\"{ASSETS_PATH}/{}\"", served.name)));
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        // No inline script: the only script element with a body is the JSON data block.
        assert_eq!(html.matches("<script>").count(), 0);
        assert_eq!(html.matches("<script").count(), ASSETS.len() - 2 + 1);
        assert!(!html.contains("style="));
    }

    #[test]
    fn the_settings_block_cannot_end_early() {
        let text = json_in_html(&serde_json::json!({ "q": "</script><script>alert(1)" }));
        assert!(!text.contains('<'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back["q"], "</script><script>alert(1)");
    }

    #[test]
    fn the_default_document_parses() {
        let document = async_graphql::parser::parse_query(DEFAULT_DOCUMENT);
        assert!(document.is_ok(), "{document:?}");
    }
}
