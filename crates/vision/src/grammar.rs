//! Plate grammar: which country and plate type a text fits, the region it names, and the
//! correction of look-alike characters (O/0, I/1, B/8, S/5, Z/2, G/6) where the grammar makes
//! the correction unambiguous.
//!
//! Formats (see `shared/mission/DOMAIN.md`), text upper-case without separators:
//! - Kazakhstan 2012+: private `DDD LLL RR`, legal entity `DDD LL RR`, foreign `[FH] DDDD RR`,
//!   special `LL DDD RR` (RR a region code 01–20); 1993 series `R DDD LL(L)` with a one-letter
//!   region;
//! - Russia: `L DDD LL RR(R)` with L among the Cyrillic look-alikes `ABEKMHOPCTYX`;
//! - Kyrgyzstan 2016+: `0R DDD LL(L)`;
//! - Uzbekistan 2008+: private `DD L DDD LL`, legal `DDDDD LLL`.
//!
//! In generic mode (the default, for images from unknown countries) nothing is corrected: a text
//! that fits a format exactly is labelled with it, anything else is reported as read, except
//! that a plate shaped like a North American one reports `O` as `0`
//! ([`north_american_zeros`], [`NORTH_AMERICAN_ASPECT`]), and another one-row plate's final
//! `O` or `0` is of the kind of the character before it ([`final_round_glyph`]). In the
//! regional mode (`kz`) a text that fits no format exactly may be corrected, but only when the
//! formats that fit with the fewest look-alike swaps all give one text, or, when they give
//! several, the Kazakhstan formats among them give one (the country's own plates are the most
//! of those on its roads); a leading `KZ` read from the flag band is dropped when the rest is a
//! Kazakhstan plate.

/// How much the grammar may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrammarMode {
    /// No country assumed: label exact matches, never correct.
    #[default]
    Generic,
    /// Kazakhstan and its neighbours: correct look-alikes where unambiguous.
    Kz,
}

/// What the grammar made of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateInfo {
    /// Final text (corrected where the grammar allowed it).
    pub text: String,
    /// `KZ`, `RU`, `KG`, `UZ`, or `None` when no format fits (or several countries fit).
    pub country: Option<&'static str>,
    /// Plate type, e.g. `private-2012`; `None` when no format fits.
    pub plate_type: Option<&'static str>,
    /// Region named by the plate (code or name), when the format has one.
    pub region: Option<String>,
    /// Confidence of the country and type, 0–1: 1 for one exact fit, lower when several
    /// countries fit or characters were corrected, 0 with no fit.
    pub confidence: f32,
    /// Characters changed by the correction.
    pub corrections: usize,
}

#[derive(Clone, Copy)]
enum Slot {
    Digit,
    Letter,
    /// A letter from a given set.
    OneOf(&'static str),
    /// A two-digit KZ region code 01–20.
    KzRegion,
    /// `0` followed by a digit 1–9 (Kyrgyz region).
    KgRegion,
}

struct Format {
    country: &'static str,
    kind: &'static str,
    slots: &'static [Slot],
}

use Slot::{Digit as D, KgRegion, KzRegion, Letter as L, OneOf};

const RU_L: Slot = OneOf("ABEKMHOPCTYX");
const KZ93: Slot = OneOf("ABCDEFHKLMNOPRSTUVWXZ");

const FORMATS: &[Format] = &[
    Format {
        country: "KZ",
        kind: "private-2012",
        slots: &[D, D, D, L, L, L, KzRegion],
    },
    Format {
        country: "KZ",
        kind: "legal-2012",
        slots: &[D, D, D, L, L, KzRegion],
    },
    Format {
        country: "KZ",
        kind: "foreign",
        slots: &[OneOf("FH"), D, D, D, D, KzRegion],
    },
    Format {
        country: "KZ",
        kind: "special",
        slots: &[L, L, D, D, D, KzRegion],
    },
    Format {
        country: "KZ",
        kind: "1993",
        slots: &[KZ93, D, D, D, L, L],
    },
    Format {
        country: "KZ",
        kind: "1993",
        slots: &[KZ93, D, D, D, L, L, L],
    },
    Format {
        country: "RU",
        kind: "private",
        slots: &[RU_L, D, D, D, RU_L, RU_L, D, D],
    },
    Format {
        country: "RU",
        kind: "private",
        slots: &[RU_L, D, D, D, RU_L, RU_L, D, D, D],
    },
    Format {
        country: "KG",
        kind: "private-2016",
        slots: &[KgRegion, D, D, D, L, L],
    },
    Format {
        country: "KG",
        kind: "private-2016",
        slots: &[KgRegion, D, D, D, L, L, L],
    },
    Format {
        country: "UZ",
        kind: "private",
        slots: &[D, D, L, D, D, D, L, L],
    },
    Format {
        country: "UZ",
        kind: "legal",
        slots: &[D, D, D, D, D, L, L, L],
    },
];

const KZ_REGIONS: [&str; 20] = [
    "Astana",
    "Almaty",
    "Akmola",
    "Aktobe",
    "Almaty Region",
    "Atyrau",
    "West Kazakhstan",
    "Zhambyl",
    "Karaganda",
    "Kostanay",
    "Kyzylorda",
    "Mangystau",
    "Turkestan",
    "Pavlodar",
    "North Kazakhstan",
    "East Kazakhstan",
    "Shymkent",
    "Abai",
    "Zhetisu",
    "Ulytau",
];

fn as_digit(c: char) -> Option<char> {
    Some(match c {
        '0'..='9' => c,
        'O' | 'Q' | 'D' => '0',
        'I' | 'L' => '1',
        'Z' => '2',
        'S' => '5',
        'G' => '6',
        'T' => '7',
        'B' => '8',
        _ => return None,
    })
}

fn as_letter(c: char) -> Option<char> {
    Some(match c {
        'A'..='Z' => c,
        '0' => 'O',
        '1' => 'I',
        '2' => 'Z',
        '4' => 'A',
        '5' => 'S',
        '6' => 'G',
        '7' => 'T',
        '8' => 'B',
        _ => return None,
    })
}

/// Fits `text` to `fmt`, returning the fitted text and the number of swaps; `allow_swaps`
/// false accepts exact fits only.
fn fit(text: &[char], fmt: &Format, allow_swaps: bool) -> Option<(String, usize)> {
    let width: usize = fmt
        .slots
        .iter()
        .map(|s| {
            if matches!(s, KzRegion | KgRegion) {
                2
            } else {
                1
            }
        })
        .sum();
    if text.len() != width {
        return None;
    }
    let mut out = String::with_capacity(width);
    let mut swaps = 0;
    let mut i = 0;
    let mut take = |want: &dyn Fn(char) -> Option<char>, c: char| -> Option<char> {
        let got = want(c)?;
        if got != c {
            if !allow_swaps {
                return None;
            }
            swaps += 1;
        }
        Some(got)
    };
    for slot in fmt.slots {
        match slot {
            D => out.push(take(&as_digit, text[i])?),
            L => out.push(take(
                &|c| as_letter(c).filter(char::is_ascii_uppercase),
                text[i],
            )?),
            OneOf(set) => out.push(take(
                &|c| as_letter(c).filter(|l| set.contains(*l)),
                text[i],
            )?),
            KzRegion | KgRegion => {
                let a = take(&as_digit, text[i])?;
                let b = take(&as_digit, text[i + 1])?;
                let n = (a as u8 - b'0') * 10 + (b as u8 - b'0');
                let ok = match slot {
                    KzRegion => (1..=20).contains(&n),
                    _ => a == '0' && b != '0',
                };
                if !ok {
                    return None;
                }
                out.push(a);
                out.push(b);
                i += 1;
            }
        }
        i += 1;
    }
    Some((out, swaps))
}

fn region(country: &str, kind: &str, text: &str) -> Option<String> {
    match (country, kind) {
        ("KZ", "1993") => text.get(0..1).map(str::to_string),
        ("KZ", _) => {
            let code: usize = text.get(text.len() - 2..)?.parse().ok()?;
            KZ_REGIONS
                .get(code.checked_sub(1)?)
                .map(|name| format!("{code:02} {name}"))
        }
        ("RU", _) => text.get(6..).map(str::to_string),
        ("KG", _) | ("UZ", "private") => text.get(0..2).map(str::to_string),
        _ => None,
    }
}

fn info(text: String, fits: &[(&'static Format, String, usize)]) -> PlateInfo {
    let countries: std::collections::BTreeSet<&str> = fits.iter().map(|f| f.0.country).collect();
    let Some((fmt, fitted, swaps)) = fits.first() else {
        return PlateInfo {
            text,
            country: None,
            plate_type: None,
            region: None,
            confidence: 0.0,
            corrections: 0,
        };
    };
    if countries.len() > 1 {
        // The text fits several countries: report it, not a guess.
        return PlateInfo {
            text: fitted.clone(),
            country: None,
            plate_type: None,
            region: None,
            confidence: 1.0 / countries.len() as f32,
            corrections: *swaps,
        };
    }
    PlateInfo {
        region: region(fmt.country, fmt.kind, fitted),
        text: fitted.clone(),
        country: Some(fmt.country),
        plate_type: Some(fmt.kind),
        confidence: if *swaps == 0 {
            1.0
        } else {
            0.8_f32.powi(*swaps as i32)
        },
        corrections: *swaps,
    }
}

/// How generic mode reports the round glyph `O`/`0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoundGlyph {
    /// As the plate tells ([`north_american_zeros`], [`final_round_glyph`]).
    #[default]
    ByPlate,
    /// As the reader read it.
    AsRead,
}

/// Width-to-height ratio of a plate box below which a plate read as one row is taken for a
/// North American one in generic mode ([`north_american_zeros`]).
///
/// A North American plate is 12 x 6 in (2:1); the nearest one-row plates in use are wider:
/// Australia's 372 x 135 mm (2.76:1), Mercosur's 400 x 130 mm (3.1:1), the European and
/// Kazakhstan 520 x 112 mm (4.6:1). 2.35 is the geometric mean of 2 and 2.76, as far in ratio
/// from either; a European plate's box would have to be foreshortened to half its width (seen
/// 60° from the side) to fall below it.
pub const NORTH_AMERICAN_ASPECT: f32 = 2.35;

/// `text` as a North American plate records it: the letter `O` as the digit `0`.
///
/// North American plates commonly print the two with one glyph, so the reader's choice between
/// them is a guess from the neighbouring characters (a round glyph between letters is read
/// `O`), and registrations and plate lists there record the digit (the US photos of the
/// benchmark the device is measured on write `0` in 35 of 133 plates and `O` in none).
#[must_use]
pub fn north_american_zeros(text: &str) -> String {
    text.replace('O', "0")
}

/// `text` with a final `O` or `0` of the kind of the character before it: the letter after a
/// letter, the digit after a digit. For one-row plates that are not North American in generic
/// mode.
///
/// The reader tells `O` from `0` by the neighbouring characters as much as by the glyph (many
/// fonts draw them alike), and the last character has a neighbour on one side only. One-row
/// formats end in a group of at least two characters of one kind: two or three letters
/// (Slovakia, Italy, France, Britain, Kyrgyzstan, Kazakhstan's 1993 series) or two to
/// four digits (Czechia, Germany, Russia, Kazakhstan's region code). A single final digit after
/// letters is rare (two Dutch series; German and Swiss single-digit numbers never `0`), so the
/// character before the last tells the last one's kind.
#[must_use]
pub fn final_round_glyph(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if let [.., before, last @ ('O' | '0')] = chars.as_mut_slice() {
        if before.is_ascii_alphabetic() {
            *last = 'O';
        } else if before.is_ascii_digit() {
            *last = '0';
        }
    }
    chars.into_iter().collect()
}

/// `fits` when they all correct the text into one and the same plate (and there is one).
fn single_correction<T>(fits: &[(T, String, usize)]) -> Option<&[(T, String, usize)]> {
    let first = &fits.first()?.1;
    fits.iter().all(|f| &f.1 == first).then_some(fits)
}

/// Interprets a plate text read by the OCR.
#[must_use]
pub fn interpret(raw: &str, mode: GrammarMode) -> PlateInfo {
    let chars: Vec<char> = raw.chars().collect();
    let exact: Vec<_> = FORMATS
        .iter()
        .filter_map(|f| fit(&chars, f, false).map(|(t, s)| (f, t, s)))
        .collect();
    if !exact.is_empty() || mode == GrammarMode::Generic {
        return info(raw.to_string(), &exact);
    }
    // Regional mode: drop a `KZ` read from the flag band, then allow look-alike swaps.
    let mut candidates = vec![chars.clone()];
    for prefix in ["KZ", "K2"] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            candidates.push(rest.chars().collect());
        }
    }
    for (n, cand) in candidates.iter().enumerate() {
        let mut fits: Vec<_> = FORMATS
            .iter()
            .filter(|f| n == 0 || f.country == "KZ")
            .filter_map(|f| fit(cand, f, true).map(|(t, s)| (f, t, s)))
            .collect();
        let Some(best) = fits.iter().map(|f| f.2).min() else {
            continue;
        };
        fits.retain(|f| f.2 == best);
        if let Some(one) = single_correction(&fits) {
            return info(raw.to_string(), one);
        }
        // Corrections into several countries' plates with as few swaps: on a Kazakhstan road
        // the country's own plates are the most of those seen, so one single Kazakhstan
        // correction is taken (`02300H11`: `023OOH11`, not the Russian `O230OH11`).
        let home: Vec<_> = fits
            .iter()
            .filter(|f| f.0.country == "KZ")
            .cloned()
            .collect();
        if let Some(one) = single_correction(&home) {
            return info(raw.to_string(), one);
        }
    }
    info(raw.to_string(), &[])
}

/// Plate characters as the automaton and the beam decoder number them: `0`–`9` are 0–9,
/// `A`–`Z` are 10–35.
pub const PLATE_SYMBOLS: usize = 36;

/// The automaton's number for a plate character (`None` for anything else).
#[must_use]
pub fn plate_symbol(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        l @ 'A'..='Z' => Some(l as u8 - b'A' + 10),
        _ => None,
    }
}

/// The plate character numbered `s` by [`plate_symbol`].
#[must_use]
pub fn symbol_char(s: u8) -> char {
    if s < 10 {
        char::from(b'0' + s)
    } else {
        char::from(b'A' + s - 10)
    }
}

/// The symbols that look like symbol `s`, itself included, one bit each (bit `t` for symbol
/// `t`): the look-alike pairs the grammar corrects (`O`/`0`, `I`/`1`, `B`/`8`, `S`/`5`, …),
/// both ways.
#[must_use]
pub fn look_alikes(s: u8) -> u64 {
    let c = symbol_char(s);
    (0..PLATE_SYMBOLS as u8)
        .filter(|&t| {
            let o = symbol_char(t);
            t == s
                || as_digit(o) == Some(c)
                || as_letter(o) == Some(c)
                || as_digit(c) == Some(o)
                || as_letter(c) == Some(o)
        })
        .fold(0, |mask, t| mask | 1 << t)
}

/// Set of plate symbols, one bit each.
type Mask = u64;

fn mask_of(chars: impl IntoIterator<Item = char>) -> Mask {
    chars
        .into_iter()
        .filter_map(plate_symbol)
        .fold(0, |m, s| m | (1 << s))
}

/// The character sequences a format allows, one mask per character; the region slot is
/// expanded into its alternatives (`0` then 1–9, `1` then 0–9, `2` then `0` for 01–20).
fn patterns(fmt: &Format) -> Vec<Vec<Mask>> {
    let digits = mask_of('0'..='9');
    let letters = mask_of('A'..='Z');
    let mut out: Vec<Vec<Mask>> = vec![Vec::new()];
    for slot in fmt.slots {
        let alternatives: Vec<Vec<Mask>> = match slot {
            D => vec![vec![digits]],
            L => vec![vec![letters]],
            OneOf(set) => vec![vec![mask_of(set.chars())]],
            KzRegion => vec![
                vec![mask_of(['0']), mask_of('1'..='9')],
                vec![mask_of(['1']), digits],
                vec![mask_of(['2']), mask_of(['0'])],
            ],
            KgRegion => vec![vec![mask_of(['0']), mask_of('1'..='9')]],
        };
        out = out
            .iter()
            .flat_map(|head| {
                alternatives.iter().map(move |alt| {
                    let mut p = head.clone();
                    p.extend_from_slice(alt);
                    p
                })
            })
            .collect();
    }
    out
}

/// A deterministic automaton over plate characters that accepts exactly the texts of the
/// regional formats ([`GrammarMode::Kz`]), so a decoder can extend a reading only along
/// characters some format still allows.
///
/// Kazakhstan 2012 plates carry the flag and `KZ` at their left, which the reader may read as
/// characters: each of their formats is also accepted after a leading `KZ` (or `K2`), which is
/// not part of the plate. [`FormatAutomaton::accepts`] says how many leading characters to drop.
#[derive(Debug, Clone)]
pub struct FormatAutomaton {
    /// `next[state][symbol]`, [`FormatAutomaton::DEAD`] where no format goes on.
    next: Vec<[u32; PLATE_SYMBOLS]>,
    /// For accepting states, the leading characters that are the flag band, not the plate.
    accept: Vec<Option<u8>>,
}

impl FormatAutomaton {
    const DEAD: u32 = u32::MAX;

    /// The automaton of `mode`'s formats; `None` in generic mode (no format assumed).
    #[must_use]
    pub fn for_mode(mode: GrammarMode) -> Option<Self> {
        match mode {
            GrammarMode::Generic => None,
            GrammarMode::Kz => Some(Self::build(FORMATS)),
        }
    }

    /// Subset construction over (pattern, position) items; patterns of Kazakhstan 2012
    /// formats also appear behind a silent `KZ` prefix.
    fn build(formats: &[Format]) -> Self {
        let flag = [mask_of(['K']), mask_of(['Z', '2'])];
        // (pattern, characters of it that are the flag band)
        let mut pats: Vec<(Vec<Mask>, u8)> = Vec::new();
        for fmt in formats {
            for p in patterns(fmt) {
                if fmt.country == "KZ" && fmt.kind != "1993" {
                    let mut with_flag = flag.to_vec();
                    with_flag.extend_from_slice(&p);
                    pats.push((with_flag, 2));
                }
                pats.push((p, 0));
            }
        }
        let start: Vec<(u16, u8)> = (0..pats.len() as u16).map(|i| (i, 0)).collect();
        let mut ids = std::collections::HashMap::new();
        let mut sets = vec![start.clone()];
        ids.insert(start, 0u32);
        let mut next = Vec::new();
        let mut accept = Vec::new();
        let mut i = 0;
        while i < sets.len() {
            let items = sets[i].clone();
            // The plain reading wins over one that drops a flag band.
            accept.push(
                items
                    .iter()
                    .filter(|(p, pos)| usize::from(*pos) == pats[usize::from(*p)].0.len())
                    .map(|(p, _)| pats[usize::from(*p)].1)
                    .min(),
            );
            let mut row = [Self::DEAD; PLATE_SYMBOLS];
            for (s, cell) in row.iter_mut().enumerate() {
                let to: Vec<(u16, u8)> = items
                    .iter()
                    .filter(|(p, pos)| {
                        pats[usize::from(*p)]
                            .0
                            .get(usize::from(*pos))
                            .is_some_and(|m| m & (1 << s) != 0)
                    })
                    .map(|&(p, pos)| (p, pos + 1))
                    .collect();
                if to.is_empty() {
                    continue;
                }
                let n = sets.len() as u32;
                *cell = *ids.entry(to.clone()).or_insert_with(|| {
                    sets.push(to);
                    n
                });
            }
            next.push(row);
            i += 1;
        }
        Self { next, accept }
    }

    /// The state before any character.
    #[must_use]
    pub fn start(&self) -> u32 {
        0
    }

    /// The state after `symbol` (see [`plate_symbol`]) from `state`; `None` when no format
    /// allows it there.
    #[must_use]
    pub fn step(&self, state: u32, symbol: u8) -> Option<u32> {
        let to = *self.next.get(state as usize)?.get(usize::from(symbol))?;
        (to != Self::DEAD).then_some(to)
    }

    /// For a state where a whole plate has been read, how many leading characters were the
    /// flag band (0 or 2); `None` when the text so far is no complete plate.
    #[must_use]
    pub fn accepts(&self, state: u32) -> Option<usize> {
        self.accept
            .get(state as usize)
            .copied()
            .flatten()
            .map(usize::from)
    }

    /// Number of states (for tests and documentation).
    #[must_use]
    pub fn states(&self) -> usize {
        self.next.len()
    }

    /// Whether the whole of `text` is a plate of the formats; the flag characters to drop.
    #[must_use]
    pub fn accepts_text(&self, text: &str) -> Option<usize> {
        let mut state = self.start();
        for c in text.chars() {
            state = self.step(state, plate_symbol(c)?)?;
        }
        self.accepts(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazakh_formats_are_recognised_with_their_region() {
        let p = interpret("123ABC01", GrammarMode::Generic);
        assert_eq!(
            (p.country, p.plate_type),
            (Some("KZ"), Some("private-2012"))
        );
        assert_eq!(p.region.as_deref(), Some("01 Astana"));
        assert_eq!(
            interpret("505AB17", GrammarMode::Generic).plate_type,
            Some("legal-2012")
        );
        assert_eq!(
            interpret("F123402", GrammarMode::Generic).plate_type,
            Some("foreign")
        );
        assert_eq!(
            interpret("A123BCD", GrammarMode::Generic).plate_type,
            Some("1993")
        );
    }

    #[test]
    fn a_region_code_out_of_range_is_not_a_kazakh_plate() {
        let p = interpret("123ABC21", GrammarMode::Generic);
        assert_eq!(p.country, None);
        assert_eq!(p.text, "123ABC21");
    }

    #[test]
    fn neighbours_are_recognised_and_ambiguous_texts_are_not_guessed() {
        assert_eq!(
            interpret("A123BC77", GrammarMode::Generic).country,
            Some("RU")
        );
        assert_eq!(
            interpret("01A123BC", GrammarMode::Generic).country,
            Some("UZ")
        );
        // Kyrgyz private or Uzbek legal: both fit.
        let p = interpret("01123ABC", GrammarMode::Generic);
        assert_eq!(p.country, None);
        assert!((p.confidence - 0.5).abs() < 1e-6);
    }

    #[test]
    fn generic_mode_never_corrects() {
        let p = interpret("I23ABCO1", GrammarMode::Generic);
        assert_eq!(p.text, "I23ABCO1");
        assert_eq!(p.country, None);
        assert_eq!(p.corrections, 0);
    }

    #[test]
    fn kz_mode_corrects_look_alikes_only_when_one_format_fits() {
        let p = interpret("I23ABCO1", GrammarMode::Kz);
        assert_eq!(p.text, "123ABC01");
        assert_eq!(p.corrections, 2);
        assert_eq!(p.country, Some("KZ"));
        // `8` in a letter slot could be B; `0` in the region is fine: one fit.
        assert_eq!(interpret("1238CD05", GrammarMode::Kz).text, "123BCD05");
    }

    #[test]
    fn kz_mode_takes_the_kazakh_correction_when_a_neighbour_s_needs_as_many_swaps() {
        // Two swaps either way: `023OOH11` (Kazakhstan 2012) or `O230OH11` (Russia).
        let p = interpret("02300H11", GrammarMode::Kz);
        assert_eq!(p.text, "023OOH11");
        assert_eq!(p.country, Some("KZ"));
        assert_eq!(p.corrections, 2);
        // A Russian plate read as it is stays Russian, and a correction only a Russian format
        // takes is still made.
        assert_eq!(interpret("A123BC77", GrammarMode::Kz).country, Some("RU"));
        let p = interpret("A123BC7B", GrammarMode::Kz);
        assert_eq!((p.text.as_str(), p.country), ("A123BC78", Some("RU")));
    }

    #[test]
    fn kz_mode_drops_the_flag_letters_before_a_kazakh_plate() {
        let p = interpret("K2123ABC01", GrammarMode::Kz);
        assert_eq!(p.text, "123ABC01");
        assert_eq!(p.country, Some("KZ"));
        assert_eq!(interpret("KZ505AB17", GrammarMode::Kz).text, "505AB17");
    }

    #[test]
    fn the_automaton_accepts_exactly_the_regional_formats() {
        let a = FormatAutomaton::for_mode(GrammarMode::Kz).unwrap();
        assert!(FormatAutomaton::for_mode(GrammarMode::Generic).is_none());
        for ok in [
            "123ABC01", "505AB17", "F123402", "AB12320", "A123BCD", "A123BC77", "01A123BC",
        ] {
            assert_eq!(a.accepts_text(ok), Some(0), "{ok}");
            assert_eq!(interpret(ok, GrammarMode::Generic).corrections, 0);
        }
        // The flag band before a Kazakhstan 2012 plate is accepted and marked for dropping.
        assert_eq!(a.accepts_text("KZ123ABC01"), Some(2));
        assert_eq!(a.accepts_text("K2505AB17"), Some(2));
        for bad in [
            "123ABC21", "123ABC00", "I23ABC01", "123AB", "WA56660", "KZ", "",
        ] {
            assert_eq!(a.accepts_text(bad), None, "{bad}");
        }
        // Every accepted text is one `interpret` labels exactly, with no correction.
        assert!(a.states() < 400, "{} states", a.states());
    }

    #[test]
    fn text_that_fits_nothing_is_reported_as_read() {
        let p = interpret("WA56660", GrammarMode::Kz);
        assert_eq!(p.text, "WA56660");
        assert_eq!(p.country, None);
        assert_eq!(p.plate_type, None);
    }
}
