//! Attachment rules: names, size limits, the life of an upload, and which contents are
//! accepted — judged from the content's first bytes (magic numbers), never from the name
//! or a client's claim, and the name's extension must agree with what the content is.

use chrono::Duration;

use portal_kit::{ApiError, ApiResult};

/// The attachment size limit of a tenant that set none.
pub const DEFAULT_MAX_BYTES: i64 = 25 * 1024 * 1024;
/// The largest limit a tenant may set.
pub const MAX_BYTES_CEILING: i64 = 100 * 1024 * 1024;
/// How long an upload link is valid after the upload was declared.
pub const UPLOAD_WINDOW: Duration = Duration::minutes(10);
/// Most attachments on one message.
pub const PER_MESSAGE_MAX: usize = 10;
/// Longest file name, in characters.
pub const NAME_MAX: usize = 255;

/// Where an attachment is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentState {
    /// Declared; its bytes have not arrived.
    AwaitingUpload,
    /// Received and stored sealed; the malware scan has not judged it yet.
    Scanning,
    /// Scanned and found clean: downloadable by whoever may read its thread.
    Clean,
    /// The scan found malware: never downloadable.
    Quarantined,
}

impl AttachmentState {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "AWAITING_UPLOAD",
            Self::Scanning => "SCANNING",
            Self::Clean => "CLEAN",
            Self::Quarantined => "QUARANTINED",
        }
    }

    /// Parses the storage form; unknown values read as `Quarantined` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "AWAITING_UPLOAD" => Self::AwaitingUpload,
            "SCANNING" => Self::Scanning,
            "CLEAN" => Self::Clean,
            _ => Self::Quarantined,
        }
    }

    /// Whether a message may carry it: received, and not quarantined.
    pub fn attachable(self) -> bool {
        matches!(self, Self::Scanning | Self::Clean)
    }
}

/// A content type the portal accepts, and the extensions a name of it may have.
#[derive(Debug)]
pub struct Accepted {
    /// Its media type.
    pub mime: &'static str,
    /// Extensions (lower case, without the dot).
    pub extensions: &'static [&'static str],
}

/// Everything accepted as an attachment.
pub const ACCEPTED: &[Accepted] = &[
    Accepted {
        mime: "application/pdf",
        extensions: &["pdf"],
    },
    Accepted {
        mime: "image/png",
        extensions: &["png"],
    },
    Accepted {
        mime: "image/jpeg",
        extensions: &["jpg", "jpeg"],
    },
    Accepted {
        mime: "image/gif",
        extensions: &["gif"],
    },
    Accepted {
        mime: "image/webp",
        extensions: &["webp"],
    },
    Accepted {
        mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        extensions: &["docx"],
    },
    Accepted {
        mime: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        extensions: &["xlsx"],
    },
    Accepted {
        mime: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        extensions: &["pptx"],
    },
    Accepted {
        mime: "text/csv",
        extensions: &["csv"],
    },
    Accepted {
        mime: "text/plain",
        extensions: &["txt", "log"],
    },
];

/// Why a content was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeRefusal {
    /// The content is of a type not accepted.
    #[error("{detected} files are not accepted as attachments")]
    NotAccepted {
        /// What the content is.
        detected: String,
    },
    /// The content is accepted, but not what the name says.
    #[error("the file is {detected}, which its name (.{extension}) does not say")]
    Mismatch {
        /// What the content is.
        detected: String,
        /// The name's extension.
        extension: String,
    },
}

fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.is_empty())
}

/// A file name: one line of at most [`NAME_MAX`] characters, no path, with an extension
/// of an accepted type.
pub fn file_name(field: &'static str, raw: &str) -> ApiResult<String> {
    let name = portal_kit::input::text(field, raw, NAME_MAX)?;
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ApiError::invalid(field, "a file name, without a path"));
    }
    let Some(ext) = extension(&name) else {
        return Err(ApiError::invalid(field, "a file name with an extension"));
    };
    if !ACCEPTED
        .iter()
        .any(|a| a.extensions.contains(&ext.as_str()))
    {
        return Err(ApiError::invalid(
            field,
            format!(".{ext} files are not accepted as attachments"),
        ));
    }
    Ok(name)
}

/// A tenant's attachment size limit: 1 byte to [`MAX_BYTES_CEILING`].
pub fn max_bytes(field: &'static str, raw: i64) -> ApiResult<i64> {
    if !(1..=MAX_BYTES_CEILING).contains(&raw) {
        return Err(ApiError::invalid(
            field,
            format!("between 1 and {MAX_BYTES_CEILING} bytes"),
        ));
    }
    Ok(raw)
}

/// The media type of `content` named `name`: detected from its first bytes, accepted,
/// and agreeing with the name's extension. Text (UTF-8 without NUL bytes and no magic
/// number) is plain text or CSV as the name says.
pub fn content_type(name: &str, content: &[u8]) -> Result<&'static str, TypeRefusal> {
    let ext = extension(name).unwrap_or_default();
    let accepted = match infer::get(content) {
        Some(kind) => ACCEPTED
            .iter()
            .find(|a| a.mime == kind.mime_type())
            .ok_or_else(|| TypeRefusal::NotAccepted {
                detected: kind.mime_type().to_owned(),
            })?,
        None if !content.contains(&0) && std::str::from_utf8(content).is_ok() => {
            let text = ACCEPTED
                .iter()
                .filter(|a| a.mime.starts_with("text/"))
                .find(|a| a.extensions.contains(&ext.as_str()));
            match text {
                Some(found) => found,
                None => {
                    return Err(TypeRefusal::Mismatch {
                        detected: "text/plain".into(),
                        extension: ext,
                    });
                }
            }
        }
        None => {
            return Err(TypeRefusal::NotAccepted {
                detected: "application/octet-stream".into(),
            });
        }
    };
    if !accepted.extensions.contains(&ext.as_str()) {
        return Err(TypeRefusal::Mismatch {
            detected: accepted.mime.to_owned(),
            extension: ext,
        });
    }
    Ok(accepted.mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << >> endobj\n";
    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00";

    #[test]
    fn contents_are_judged_by_their_bytes_and_must_match_their_names() {
        assert_eq!(content_type("invoice.pdf", PDF), Ok("application/pdf"));
        assert_eq!(content_type("chart.PNG", PNG), Ok("image/png"));
        assert_eq!(content_type("notes.txt", b"hello\n"), Ok("text/plain"));
        assert_eq!(content_type("rows.csv", b"a,b\n1,2\n"), Ok("text/csv"));
        // An executable named like a PDF.
        assert!(matches!(
            content_type("invoice.pdf", EXE),
            Err(TypeRefusal::NotAccepted { .. })
        ));
        // A PNG named like a PDF.
        assert!(matches!(
            content_type("invoice.pdf", PNG),
            Err(TypeRefusal::Mismatch { .. })
        ));
        // Text named like a PDF, and binary without a known magic number.
        assert!(matches!(
            content_type("invoice.pdf", b"just text"),
            Err(TypeRefusal::Mismatch { .. })
        ));
        assert!(matches!(
            content_type("blob.txt", &[0, 1, 2, 3, 0xFF]),
            Err(TypeRefusal::NotAccepted { .. })
        ));
    }

    #[test]
    fn file_names_have_no_path_and_an_accepted_extension() {
        assert_eq!(
            file_name("n", " Q3 report.pdf ").ok().as_deref(),
            Some("Q3 report.pdf")
        );
        assert!(file_name("n", "../../etc/passwd.txt").is_err());
        assert!(file_name("n", "C:\\x.pdf").is_err());
        assert!(file_name("n", "setup.exe").is_err());
        assert!(file_name("n", "README").is_err());
        assert!(file_name("n", &format!("{}.pdf", "x".repeat(NAME_MAX))).is_err());
    }

    #[test]
    fn limits_stay_within_the_ceiling() {
        assert!(max_bytes("m", 1).is_ok());
        assert!(max_bytes("m", MAX_BYTES_CEILING).is_ok());
        assert!(max_bytes("m", 0).is_err());
        assert!(max_bytes("m", MAX_BYTES_CEILING + 1).is_err());
    }

    #[test]
    fn unknown_stored_states_fail_closed() {
        assert_eq!(
            AttachmentState::from_db("WHATEVER"),
            AttachmentState::Quarantined
        );
        assert!(!AttachmentState::AwaitingUpload.attachable());
        assert!(AttachmentState::Scanning.attachable());
    }
}
