//! Plate text as lists and reads are compared: normalised, and the look-alike characters a
//! reader (or a person typing a list) confuses.

/// Pairs of characters that look alike on a plate and are confused by readers. A read that
/// differs from a listed plate in exactly one position, by one of these pairs (either way
/// round), is a look-alike match: weaker than an exact one, to be confirmed by a person.
pub const LOOK_ALIKES: &[(char, char)] = &[
    ('O', '0'),
    ('D', '0'),
    ('Q', '0'),
    ('O', 'D'),
    ('O', 'Q'),
    ('B', '8'),
    ('I', '1'),
    ('S', '5'),
    ('Z', '2'),
    ('G', '6'),
];

/// The characters that look like `c`, from [`LOOK_ALIKES`].
pub fn look_alikes(c: char) -> impl Iterator<Item = char> {
    LOOK_ALIKES.iter().filter_map(move |&(a, b)| {
        if a == c {
            Some(b)
        } else if b == c {
            Some(a)
        } else {
            None
        }
    })
}

/// A plate as it is compared: upper case, letters and digits only (spaces, dashes, dots and
/// other separators removed). `"123 abc-01"` becomes `"123ABC01"`. Normalising twice changes
/// nothing: characters are upper-cased before the filter, since upper-casing a few letters
/// (`ΰ` → `Ϋ́`) adds combining marks, which are no letters.
#[must_use]
pub fn normalise(text: &str) -> String {
    text.chars()
        .flat_map(char::to_uppercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Calls `f` with every text that differs from `plate` by exactly one look-alike substitution,
/// reusing one buffer (no allocation per variant).
pub(crate) fn for_each_variant(plate: &str, mut f: impl FnMut(&str)) {
    let mut buf = plate.to_string();
    let mut utf8 = [0u8; 4];
    for (i, c) in plate.char_indices() {
        for alt in look_alikes(c) {
            buf.replace_range(i..i + c.len_utf8(), alt.encode_utf8(&mut utf8));
            f(&buf);
            buf.replace_range(i..i + alt.len_utf8(), c.encode_utf8(&mut utf8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_upper_cased_and_separators_removed() {
        assert_eq!(normalise(" 123 abc-01 "), "123ABC01");
        assert_eq!(normalise("a.b_c/1"), "ABC1");
        assert_eq!(normalise("-- "), "");
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/plate_list_csv.rs`): the list line
    /// `A-26214-262143ΰ1,` was kept as a plate with two combining marks in it, which its own
    /// plate, normalised again, no longer matched.
    #[test]
    fn normalising_keeps_letters_and_digits_only_and_twice_changes_nothing() {
        let once = normalise("A-26214-262143\u{3b0}1");
        assert_eq!(once, "A26214262143\u{3a5}1");
        assert!(once.chars().all(char::is_alphanumeric), "{once:?}");
        assert_eq!(normalise(&once), once);
        assert_eq!(normalise("\u{390}x"), "\u{399}X");
    }

    #[test]
    fn look_alikes_work_both_ways_and_zero_has_several() {
        assert_eq!(look_alikes('8').collect::<String>(), "B");
        assert_eq!(look_alikes('B').collect::<String>(), "8");
        assert_eq!(look_alikes('0').collect::<String>(), "ODQ");
        assert_eq!(look_alikes('O').collect::<String>(), "0DQ");
        assert_eq!(look_alikes('X').count(), 0);
    }

    #[test]
    fn variants_change_exactly_one_character() {
        let mut seen = Vec::new();
        for_each_variant("B0X", |v| seen.push(v.to_string()));
        assert_eq!(seen, ["80X", "BOX", "BDX", "BQX"]);
    }
}
