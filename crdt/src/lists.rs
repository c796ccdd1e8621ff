//! Per-user allow and deny lists: entries `{"id","kind","sender","scope"}` kept in the rule
//! book (root keys `list:<id>`, one string each holding the entry's canonical JSON), so they
//! replicate, merge and show in the history exactly like the rules.
//!
//! - `kind`: `allow` (lets the mail past the score thresholds, never past a virus or a
//!   matching rule) or `deny` (quarantines it).
//! - `sender`: `user@example.com` (that address), `example.com` or `@example.com` (any sender
//!   of that domain) or `*.example.com` (that domain and every subdomain). Case-insensitive.
//! - `scope`: `*` (every recipient), `user@example.org` (one recipient) or `example.org`
//!   (every recipient of that domain).
//!
//! Concurrent adds of different entries both survive a merge; a delete concurrent with
//! anything of the same entry wins (the root key is gone); a deleted entry never comes back.

use serde_json::{Value, json};

/// The most list entries a rule book holds; adding beyond it is refused.
pub const LIST_ENTRIES_MAX: usize = 10_000;
/// The longest `sender` or `scope`, in bytes (an address is at most 254).
pub const LIST_FIELD_BYTES_MAX: usize = 254;
/// The root key prefix of list entries in the rule book.
pub(crate) const LIST_KEY_PREFIX: &str = "list:";

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// Past the score thresholds.
    Allow,
    /// Quarantined.
    Deny,
}

impl ListKind {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Allow => "allow",
            ListKind::Deny => "deny",
        }
    }
}

/// One allow or deny entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// A rule id (ULID form); empty before it is stored.
    pub id: String,
    /// Allow or deny.
    pub kind: ListKind,
    /// The sender pattern (lowercased).
    pub sender: String,
    /// The recipient scope (lowercased): `*`, an address or a domain.
    pub scope: String,
}

/// A list entry that does not validate; `field` names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ListError {
    /// The JSON field at fault (`kind`, `sender`, `scope`, `id` or `entry`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn error(field: &str, message: impl Into<String>) -> ListError {
    ListError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl ListEntry {
    /// Reads and validates an entry from its JSON form (`id` optional).
    pub fn from_json(value: &Value) -> Result<ListEntry, ListError> {
        let obj = value
            .as_object()
            .ok_or_else(|| error("entry", "expected a JSON object"))?;
        if let Some(key) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "id" | "kind" | "sender" | "scope"))
        {
            return Err(error(key, "unknown field"));
        }
        let text = |field: &str| -> Result<String, ListError> {
            match obj.get(field) {
                Some(Value::String(s)) => Ok(s.trim().to_ascii_lowercase()),
                Some(_) => Err(error(field, "expected a string")),
                None => Err(error(field, "missing")),
            }
        };
        let kind = match text("kind")?.as_str() {
            "allow" => ListKind::Allow,
            "deny" => ListKind::Deny,
            other => return Err(error("kind", format!("{other:?} is not allow or deny"))),
        };
        let id = match obj.get("id") {
            None => String::new(),
            Some(Value::String(s)) => {
                crate::rule::validate_rule_id(s).map_err(|p| error("id", p.to_string()))?;
                s.clone()
            }
            Some(_) => return Err(error("id", "expected a string")),
        };
        let entry = ListEntry {
            id,
            kind,
            sender: text("sender")?,
            scope: text("scope")?,
        };
        validate_sender(&entry.sender)?;
        validate_scope(&entry.scope)?;
        Ok(entry)
    }

    /// The canonical JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "sender": self.sender,
            "scope": self.scope,
        })
    }

    /// The JSON form without `id` when it is empty (input to [`ListEntry::from_json`]).
    pub fn to_json_without_empty_id(&self) -> Value {
        let mut value = self.to_json();
        if self.id.is_empty()
            && let Some(obj) = value.as_object_mut()
        {
            obj.remove("id");
        }
        value
    }

    /// Whether this entry covers mail from `sender` to `recipient` (both case-insensitive).
    pub fn matches(&self, sender: &str, recipient: &str) -> bool {
        sender_matches(&self.sender, &sender.to_ascii_lowercase())
            && scope_matches(&self.scope, &recipient.to_ascii_lowercase())
    }
}

/// The domain part of an address (the whole text when it has no `@`).
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

fn sender_matches(pattern: &str, sender: &str) -> bool {
    if let Some(parent) = pattern.strip_prefix("*.") {
        let domain = domain_of(sender);
        return domain == parent || domain.ends_with(&format!(".{parent}"));
    }
    match pattern.strip_prefix('@') {
        Some(domain) => sender.contains('@') && domain_of(sender) == domain,
        None if pattern.contains('@') => pattern == sender,
        None => sender.contains('@') && domain_of(sender) == pattern,
    }
}

fn scope_matches(scope: &str, recipient: &str) -> bool {
    match scope {
        "*" => true,
        s if s.contains('@') => s == recipient,
        s => domain_of(recipient) == s,
    }
}

fn validate_domain(field: &str, domain: &str) -> Result<(), ListError> {
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(error(field, format!("{domain:?} is not a domain name")))
    }
}

fn validate_length(field: &str, text: &str) -> Result<(), ListError> {
    if text.is_empty() {
        return Err(error(field, "empty"));
    }
    if text.len() > LIST_FIELD_BYTES_MAX {
        return Err(error(
            field,
            format!("longer than {LIST_FIELD_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

fn validate_address_or_domain(field: &str, text: &str) -> Result<(), ListError> {
    match text.split_once('@') {
        Some((local, domain)) => {
            let local_ok = !local.is_empty()
                && !local.contains('@')
                && local.chars().all(|c| c.is_ascii_graphic() && c != '*');
            if !local_ok {
                return Err(error(field, format!("{text:?} is not an address")));
            }
            validate_domain(field, domain)
        }
        None => validate_domain(field, text),
    }
}

fn validate_sender(sender: &str) -> Result<(), ListError> {
    validate_length("sender", sender)?;
    if let Some(parent) = sender.strip_prefix("*.") {
        return validate_domain("sender", parent);
    }
    match sender.strip_prefix('@') {
        Some(domain) => validate_domain("sender", domain),
        None => validate_address_or_domain("sender", sender),
    }
}

fn validate_scope(scope: &str) -> Result<(), ListError> {
    validate_length("scope", scope)?;
    if scope == "*" {
        return Ok(());
    }
    validate_address_or_domain("scope", scope)
}

/// The list decision for one message from `sender` to `recipients`: `Deny` when any
/// recipient has a matching deny entry; `Allow` when every recipient has a matching allow
/// entry (an allow for one recipient never lets spam through to the others); else `None`.
pub fn list_decision(
    entries: &[ListEntry],
    sender: &str,
    recipients: &[String],
) -> Option<(ListKind, String)> {
    let hit = |kind: ListKind, recipient: &str| {
        entries
            .iter()
            .find(|e| e.kind == kind && e.matches(sender, recipient))
    };
    if let Some(e) = recipients.iter().find_map(|r| hit(ListKind::Deny, r)) {
        return Some((ListKind::Deny, e.id.clone()));
    }
    let allows: Option<Vec<&ListEntry>> =
        recipients.iter().map(|r| hit(ListKind::Allow, r)).collect();
    match allows {
        Some(hits) if !hits.is_empty() => Some((ListKind::Allow, hits[0].id.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
