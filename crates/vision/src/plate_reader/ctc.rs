//! Greedy CTC decoding of the recognizer output, and how sure a reading is.

use ndarray::ArrayView2;

/// Confidence of the least certain character above which the first view's reading is kept
/// without trying the second.
pub const SURE: f32 = 0.8;

/// A character below even odds is doubtful ([`CtcDecoded::doubtful`]): the reader more
/// likely saw something else there. A property of probabilities, not a value fitted to photos.
pub const EVEN_ODDS: f32 = 0.5;

/// Text decoded from CTC probabilities, with one confidence per kept character.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CtcDecoded {
    pub text: String,
    pub char_confidences: Vec<f32>,
    pub confidence: f32,
    /// Natural log of the text's probability summed over its alignments (format-aware
    /// decoding only; `None` from greedy decoding).
    pub log_prob: Option<f32>,
    /// Whether the text fits the active grammar's formats.
    pub fit: FormatFit,
    /// A character of the text is below `EVEN_ODDS`. Greedy decoding: the reader's own best
    /// class at its steps. Format-aware decoding: the character *and its look-alikes* together
    /// (`O` and `0`, `I` and `1`, ...; [`crate::grammar::look_alikes`]), so a look-alike the
    /// formats corrected is not doubtful, but a character the formats needed where the reader
    /// saw no glyph of that shape (the flag band read as a letter to complete a format) is.
    pub doubtful: bool,
    /// For a reading the formats corrected ([`FormatFit::Corrected`]): how sure the correction
    /// is, for ranking it against other readings of the plate ([`surety`]). When it only puts
    /// look-alikes in place of what the reader read (`O` for `0`), the least certain character
    /// *shape* (the character and its look-alikes together); when it also drops or adds a
    /// character, or changes one into another shape, at most the odds of the corrected text
    /// against the reader's own. `None` for any other reading.
    pub correction_surety: Option<f32>,
    /// Which view of the box won ([`crate::plate_reader::view_name`]: `line`, `margin`,
    /// `stretched`, `rows`, with ` deskewed` after it when read from a deskewed copy); empty
    /// until the reader sets it.
    pub view: String,
}

/// How a reading relates to the active grammar's plate formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatFit {
    /// Not checked: generic mode (no format assumed), greedy decoding.
    #[default]
    Unchecked,
    /// The reader's most probable text is itself a plate of the formats (format-aware
    /// decoding; a flag band read before it dropped).
    Fits,
    /// The most probable text that fits a format differs from the reader's most probable
    /// text (a look-alike in a place the format does not allow, a character too many), but
    /// is at least [`crate::plate_reader::NO_FIT_RATIO`] times as probable.
    Corrected,
    /// No format fits well: the reading is the unconstrained text, and is less sure.
    NoFormat,
}

/// Greedy CTC decoding: best class per step, repeats merged, blanks dropped. Only ASCII
/// letters and digits are kept (upper-cased): plates carry nothing else, and separators,
/// flags and frames must not become characters.
#[must_use]
pub fn ctc_greedy_decode(probs: &ArrayView2<'_, f32>, dict: &[String]) -> CtcDecoded {
    let mut out = CtcDecoded::default();
    let mut prev = usize::MAX;
    for step in probs.rows() {
        let (best, p) =
            step.iter().enumerate().fold(
                (0usize, f32::MIN),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        if best != prev
            && best != 0
            && let Some(s) = dict.get(best - 1)
        {
            for ch in s.chars().filter(char::is_ascii_alphanumeric) {
                out.text.push(ch.to_ascii_uppercase());
                out.char_confidences.push(p);
                out.doubtful |= p < EVEN_ODDS;
            }
        }
        prev = best;
    }
    if !out.char_confidences.is_empty() {
        out.confidence =
            out.char_confidences.iter().sum::<f32>() / out.char_confidences.len() as f32;
    }
    out
}

/// Whether a reading is good evidence that its box holds a plate, for boxes the detector is
/// unsure of: 4 to 10 characters, letters and digits both, every one read surely ([`SURE`]).
/// Signs, slogans and stickers the detector half-takes for plates are mostly words or
/// numbers alone, or read with a doubtful character.
#[must_use]
pub fn looks_like_a_plate(r: &CtcDecoded) -> bool {
    (4..=10).contains(&r.text.len())
        && r.text.chars().any(|c| c.is_ascii_digit())
        && r.text.chars().any(|c| c.is_ascii_alphabetic())
        && weakest(r) >= SURE
}

/// How sure a reading is, for choosing between readings of one plate: its least certain
/// character, or for a reading the formats corrected its [`CtcDecoded::correction_surety`].
///
/// The least certain character alone favours a correction that drops a character over one
/// that swaps a look-alike: the swapped character keeps the reader's low probability for it
/// (`O` at 0.01 where it saw `0`), while a dropped one counts for nothing, though both cost the
/// text about as much probability. A swap of look-alikes is the reader's known confusion and
/// keeps every glyph it saw; a dropped glyph is a plate it did not see.
pub(crate) fn surety(r: &CtcDecoded) -> f32 {
    r.correction_surety.unwrap_or_else(|| weakest(r))
}

/// Confidence of the least certain character (0 for an empty reading).
pub(crate) fn weakest(r: &CtcDecoded) -> f32 {
    r.char_confidences
        .iter()
        .copied()
        .reduce(f32::min)
        .unwrap_or(0.0)
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn ctc_merges_repeats_drops_blanks_and_keeps_plate_characters() {
        let dict: Vec<String> = ["1", "A", "-", "b"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        // steps: 1 1 blank 1 A - b blank
        let seq = [1usize, 1, 0, 1, 2, 3, 4, 0];
        let mut probs = Array2::<f32>::zeros((seq.len(), dict.len() + 1));
        for (t, &c) in seq.iter().enumerate() {
            probs[[t, c]] = 0.9;
        }
        let d = ctc_greedy_decode(&probs.view(), &dict);
        assert_eq!(d.text, "11AB");
        assert_eq!(d.char_confidences.len(), 4);
        assert!((d.confidence - 0.9).abs() < 1e-6);
        assert!(!d.doubtful);
        // The A's best class below even odds (0.45 against the blank's 0.3 and the 1's 0.25):
        // the reading is doubtful.
        probs[[4, 2]] = 0.45;
        probs[[4, 0]] = 0.3;
        probs[[4, 1]] = 0.25;
        let d = ctc_greedy_decode(&probs.view(), &dict);
        assert_eq!(d.text, "11AB");
        assert!(d.doubtful);
    }

    #[test]
    fn the_reading_with_the_surer_weakest_character_is_the_surer_one() {
        let sure = CtcDecoded {
            text: "AB12".into(),
            char_confidences: vec![0.9, 0.8, 0.9, 0.9],
            confidence: 0.875,
            ..CtcDecoded::default()
        };
        let shaky = CtcDecoded {
            text: "AB123".into(),
            char_confidences: vec![0.99, 0.99, 0.99, 0.99, 0.3],
            confidence: 0.852,
            ..CtcDecoded::default()
        };
        assert!(weakest(&sure) > weakest(&shaky));
        assert_eq!(weakest(&CtcDecoded::default()), 0.0);
    }

    #[test]
    fn only_a_sure_mix_of_letters_and_digits_counts_as_a_plate_reading() {
        let read = |text: &str, weakest: f32| {
            let mut c = vec![0.99; text.len()];
            if let Some(first) = c.first_mut() {
                *first = weakest;
            }
            CtcDecoded {
                text: text.into(),
                char_confidences: c,
                confidence: 0.9,
                ..CtcDecoded::default()
            }
        };
        assert!(looks_like_a_plate(&read("CDK575", 0.95)));
        assert!(looks_like_a_plate(&read("123ABC02", 0.9)));
        assert!(
            !looks_like_a_plate(&read("CDK575", 0.5)),
            "a doubtful character"
        );
        assert!(!looks_like_a_plate(&read("REFERRAL", 0.99)), "a word");
        assert!(!looks_like_a_plate(&read("3768750", 0.99)), "a number");
        assert!(!looks_like_a_plate(&read("A1", 0.99)), "too short");
        assert!(!looks_like_a_plate(&read("SOUTHBORDER1", 0.99)), "too long");
    }
}
