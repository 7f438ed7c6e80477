//! Errors of loading plate lists and of list updates from the central side.

use std::path::PathBuf;

use anpr_types::Fault;

/// A line of a plate list that could not be taken, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}, line {line}: {message}")]
pub struct LineProblem {
    /// Where the list came from: its file, or `update of plate list `wanted` version 7`.
    pub origin: String,
    /// Line in the CSV text, from 1 (the header is line 1).
    pub line: u64,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Errors that stop a plate list from loading at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The list file named in the config could not be read.
    #[error(
        "cannot read plate list `{name}` from {path}: {source}; check `file` of its [[list]] section in the config"
    )]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The first line is not the expected header.
    #[error(
        "{origin}, line 1: the first line must be the header `{expected}`, found `{found}`; add or fix the header line"
    )]
    Header {
        origin: String,
        expected: &'static str,
        found: String,
    },
}

/// Something that went wrong while loading lists at start, without stopping the device: a
/// malformed line (the others loaded), or a list kept from the central side that could not be
/// taken back (the list from the config file is used instead). The caller raises each as a
/// fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListProblem {
    #[error("{0}; the line was skipped, the others loaded")]
    Line(LineProblem),
    #[error(
        "plate list `{name}` kept in {path} could not be taken back: {reason}; using the list from the config until the central side sends a new version"
    )]
    Kept {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

/// Why a list update from the central side was refused. The list in force stays unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListUpdateError {
    /// Not JSON, a field missing or of the wrong type, or an unknown field.
    #[error(
        "plate-list command refused: {message}; send a JSON object with exactly the fields type, name, version, sha256, csv and signature (`anpr send-list` writes one)"
    )]
    Payload { message: String },
    /// A command of another type.
    #[error(
        "command of type `{found}` is not a plate-list update; send it to the handler of that type"
    )]
    WrongType { found: String },
    /// The device has no list of that name.
    #[error(
        "plate list `{name}` is not declared on this device; declare it with a [[list]] section in the device's config, or fix the name"
    )]
    UnknownList { name: String },
    /// The signature is missing, malformed, or does not verify with the central key this
    /// device trusts for a command to this device.
    #[error(
        "plate list `{name}` version {version} refused: bad signature ({reason}); the command was not signed by the central key this device trusts (`[security] central_public_key`), or it was signed for another device than {inventory} or altered on the way; sign it with the central key for inventory {inventory} (`anpr send-list --inventory {inventory} --signing-key <central key>`)"
    )]
    Signature {
        name: String,
        version: u64,
        /// This device's inventory, the one the command must be signed for.
        inventory: String,
        reason: anpr_trust::SignatureError,
    },
    /// The version is not above the one in force.
    #[error(
        "plate list `{name}` version {version} refused: version {current} is in force; send a higher version"
    )]
    NotNewer {
        name: String,
        version: u64,
        current: u64,
    },
    /// The csv does not have the sha256 the command names: cut short or altered on the way.
    #[error(
        "plate list `{name}` version {version} refused: the csv has sha256 {actual}, the command says {expected}; the list was cut short or altered on the way, send it again"
    )]
    Checksum {
        name: String,
        version: u64,
        expected: String,
        actual: String,
    },
    /// A line of the list is malformed: the whole list is refused.
    #[error(
        "plate list `{name}` version {version} refused: {problem} ({count} malformed line(s) in all); fix the list on the central side and send it again"
    )]
    Malformed {
        name: String,
        version: u64,
        problem: LineProblem,
        count: usize,
    },
    /// The accepted list could not be kept on disk; it was not put in force either.
    #[error(
        "plate list `{name}` version {version} could not be kept in {path}: {source}; the list in force is unchanged; check the disk and `lists_dir`"
    )]
    Keep {
        name: String,
        version: u64,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ListUpdateError {
    /// Fault code raised on the health channel for a refused update.
    pub const FAULT_CODE: &'static str = "plate-list-update";

    /// The fault to raise on the health channel.
    #[must_use]
    pub fn fault(&self) -> Fault {
        Fault::new(Self::FAULT_CODE, self.to_string())
    }
}
