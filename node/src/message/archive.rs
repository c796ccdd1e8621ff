//! What is inside zip attachments: the names and true types of their entries, and whether
//! the archive is a decompression bomb. Pure (bytes in, report out) and bounded: every
//! byte expanded counts against the message's budget, whatever the archive claims, so a
//! bomb costs at most the limits, and a bomb is a verdict (`archive.bomb`), never a pass.

use std::io::{Cursor, Read};

use zip::ZipArchive;

use super::detect_type;

/// Bytes of each entry kept for type detection (`infer` needs far fewer).
pub const TYPE_SNIFF_BYTES: usize = 8 * 1024;
/// An archive expanding to less than this is never a bomb by ratio (tiny files
/// compress well without being dangerous).
pub const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
/// The content type that marks a nested archive to open.
const ZIP_TYPE: &str = "application/zip";

/// The limits for one message (all its zip attachments together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Archives nested inside archives, at most (the attachment itself is depth 1).
    pub depth_max: u32,
    /// Entries across all archives, at most.
    pub entries_max: u32,
    /// Bytes expanded across all archives, at most.
    pub expanded_bytes_max: u64,
    /// Expanded size / compressed size of one archive, at most.
    pub ratio_max: u64,
}

impl Default for ArchiveLimits {
    /// The defaults of the `[filter] archive_max_*` keys.
    fn default() -> Self {
        use crate::config::filter as keys;
        ArchiveLimits {
            depth_max: keys::ARCHIVE_DEPTH_DEFAULT,
            entries_max: keys::ARCHIVE_ENTRIES_DEFAULT,
            expanded_bytes_max: keys::ARCHIVE_EXPANDED_DEFAULT_BYTES,
            ratio_max: keys::ARCHIVE_RATIO_DEFAULT,
        }
    }
}

/// Why an archive is a bomb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bomb {
    /// Archives nested deeper than `depth_max`.
    Depth,
    /// More entries than `entries_max`.
    Entries,
    /// More bytes expanded than `expanded_bytes_max`.
    Expanded,
    /// One archive expands more than `ratio_max` times its size.
    Ratio,
    /// Entries share bytes (overlapping-entry bomb).
    Overlap,
}

/// One file inside an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path inside the archive.
    pub name: String,
    /// Content type from the entry's bytes (`application/octet-stream` when unreadable).
    pub detected_type: String,
    /// The entry is password-protected: its bytes cannot be read without the password.
    pub encrypted: bool,
}

/// What the inspection of one message's archives found.
#[derive(Debug, Default)]
pub struct Inspector {
    limits: Option<ArchiveLimits>,
    expanded_bytes: u64,
    entries_seen: u64,
    /// Entries found, in archive order (nested archives' entries follow their archive).
    pub entries: Vec<Entry>,
    /// Set at the first limit crossed; inspection stops there.
    pub bomb: Option<Bomb>,
}

impl Inspector {
    pub fn new(limits: ArchiveLimits) -> Inspector {
        Inspector {
            limits: Some(limits),
            ..Inspector::default()
        }
    }

    /// Inspects one attachment whose bytes are a zip archive.
    pub fn inspect(&mut self, bytes: &[u8]) {
        self.archive(bytes, 1);
    }

    fn limits(&self) -> ArchiveLimits {
        self.limits.expect("Inspector::new sets the limits")
    }

    fn archive(&mut self, bytes: &[u8], depth: u32) {
        if self.bomb.is_some() {
            return;
        }
        if depth > self.limits().depth_max {
            self.bomb = Some(Bomb::Depth);
            return;
        }
        // Not a readable zip: there is nothing inside to describe or to expand.
        let Ok(mut archive) = ZipArchive::new(Cursor::new(bytes)) else {
            return;
        };
        if archive.has_overlapping_entries().unwrap_or(true) {
            self.bomb = Some(Bomb::Overlap);
            return;
        }
        self.entries_seen += archive.len() as u64;
        if self.entries_seen > u64::from(self.limits().entries_max) {
            self.bomb = Some(Bomb::Entries);
            return;
        }
        let mut archive_expanded_bytes = 0;
        for index in 0..archive.len() {
            let Some(nested) = self.entry(&mut archive, index, &mut archive_expanded_bytes) else {
                continue;
            };
            let ratio_bound = (bytes.len() as u64).saturating_mul(self.limits().ratio_max);
            if self.bomb.is_none()
                && archive_expanded_bytes > RATIO_FLOOR_BYTES
                && archive_expanded_bytes > ratio_bound
            {
                self.bomb = Some(Bomb::Ratio);
            }
            if self.bomb.is_some() {
                return;
            }
            if let Some(inner) = nested {
                self.archive(&inner, depth + 1);
            }
        }
    }

    /// Expands entry `index`, records it, and returns `Some(Some(bytes))` when it is itself
    /// a zip to open, `Some(None)` when done, `None` for a directory.
    fn entry(
        &mut self,
        archive: &mut ZipArchive<Cursor<&[u8]>>,
        index: usize,
        archive_expanded_bytes: &mut u64,
    ) -> Option<Option<Vec<u8>>> {
        let name = match archive.name_for_index(index) {
            Some(Ok(name)) => name.into_owned(),
            _ => String::new(),
        };
        let file = match archive.by_index(index) {
            Ok(file) => file,
            Err(error) => {
                // Encrypted or an unsupported method: named, but its bytes are unknown.
                let encrypted = matches!(
                    error,
                    zip::result::ZipError::UnsupportedArchive(
                        zip::result::ZipError::PASSWORD_REQUIRED
                    )
                );
                self.record(name, "application/octet-stream".into(), encrypted);
                return Some(None);
            }
        };
        if file.is_dir() {
            return None;
        }
        let budget = self
            .limits()
            .expanded_bytes_max
            .saturating_sub(self.expanded_bytes);
        let (head, total, kept) = expand(file, budget);
        self.expanded_bytes += total;
        *archive_expanded_bytes += total;
        if self.expanded_bytes > self.limits().expanded_bytes_max {
            self.bomb = Some(Bomb::Expanded);
        }
        let detected = detect_type(&head);
        let nested = (detected == ZIP_TYPE).then_some(kept).flatten();
        self.record(name, detected, false);
        Some(nested)
    }

    fn record(&mut self, name: String, detected_type: String, encrypted: bool) {
        self.entries.push(Entry {
            name,
            detected_type,
            encrypted,
        });
    }
}

/// Reads at most `budget + 1` bytes of `reader` (one more than allowed proves the budget
/// is exceeded). Returns the first [`TYPE_SNIFF_BYTES`], the count read, and every byte
/// when the head says zip (a nested archive to open). A read error ends the entry.
fn expand(reader: impl Read, budget: u64) -> (Vec<u8>, u64, Option<Vec<u8>>) {
    let mut reader = reader.take(budget.saturating_add(1));
    let mut head = vec![0u8; TYPE_SNIFF_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    head.truncate(filled);
    let is_zip = detect_type(&head) == ZIP_TYPE;
    let mut rest = Vec::new();
    let rest_len = if is_zip {
        let _ = reader.read_to_end(&mut rest);
        rest.len() as u64
    } else {
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap_or(0)
    };
    let total = filled as u64 + rest_len;
    let kept = is_zip.then(|| [head.as_slice(), rest.as_slice()].concat());
    (head, total, kept)
}

#[cfg(test)]
mod tests;
