//! Attachments and archive entries: programs and scripts (by detected type or by
//! extension), document names hiding an executable extension, password-protected
//! archives, decompression bombs, and what the virus scanner found.

use super::Hits;
use crate::filter::{AttachmentFacts, MessageFacts};
use crate::spam::symbols::*;

/// Extensions that run when opened on common desktops.
pub const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "scr", "com", "pif", "bat", "cmd", "cpl", "msi", "msp", "js", "jse", "vbs", "vbe",
    "wsf", "wsh", "hta", "jar", "ps1", "lnk", "reg", "scf", "apk", "app", "dll",
];
/// Detected content types of programs.
pub const EXECUTABLE_TYPES: &[&str] = &[
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-mach-binary",
    "application/x-msdownload",
    "application/java-archive",
    "application/vnd.android.package-archive",
];
/// Extensions that look like documents or media when they come second to last.
pub const DOCUMENT_EXTENSIONS: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "rtf", "jpg", "jpeg", "png", "gif",
    "zip", "rar", "htm", "html", "mp3", "mp4", "odt",
];

/// Adds the attachment symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    for attachment in &facts.attachments {
        let name = attachment.name.as_str();
        if is_executable(attachment) {
            hits.add(ATTACHMENT_EXECUTABLE, name);
        }
        if double_extension(name) {
            hits.add(ATTACHMENT_DOUBLE_EXTENSION, name);
        }
        if attachment.encrypted {
            hits.add(ARCHIVE_ENCRYPTED, name);
        }
    }
    if facts.archive_bomb {
        hits.add(ARCHIVE_BOMB, "");
    }
    if let Some(virus) = &facts.virus {
        hits.add(VIRUS_FOUND, virus.as_str());
    }
}

fn is_executable(attachment: &AttachmentFacts) -> bool {
    EXECUTABLE_TYPES.contains(&attachment.detected_type.as_str())
        || EXECUTABLE_EXTENSIONS.contains(&attachment.ext.as_str())
}

/// `invoice.pdf.exe`, `photo.jpg   .scr`: a document extension, then an executable one.
fn double_extension(name: &str) -> bool {
    let file = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    let mut extensions = file.rsplit('.').map(str::trim);
    let (Some(last), Some(second), Some(_stem)) =
        (extensions.next(), extensions.next(), extensions.next())
    else {
        return false;
    };
    EXECUTABLE_EXTENSIONS.contains(&last) && DOCUMENT_EXTENSIONS.contains(&second)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::names;
    use super::*;

    fn with(attachments: Vec<AttachmentFacts>) -> MessageFacts {
        MessageFacts {
            attachments,
            ..MessageFacts::default()
        }
    }

    fn file(name: &str, detected_type: &str) -> AttachmentFacts {
        AttachmentFacts {
            name: name.into(),
            ext: crate::message::extension(name),
            detected_type: detected_type.into(),
            encrypted: false,
        }
    }

    #[test]
    fn documents_are_clean() {
        let facts = with(vec![file("report.final.pdf", "application/pdf")]);
        assert!(names(check, &facts).is_empty());
    }

    #[test]
    fn programs_double_extensions_and_encrypted_archives() {
        let renamed = with(vec![file("photo.png", EXECUTABLE_TYPES[0])]);
        assert_eq!(names(check, &renamed), [ATTACHMENT_EXECUTABLE]);
        let double = with(vec![file("invoice.pdf.exe", "application/octet-stream")]);
        assert_eq!(
            names(check, &double),
            [ATTACHMENT_EXECUTABLE, ATTACHMENT_DOUBLE_EXTENSION]
        );
        let mut secret = file("data.txt", "application/octet-stream");
        secret.encrypted = true;
        assert_eq!(names(check, &with(vec![secret])), [ARCHIVE_ENCRYPTED]);
        let bomb = MessageFacts {
            archive_bomb: true,
            virus: Some("Eicar-Signature".into()),
            ..MessageFacts::default()
        };
        assert_eq!(names(check, &bomb), [ARCHIVE_BOMB, VIRUS_FOUND]);
    }
}
