//! Format-aware CTC decoding: a prefix beam search over the recognizer's per-step
//! probabilities that extends a reading only along the active grammar's plate formats
//! ([`FormatAutomaton`]), so the result is the most probable *valid* plate.
//!
//! The recognizer's 18,710 classes are first folded into the 36 plate characters (`0`–`9`,
//! `A`–`Z`, lower and upper case summed) and one "no character" class: the CTC blank plus every
//! class that is no plate character (separators, the dictionary's other scripts), as greedy
//! decoding drops those too. A text's probability is the sum over all its alignments (the CTC
//! forward probability, in log space), not the probability of its single best alignment. A
//! doubled letter is two characters only where a blank separates them (`A`, blank, `A`), as
//! CTC defines it: the reader is given enough time steps for that (see `crop`).
//!
//! The constrained best is compared with the unconstrained best (the same search without the
//! automaton): when it is less than [`NO_FIT_RATIO`] times as probable, no format fits what the
//! reader saw (a foreign plate, a sign, a plate the formats do not know) and the unconstrained
//! text is reported with [`FormatFit::NoFormat`].

use std::collections::HashMap;

use ndarray::ArrayView2;

use super::ctc::{CtcDecoded, EVEN_ODDS, FormatFit};
use crate::grammar::{FormatAutomaton, PLATE_SYMBOLS, look_alikes, plate_symbol, symbol_char};

/// Readings kept after each time step.
pub const BEAM_WIDTH: usize = 16;

/// How much less probable than the unconstrained reading the best valid plate may be before
/// the unconstrained reading is reported instead (with [`FormatFit::NoFormat`]).
///
/// Replacing a character by its look-alike costs the ratio of the probabilities the reader gave
/// the two (a doubtful `0` at 0.7 against `O` at 0.3 costs 2.3; a sure one at 0.97 against 0.03
/// costs 32), and dropping or inserting a character the reader was sure of costs about the
/// blank's odds at its steps, 1e-3 or less. 1e-3 admits up to about three doubtful look-alike
/// swaps or one sure one, and no character the reader was sure of added or taken away. It is a
/// property of CTC probabilities, not a value fitted to a photo set.
pub const NO_FIT_RATIO: f32 = 1e-3;

/// Longest unconstrained reading (plates have at most 10 characters; a long text is no plate).
const MAX_LEN: usize = 16;

/// Step probabilities below this are not tried as a character extension.
const FLOOR: f32 = 1e-5;

/// Which recognizer class is which plate character: `class[i]` is the plate symbol + 1 of
/// class `i`, or 0 (blank, or no plate character).
#[derive(Debug, Clone)]
pub struct SymbolMap {
    /// `(class, symbol + 1)` for every class that is a plate character.
    chars: Vec<(usize, u8)>,
    /// [`look_alikes`] of each symbol.
    shapes: [u64; PLATE_SYMBOLS],
}

impl SymbolMap {
    /// The map for a recognizer whose class `i + 1` is `dict[i]`.
    #[must_use]
    pub fn new(dict: &[String]) -> Self {
        let chars = dict
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let mut it = s.chars();
                let (Some(c), None) = (it.next(), it.next()) else {
                    return None;
                };
                if !c.is_ascii_alphanumeric() {
                    return None;
                }
                plate_symbol(c).map(|sym| (i + 1, sym + 1))
            })
            .collect();
        Self {
            chars,
            shapes: std::array::from_fn(|s| look_alikes(s as u8)),
        }
    }

    /// The probability of each symbol's shape at one folded step: the symbol's and its
    /// look-alikes' summed.
    fn shapes(&self, q: &[f32; PLATE_SYMBOLS + 1]) -> [f32; PLATE_SYMBOLS] {
        std::array::from_fn(|s| {
            let mask = self.shapes[s];
            (0..PLATE_SYMBOLS)
                .filter(|t| mask >> t & 1 == 1)
                .map(|t| q[t + 1])
                .sum()
        })
    }

    /// Folds one step's class probabilities into `out[0]` (no character) and `out[1..=36]`.
    fn fold(&self, step: &[f32], out: &mut [f32; PLATE_SYMBOLS + 1]) {
        *out = [0.0; PLATE_SYMBOLS + 1];
        let total: f32 = step.iter().sum();
        let mut chars = 0.0;
        for &(class, sym) in &self.chars {
            if let Some(&p) = step.get(class) {
                out[usize::from(sym)] += p;
                chars += p;
            }
        }
        out[0] = (total - chars).max(0.0);
    }
}

fn lse(a: f32, b: f32) -> f32 {
    if a == f32::NEG_INFINITY {
        return b;
    }
    if b == f32::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// How sure the reader was of one character: the highest step probability of the character
/// itself, and of its shape (the character and its look-alikes together, [`look_alikes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CharConf {
    pub own: f32,
    pub shape: f32,
}

impl CharConf {
    fn max(self, o: Self) -> Self {
        Self {
            own: self.own.max(o.own),
            shape: self.shape.max(o.shape),
        }
    }
}

/// Merges the per-character confidences of another way to the same prefix: each character
/// keeps the highest step probabilities either way saw for it.
fn merge_conf(into: &mut Vec<CharConf>, from: &[CharConf]) {
    if into.len() < from.len() {
        into.resize(from.len(), CharConf::default());
    }
    for (a, &b) in into.iter_mut().zip(from) {
        *a = a.max(b);
    }
}

#[derive(Clone)]
struct Beam {
    /// Log-probability of the prefix with the last step a blank.
    blank: f32,
    /// Log-probability of the prefix with the last step its last character.
    char: f32,
    /// Automaton state after the prefix (0 when unconstrained).
    state: u32,
    /// Per-character confidence.
    conf: Vec<CharConf>,
}

impl Beam {
    fn total(&self) -> f32 {
        lse(self.blank, self.char)
    }
}

/// A decoded reading with the log-probability of its text (summed over alignments).
#[derive(Debug, Clone, PartialEq)]
pub struct BeamReading {
    /// Plate symbols (see [`plate_symbol`]), flag band included.
    pub symbols: Vec<u8>,
    pub conf: Vec<CharConf>,
    pub log_prob: f32,
    /// Leading symbols that are the flag band (constrained readings only).
    pub flag: usize,
}

/// Folds each step's class probabilities into the plate characters and "no character".
fn fold_all(probs: &ArrayView2<'_, f32>, map: &SymbolMap) -> Vec<[f32; PLATE_SYMBOLS + 1]> {
    let mut row = Vec::new();
    probs
        .rows()
        .into_iter()
        .map(|step| {
            let slice = if let Some(s) = step.to_slice() {
                s
            } else {
                row.clear();
                row.extend(step.iter().copied());
                &row
            };
            let mut q = [0.0f32; PLATE_SYMBOLS + 1];
            map.fold(slice, &mut q);
            q
        })
        .collect()
}

/// Prefix beam search; with an automaton only prefixes it allows are kept and the result is
/// the most probable complete plate (`None` when no complete plate survives).
#[must_use]
pub fn beam_search(
    probs: &ArrayView2<'_, f32>,
    map: &SymbolMap,
    automaton: Option<&FormatAutomaton>,
) -> Option<BeamReading> {
    search(&fold_all(probs, map), map, automaton)
}

fn search(
    folded: &[[f32; PLATE_SYMBOLS + 1]],
    map: &SymbolMap,
    automaton: Option<&FormatAutomaton>,
) -> Option<BeamReading> {
    let mut beams: HashMap<Vec<u8>, Beam> = HashMap::new();
    beams.insert(
        Vec::new(),
        Beam {
            blank: 0.0,
            char: f32::NEG_INFINITY,
            state: automaton.map_or(0, FormatAutomaton::start),
            conf: Vec::new(),
        },
    );
    for &q in folded {
        let lq = q.map(|p| if p > 0.0 { p.ln() } else { f32::NEG_INFINITY });
        let shapes = map.shapes(&q);
        let mut next: HashMap<Vec<u8>, Beam> = HashMap::with_capacity(beams.len() * 4);
        for (prefix, b) in &beams {
            let total = b.total();
            // Blank (or no character): same prefix.
            let last = prefix.last().copied();
            {
                let e = next.entry(prefix.clone()).or_insert_with(|| Beam {
                    blank: f32::NEG_INFINITY,
                    char: f32::NEG_INFINITY,
                    state: b.state,
                    conf: b.conf.clone(),
                });
                merge_conf(&mut e.conf, &b.conf);
                e.blank = lse(e.blank, total + lq[0]);
                // The last character repeated: same prefix.
                if let Some(l) = last {
                    let li = usize::from(l) + 1;
                    e.char = lse(e.char, b.char + lq[li]);
                    if let Some(c) = e.conf.last_mut() {
                        *c = c.max(CharConf {
                            own: q[li],
                            shape: shapes[usize::from(l)],
                        });
                    }
                }
            }
            for s in 0..PLATE_SYMBOLS as u8 {
                let si = usize::from(s) + 1;
                if q[si] < FLOOR {
                    continue;
                }
                let state = match automaton {
                    Some(a) => match a.step(b.state, s) {
                        Some(st) => st,
                        None => continue,
                    },
                    None if prefix.len() >= MAX_LEN => continue,
                    None => 0,
                };
                // A repeat of the last character is a new character only after a blank.
                let from = if last == Some(s) { b.blank } else { total };
                if from == f32::NEG_INFINITY {
                    continue;
                }
                let mut longer = prefix.clone();
                longer.push(s);
                let mut conf = b.conf.clone();
                conf.push(CharConf {
                    own: q[si],
                    shape: shapes[usize::from(s)],
                });
                let e = next.entry(longer).or_insert_with(|| Beam {
                    blank: f32::NEG_INFINITY,
                    char: f32::NEG_INFINITY,
                    state,
                    conf: Vec::new(),
                });
                merge_conf(&mut e.conf, &conf);
                e.char = lse(e.char, from + lq[si]);
            }
        }
        let mut ranked: Vec<(Vec<u8>, Beam)> = next.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total().total_cmp(&a.1.total()).then(a.0.cmp(&b.0)));
        ranked.truncate(BEAM_WIDTH);
        beams = ranked.into_iter().collect();
    }
    beams
        .into_iter()
        .filter_map(|(symbols, b)| {
            let flag = match automaton {
                Some(a) => a.accepts(b.state)?,
                None => 0,
            };
            Some(BeamReading {
                log_prob: b.total(),
                conf: b.conf,
                symbols,
                flag,
            })
        })
        .max_by(|a, b| {
            a.log_prob
                .total_cmp(&b.log_prob)
                .then(b.symbols.cmp(&a.symbols))
        })
}

fn to_decoded(r: &BeamReading, fit: FormatFit) -> CtcDecoded {
    let text: String = r.symbols[r.flag..]
        .iter()
        .map(|&s| symbol_char(s))
        .collect();
    let kept = &r.conf[r.flag..];
    let char_confidences: Vec<f32> = kept.iter().map(|c| c.own).collect();
    let confidence = if char_confidences.is_empty() {
        0.0
    } else {
        char_confidences.iter().sum::<f32>() / char_confidences.len() as f32
    };
    CtcDecoded {
        text,
        char_confidences,
        confidence,
        log_prob: Some(r.log_prob),
        fit,
        doubtful: kept.iter().any(|c| c.shape < EVEN_ODDS),
        correction_surety: None,
        view: String::new(),
    }
}

/// The valid reading `v` as a correction of the reader's own most probable text `f`: see
/// [`CtcDecoded::correction_surety`].
fn corrected(v: &BeamReading, f: &BeamReading, map: &SymbolMap) -> CtcDecoded {
    let swaps_only = v.symbols.len() == f.symbols.len()
        && v.symbols
            .iter()
            .zip(&f.symbols)
            .all(|(&a, &b)| map.shapes[usize::from(a)] >> b & 1 == 1);
    let kept = &v.conf[v.flag..];
    let shape = kept.iter().map(|c| c.shape).fold(1.0f32, f32::min);
    let own = kept.iter().map(|c| c.own).fold(1.0f32, f32::min);
    let surety = if swaps_only {
        shape
    } else {
        own.min((v.log_prob - f.log_prob).exp())
    };
    CtcDecoded {
        correction_surety: Some(surety),
        ..to_decoded(v, FormatFit::Corrected)
    }
}

/// Format-aware decoding: the most probable text `automaton` accepts (the flag band dropped),
/// or, when that is less than [`NO_FIT_RATIO`] times as probable as the most probable text of
/// all (or there is none), that text flagged [`FormatFit::NoFormat`].
#[must_use]
pub fn ctc_format_decode(
    probs: &ArrayView2<'_, f32>,
    map: &SymbolMap,
    automaton: &FormatAutomaton,
) -> CtcDecoded {
    let folded = fold_all(probs, map);
    let free = search(&folded, map, None);
    let valid = search(&folded, map, Some(automaton));
    match (valid, free) {
        (Some(v), Some(f)) if v.symbols == f.symbols => to_decoded(&v, FormatFit::Fits),
        (Some(v), Some(f)) if v.log_prob >= f.log_prob + NO_FIT_RATIO.ln() => {
            corrected(&v, &f, map)
        }
        (Some(v), None) => to_decoded(&v, FormatFit::Corrected),
        (_, Some(f)) => to_decoded(&f, FormatFit::NoFormat),
        (None, None) => CtcDecoded {
            fit: FormatFit::NoFormat,
            ..CtcDecoded::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::GrammarMode;
    use ndarray::Array2;

    /// A dictionary of the plate characters, a separator and a lower-case letter.
    fn dict() -> Vec<String> {
        ('0'..='9')
            .chain('A'..='Z')
            .map(String::from)
            .chain(["-".to_string(), "a".to_string()])
            .collect()
    }

    fn class(c: char) -> usize {
        dict().iter().position(|s| s == &c.to_string()).unwrap() + 1
    }

    /// One step per entry: each `(char, p)` gets `p`, the blank (`_`) the rest.
    fn matrix(steps: &[&[(char, f32)]]) -> Array2<f32> {
        let n = dict().len() + 1;
        let mut m = Array2::<f32>::zeros((steps.len(), n));
        for (t, step) in steps.iter().enumerate() {
            let mut rest = 1.0;
            for &(c, p) in *step {
                if c != '_' {
                    m[[t, class(c)]] += p;
                    rest -= p;
                }
            }
            m[[t, 0]] += rest.max(0.0);
        }
        m
    }

    /// A sure step of each character of `text` (`_` a blank step).
    fn sure(text: &str) -> Vec<Vec<(char, f32)>> {
        text.chars().map(|c| vec![(c, 0.98)]).collect()
    }

    fn decode(steps: &[Vec<(char, f32)>]) -> CtcDecoded {
        let refs: Vec<&[(char, f32)]> = steps.iter().map(Vec::as_slice).collect();
        let m = matrix(&refs);
        let a = FormatAutomaton::for_mode(GrammarMode::Kz).unwrap();
        ctc_format_decode(&m.view(), &SymbolMap::new(&dict()), &a)
    }

    #[test]
    fn a_doubled_letter_separated_by_a_blank_survives() {
        // 123 A _ A T 01: the blank between the two A makes them two letters.
        let d = decode(&sure("123A_AT01"));
        assert_eq!(d.text, "123AAT01");
        assert_eq!(d.fit, FormatFit::Fits);
        assert_eq!(d.char_confidences.len(), 8);
        // Every character was read at 0.98, whichever alignments reach it.
        assert!(
            d.char_confidences.iter().all(|&c| (c - 0.98).abs() < 1e-5),
            "{:?}",
            d.char_confidences
        );
        // Without the blank the two A are one, as CTC defines it: the reader must be given
        // enough time steps to put a blank between them (see `crop`).
        assert_eq!(decode(&sure("123AAT01")).text, "123AT01");
    }

    #[test]
    fn the_flag_band_before_a_plate_is_not_read_as_characters() {
        // K Z read from the flag band, then the plate.
        let d = decode(&sure("KZ_123ABC01"));
        assert_eq!(d.text, "123ABC01");
        assert_eq!(d.fit, FormatFit::Fits);
        assert_eq!(d.char_confidences.len(), 8);
        // A lone K before a full plate: the formats have no room for it, so the decoder
        // takes those steps as blank.
        let mut steps = vec![vec![('K', 0.6)]];
        steps.extend(sure("123ABC01"));
        let d = decode(&steps);
        assert_eq!(d.text, "123ABC01");
        assert_eq!(d.fit, FormatFit::Corrected);
    }

    #[test]
    fn the_best_valid_plate_wins_over_a_likelier_invalid_reading() {
        // The reader prefers I over 1 and O over 0 where the format has digits.
        let mut steps = sure("_23ABC_1");
        steps[0] = vec![('I', 0.6), ('1', 0.38)];
        steps[6] = vec![('O', 0.7), ('0', 0.28)];
        let refs: Vec<&[(char, f32)]> = steps.iter().map(Vec::as_slice).collect();
        let m = matrix(&refs);
        let greedy = super::super::ctc::ctc_greedy_decode(&m.view(), &dict());
        assert_eq!(greedy.text, "I23ABCO1");
        let d = decode(&steps);
        assert_eq!(d.text, "123ABC01");
        assert_eq!(d.fit, FormatFit::Corrected);
        assert!((d.char_confidences[0] - 0.38).abs() < 1e-5);
        assert!(d.log_prob.unwrap() < 0.0);
    }

    #[test]
    fn a_look_alike_swap_is_a_surer_correction_than_a_dropped_character() {
        use super::super::ctc::{surety, weakest};
        // `578OTT05` read `5780TT05` (no format: three digits, then `0`, then letters) in two
        // views of one plate, the `5` at 0.9. In the first the reader gave the `O` 0.2 where
        // it saw `0`, and the formats correct it by swapping the look-alike; in the second
        // only 0.001, and the likeliest valid plate drops the `5` instead (`780TT05`, another
        // format).
        let view = |o: f32| {
            let mut steps = sure("5780T_T05");
            steps[0] = vec![('5', 0.9)];
            steps[3] = vec![('0', 0.98 - o), ('O', o)];
            decode(&steps)
        };
        let (swap, dropped) = (view(0.2), view(0.001));
        assert_eq!(
            (swap.text.as_str(), swap.fit),
            ("578OTT05", FormatFit::Corrected)
        );
        assert_eq!(
            (dropped.text.as_str(), dropped.fit),
            ("780TT05", FormatFit::Corrected)
        );
        // By the least certain character the dropped reading looks surer: the swapped `O`
        // keeps its 0.2, the dropped `5` counts for nothing.
        assert!(weakest(&dropped) > weakest(&swap));
        // As corrections, the swap keeps every glyph the reader saw at its shape's
        // probability (`0` or `O`: 0.98; the `5`: 0.9); the drop is only as sure as its odds
        // against what the reader read (about 0.1 / 0.9).
        assert!((surety(&swap) - 0.9).abs() < 1e-3, "{}", surety(&swap));
        assert!(surety(&dropped) < 0.2, "{}", surety(&dropped));
        // A reading the formats did not correct is as sure as its least certain character.
        let fits = decode(&sure("578OTT05"));
        assert_eq!((fits.fit, fits.correction_surety), (FormatFit::Fits, None));
        assert!((surety(&fits) - weakest(&fits)).abs() < f32::EPSILON);
    }

    #[test]
    fn a_corrected_look_alike_is_not_doubtful_and_a_letter_the_formats_needed_is() {
        // The look-alike swaps above: I read for 1 and O for 0, each at odds above even for
        // its shape (I or 1 together 0.98), so the reading is not doubtful.
        let mut steps = sure("_23ABC_1");
        steps[0] = vec![('I', 0.6), ('1', 0.38)];
        steps[6] = vec![('O', 0.7), ('0', 0.28)];
        let d = decode(&steps);
        assert_eq!(d.text, "123ABC01");
        assert!(!d.doubtful);
        // The 1993 format `L NNN LLL` completed from `222YCA` and a flag band the reader
        // half took for an E (0.2): the E is what the formats needed, the reader saw no E
        // or look-alike there at even odds, so the reading is doubtful.
        let mut steps = vec![vec![('E', 0.2)], vec![('_', 1.0)]];
        steps.extend(sure("2_2_2YCA"));
        let d = decode(&steps);
        assert_eq!(d.text, "E222YCA");
        assert_eq!(d.fit, FormatFit::Corrected);
        assert!(d.doubtful);
        // The same plate with its E read surely is not.
        let d = decode(&sure("E_2_2_2YCA"));
        assert_eq!((d.text.as_str(), d.doubtful), ("E222YCA", false));
    }

    #[test]
    fn look_alike_groups_hold_the_pairs_the_formats_correct_both_ways() {
        let group = |c: char| -> String {
            let mask = look_alikes(plate_symbol(c).unwrap());
            (0..PLATE_SYMBOLS as u8)
                .filter(|t| mask >> t & 1 == 1)
                .map(symbol_char)
                .collect()
        };
        assert_eq!(group('O'), "0O");
        assert_eq!(group('0'), "0DOQ");
        assert_eq!(group('1'), "1IL");
        assert_eq!(group('I'), "1I");
        assert_eq!(group('E'), "E");
        assert_eq!(group('H'), "H");
    }

    #[test]
    fn a_text_no_format_fits_is_reported_as_read_and_flagged() {
        // A European plate: sure characters in an order no regional format has.
        let d = decode(&sure("WA_56_6_60"));
        assert_eq!(d.text, "WA56660");
        assert_eq!(d.fit, FormatFit::NoFormat);
        // Nothing at all.
        let d = decode(&sure("____"));
        assert_eq!(d.text, "");
        assert_eq!(d.fit, FormatFit::NoFormat);
    }

    #[test]
    fn two_rows_are_decoded_as_one_plate_with_a_blank_between_them() {
        // Top row `123A`, bottom row `AB01`: the A ending one row and the A starting the
        // next are two letters.
        let rows: Vec<Array2<f32>> = [sure("123A"), sure("AB01")]
            .iter()
            .map(|steps| {
                let refs: Vec<&[(char, f32)]> = steps.iter().map(Vec::as_slice).collect();
                matrix(&refs)
            })
            .collect();
        let joint = super::super::rows::join_rows(&rows[0].view(), &rows[1].view()).unwrap();
        let a = FormatAutomaton::for_mode(GrammarMode::Kz).unwrap();
        let d = ctc_format_decode(&joint.view(), &SymbolMap::new(&dict()), &a);
        assert_eq!(d.text, "123AAB01");
        assert_eq!(d.fit, FormatFit::Fits);
        // Laid end to end without the blank, they would merge into another valid plate.
        let merged =
            ndarray::concatenate(ndarray::Axis(0), &[rows[0].view(), rows[1].view()]).unwrap();
        let d = ctc_format_decode(&merged.view(), &SymbolMap::new(&dict()), &a);
        assert_eq!(d.text, "123AB01");
    }

    #[test]
    fn lower_case_and_separators_fold_into_plate_characters_and_blank() {
        // `a` is A; `-` between two 1 separates them as a blank does.
        let mut steps = sure("1-1_1ABC01");
        steps[5] = vec![('a', 0.9)];
        let d = decode(&steps);
        assert_eq!(d.text, "111ABC01");
    }

    #[test]
    fn unconstrained_beam_agrees_with_greedy_on_clear_input() {
        let steps = sure("AB_1234_CD");
        let refs: Vec<&[(char, f32)]> = steps.iter().map(Vec::as_slice).collect();
        let m = matrix(&refs);
        let r = beam_search(&m.view(), &SymbolMap::new(&dict()), None).unwrap();
        let text: String = r.symbols.iter().map(|&s| symbol_char(s)).collect();
        let greedy = super::super::ctc::ctc_greedy_decode(&m.view(), &dict());
        assert_eq!(text, greedy.text);
    }
}
