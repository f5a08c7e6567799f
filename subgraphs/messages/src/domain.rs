//! Messaging rules: thread subjects and statuses, message bodies, who takes part in a
//! thread and who may post or edit. Pure functions over plain values; no GraphQL, HTTP
//! or database types.

use uuid::Uuid;

use portal_kit::input;
use portal_kit::references::Referent;
use portal_kit::{ApiError, ApiResult};

/// A user of the caller's tenant who is active or invited.
pub use portal_kit::references::CURRENT_USER;

/// An account a thread may refer to: visible to the caller in its
/// tenant (accounts' row rules apply) and open.
pub const OPEN_ACCOUNT: Referent = Referent {
    typename: "Account",
    status_field: "status",
    usable: &["OPEN"],
    noun: "account",
};

/// Longest accepted thread subject, in characters.
pub const SUBJECT_MAX: usize = 300;
/// Longest accepted message body, in characters.
pub const BODY_MAX: usize = 20_000;
/// Most participants a thread may have, its creator included.
pub const PARTICIPANTS_MAX: usize = 50;

/// Lifecycle of a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadStatus {
    /// Participants may post.
    Open,
    /// Read-only.
    Closed,
}

impl ThreadStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Closed => "CLOSED",
        }
    }

    /// Parses the storage form; unknown values read as `Closed` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "OPEN" => Self::Open,
            _ => Self::Closed,
        }
    }
}

/// A thread subject: one line of at most [`SUBJECT_MAX`] characters.
pub fn subject(field: &'static str, raw: &str) -> ApiResult<String> {
    input::text(field, raw, SUBJECT_MAX)
}

/// A message body: multi-line text of at most [`BODY_MAX`] characters.
pub fn body(field: &'static str, raw: &str) -> ApiResult<String> {
    input::long_text(field, raw, BODY_MAX)
}

/// The participants of a new thread: the creator first, then `others` in the given order
/// without duplicates; at most [`PARTICIPANTS_MAX`] in all.
pub fn participants(field: &'static str, creator: Uuid, others: &[Uuid]) -> ApiResult<Vec<Uuid>> {
    let mut all = vec![creator];
    for id in others {
        if !all.contains(id) {
            all.push(*id);
        }
    }
    if all.len() > PARTICIPANTS_MAX {
        return Err(ApiError::invalid(
            field,
            format!("a thread has at most {PARTICIPANTS_MAX} participants, its creator included"),
        ));
    }
    Ok(all)
}

/// Whether `user` takes part in a thread with `participants`.
pub fn takes_part(user: Uuid, participants: &[Uuid]) -> bool {
    participants.contains(&user)
}

/// Whether someone may post to a thread: participants only (`FORBIDDEN` otherwise), and
/// only while it is open (`CONFLICT` otherwise).
pub fn may_post(is_participant: bool, status: ThreadStatus) -> ApiResult<()> {
    if !is_participant {
        return Err(ApiError::Forbidden);
    }
    if status == ThreadStatus::Closed {
        return Err(ApiError::Conflict("the thread is closed".into()));
    }
    Ok(())
}

/// Whether `editor` may edit a message by `author` in a thread with `status`: the author
/// only (`FORBIDDEN` otherwise), and only while the thread is open (`CONFLICT` otherwise).
pub fn may_edit(editor: Uuid, author: Uuid, status: ThreadStatus) -> ApiResult<()> {
    if editor != author {
        return Err(ApiError::Forbidden);
    }
    if status == ThreadStatus::Closed {
        return Err(ApiError::Conflict("the thread is closed".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_trimmed_and_limited_to_three_hundred_characters() {
        assert_eq!(
            subject("s", "  Invoice 42 ").ok().as_deref(),
            Some("Invoice 42")
        );
        assert!(subject("s", &"x".repeat(SUBJECT_MAX)).is_ok());
        assert!(subject("s", &"x".repeat(SUBJECT_MAX + 1)).is_err());
        assert!(subject("s", "   ").is_err());
        assert!(subject("s", "two\nlines").is_err());
    }

    #[test]
    fn bodies_may_span_lines_but_not_exceed_twenty_thousand_characters() {
        assert!(body("b", "Hello,\n\nsee attached.\n").is_ok());
        assert!(body("b", &"é".repeat(BODY_MAX)).is_ok());
        assert!(body("b", &"x".repeat(BODY_MAX + 1)).is_err());
        assert!(body("b", "").is_err());
        assert!(body("b", "bell\u{7}").is_err());
    }

    #[test]
    fn the_creator_is_always_a_participant_and_duplicates_are_dropped() {
        let creator = Uuid::now_v7();
        let other = Uuid::now_v7();
        assert_eq!(
            participants("p", creator, &[other, creator, other]).ok(),
            Some(vec![creator, other])
        );
        assert_eq!(participants("p", creator, &[]).ok(), Some(vec![creator]));
    }

    #[test]
    fn more_than_fifty_participants_are_refused() {
        let creator = Uuid::now_v7();
        let others: Vec<Uuid> = (0..PARTICIPANTS_MAX).map(|_| Uuid::now_v7()).collect();
        assert!(participants("p", creator, &others[..PARTICIPANTS_MAX - 1]).is_ok());
        assert!(participants("p", creator, &others).is_err());
    }

    #[test]
    fn only_participants_may_post_and_only_to_open_threads() {
        assert!(may_post(true, ThreadStatus::Open).is_ok());
        assert!(matches!(
            may_post(false, ThreadStatus::Open),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            may_post(false, ThreadStatus::Closed),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            may_post(true, ThreadStatus::Closed),
            Err(ApiError::Conflict(_))
        ));
    }

    #[test]
    fn only_the_author_may_edit_a_message() {
        let author = Uuid::now_v7();
        assert!(may_edit(author, author, ThreadStatus::Open).is_ok());
        assert!(matches!(
            may_edit(Uuid::now_v7(), author, ThreadStatus::Open),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            may_edit(author, author, ThreadStatus::Closed),
            Err(ApiError::Conflict(_))
        ));
    }

    #[test]
    fn unknown_stored_statuses_read_as_closed() {
        assert_eq!(ThreadStatus::from_db("ARCHIVED"), ThreadStatus::Closed);
        assert_eq!(ThreadStatus::from_db("OPEN"), ThreadStatus::Open);
    }
}
