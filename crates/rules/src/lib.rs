//! Plate lists and the rules that turn a passage into violations.
//!
//! Contract:
//! - [`RuleSet::check`] is pure: a [`PassageFacts`] in, zero or more [`Violation`]s out, each
//!   naming rule, kind, reason and priority (and, for plate lists, the entry matched). No clock
//!   is read: time windows and days are judged on the passage's capture time, in the site's
//!   time zone (`[device] time_zone`).
//! - A plate matches a list exactly, or "fuzzily" when the read differs from a listed plate by
//!   exactly one look-alike character ([`LOOK_ALIKES`]); a fuzzy match is flagged in
//!   [`ListMatch::fuzzy`](anpr_types::ListMatch) and in the reason, to be confirmed by a person.
//!   A read flagged low-confidence (no plate format fits it well, or a character of it is
//!   doubtful: [`PassageFacts::plate_low_confidence`]) still fires on a list, since a wanted vehicle must
//!   not be missed, but never as a certain match: it is flagged `fuzzy` and its reason says
//!   why, whether its text matched exactly or by a look-alike.
//!   Lookup costs a few dozen hash probes whatever the size of the list.
//! - [`Lists`] holds the lists in force. An update from the central side ([`ListCommand`]) is
//!   refused whole, with a typed [`ListUpdateError`], unless its JSON has exactly the expected
//!   fields, the central key (`[security] central_public_key`) signed it for this device's
//!   inventory ([`anpr_trust::command`]: the signature covers every other field), its version
//!   is above the one in force, its SHA-256 matches and every line parses; a refused update
//!   leaves the list in force unchanged. The signature is checked first, so a forged command
//!   is refused as one whatever its version. Readers see the old version or the new one, never
//!   a mix.
//! - On disk: [`Lists::apply_and_keep`] keeps each accepted update as `<lists_dir>/<name>.json`
//!   (the command as received), written to a temporary file, synced, renamed over the old file,
//!   and the directory synced; a crash leaves the old file or the new one. At start,
//!   [`Lists::load`] reads each list's CSV file from the config (version 0; malformed lines are
//!   reported by file and line and skipped, a missing file is an error) and replaces it with
//!   the kept version if there is one, checking that again as strictly as an update (its
//!   signature too: a file edited on disk, or kept under another central key or inventory, is
//!   a problem reported at start, and the list from the config stays in force).
//!
//! List files are CSV with the header `plate,reason,priority,valid_from,valid_to`: see
//! [`PlateList::parse`].

mod engine;
mod error;
mod list;
mod lists;
mod plate;

pub use engine::{PassageFacts, RuleSet, Violation};
pub use error::{LineProblem, ListError, ListProblem, ListUpdateError};
pub use list::{CSV_HEADER, ListEntry, ListHit, ListSource, Parsed, PlateList};
pub use lists::{ListCommand, ListUpdated, Lists, LoadedLists, kept_path};
pub use plate::{LOOK_ALIKES, look_alikes, normalise};
