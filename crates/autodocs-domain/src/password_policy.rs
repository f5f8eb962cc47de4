//! Django's default password validation, ported faithfully.
//!
//! The four validators of a new Django project run in Django's order:
//! `UserAttributeSimilarityValidator`, `MinimumLengthValidator(8)`,
//! `CommonPasswordValidator` (with Django's own list of 20,000 passwords) and
//! `NumericPasswordValidator`. Each contributes at most one message, in
//! Django's exact English words, so clients see what the Django backend said.
//!
//! Lengths are counted in Unicode scalar values, as Python counts `str`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

use crate::validation::InvalidValue;

/// The account values a password must not resemble.
///
/// Empty values are ignored, as Django ignores blank attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordAttributes<'a> {
    /// The username.
    pub username: &'a str,
    /// The email address.
    pub email: &'a str,
    /// The first name.
    pub first_name: &'a str,
    /// The last name.
    pub last_name: &'a str,
}

/// Shortest password accepted, in characters (Django's default).
pub const MIN_LENGTH: usize = 8;

/// Similarity ratio at or above which a password is too close to an attribute
/// (Django's default `max_similarity`).
pub const MAX_SIMILARITY: f64 = 0.7;

/// Django's message when the password resembles the given attribute
/// (`verbose_name`: "username", "first name", "last name", "email address").
fn too_similar_message(verbose_name: &str) -> String {
    format!("The password is too similar to the {verbose_name}.")
}

/// Django's message for a password under [`MIN_LENGTH`] characters.
fn too_short_message() -> String {
    format!("This password is too short. It must contain at least {MIN_LENGTH} characters.")
}

const TOO_COMMON_MESSAGE: &str = "This password is too common.";
const ENTIRELY_NUMERIC_MESSAGE: &str = "This password is entirely numeric.";

/// Checks a password against Django's four default validators.
///
/// Returns every message that applies, in Django's validator order:
/// similarity to the account's attributes, minimum length, common password,
/// entirely numeric. An empty password is not special-cased here (see
/// [`NewPassword::parse`] for the "blank" check).
///
/// # Errors
///
/// The messages of every validator that refused the password.
pub fn validate_password(
    password: &str,
    attributes: &PasswordAttributes<'_>,
) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if let Some(verbose_name) = similar_attribute(password, attributes) {
        errors.push(too_similar_message(verbose_name));
    }
    if password.chars().count() < MIN_LENGTH {
        errors.push(too_short_message());
    }
    if is_common(password) {
        errors.push(TOO_COMMON_MESSAGE.to_owned());
    }
    if is_entirely_numeric(password) {
        errors.push(ENTIRELY_NUMERIC_MESSAGE.to_owned());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A password that passed Django's validation, ready to be hashed.
///
/// Its `Debug` output never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    /// Parses a new password: refuses an empty or whitespace-only one with
    /// [`InvalidValue::Blank`], then applies
    /// [`validate_password`]. The password is kept exactly as given.
    ///
    /// # Errors
    ///
    /// `[InvalidValue::Blank]`, or the messages of [`validate_password`]
    /// as rules (code `password_too_weak`).
    pub fn parse(
        raw: &str,
        attributes: &PasswordAttributes<'_>,
    ) -> Result<Self, Vec<InvalidValue>> {
        if raw.trim().is_empty() {
            return Err(vec![InvalidValue::Blank]);
        }
        validate_password(raw, attributes).map_err(|messages| {
            messages
                .into_iter()
                .map(|message| InvalidValue::rule("password_too_weak", message))
                .collect::<Vec<_>>()
        })?;
        Ok(Self(raw.to_owned()))
    }

    /// The password.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(\"********\")")
    }
}

// --- UserAttributeSimilarityValidator -------------------------------------

/// The verbose name of the first attribute the password is too similar to,
/// checking `username`, `first_name`, `last_name`, `email` in Django's order.
fn similar_attribute(password: &str, attributes: &PasswordAttributes<'_>) -> Option<&'static str> {
    let password: Vec<char> = password.to_lowercase().chars().collect();
    let candidates = [
        (attributes.username, "username"),
        (attributes.first_name, "first name"),
        (attributes.last_name, "last name"),
        (attributes.email, "email address"),
    ];
    candidates
        .into_iter()
        .find(|(value, _)| !value.is_empty() && resembles(&password, value))
        .map(|(_, verbose_name)| verbose_name)
}

/// Whether the (lower-cased) password resembles the value or one of its parts
/// split on runs of non-word characters (`re.split(r"\W+", value)`).
fn resembles(password: &[char], value: &str) -> bool {
    let value = value.to_lowercase();
    split_non_word(&value)
        .into_iter()
        .chain(std::iter::once(value.as_str()))
        .any(|part| {
            let part: Vec<char> = part.chars().collect();
            !exceeds_maximum_length_ratio(password.len(), part.len())
                && quick_ratio(password, &part) >= MAX_SIMILARITY
        })
}

/// Python's `re.split(r"\W+", value)`: leading or trailing separators yield
/// empty parts, runs of separators count once.
fn split_non_word(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_separator = false;
    for (index, c) in value.char_indices() {
        let word = c.is_alphanumeric() || c == '_';
        if !word && !in_separator {
            parts.push(&value[start..index]);
            in_separator = true;
        } else if word && in_separator {
            start = index;
            in_separator = false;
        }
    }
    parts.push(if in_separator { "" } else { &value[start..] });
    parts
}

/// Django's shortcut: a value under a tenth of the password's length cannot
/// reach the similarity threshold, so it is skipped.
fn exceeds_maximum_length_ratio(password_len: usize, value_len: usize) -> bool {
    let length_bound_similarity = MAX_SIMILARITY / 2.0 * password_len as f64;
    password_len >= 10 * value_len && (value_len as f64) < length_bound_similarity
}

/// `difflib.SequenceMatcher(a=a, b=b).quick_ratio()`: twice the size of the
/// multiset intersection of the characters over the total length (1.0 when
/// both are empty).
fn quick_ratio(a: &[char], b: &[char]) -> f64 {
    let mut available: HashMap<char, usize> = HashMap::new();
    for &c in b {
        *available.entry(c).or_insert(0) += 1;
    }
    let mut matches = 0usize;
    for c in a {
        if let Some(count) = available.get_mut(c).filter(|count| **count > 0) {
            *count -= 1;
            matches += 1;
        }
    }
    let length = a.len() + b.len();
    if length == 0 {
        1.0
    } else {
        2.0 * matches as f64 / length as f64
    }
}

// --- CommonPasswordValidator -----------------------------------------------

/// Django 5.2's `common-passwords.txt` (lower-cased, one per line).
static COMMON_PASSWORDS_TEXT: &str = include_str!("../data/common-passwords.txt");

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_PASSWORDS_TEXT
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// Whether `password.lower().strip()` is on Django's list.
fn is_common(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().trim())
}

// --- NumericPasswordValidator ----------------------------------------------

/// Python's `str.isdigit()`: non-empty and every character a digit (Unicode
/// `Numeric_Type` Decimal or Digit, so `"²"` and `"٣"` count but `"½"` does not).
fn is_entirely_numeric(password: &str) -> bool {
    !password.is_empty() && password.chars().all(is_python_digit)
}

fn is_python_digit(c: char) -> bool {
    let c = u32::from(c);
    PYTHON_DIGITS
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The code point ranges for which Python 3.11's `str.isdigit()` is true.
#[rustfmt::skip]
static PYTHON_DIGITS: &[(u32, u32)] = &[
    (0x30, 0x39), (0xB2, 0xB3), (0xB9, 0xB9), (0x660, 0x669), (0x6F0, 0x6F9), (0x7C0, 0x7C9),
    (0x966, 0x96F), (0x9E6, 0x9EF), (0xA66, 0xA6F), (0xAE6, 0xAEF), (0xB66, 0xB6F), (0xBE6, 0xBEF),
    (0xC66, 0xC6F), (0xCE6, 0xCEF), (0xD66, 0xD6F), (0xDE6, 0xDEF), (0xE50, 0xE59), (0xED0, 0xED9),
    (0xF20, 0xF29), (0x1040, 0x1049), (0x1090, 0x1099), (0x1369, 0x1371), (0x17E0, 0x17E9),
    (0x1810, 0x1819), (0x1946, 0x194F), (0x19D0, 0x19DA), (0x1A80, 0x1A89), (0x1A90, 0x1A99),
    (0x1B50, 0x1B59), (0x1BB0, 0x1BB9), (0x1C40, 0x1C49), (0x1C50, 0x1C59), (0x2070, 0x2070),
    (0x2074, 0x2079), (0x2080, 0x2089), (0x2460, 0x2468), (0x2474, 0x247C), (0x2488, 0x2490),
    (0x24EA, 0x24EA), (0x24F5, 0x24FD), (0x24FF, 0x24FF), (0x2776, 0x277E), (0x2780, 0x2788),
    (0x278A, 0x2792), (0xA620, 0xA629), (0xA8D0, 0xA8D9), (0xA900, 0xA909), (0xA9D0, 0xA9D9),
    (0xA9F0, 0xA9F9), (0xAA50, 0xAA59), (0xABF0, 0xABF9), (0xFF10, 0xFF19), (0x104A0, 0x104A9),
    (0x10A40, 0x10A43), (0x10D30, 0x10D39), (0x10E60, 0x10E68), (0x11052, 0x1105A),
    (0x11066, 0x1106F), (0x110F0, 0x110F9), (0x11136, 0x1113F), (0x111D0, 0x111D9),
    (0x112F0, 0x112F9), (0x11450, 0x11459), (0x114D0, 0x114D9), (0x11650, 0x11659),
    (0x116C0, 0x116C9), (0x11730, 0x11739), (0x118E0, 0x118E9), (0x11950, 0x11959),
    (0x11C50, 0x11C59), (0x11D50, 0x11D59), (0x11DA0, 0x11DA9), (0x16A60, 0x16A69),
    (0x16AC0, 0x16AC9), (0x16B50, 0x16B59), (0x1D7CE, 0x1D7FF), (0x1E140, 0x1E149),
    (0x1E2F0, 0x1E2F9), (0x1E950, 0x1E959), (0x1F100, 0x1F10A), (0x1FBF0, 0x1FBF9),
];

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: PasswordAttributes<'static> = PasswordAttributes {
        username: "alice",
        email: "alice@example.com",
        first_name: "Alice",
        last_name: "Liddell",
    };

    const NOBODY: PasswordAttributes<'static> = PasswordAttributes {
        username: "",
        email: "",
        first_name: "",
        last_name: "",
    };

    fn errors(password: &str, attributes: &PasswordAttributes<'_>) -> Vec<String> {
        validate_password(password, attributes)
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn a_common_password_is_refused() {
        assert_eq!(
            errors("password", &NOBODY),
            ["This password is too common."]
        );
        assert_eq!(
            errors("  PassWord ", &NOBODY),
            ["This password is too common."]
        );
    }

    #[test]
    fn a_common_numeric_password_gets_both_messages() {
        assert_eq!(
            errors("12345678", &NOBODY),
            [
                "This password is too common.",
                "This password is entirely numeric."
            ]
        );
    }

    #[test]
    fn a_short_password_is_refused() {
        assert_eq!(
            errors("short", &NOBODY),
            ["This password is too short. It must contain at least 8 characters."]
        );
    }

    #[test]
    fn unicode_digits_are_numeric_like_python() {
        assert!(is_entirely_numeric("٣٣٣٣٣٣٣٣٧٢"));
        assert!(is_entirely_numeric("²³"));
        assert!(!is_entirely_numeric("½½½½½½½½"));
        assert!(!is_entirely_numeric(""));
        assert!(!is_entirely_numeric("1234567a"));
    }

    #[test]
    fn a_password_like_the_username_is_refused() {
        // quick_ratio("alice1234", "alice") = 10/14 ≥ 0.7. ("alice12345" is
        // 10/15 < 0.7, which Django accepts as far as similarity goes.)
        assert_eq!(
            errors("alice1234", &ALICE),
            ["The password is too similar to the username."]
        );
        assert_eq!(
            errors("ALICE1234", &ALICE),
            ["The password is too similar to the username."]
        );
    }

    #[test]
    fn each_attribute_has_its_verbose_name() {
        let attributes = PasswordAttributes {
            username: "zz",
            email: "mallory.x@corp.example",
            first_name: "Bartholomew",
            last_name: "Featherstonehaugh",
        };
        assert_eq!(
            errors("bartholomew1", &attributes),
            ["The password is too similar to the first name."]
        );
        assert_eq!(
            errors("featherstone", &attributes),
            ["The password is too similar to the last name."]
        );
        // The local part split on non-word characters: "mallory".
        assert_eq!(
            errors("mallory99", &attributes),
            ["The password is too similar to the email address."]
        );
        assert_eq!(
            errors("mallory.x@corp.example!", &attributes),
            ["The password is too similar to the email address."]
        );
    }

    #[test]
    fn a_good_password_passes() {
        assert_eq!(
            validate_password("correct horse battery staple", &ALICE),
            Ok(())
        );
        let parsed = NewPassword::parse("correct horse battery staple", &ALICE);
        assert_eq!(
            parsed.as_ref().map(NewPassword::as_str),
            Ok("correct horse battery staple")
        );
    }

    #[test]
    fn a_blank_password_is_blank_only() {
        assert_eq!(
            NewPassword::parse("", &ALICE),
            Err(vec![InvalidValue::Blank])
        );
        assert_eq!(
            NewPassword::parse("   ", &ALICE),
            Err(vec![InvalidValue::Blank])
        );
    }

    #[test]
    fn new_password_collects_every_message() {
        assert_eq!(
            NewPassword::parse("alice", &ALICE),
            Err(vec![
                InvalidValue::rule(
                    "password_too_weak",
                    "The password is too similar to the username."
                ),
                InvalidValue::rule(
                    "password_too_weak",
                    "This password is too short. It must contain at least 8 characters."
                ),
                InvalidValue::rule("password_too_weak", "This password is too common."),
            ])
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let parsed = NewPassword::parse("correct horse battery staple", &NOBODY);
        let shown = format!("{parsed:?}");
        assert!(!shown.contains("horse"), "{shown}");
    }

    #[test]
    fn the_common_list_is_djangos() {
        assert!(
            COMMON_PASSWORDS.len() >= 10_000,
            "{}",
            COMMON_PASSWORDS.len()
        );
        assert!(COMMON_PASSWORDS.contains("qwerty"));
    }

    #[test]
    fn split_matches_python_re_split() {
        assert_eq!(
            split_non_word("alice@example.com"),
            ["alice", "example", "com"]
        );
        assert_eq!(split_non_word("-a--b-"), ["", "a", "b", ""]);
        assert_eq!(split_non_word("plain_name"), ["plain_name"]);
        assert_eq!(split_non_word(""), [""]);
    }

    #[test]
    fn quick_ratio_matches_difflib() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(quick_ratio(&chars("abcd"), &chars("bcde")), 0.75);
        assert_eq!(quick_ratio(&chars("aab"), &chars("abb")), 2.0 * 2.0 / 6.0);
        assert_eq!(quick_ratio(&[], &[]), 1.0);
    }

    /// Outcomes of Django 5.2's `validate_password` for a `User` with these
    /// attributes, recorded from Django itself.
    #[test]
    fn agrees_with_django() {
        for &(password, username, email, first_name, last_name, expected) in DJANGO_CASES {
            let attributes = PasswordAttributes {
                username,
                email,
                first_name,
                last_name,
            };
            let got = errors(password, &attributes);
            assert_eq!(got, expected, "password {password:?}");
        }
    }

    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    );

    #[rustfmt::skip]
    const DJANGO_CASES: &[Case] = &[
        ("password", "", "", "", "", &["This password is too common."]),
        ("12345678", "", "", "", "", &["This password is too common.", "This password is entirely numeric."]),
        ("short", "", "", "", "", &["This password is too short. It must contain at least 8 characters."]),
        ("alice12345", "alice", "alice@example.com", "Alice", "Liddell", &[]),
        ("alice1234", "alice", "alice@example.com", "Alice", "Liddell", &["The password is too similar to the username."]),
        ("correct horse battery staple", "alice", "alice@example.com", "Alice", "Liddell", &[]),
        ("liddell99", "alice", "alice@example.com", "Alice", "Liddell", &["The password is too similar to the last name."]),
        ("examplecom", "bob", "bob@example.com", "", "", &["The password is too similar to the email address."]),
        ("bob@example.com", "bob", "bob@example.com", "", "", &["The password is too similar to the email address."]),
        ("", "bob", "bob@example.com", "", "", &["This password is too short. It must contain at least 8 characters."]),
        ("", "-bob", "", "", "", &["The password is too similar to the username.", "This password is too short. It must contain at least 8 characters."]),
        ("x", "-bob", "", "", "", &["This password is too short. It must contain at least 8 characters.", "This password is too common."]),
        ("²²²²²²²²", "", "", "", "", &["This password is entirely numeric."]),
        ("١٢٣٤٥٦٧٨٩", "", "", "", "", &["This password is entirely numeric."]),
        ("½½½½½½½½", "", "", "", "", &[]),
        ("  Qwerty  ", "", "", "", "", &["This password is too common."]),
        ("ΣΊΣΥΦΟΣ-ok", "sísyphos", "", "Σίσυφος", "", &["The password is too similar to the first name."]),
        ("jean-pierre!", "jp", "jp@x.fr", "Jean-Pierre", "Dupont", &["The password is too similar to the first name."]),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "a", "", "", "", &[]),
        ("abcdefghij", "a", "", "", "", &["This password is too common."]),
        ("9876543210", "user9876", "", "", "", &["This password is too common.", "This password is entirely numeric."]),
        ("iloveyou", "romeo", "romeo@verona.it", "Romeo", "Montague", &["This password is too common."]),
        ("montague-verona", "romeo", "romeo@verona.it", "Romeo", "Montague", &[]),
        ("Tr0ub4dor&3", "troubadour", "", "", "", &[]),
    ];
}
