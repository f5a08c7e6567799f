//! Messaging rules: thread subjects and statuses, message bodies, who takes part in a
//! thread and who may post or edit. Pure functions over plain values; no GraphQL, HTTP
//! or database types.

pub mod attachments;
pub mod notifications;
pub mod retention;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_kit::input;
use portal_kit::references::Referent;
use portal_kit::{ApiError, ApiResult};

/// A user of the caller's tenant who is active or invited.
pub use portal_kit::references::CURRENT_USER;

/// A person a legal hold may be placed on: a user of the caller's tenant, whatever their
/// state — a disabled former employee is who holds are often about — but not one erased
/// already (or never existing: identity answers both as `DELETED`).
pub const HOLDABLE_USER: Referent = Referent {
    typename: "User",
    status_field: "status",
    usable: &["ACTIVE", "INVITED", "DISABLED"],
    noun: "user",
};

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

/// How long after posting its author may still edit or delete a message.
pub const EDIT_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Lifecycle of a thread, as a support desk works it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadStatus {
    /// Waiting on the staff: a customer asked, or wrote again.
    Open,
    /// Waiting on the customer: the staff answered.
    WaitingOnCustomer,
    /// Answered; a new message opens it again.
    Resolved,
    /// Read-only.
    Closed,
}

impl ThreadStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::WaitingOnCustomer => "WAITING",
            Self::Resolved => "RESOLVED",
            Self::Closed => "CLOSED",
        }
    }

    /// Parses the storage form; unknown values read as `Closed` (fail closed).
    pub fn from_db(value: &str) -> Self {
        match value {
            "OPEN" => Self::Open,
            "WAITING" => Self::WaitingOnCustomer,
            "RESOLVED" => Self::Resolved,
            _ => Self::Closed,
        }
    }

    /// The status after a message by someone of `kind`: a customer's message waits on the
    /// staff again, a staff member's waits on the customer. A closed thread takes none.
    pub fn after_message(self, kind: ParticipantKind) -> Self {
        match (self, kind) {
            (Self::Closed, _) => Self::Closed,
            (_, ParticipantKind::Customer) => Self::Open,
            (_, ParticipantKind::Staff) => Self::WaitingOnCustomer,
        }
    }
}

/// On which side of the conversation a participant is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParticipantKind {
    /// A user of the customer.
    Customer,
    /// The supplier's staff: whoever the policies let work the tenant's support queue
    /// (the `Thread.all` grant), or whom a thread was assigned to.
    Staff,
}

impl ParticipantKind {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "CUSTOMER",
            Self::Staff => "STAFF",
        }
    }

    /// Parses the storage form (unknown values read as `Customer`: no staff privileges).
    pub fn from_db(value: &str) -> Self {
        match value {
            "STAFF" => Self::Staff,
            _ => Self::Customer,
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

/// Whether someone may post to a thread: participants and staff (who join by posting)
/// only (`FORBIDDEN` otherwise), and only while it is not closed (`CONFLICT` otherwise).
pub fn may_post(may_take_part: bool, status: ThreadStatus) -> ApiResult<()> {
    if !may_take_part {
        return Err(ApiError::Forbidden);
    }
    if status == ThreadStatus::Closed {
        return Err(ApiError::Conflict("the thread is closed".into()));
    }
    Ok(())
}

/// A message as the edit and delete rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Posted {
    /// Who wrote it.
    pub author: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// Whether `editor` may edit or delete the message `posted` in a thread with `status` at
/// `now`: the author only (`FORBIDDEN` otherwise), a message not deleted yet, in a thread
/// that is not closed, within [`EDIT_WINDOW`] of posting (`CONFLICT` otherwise).
pub fn may_change(
    editor: Uuid,
    posted: Posted,
    status: ThreadStatus,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if editor != posted.author {
        return Err(ApiError::Forbidden);
    }
    if posted.deleted {
        return Err(ApiError::Conflict("the message was deleted".into()));
    }
    if status == ThreadStatus::Closed {
        return Err(ApiError::Conflict("the thread is closed".into()));
    }
    if now - posted.at > EDIT_WINDOW {
        return Err(ApiError::Conflict(format!(
            "messages can be changed for {} minutes after posting",
            EDIT_WINDOW.num_minutes()
        )));
    }
    Ok(())
}

/// Whether a reply may refer to a message of `parent_thread`: only within its own thread.
pub fn may_reply_to(field: &'static str, thread: Uuid, parent_thread: Uuid) -> ApiResult<()> {
    if thread != parent_thread {
        return Err(ApiError::invalid(
            field,
            "a reply refers to a message of the same thread",
        ));
    }
    Ok(())
}

/// Whether a thread with `status` may be assigned: not once closed (`CONFLICT`).
pub fn may_assign(status: ThreadStatus) -> ApiResult<()> {
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
    fn only_participants_and_staff_may_post_and_not_to_closed_threads() {
        assert!(may_post(true, ThreadStatus::Open).is_ok());
        assert!(may_post(true, ThreadStatus::Resolved).is_ok());
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
    fn a_message_moves_the_thread_to_whoever_must_answer_next() {
        use ParticipantKind::{Customer, Staff};
        use ThreadStatus::*;
        assert_eq!(Open.after_message(Staff), WaitingOnCustomer);
        assert_eq!(WaitingOnCustomer.after_message(Customer), Open);
        assert_eq!(Resolved.after_message(Customer), Open);
        assert_eq!(Resolved.after_message(Staff), WaitingOnCustomer);
        assert_eq!(Open.after_message(Customer), Open);
        assert_eq!(Closed.after_message(Customer), Closed);
    }

    #[test]
    fn only_the_author_may_change_a_message_and_only_within_the_window() {
        let author = Uuid::now_v7();
        let at = Utc::now();
        let posted = Posted {
            author,
            at,
            deleted: false,
        };
        let soon = at + chrono::Duration::minutes(14);
        assert!(may_change(author, posted, ThreadStatus::Open, soon).is_ok());
        assert!(matches!(
            may_change(Uuid::now_v7(), posted, ThreadStatus::Open, soon),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            may_change(author, posted, ThreadStatus::Closed, soon),
            Err(ApiError::Conflict(_))
        ));
        let late = at + EDIT_WINDOW + chrono::Duration::seconds(1);
        assert!(matches!(
            may_change(author, posted, ThreadStatus::Open, late),
            Err(ApiError::Conflict(_))
        ));
        let deleted = Posted {
            deleted: true,
            ..posted
        };
        assert!(matches!(
            may_change(author, deleted, ThreadStatus::Open, soon),
            Err(ApiError::Conflict(_))
        ));
    }

    #[test]
    fn replies_stay_within_their_thread() {
        let (thread, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(may_reply_to("r", thread, thread).is_ok());
        assert!(may_reply_to("r", thread, other).is_err());
    }

    #[test]
    fn unknown_stored_statuses_read_as_closed() {
        assert_eq!(ThreadStatus::from_db("ARCHIVED"), ThreadStatus::Closed);
        assert_eq!(ThreadStatus::from_db("OPEN"), ThreadStatus::Open);
        assert_eq!(
            ThreadStatus::from_db("WAITING"),
            ThreadStatus::WaitingOnCustomer
        );
        assert_eq!(ParticipantKind::from_db("ADMIN"), ParticipantKind::Customer);
    }
}
