//! Checks an audit chain offline: from the database (`portal audit verify`) or from an
//! evidence pack's files, with nothing but the records, the signed checkpoints and the
//! published evidence keys. Every finding names what was done and where.
//!
//! How each tampering shows:
//! - **edited** — a record's content no longer hashes to its stored hash;
//! - **deleted** — sequence numbers skip (or, when the rest was renumbered to hide the gap,
//!   the records after it only hash at a later position);
//! - **inserted** — a sequence number appears twice (or the records after it only hash at
//!   an earlier position);
//! - **reordered** — two records each hash at the other's position;
//! - **truncated** — the chain ends before a signed checkpoint;
//! - **rewritten** — the records are consistent among themselves but the hash at a signed
//!   checkpoint is not the signed one (the chain was recomputed after the change).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::chain::{CHECKPOINT_TYPE, GENESIS_HASH, hash};
use crate::evidence::{KeySet, verify as verify_signature};

/// How far from its position a displaced record is looked for.
const DISPLACEMENT_WINDOW: i64 = 64;

/// How many records that do not hash where they sit are looked for elsewhere; the rest are
/// named edited (a hostile pack cannot make the check quadratic).
const MAX_DISPLACED_SEARCHES: usize = 10_000;

/// One thing found wrong with a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Finding {
    /// A record is not what was chained.
    Edited {
        /// Its sequence number.
        sequence: i64,
        /// Its event id.
        id: String,
    },
    /// Records are missing.
    Deleted {
        /// The first missing sequence number.
        from: i64,
        /// The last missing sequence number.
        to: i64,
    },
    /// A record was added that the chain never had.
    Inserted {
        /// Where it sits.
        sequence: i64,
        /// Its event id.
        id: String,
    },
    /// A record sits at another's place.
    Reordered {
        /// Where it sits.
        sequence: i64,
        /// Where it was chained.
        chained_at: i64,
        /// Its event id.
        id: String,
    },
    /// The chain ends before a signed checkpoint.
    Truncated {
        /// The last sequence number present (0: none).
        last: i64,
        /// The sequence number the checkpoint signed.
        checkpoint: i64,
    },
    /// The hash at a signed checkpoint is not the signed one: the chain before it was
    /// recomputed after a change.
    Rewritten {
        /// The checkpoint's sequence number.
        checkpoint: i64,
    },
    /// A checkpoint does not verify (altered, unknown key, another chain's).
    BadCheckpoint {
        /// Its sequence number, when readable.
        sequence: Option<i64>,
        /// Why.
        reason: String,
    },
    /// A record is not a well-formed chain record, or belongs to another chain.
    Malformed {
        /// Which line or record (1-based).
        line: usize,
        /// Why.
        reason: String,
    },
    /// A lift of the append-only guard was left open: anyone may rewrite the log while it
    /// is (database check only).
    GuardLifted {
        /// Open lifts.
        count: u64,
    },
    /// Events recorded but still not chained after the bound (the sequencer is not running).
    Unchained {
        /// How many.
        count: u64,
        /// The oldest's age in seconds.
        oldest_age_secs: i64,
    },
}

/// The outcome of verifying one chain.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The chain's tenant (`None`: the platform's chain).
    pub tenant: Option<String>,
    /// Records read.
    pub events: u64,
    /// The last sequence number read (0: none).
    pub head_sequence: i64,
    /// The stored hash at the head.
    pub head_hash: String,
    /// Checkpoints whose signature and hash verified.
    pub checkpoints_verified: u64,
    /// The highest verified checkpoint's sequence number.
    pub last_checkpoint: Option<i64>,
    /// Everything found wrong; empty when the chain verifies.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether the chain verified with nothing found wrong.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

struct Line {
    sequence: i64,
    id: String,
    hash: String,
    record: Value,
}

/// Verifies the chain of `tenant` (`None`: the platform's) made of `records` (chain
/// records with their `hash`, in any order) against its signed `checkpoints` and the
/// published `keys`.
pub fn verify(
    tenant: Option<&str>,
    records: &[Value],
    checkpoints: &[Value],
    keys: &KeySet,
) -> Report {
    let mut report = Report {
        tenant: tenant.map(str::to_owned),
        head_hash: GENESIS_HASH.to_owned(),
        ..Report::default()
    };
    let mut lines = Vec::with_capacity(records.len());
    for (n, record) in records.iter().enumerate() {
        let malformed = |reason: &str| Finding::Malformed {
            line: n + 1,
            reason: reason.to_owned(),
        };
        let (Some(sequence), Some(id), Some(stored)) = (
            record
                .get("sequence")
                .and_then(Value::as_i64)
                .filter(|s| (1..i64::MAX - DISPLACEMENT_WINDOW).contains(s)),
            record.get("id").and_then(Value::as_str),
            record.get("hash").and_then(Value::as_str),
        ) else {
            report
                .findings
                .push(malformed("not a chain record (sequence, id and hash)"));
            continue;
        };
        if record.get("tenant").and_then(Value::as_str) != tenant {
            report
                .findings
                .push(malformed("the record belongs to another chain"));
            continue;
        }
        lines.push(Line {
            sequence,
            id: id.to_owned(),
            hash: stored.to_owned(),
            record: record.clone(),
        });
    }
    lines.sort_by_key(|line| line.sequence);
    report.events = lines.len() as u64;

    // Where each record hashes, when not where it sits.
    let mut displaced: BTreeMap<usize, i64> = BTreeMap::new();
    let mut searches = 0usize;
    let mut previous: Option<(i64, &str)> = None;
    for (n, line) in lines.iter().enumerate() {
        if let Some((seq, _)) = previous
            && line.sequence == seq
        {
            report.findings.push(Finding::Inserted {
                sequence: line.sequence,
                id: line.id.clone(),
            });
            continue;
        }
        let first = previous.map_or(1, |(seq, _)| seq + 1);
        if line.sequence > first && previous.is_some() {
            report.findings.push(Finding::Deleted {
                from: first,
                to: line.sequence - 1,
            });
        }
        if hash(&line.record) != line.hash {
            searches += 1;
            let elsewhere = if searches <= MAX_DISPLACED_SEARCHES {
                chained_at(&line.record, &line.hash)
            } else {
                None
            };
            match elsewhere {
                Some(at) => {
                    displaced.insert(n, at);
                }
                None => report.findings.push(Finding::Edited {
                    sequence: line.sequence,
                    id: line.id.clone(),
                }),
            }
        } else if line.sequence == first {
            // Consistent in itself: it must link to the record before it (the first of a
            // chain to the genesis hash).
            let prev = line.record.get("prev").and_then(Value::as_str);
            match previous {
                Some((_, expected))
                    if prev != Some(expected) && !displaced.contains_key(&(n - 1)) =>
                {
                    report.findings.push(Finding::Inserted {
                        sequence: line.sequence,
                        id: line.id.clone(),
                    });
                }
                None if line.sequence == 1 && prev != Some(GENESIS_HASH) => {
                    report.findings.push(Finding::Rewritten { checkpoint: 0 });
                }
                _ => {}
            }
        }
        previous = Some((line.sequence, line.hash.as_str()));
    }
    classify_displaced(&lines, &displaced, &mut report.findings);
    if let Some(last) = lines.last() {
        report.head_sequence = last.sequence;
        report.head_hash = last.hash.clone();
    }

    let by_sequence: BTreeMap<i64, &Line> = lines.iter().map(|l| (l.sequence, l)).collect();
    let first_present = lines.first().map(|l| l.sequence);
    for checkpoint in checkpoints {
        let sequence = checkpoint.get("sequence").and_then(Value::as_i64);
        let bad = |reason: String| Finding::BadCheckpoint { sequence, reason };
        if let Err(err) = verify_signature(checkpoint, keys) {
            report.findings.push(bad(err.to_string()));
            continue;
        }
        if checkpoint.get("type").and_then(Value::as_str) != Some(CHECKPOINT_TYPE)
            || checkpoint.get("tenant").and_then(Value::as_str) != tenant
        {
            report
                .findings
                .push(bad("not a checkpoint of this chain".into()));
            continue;
        }
        let (Some(sequence), Some(head)) =
            (sequence, checkpoint.get("headHash").and_then(Value::as_str))
        else {
            report.findings.push(bad("no sequence or head hash".into()));
            continue;
        };
        if sequence == 0 {
            if head != GENESIS_HASH {
                report
                    .findings
                    .push(bad("a genesis checkpoint with a head hash".into()));
                continue;
            }
        } else if sequence > report.head_sequence {
            report.findings.push(Finding::Truncated {
                last: report.head_sequence,
                checkpoint: sequence,
            });
            continue;
        } else if let Some(line) = by_sequence.get(&sequence) {
            if line.hash != head {
                report.findings.push(Finding::Rewritten {
                    checkpoint: sequence,
                });
                continue;
            }
        } else if first_present.is_some_and(|first| sequence >= first) {
            // Inside the range but missing: reported as deleted above.
            continue;
        }
        // Older than the first record present: a segment removed by retention ends here,
        // and the first record must link to it.
        if first_present == Some(sequence + 1)
            && let Some(first) = lines.first()
            && first.record.get("prev").and_then(Value::as_str) != Some(head)
        {
            report.findings.push(Finding::Rewritten {
                checkpoint: sequence,
            });
            continue;
        }
        report.checkpoints_verified += 1;
        report.last_checkpoint = Some(report.last_checkpoint.map_or(sequence, |l| l.max(sequence)));
    }
    if report.checkpoints_verified == 0 {
        report.findings.push(Finding::BadCheckpoint {
            sequence: None,
            reason: "no verified checkpoint: nothing signed vouches for this chain".into(),
        });
    }
    if let Some(first) = first_present
        && first > 1
        && !checkpoints
            .iter()
            .any(|c| c.get("sequence").and_then(Value::as_i64) == Some(first - 1))
    {
        // The chain does not start at 1 and no checkpoint marks where it was cut.
        report.findings.push(Finding::Deleted {
            from: 1,
            to: first - 1,
        });
    }
    report
}

/// The position (≠ its own) at which `record` hashes to `stored`, if one near it does.
fn chained_at(record: &Value, stored: &str) -> Option<i64> {
    let sequence = record.get("sequence").and_then(Value::as_i64)?;
    let mut moved = record.clone();
    for offset in 1..=DISPLACEMENT_WINDOW {
        for candidate in [sequence.checked_sub(offset), sequence.checked_add(offset)] {
            let Some(candidate) = candidate.filter(|c| *c >= 1) else {
                continue;
            };
            moved["sequence"] = Value::from(candidate);
            if hash(&moved) == stored {
                return Some(candidate);
            }
        }
    }
    None
}

/// Names displaced records: two that sit at each other's place were reordered; a run
/// displaced by the same distance means records inserted before it (they hash earlier) or
/// deleted before it (they hash later), hidden by renumbering.
fn classify_displaced(
    lines: &[Line],
    displaced: &BTreeMap<usize, i64>,
    findings: &mut Vec<Finding>,
) {
    let mut named = std::collections::BTreeSet::new();
    let index: std::collections::HashMap<i64, usize> = lines
        .iter()
        .enumerate()
        .map(|(n, l)| (l.sequence, n))
        .collect();
    for (&n, &at) in displaced {
        if named.contains(&n) {
            continue;
        }
        let here = lines[n].sequence;
        // A swap: the record at `at` hashes here.
        if let Some(&m) = index.get(&at)
            && displaced.get(&m) == Some(&here)
        {
            for k in [n, m] {
                named.insert(k);
                findings.push(Finding::Reordered {
                    sequence: lines[k].sequence,
                    chained_at: displaced[&k],
                    id: lines[k].id.clone(),
                });
            }
            continue;
        }
        let shift = here.saturating_sub(at);
        // The start of a run shifted by `shift`: what lies between is what changed.
        let mut end = n;
        while displaced
            .get(&(end + 1))
            .is_some_and(|&a| lines[end + 1].sequence - a == shift)
        {
            end += 1;
        }
        for k in n..=end {
            named.insert(k);
        }
        if shift > 0 {
            // Sits later than chained: `shift` records were inserted before it.
            let start = n.saturating_sub(usize::try_from(shift).unwrap_or(usize::MAX));
            for line in &lines[start..n] {
                findings.push(Finding::Inserted {
                    sequence: line.sequence,
                    id: line.id.clone(),
                });
            }
        } else {
            findings.push(Finding::Deleted {
                from: at.saturating_add(shift),
                to: at.saturating_sub(1),
            });
        }
    }
}
