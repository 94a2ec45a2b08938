//! "Did you mean": the closest known name to a misspelled one.

/// The candidate closest to `wrong`, if one is close enough to be a likely typo.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        if candidate == wrong {
            continue;
        }
        let score = strsim::jaro_winkler(&wrong_lower, &candidate.to_lowercase());
        let distance = strsim::damerau_levenshtein(&wrong_lower, &candidate.to_lowercase());
        let close = distance <= 2.max(wrong.len() / 3) || score >= 0.88;
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate, if any.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(wrong, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_transpositions_and_typos() {
        assert_eq!(closest("riks", ["risk", "nights", "total"]), Some("risk"));
        assert_eq!(
            closest(
                "reservation.craeted",
                ["reservation.created", "reservation.cancelled"]
            ),
            Some("reservation.created")
        );
        assert_eq!(
            closest("welcom", ["welcome", "arrival_guide"]),
            Some("welcome")
        );
        assert_eq!(closest("zzz", ["risk", "nights"]), None);
    }
}
