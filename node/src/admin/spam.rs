//! `GET /api/v1/spam/symbols` (the symbol table the weights override) and the parsing of a
//! `PUT /api/v1/settings/spam` body, whose type errors name their key like the validation
//! errors do (`dto::invalid_settings` makes that the `field`), so the console shows each at
//! its field.

use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::spam::SpamSettings;
use crate::spam::symbols::SYMBOLS;

/// The keys of a spam settings document holding a number or `null`.
const THRESHOLD_KEYS: [&str; 3] = ["tag", "quarantine", "reject"];

/// `GET /api/v1/spam/symbols`: `{"symbols": [...]}`.
#[derive(Debug, Serialize)]
pub struct SymbolsDto {
    /// Every symbol of the table.
    pub symbols: Vec<SymbolDto>,
}

/// One symbol of the table.
#[derive(Debug, Serialize)]
pub struct SymbolDto {
    /// Its name, as `weights` keys it.
    pub name: &'static str,
    /// Its check family (`auth`, `headers`, …).
    pub family: &'static str,
    /// Its default weight, used unless the settings override it.
    pub weight: f64,
    /// What it means, one line.
    pub description: &'static str,
}

/// `GET /api/v1/spam/symbols`: every symbol with its family, default weight and meaning,
/// in the table's order (grouped by family).
pub async fn symbols() -> Json<SymbolsDto> {
    Json(symbol_table())
}

fn symbol_table() -> SymbolsDto {
    let symbols = SYMBOLS
        .iter()
        .map(|def| SymbolDto {
            name: def.name,
            family: def.family.as_str(),
            weight: def.weight,
            description: def.description,
        })
        .collect();
    SymbolsDto { symbols }
}

/// Parses a spam settings document. A value of the wrong type is an error naming its key
/// (`tag: …`, `weights.DATE_IN_PAST: …`), answered with `invalid_settings` as 400
/// `{"error","field"}`; what is not an object, or anything else serde refuses, names no key.
/// Validation of the values is the caller's.
pub fn parse_settings(body: &[u8]) -> Result<SpamSettings, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("spam settings: {e}"))?;
    // serde would read a struct from an array too (`[]`: every default): only an object is one.
    let Some(doc) = value.as_object() else {
        return Err("spam settings: expected a JSON object".into());
    };
    check_types(doc)?;
    serde_json::from_value(value).map_err(|e| format!("spam settings: {e}"))
}

/// The first value of the wrong type in `doc`, as `key: why`.
fn check_types(doc: &Map<String, Value>) -> Result<(), String> {
    for key in THRESHOLD_KEYS {
        match doc.get(key) {
            Some(v) if !(v.is_number() || v.is_null()) => {
                return Err(format!("{key}: {v} is not a number (null turns it off)"));
            }
            _ => {}
        }
    }
    match doc.get("subject_prefix") {
        Some(v) if !(v.is_string() || v.is_null()) => {
            return Err(format!("subject_prefix: {v} is not a string"));
        }
        _ => {}
    }
    match doc.get("weights") {
        Some(Value::Object(weights)) => {
            if let Some((name, v)) = weights.iter().find(|(_, v)| !v.is_number()) {
                return Err(format!("weights.{name}: {v} is not a number"));
            }
        }
        Some(v) if !v.is_null() => {
            return Err(format!(
                "weights: {v} is not an object of symbol names and numbers"
            ));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: &str) -> String {
        let doc: Value = serde_json::from_str(body).unwrap();
        check_types(doc.as_object().unwrap()).unwrap_err()
    }

    #[test]
    fn type_errors_name_their_key() {
        assert_eq!(
            error(r#"{"weights": {"BAYES_99": 1, "DATE_IN_PAST": "abc"}}"#),
            "weights.DATE_IN_PAST: \"abc\" is not a number"
        );
        assert_eq!(
            error(r#"{"weights": {"DATE_IN_PAST": null}}"#),
            "weights.DATE_IN_PAST: null is not a number"
        );
        assert_eq!(
            error(r#"{"tag": "5"}"#),
            "tag: \"5\" is not a number (null turns it off)"
        );
        assert_eq!(
            error(r#"{"subject_prefix": 3}"#),
            "subject_prefix: 3 is not a string"
        );
        assert!(error(r#"{"weights": [1]}"#).starts_with("weights: [1] is not an object"));
    }

    #[test]
    fn good_documents_parse() {
        let s = parse_settings(br#"{"tag": null, "weights": {"DATE_IN_PAST": 0.5}}"#).unwrap();
        assert_eq!(s.tag, None);
        assert_eq!(s.weights["DATE_IN_PAST"], 0.5);
        assert!(parse_settings(br#"{"tagg": 1}"#).is_err(), "unknown keys");
        assert!(parse_settings(b"[]").is_err());
        assert!(parse_settings(b"not json").is_err());
    }

    #[test]
    fn the_table_lists_every_symbol_with_its_family() {
        let table = symbol_table();
        assert_eq!(table.symbols.len(), SYMBOLS.len());
        let date = table
            .symbols
            .iter()
            .find(|s| s.name == "DATE_IN_PAST")
            .unwrap();
        assert_eq!(date.family, "headers");
    }
}
