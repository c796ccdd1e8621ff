use std::io::Write;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::*;

const LIMITS: ArchiveLimits = ArchiveLimits {
    depth_max: 3,
    entries_max: 100,
    expanded_bytes_max: 16 * 1024 * 1024,
    ratio_max: 100,
};

/// A 64-bit Linux executable header (64 bytes: a file shorter than an ELF header is not one).
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00\x01\x00\x00\x00\
    \x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
    \x00\x00\x00\x00\x40\x00\x38\x00\x00\x00\x40\x00\x00\x00\x00\x00";

fn zip_of(files: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn inspect(limits: ArchiveLimits, bytes: &[u8]) -> Inspector {
    let mut inspector = Inspector::new(limits);
    inspector.inspect(bytes);
    inspector
}

#[test]
fn entries_are_named_and_typed_by_their_bytes() {
    let zip = zip_of(
        &[("invoice.pdf", ELF), ("notes.txt", b"hello")],
        CompressionMethod::Deflated,
    );
    let found = inspect(LIMITS, &zip);
    assert_eq!(found.bomb, None);
    let entries: Vec<(&str, &str)> = found
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.detected_type.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("invoice.pdf", "application/x-executable"),
            ("notes.txt", "text/plain")
        ]
    );
}

#[test]
fn nested_archives_are_opened_up_to_the_depth_limit() {
    let inner = zip_of(&[("run.exe", ELF)], CompressionMethod::Stored);
    let middle = zip_of(&[("inner.zip", &inner)], CompressionMethod::Deflated);
    let outer = zip_of(&[("middle.zip", &middle)], CompressionMethod::Deflated);
    let found = inspect(LIMITS, &outer);
    assert_eq!(found.bomb, None);
    let names: Vec<&str> = found.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["middle.zip", "inner.zip", "run.exe"]);
    assert_eq!(found.entries[2].detected_type, "application/x-executable");

    let shallow = ArchiveLimits {
        depth_max: 2,
        ..LIMITS
    };
    assert_eq!(inspect(shallow, &outer).bomb, Some(Bomb::Depth));
}

#[test]
fn a_high_ratio_is_a_bomb() {
    let zeros = vec![0u8; 2 * 1024 * 1024];
    let zip = zip_of(&[("zeros.bin", &zeros)], CompressionMethod::Deflated);
    assert!(zip.len() * 100 < zeros.len(), "deflate squeezes zeros");
    assert_eq!(inspect(LIMITS, &zip).bomb, Some(Bomb::Ratio));
    // The same bytes stored (ratio 1) are fine.
    let stored = zip_of(&[("zeros.bin", &zeros)], CompressionMethod::Stored);
    assert_eq!(inspect(LIMITS, &stored).bomb, None);
}

#[test]
fn the_expanded_budget_counts_real_bytes() {
    let data = vec![7u8; 300 * 1024];
    let zip = zip_of(
        &[("a.bin", &data), ("b.bin", &data)],
        CompressionMethod::Stored,
    );
    let small = ArchiveLimits {
        expanded_bytes_max: 500 * 1024,
        ..LIMITS
    };
    assert_eq!(inspect(small, &zip).bomb, Some(Bomb::Expanded));
    assert_eq!(inspect(LIMITS, &zip).bomb, None);
}

#[test]
fn too_many_entries_is_a_bomb() {
    let files: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("f{i}"), vec![1])).collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let zip = zip_of(&files, CompressionMethod::Stored);
    let few = ArchiveLimits {
        entries_max: 4,
        ..LIMITS
    };
    assert_eq!(inspect(few, &zip).bomb, Some(Bomb::Entries));
    assert_eq!(inspect(LIMITS, &zip).bomb, None);
}

#[test]
fn overlapping_entries_are_a_bomb() {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    writer.start_file("kernel", options).unwrap();
    writer.write_all(&[0u8; 4096]).unwrap();
    for i in 0..3 {
        writer
            .shallow_copy_file("kernel", &format!("copy{i}"))
            .unwrap();
    }
    let zip = writer.finish().unwrap().into_inner();
    assert_eq!(inspect(LIMITS, &zip).bomb, Some(Bomb::Overlap));
}

#[test]
fn garbage_that_claims_to_be_zip_is_not_a_bomb_and_does_not_panic() {
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend_from_slice(&[0xff; 200]);
    let found = inspect(LIMITS, &bytes);
    assert_eq!(found.bomb, None);
    assert!(found.entries.is_empty());
}

/// `zip` with the "encrypted" flag (general purpose bit 0) set on every entry, as a
/// password-protected archive has it (the zip crate here cannot write encrypted entries).
fn flagged_encrypted(mut zip: Vec<u8>) -> Vec<u8> {
    for (signature, flags_at) in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)] {
        let starts: Vec<usize> = zip
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == signature)
            .map(|(i, _)| i)
            .collect();
        for start in starts {
            zip[start + flags_at] |= 1;
        }
    }
    zip
}

#[test]
fn password_protected_entries_are_marked() {
    let zip = flagged_encrypted(zip_of(
        &[("secret.doc", b"hello")],
        CompressionMethod::Stored,
    ));
    let inspector = inspect(LIMITS, &zip);
    assert_eq!(inspector.entries.len(), 1);
    assert_eq!(inspector.entries[0].name, "secret.doc");
    assert!(inspector.entries[0].encrypted);
    assert_eq!(
        inspector.entries[0].detected_type,
        "application/octet-stream"
    );
    let plain = inspect(
        LIMITS,
        &zip_of(&[("a.txt", b"hi")], CompressionMethod::Stored),
    );
    assert!(!plain.entries[0].encrypted);
}
