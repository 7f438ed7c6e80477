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
/// other separators removed). `"123 abc-01"` becomes `"123ABC01"`.
#[must_use]
pub fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
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
