//! The cluster-wide spam settings: the score thresholds of the verdicts and per-symbol
//! weight overrides. A serde type with defaults, validated with messages that name the
//! bad key; the mesh replicates it like the rule book.

use std::collections::BTreeMap;

use mxmesh_crdt::rule::Action;
use serde::{Deserialize, Serialize};

use super::{Score, symbols};
use crate::filter::Verdict;

/// Default `tag` threshold.
pub const TAG_DEFAULT: f64 = 5.0;
/// Default `quarantine` threshold.
pub const QUARANTINE_DEFAULT: f64 = 10.0;
/// Default `reject` threshold.
pub const REJECT_DEFAULT: f64 = 15.0;
/// Largest magnitude of a threshold.
pub const THRESHOLD_MAX: f64 = 1000.0;
/// Largest magnitude of a weight.
pub const WEIGHT_MAX: f64 = 100.0;
/// Longest subject prefix, in characters.
pub const SUBJECT_PREFIX_LEN_MAX: usize = 64;

/// Thresholds and weights, cluster-wide. JSON example:
/// `{"tag": 5, "quarantine": 10, "reject": null, "subject_prefix": "[SPAM]",
///   "weights": {"DATE_IN_PAST": 0.5}}` (`null` turns a verdict off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamSettings {
    /// A score at or above this tags the message (`X-Spam-Flag: YES`); `None`: never.
    pub tag: Option<f64>,
    /// A score at or above this quarantines the message; `None`: never.
    pub quarantine: Option<f64>,
    /// A score at or above this rejects the message (5xx); `None`: never.
    pub reject: Option<f64>,
    /// Put in front of the Subject of tagged mail, when set (e.g. `[SPAM]`).
    pub subject_prefix: Option<String>,
    /// Weights that replace the defaults of the table, by symbol name.
    pub weights: BTreeMap<String, f64>,
}

impl Default for SpamSettings {
    fn default() -> Self {
        SpamSettings {
            tag: Some(TAG_DEFAULT),
            quarantine: Some(QUARANTINE_DEFAULT),
            reject: Some(REJECT_DEFAULT),
            subject_prefix: None,
            weights: BTreeMap::new(),
        }
    }
}

/// A setting that does not validate: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingsError {
    /// The key, e.g. `quarantine` or `weights.DATE_IN_PAST`.
    pub key: String,
    /// What is wrong with its value.
    pub message: String,
}

fn bad(key: &str, message: String) -> Result<(), SettingsError> {
    Err(SettingsError {
        key: key.to_string(),
        message,
    })
}

impl SpamSettings {
    /// The weight of `name`: the override, else the table's default, else 0.
    pub fn weight(&self, name: &str) -> f64 {
        self.weights
            .get(name)
            .copied()
            .or_else(|| symbols::lookup(name).map(|def| def.weight))
            .unwrap_or(0.0)
    }

    /// Checks what serde cannot: finite numbers in range, thresholds in order
    /// (tag ≤ quarantine ≤ reject among those set), known symbol names, a one-line prefix.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let thresholds = [
            ("tag", self.tag),
            ("quarantine", self.quarantine),
            ("reject", self.reject),
        ];
        let mut previous: Option<(&str, f64)> = None;
        for (key, value) in thresholds {
            let Some(value) = value else { continue };
            if !value.is_finite() || value.abs() > THRESHOLD_MAX {
                bad(
                    key,
                    format!("{value} is outside -{THRESHOLD_MAX}..={THRESHOLD_MAX}"),
                )?;
            }
            if let Some((below, at)) = previous.filter(|(_, at)| value < *at) {
                bad(key, format!("{value} is below {below} ({at})"))?;
            }
            previous = Some((key, value));
        }
        if let Some(prefix) = &self.subject_prefix {
            if prefix.chars().count() > SUBJECT_PREFIX_LEN_MAX {
                bad(
                    "subject_prefix",
                    format!("longer than {SUBJECT_PREFIX_LEN_MAX} characters"),
                )?;
            }
            if prefix.chars().any(char::is_control) {
                bad(
                    "subject_prefix",
                    "must not contain control characters".into(),
                )?;
            }
        }
        for (name, weight) in &self.weights {
            let key = format!("weights.{name}");
            if symbols::lookup(name).is_none() {
                bad(
                    &key,
                    "unknown symbol (see the symbol table in the README)".into(),
                )?;
            }
            if !weight.is_finite() || weight.abs() > WEIGHT_MAX {
                bad(
                    &key,
                    format!("{weight} is outside -{WEIGHT_MAX}..={WEIGHT_MAX}"),
                )?;
            }
        }
        Ok(())
    }
}

/// The verdict the thresholds give `score` (used when no rule matched): the highest
/// threshold reached decides; below every one, accept.
pub fn verdict_for(score: &Score, settings: &SpamSettings) -> Verdict {
    let reached = |threshold: Option<f64>| threshold.is_some_and(|t| score.total >= t);
    let (action, threshold) = if reached(settings.reject) {
        (Action::Reject, settings.reject)
    } else if reached(settings.quarantine) {
        (Action::Quarantine, settings.quarantine)
    } else if reached(settings.tag) {
        (Action::Tag, settings.tag)
    } else {
        return Verdict::no_match();
    };
    let threshold = threshold.unwrap_or_default();
    Verdict {
        action,
        reason: format!(
            "spam score {:.2} reached the {} threshold {threshold}",
            score.total,
            action.as_str()
        ),
        subject_prefix: settings
            .subject_prefix
            .clone()
            .filter(|_| action == Action::Tag),
        ..Verdict::no_match()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_total(total: f64) -> Score {
        Score {
            total,
            symbols: Vec::new(),
        }
    }

    #[test]
    fn thresholds_decide() {
        let settings = SpamSettings {
            subject_prefix: Some("[SPAM]".into()),
            ..SpamSettings::default()
        };
        let action = |total| verdict_for(&with_total(total), &settings).action;
        assert_eq!(action(4.99), Action::Accept);
        assert_eq!(action(5.0), Action::Tag);
        assert_eq!(action(9.9), Action::Tag);
        assert_eq!(action(10.0), Action::Quarantine);
        assert_eq!(action(15.0), Action::Reject);
        assert_eq!(action(-20.0), Action::Accept);
        let tag = verdict_for(&with_total(6.0), &settings);
        assert_eq!(tag.subject_prefix.as_deref(), Some("[SPAM]"));
        assert_eq!(tag.rule_id, None);
        assert_eq!(tag.reason, "spam score 6.00 reached the tag threshold 5");
        let quarantine = verdict_for(&with_total(11.0), &settings);
        assert_eq!(quarantine.subject_prefix, None);
    }

    #[test]
    fn a_threshold_set_to_none_is_off() {
        let settings = SpamSettings {
            reject: None,
            ..SpamSettings::default()
        };
        assert_eq!(
            verdict_for(&with_total(100.0), &settings).action,
            Action::Quarantine
        );
    }

    #[test]
    fn settings_from_json_with_defaults() {
        let s: SpamSettings = serde_json::from_str(
            r#"{"quarantine": 8, "reject": null, "weights": {"BAYES_99": 6}}"#,
        )
        .unwrap();
        assert_eq!(s.tag, Some(TAG_DEFAULT));
        assert_eq!(s.quarantine, Some(8.0));
        assert_eq!(s.reject, None);
        assert_eq!(s.weight("BAYES_99"), 6.0);
        assert_eq!(
            s.weight("DATE_IN_PAST"),
            symbols::lookup("DATE_IN_PAST").unwrap().weight
        );
        assert!(s.validate().is_ok());
        let unknown = serde_json::from_str::<SpamSettings>(r#"{"tagg": 1}"#).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `tagg`"),
            "{unknown}"
        );
    }

    #[test]
    fn validation_names_the_bad_key() {
        let cases: Vec<(SpamSettings, &str)> = vec![
            (
                SpamSettings {
                    quarantine: Some(4.0),
                    ..SpamSettings::default()
                },
                "quarantine: 4 is below tag (5)",
            ),
            (
                SpamSettings {
                    reject: Some(f64::INFINITY),
                    ..SpamSettings::default()
                },
                "reject: inf is outside -1000..=1000",
            ),
            (
                SpamSettings {
                    weights: [("NOT_A_SYMBOL".to_string(), 1.0)].into(),
                    ..SpamSettings::default()
                },
                "weights.NOT_A_SYMBOL: unknown symbol (see the symbol table in the README)",
            ),
            (
                SpamSettings {
                    weights: [("BAYES_99".to_string(), 500.0)].into(),
                    ..SpamSettings::default()
                },
                "weights.BAYES_99: 500 is outside -100..=100",
            ),
            (
                SpamSettings {
                    subject_prefix: Some("a\r\nb".into()),
                    ..SpamSettings::default()
                },
                "subject_prefix: must not contain control characters",
            ),
        ];
        for (settings, expected) in cases {
            assert_eq!(settings.validate().unwrap_err().to_string(), expected);
        }
        let off = SpamSettings {
            tag: None,
            quarantine: Some(3.0),
            ..SpamSettings::default()
        };
        assert!(
            off.validate().is_ok(),
            "a threshold that is off does not order the others"
        );
    }
}
