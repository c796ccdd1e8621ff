//! The console's files, built into the binary (nodes are often offline: nothing is fetched
//! at run time). Third-party files live under `assets/vendor/`, pinned; their versions and
//! licences are listed in the README ("Console").

/// One built-in file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its path under `/ui/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

/// Every file the console serves.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("overview.js", JS),
    asset!("rules.js", JS),
    asset!("quarantine.js", JS),
    asset!("ops.js", JS),
    asset!("form.js", JS),
    asset!("lists.js", JS),
    asset!("settings.js", JS),
    asset!("weights.js", JS),
    asset!("vendor/uPlot.esm.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
    asset!("vendor/uPlot.LICENSE.txt", TEXT),
];

/// The file at `name` (a path under `/ui/`), if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_and_nothing_else() {
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{} is empty", a.name);
            assert_eq!(find(a.name).map(|f| f.name), Some(a.name));
        }
        assert!(find("../Cargo.toml").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn no_page_pulls_anything_from_the_network() {
        for a in ASSETS.iter().filter(|a| !a.name.starts_with("vendor/")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for bad in ["http://", "https://", "innerHTML", "eval("] {
                assert!(!text.contains(bad), "{} contains {bad}", a.name);
            }
        }
    }
}
