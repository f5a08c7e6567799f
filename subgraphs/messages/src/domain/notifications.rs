//! Notification rules: which events notify, over which channels, how often, and when an
//! email may go out (digests, quiet hours in the recipient's time zone). Pure functions
//! over plain values.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use portal_kit::{ApiError, ApiResult};

/// What a participant is notified of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationEvent {
    /// Someone else posted in a thread the recipient takes part in.
    NewMessage,
    /// A thread was assigned to the recipient.
    ThreadAssigned,
    /// A thread the recipient takes part in changed status (resolved, closed, reopened).
    ThreadStatusChanged,
}

impl NotificationEvent {
    /// Every event, in a stable order.
    pub const ALL: [Self; 3] = [
        Self::NewMessage,
        Self::ThreadAssigned,
        Self::ThreadStatusChanged,
    ];

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMessage => "NEW_MESSAGE",
            Self::ThreadAssigned => "THREAD_ASSIGNED",
            Self::ThreadStatusChanged => "THREAD_STATUS_CHANGED",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == value)
    }

    /// What an email line says about it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NewMessage => "a new message in a conversation you take part in",
            Self::ThreadAssigned => "a conversation was assigned to you",
            Self::ThreadStatusChanged => "a conversation you take part in changed status",
        }
    }
}

/// Where a notification goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The portal's notification list (and `notificationReceived`).
    InApp,
    /// Email through the outbox.
    Email,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Self; 2] = [Self::InApp, Self::Email];

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InApp => "IN_APP",
            Self::Email => "EMAIL",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == value)
    }
}

/// How often a channel delivers an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// Not at all.
    Off,
    /// At once (quiet hours permitting).
    Immediate,
    /// Gathered into one email at the top of the hour.
    Hourly,
    /// Gathered into one email a day, at [`DAILY_DIGEST_AT`] in the recipient's time zone.
    Daily,
}

impl Frequency {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Immediate => "IMMEDIATE",
            Self::Hourly => "HOURLY",
            Self::Daily => "DAILY",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        [Self::Off, Self::Immediate, Self::Hourly, Self::Daily]
            .into_iter()
            .find(|f| f.as_str() == value)
    }
}

/// The local time daily digests go out.
pub const DAILY_DIGEST_AT: u32 = 8;

/// The platform's defaults, used where neither the tenant nor the user chose.
pub fn builtin_default(event: NotificationEvent, channel: Channel) -> Frequency {
    match (event, channel) {
        (_, Channel::InApp) => Frequency::Immediate,
        (NotificationEvent::NewMessage | NotificationEvent::ThreadAssigned, Channel::Email) => {
            Frequency::Immediate
        }
        (NotificationEvent::ThreadStatusChanged, Channel::Email) => Frequency::Off,
    }
}

/// `BAD_USER_INPUT` on `field` unless `frequency` suits `channel`: the in-app list shows
/// things as they happen or not at all (digests are for email).
pub fn check_frequency(
    field: &'static str,
    channel: Channel,
    frequency: Frequency,
) -> ApiResult<()> {
    if channel == Channel::InApp && matches!(frequency, Frequency::Hourly | Frequency::Daily) {
        return Err(ApiError::invalid(
            field,
            "in-app notifications are IMMEDIATE or OFF; digests are for EMAIL",
        ));
    }
    Ok(())
}

/// A daily stretch of local time in which no email goes out (may cross midnight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    /// Local time it begins.
    pub starts: NaiveTime,
    /// Local time it ends.
    pub ends: NaiveTime,
}

impl QuietHours {
    /// Parses `HH:MM` bounds; `BAD_USER_INPUT` on `field` for anything else or equal bounds.
    pub fn parse(field: &'static str, starts: &str, ends: &str) -> ApiResult<Self> {
        let parse = |raw: &str| {
            NaiveTime::parse_from_str(raw.trim(), "%H:%M")
                .map_err(|_| ApiError::invalid(field, "times are HH:MM, 00:00 to 23:59"))
        };
        let quiet = Self {
            starts: parse(starts)?,
            ends: parse(ends)?,
        };
        if quiet.starts == quiet.ends {
            return Err(ApiError::invalid(
                field,
                "quiet hours must not begin as they end",
            ));
        }
        Ok(quiet)
    }

    /// `HH:MM` forms of the bounds.
    pub fn bounds(&self) -> (String, String) {
        (
            self.starts.format("%H:%M").to_string(),
            self.ends.format("%H:%M").to_string(),
        )
    }

    fn contains(&self, local: NaiveTime) -> bool {
        if self.starts < self.ends {
            self.starts <= local && local < self.ends
        } else {
            local >= self.starts || local < self.ends
        }
    }

    /// When the quiet hours holding `now` (in `zone`) end, or `None` outside them.
    pub fn holds_until(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&zone);
        if !self.contains(local.time()) {
            return None;
        }
        let mut day = local.date_naive();
        if self.ends <= local.time() {
            day = day.succ_opt()?;
        }
        Some(local_instant(zone, day.and_time(self.ends)).max(now))
    }
}

/// The instant of local time `at` in `zone`; in a gap (spring forward) the first instant
/// after it, in an overlap the earlier.
fn local_instant(zone: Tz, at: chrono::NaiveDateTime) -> DateTime<Utc> {
    let mut probe = at;
    for _ in 0..4 {
        if let Some(found) = zone.from_local_datetime(&probe).earliest() {
            return found.with_timezone(&Utc);
        }
        probe += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&at)
}

/// When an email of `frequency` about something that happened at `now` is due, before
/// quiet hours (applied when it is sent); `None` for `Off`.
pub fn email_due(frequency: Frequency, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
    match frequency {
        Frequency::Off => None,
        Frequency::Immediate => Some(now),
        Frequency::Hourly => {
            let hour = now.with_minute(0)?.with_second(0)?.with_nanosecond(0)?;
            Some(hour + Duration::hours(1))
        }
        Frequency::Daily => {
            let local = now.with_timezone(&zone);
            let at = NaiveTime::from_hms_opt(DAILY_DIGEST_AT, 0, 0)?;
            let mut day = local.date_naive();
            if local.time() >= at {
                day = day.succ_opt()?;
            }
            Some(local_instant(zone, day.and_time(at)))
        }
    }
}

/// Parses an IANA zone name, falling back to UTC for an unknown one.
pub fn zone(name: Option<&str>) -> Tz {
    name.and_then(|n| n.parse().ok()).unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn quiet_hours_across_midnight_end_in_the_morning_local_time() {
        let quiet = QuietHours::parse("q", "22:00", "07:00").expect("valid");
        let paris: Tz = "Europe/Paris".parse().expect("valid");
        // 23:30 in Paris (UTC+1 in December) is quiet until 07:00 Paris = 06:00 UTC.
        assert_eq!(
            quiet.holds_until(at("2026-12-06T22:30:00Z"), paris),
            Some(at("2026-12-07T06:00:00Z"))
        );
        // 03:00 Paris: the same morning.
        assert_eq!(
            quiet.holds_until(at("2026-12-07T02:00:00Z"), paris),
            Some(at("2026-12-07T06:00:00Z"))
        );
        // 12:00 Paris: not quiet.
        assert_eq!(quiet.holds_until(at("2026-12-07T11:00:00Z"), paris), None);
        // 07:00 exactly is no longer quiet; 22:00 exactly is.
        assert_eq!(quiet.holds_until(at("2026-12-07T06:00:00Z"), paris), None);
        assert!(
            quiet
                .holds_until(at("2026-12-07T21:00:00Z"), paris)
                .is_some()
        );
    }

    #[test]
    fn quiet_hours_within_a_day() {
        let quiet = QuietHours::parse("q", "12:00", "13:30").expect("valid");
        assert_eq!(
            quiet.holds_until(at("2026-12-07T12:10:00Z"), Tz::UTC),
            Some(at("2026-12-07T13:30:00Z"))
        );
        assert_eq!(quiet.holds_until(at("2026-12-07T13:30:00Z"), Tz::UTC), None);
    }

    #[test]
    fn bad_quiet_hours_are_refused() {
        for (a, b) in [
            ("25:00", "07:00"),
            ("22:00", "7"),
            ("08:00", "08:00"),
            ("", ""),
        ] {
            assert!(QuietHours::parse("q", a, b).is_err(), "{a}-{b}");
        }
    }

    #[test]
    fn digests_are_due_at_the_top_of_the_hour_and_at_eight_local() {
        let now = at("2026-12-06T19:07:30Z");
        assert_eq!(email_due(Frequency::Off, now, Tz::UTC), None);
        assert_eq!(email_due(Frequency::Immediate, now, Tz::UTC), Some(now));
        assert_eq!(
            email_due(Frequency::Hourly, now, Tz::UTC),
            Some(at("2026-12-06T20:00:00Z"))
        );
        let tokyo: Tz = "Asia/Tokyo".parse().expect("valid");
        // 04:07 on the 7th in Tokyo: that morning's 08:00 Tokyo is 23:00 UTC on the 6th.
        assert_eq!(
            email_due(Frequency::Daily, now, tokyo),
            Some(at("2026-12-06T23:00:00Z"))
        );
        // 19:07 UTC is past 08:00 UTC: tomorrow.
        assert_eq!(
            email_due(Frequency::Daily, now, Tz::UTC),
            Some(at("2026-12-07T08:00:00Z"))
        );
    }

    #[test]
    fn in_app_has_no_digests() {
        assert!(check_frequency("f", Channel::InApp, Frequency::Daily).is_err());
        assert!(check_frequency("f", Channel::InApp, Frequency::Off).is_ok());
        assert!(check_frequency("f", Channel::Email, Frequency::Hourly).is_ok());
    }

    #[test]
    fn storage_forms_round_trip() {
        for event in NotificationEvent::ALL {
            assert_eq!(NotificationEvent::from_db(event.as_str()), Some(event));
        }
        for channel in Channel::ALL {
            assert_eq!(Channel::from_db(channel.as_str()), Some(channel));
        }
        assert_eq!(Frequency::from_db("DAILY"), Some(Frequency::Daily));
        assert_eq!(Frequency::from_db("weekly"), None);
    }
}
