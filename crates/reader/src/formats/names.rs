//! Making gene names unique the way scanpy/anndata do
//! (`anndata.utils.make_index_unique`, join "-").

use std::collections::{HashMap, HashSet};

/// Renames repeated names in place: the first occurrence keeps its name,
/// later ones become `name-1`, `name-2`, ... skipping any candidate that is
/// already taken (by an original name or an earlier rename). Returns how
/// many names were renamed.
pub(crate) fn make_unique(names: &mut [String]) -> usize {
    let mut seen: HashSet<&str> = HashSet::with_capacity(names.len());
    let dup: Vec<usize> = (0..names.len())
        .filter(|&i| !seen.insert(names[i].as_str()))
        .collect();
    if dup.is_empty() {
        return 0;
    }
    let mut taken: HashSet<String> = names.iter().cloned().collect();
    let mut counter: HashMap<String, usize> = HashMap::new();
    for &i in &dup {
        let base = names[i].clone();
        let n = counter.entry(base.clone()).or_insert(0);
        loop {
            *n += 1;
            let candidate = format!("{base}-{n}");
            if taken.insert(candidate.clone()) {
                names[i] = candidate;
                break;
            }
        }
    }
    dup.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scanpy_style_suffixes() {
        let mut n = v(&["a", "b", "a", "a", "c"]);
        assert_eq!(make_unique(&mut n), 2);
        assert_eq!(n, v(&["a", "b", "a-1", "a-2", "c"]));
    }

    #[test]
    fn skips_taken_candidates() {
        // anndata: ["a", "a", "a-1"] -> ["a", "a-2", "a-1"]
        let mut n = v(&["a", "a", "a-1"]);
        assert_eq!(make_unique(&mut n), 1);
        assert_eq!(n, v(&["a", "a-2", "a-1"]));
    }

    #[test]
    fn unique_input_is_untouched() {
        let mut n = v(&["x", "y"]);
        assert_eq!(make_unique(&mut n), 0);
        assert_eq!(n, v(&["x", "y"]));
    }
}
