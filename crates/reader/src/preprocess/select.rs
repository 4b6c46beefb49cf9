//! Gene matching across datasets and rliger's `selectGenes` (docs/algorithms.md
//! §9) on the streamed statistics.

use std::collections::{HashMap, HashSet};

use crate::preprocess::normal_quantile::normal_upper_quantile;
use crate::preprocess::params::{Combine, GeneSelection};
use crate::preprocess::stats::GeneStats;

/// Genes present in every dataset, in the first dataset's order.
#[derive(Debug, Clone)]
pub(crate) struct Matching {
    /// The shared names.
    pub(crate) shared: Vec<String>,
    /// Per dataset, the presented column of each shared gene.
    pub(crate) cols: Vec<Vec<usize>>,
    /// Per dataset, how many of its genes are not shared.
    pub(crate) not_shared: Vec<usize>,
}

/// Matches genes by (unique) name across `datasets`' gene lists.
pub(crate) fn match_genes(datasets: &[&[String]]) -> Matching {
    let maps: Vec<HashMap<&str, usize>> = datasets
        .iter()
        .map(|g| g.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect())
        .collect();
    let mut shared = Vec::new();
    let mut cols = vec![Vec::new(); datasets.len()];
    for name in datasets.first().copied().unwrap_or_default() {
        let found: Option<Vec<usize>> = maps.iter().map(|m| m.get(name.as_str()).copied()).collect();
        if let Some(found) = found {
            shared.push(name.clone());
            for (d, c) in found.into_iter().enumerate() {
                cols[d].push(c);
            }
        }
    }
    let not_shared = datasets.iter().map(|g| g.len() - shared.len()).collect();
    Matching {
        shared,
        cols,
        not_shared,
    }
}

/// The statistics selectGenes tests, for one gene.
#[derive(Debug, Clone, Copy)]
struct Metrics {
    /// σ²/ν > μ + z·sqrt(μν/n): variance exceeds the Poisson expectation.
    poisson_excess: bool,
    /// log10 σ².
    log_var: f64,
    /// log10(μν), the Poisson expectation of log10 σ².
    log_base: f64,
}

impl Metrics {
    /// The ranking metric log10 σ² − log10(μν); not finite when μ or σ² is 0.
    fn log_ratio(&self) -> f64 {
        self.log_var - self.log_base
    }
}

fn metrics(stats: &GeneStats, g: usize, z: f64) -> Metrics {
    let (n, nu) = (stats.n() as f64, stats.nu());
    let (mu, var) = (stats.mean(g), stats.var(g));
    let upper = mu + z * (mu * nu / n).sqrt();
    Metrics {
        poisson_excess: var / nu > upper,
        log_var: var.log10(),
        log_base: (mu * nu).log10(),
    }
}

/// selectGenes for one dataset over the candidate columns `cols` (its
/// shared genes). `n_genes_total` is the dataset's gene count (all
/// presented genes: the Bonferroni divisor). Returns one decision per
/// candidate.
pub(crate) fn select_dataset(
    stats: &GeneStats,
    n_genes_total: usize,
    cols: &[usize],
    sel: &GeneSelection,
) -> Vec<bool> {
    let alpha_star = sel.alpha / n_genes_total as f64;
    let z = normal_upper_quantile(alpha_star / 2.0);
    let m: Vec<Metrics> = cols.iter().map(|&c| metrics(stats, c, z)).collect();
    match sel.n_genes {
        // Written as rliger writes it: log10 σ² > log10(μν) + thresh.
        None => m
            .iter()
            .map(|m| m.poisson_excess && m.log_var > m.log_base + sel.var_thresh)
            .collect(),
        Some(k) => {
            let mut order: Vec<usize> = (0..m.len())
                .filter(|&i| m[i].poisson_excess && m[i].log_ratio().is_finite())
                .collect();
            // Largest ratio first; ties by position for determinism.
            order.sort_by(|&a, &b| m[b].log_ratio().total_cmp(&m[a].log_ratio()).then(a.cmp(&b)));
            let mut keep = vec![false; m.len()];
            for &i in order.iter().take(k) {
                keep[i] = true;
            }
            keep
        }
    }
}

/// Combines per-dataset decisions (each over the shared genes) into the
/// indices of the selected shared genes, increasing (first dataset's order).
pub(crate) fn combine(decisions: &[Vec<bool>], how: Combine) -> Vec<usize> {
    let n = decisions.first().map_or(0, Vec::len);
    (0..n)
        .filter(|&i| match how {
            Combine::Union => decisions.iter().any(|d| d[i]),
            Combine::Intersection => decisions.iter().all(|d| d[i]),
        })
        .collect()
}

/// Positions of `wanted` names in `names`; `Err` with the missing ones.
pub(crate) fn find_genes(names: &[String], wanted: &[String]) -> (Vec<Option<usize>>, Vec<String>) {
    let map: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut missing = Vec::new();
    let mut cols = Vec::with_capacity(wanted.len());
    let mut seen = HashSet::new();
    for w in wanted {
        match map.get(w.as_str()) {
            Some(&c) if seen.insert(c) => cols.push(Some(c)),
            _ => {
                cols.push(None);
                missing.push(w.clone());
            }
        }
    }
    (cols, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn matching_keeps_first_order_and_counts_unshared() {
        let a = s(&["g1", "g2", "g3", "g4"]);
        let b = s(&["g4", "x", "g2", "g1"]);
        let m = match_genes(&[&a, &b]);
        assert_eq!(m.shared, s(&["g1", "g2", "g4"]));
        assert_eq!(m.cols, vec![vec![0, 1, 3], vec![3, 2, 0]]);
        assert_eq!(m.not_shared, vec![1, 1]);
        let c = s(&["y"]);
        assert!(match_genes(&[&a, &c]).shared.is_empty());
    }

    #[test]
    fn combine_union_and_intersection() {
        let d = vec![vec![true, false, true, false], vec![false, false, true, true]];
        assert_eq!(combine(&d, Combine::Union), vec![0, 2, 3]);
        assert_eq!(combine(&d, Combine::Intersection), vec![2]);
    }

    #[test]
    fn find_genes_reports_missing() {
        let names = s(&["a", "b", "c"]);
        assert_eq!(
            find_genes(&names, &s(&["c", "a"])),
            (vec![Some(2), Some(0)], vec![])
        );
        assert_eq!(
            find_genes(&names, &s(&["c", "z"])),
            (vec![Some(2), None], s(&["z"]))
        );
    }
}
