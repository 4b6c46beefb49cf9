//! Run configuration: the TOML file of `config/default.toml`, with every
//! default documented there and here. Command-line flags override it.

use std::path::Path;

use serde::Deserialize;

use crate::error::DriverError;

/// Model and online-learning parameters (`[model]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// K, number of factors. Default 20.
    pub k: usize,
    /// λ of the penalty λ‖V_iH_i‖². Default 5.
    pub lambda: f64,
    /// Passes over the first dataset. Default 5.
    pub epochs: usize,
    /// Cells per iteration over all learned datasets. Default: unset,
    /// the reference's 5000, or all cells when there are fewer
    /// (`scenarios/minibatch.rs`, docs/algorithms.md §3).
    pub batch_size: Option<usize>,
    /// Cells per shuffled block. Default 1000.
    pub shuffle_block: usize,
    /// HALS sweeps per iteration. Default 1.
    pub hals_sweeps: usize,
    /// Seed. Default 1.
    pub seed: u64,
    /// Early-stop tolerance on the relative change of the epoch objective; 0 = off.
    pub tol: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 5.0,
            epochs: 5,
            batch_size: None,
            shuffle_block: 1000,
            hals_sweeps: 1,
            seed: 1,
            tol: 0.0,
        }
    }
}

/// Preprocessing parameters (`[preprocess]`, docs/algorithms.md §9).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// "X", "raw" or "layer:NAME". Default "X".
    pub matrix: String,
    /// selectGenes α. Default 0.99.
    pub alpha: f64,
    /// selectGenes variance threshold. Default 0.1.
    pub var_thresh: f64,
    /// Top genes per dataset; 0 = all that pass. Default 0.
    pub n_genes: usize,
    /// "union" or "intersection". Default "union".
    pub combine: String,
    /// Use the genes listed in this file (one name per line) instead of
    /// selecting them; a gene a dataset lacks reads as zeros. Default: unset.
    pub genes_file: Option<std::path::PathBuf>,
    /// How genes are matched across datasets: "name" or "id" (10x
    /// `features/id`, AnnData `var/gene_ids`, loom `row_attrs/Accession`).
    /// Default "name".
    pub match_genes: String,
    /// 10x inputs holding several genomes: the genome to read (Cell Ranger
    /// 2 group, Cell Ranger 3 `features/genome`); single-genome files are
    /// read whole. Default: unset (the only genome / all features).
    pub genome: Option<String>,
    /// When the genes are given (a model's, in `inmf add` and `inmf
    /// project`, or `genes_file`): the smallest fraction of them each
    /// dataset must measure (the others read as zeros); in [0, 1].
    /// Default 0.5.
    pub min_genes_present: f64,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            matrix: "X".into(),
            alpha: 0.99,
            var_thresh: 0.1,
            n_genes: 0,
            combine: "union".into(),
            genes_file: None,
            match_genes: "name".into(),
            genome: None,
            min_genes_present: 0.5,
        }
    }
}

impl PreprocessConfig {
    /// Checks what the reader's own checks cannot word in the
    /// configuration's terms: `min_genes_present` in [0, 1], and, when the
    /// command chooses its genes (`selects_genes`: `run`, `factor`, not
    /// `add` or `project`, which take a model's), that a gene list
    /// (`genes_file`, `--genes`) and a gene count (`n_genes`, `--n-genes`)
    /// are not both given, since a list fixes the genes.
    pub fn check(&self, selects_genes: bool) -> Result<(), DriverError> {
        if !(0.0..=1.0).contains(&self.min_genes_present) {
            return Err(DriverError::InvalidParameter(format!(
                "min_genes_present = {} in the [preprocess] table of the configuration is not a \
                 fraction in [0, 1]; set it to e.g. 0.5 (the default) or 0.2",
                self.min_genes_present
            )));
        }
        if let (true, Some(file), n) = (selects_genes, &self.genes_file, self.n_genes) {
            if n > 0 {
                return Err(DriverError::InvalidParameter(format!(
                    "--genes and --n-genes exclude each other: the gene list {} fixes the genes, so \
                     there is no selection to keep {n} genes of. Give only one of them (on the \
                     command line, or as genes_file / n_genes in the [preprocess] table of the \
                     --config file; n_genes = 0 there means no limit)",
                    file.display()
                )));
            }
        }
        Ok(())
    }
}

/// Runtime knobs (`[runtime]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads; 0 = one per core. Default 0.
    pub threads: usize,
    /// Mini-batches read ahead. Default 2.
    pub read_ahead: usize,
    /// Cells per block of the final H pass. Default 4000: 16 work units
    /// of 256 cells per block keep both cores busy (50k cells, 6 runs each:
    /// final H 0.051 → 0.042 s against 2000); blocks read by copying (file
    /// systems without mmap) then regrow the learning phase's buffers to
    /// about twice a mini-batch's share of one dataset.
    pub final_block: usize,
    /// Write a checkpoint every this many epochs (resume with `--resume`); 0 = never. Default 1.
    pub checkpoint_every: usize,
    /// …but only once at least this many seconds of learning passed since
    /// the last checkpoint (or the start); 0 = at every such epoch. A
    /// checkpoint costs 10–20 ms here (HDF5 writes, 2,000 gene names),
    /// 10–20 % of a 50k-cell epoch, while an interrupted run loses at most this
    /// long plus one epoch. Default 30.
    pub checkpoint_seconds: f64,
    /// Use the preprocessed cache (epochs read compact preprocessed CSR). Default true.
    pub cache: bool,
    /// Where cache entries live; default `.inmf-cache` beside the output directory.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Cache entries whose non-zeros take at most this many MiB stay
    /// memory-mapped whole for the run: page tables are filled once, not
    /// every epoch (15–25 % faster epochs at 50k cells here), and the
    /// mapped pages count in the resident set. Larger entries are mapped
    /// one mini-batch at a time, so memory stays flat at any size. 0 =
    /// always per mini-batch. Default 512.
    pub keep_mapped_mb: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            read_ahead: 2,
            final_block: 4000,
            checkpoint_every: 1,
            checkpoint_seconds: 30.0,
            cache: true,
            cache_dir: None,
            keep_mapped_mb: inmf_reader::DEFAULT_KEEP_MAPPED_BYTES >> 20,
        }
    }
}

impl RuntimeConfig {
    /// Checks the ranges of the knobs (read-ahead and final block ≥ 1,
    /// checkpoint seconds finite and ≥ 0).
    pub fn check(&self) -> Result<(), crate::error::DriverError> {
        if self.final_block == 0 || self.read_ahead == 0 {
            return Err(crate::error::DriverError::InvalidParameter(
                "final_block and read_ahead must be at least 1".into(),
            ));
        }
        if !(self.checkpoint_seconds.is_finite() && self.checkpoint_seconds >= 0.0) {
            return Err(crate::error::DriverError::InvalidParameter(format!(
                "checkpoint_seconds must be finite and ≥ 0 (0 = at every checkpoint epoch), got {}",
                self.checkpoint_seconds
            )));
        }
        Ok(())
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `[model]`.
    pub model: ModelConfig,
    /// `[preprocess]`.
    pub preprocess: PreprocessConfig,
    /// `[runtime]`.
    pub runtime: RuntimeConfig,
}

impl RunConfig {
    /// Reads a TOML file; unknown keys are errors that name the key, and a
    /// file that cannot be read is a [`DriverError::ParameterFile`].
    pub fn from_file(path: &Path) -> Result<Self, DriverError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DriverError::parameter_file(
                "the configuration file",
                path,
                &e,
                "check the --config path (relative paths start from the current directory)",
            )
        })?;
        toml::from_str(&text)
            .map_err(|e| DriverError::InvalidParameter(format!("configuration file {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_file_equals_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
        assert_eq!(RunConfig::from_file(&path).unwrap(), RunConfig::default());
    }

    #[test]
    fn runtime_ranges_are_checked() {
        assert!(RuntimeConfig::default().check().is_ok());
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let c = RuntimeConfig {
                checkpoint_seconds: bad,
                ..Default::default()
            };
            let err = c.check().unwrap_err().to_string();
            assert!(err.contains("checkpoint_seconds"), "{err}");
        }
        let c = RuntimeConfig {
            read_ahead: 0,
            ..Default::default()
        };
        assert!(c.check().unwrap_err().to_string().contains("read_ahead"));
    }

    #[test]
    fn preprocess_checks_the_gene_fraction_and_the_gene_choice() {
        assert!(PreprocessConfig::default().check(true).is_ok());
        for bad in [-0.1, 1.5, f64::NAN] {
            let c = PreprocessConfig {
                min_genes_present: bad,
                ..Default::default()
            };
            let err = c.check(false).unwrap_err();
            assert!(
                err.is_input_error() && err.to_string().contains("min_genes_present"),
                "{err}"
            );
        }
        let both = PreprocessConfig {
            genes_file: Some("genes.txt".into()),
            n_genes: 20,
            ..Default::default()
        };
        let err = both.check(true).unwrap_err().to_string();
        assert!(
            err.contains("--genes and --n-genes exclude each other") && err.contains("genes.txt"),
            "{err}"
        );
        // Commands that take a model's genes use neither.
        assert!(both.check(false).is_ok());
    }

    #[test]
    fn an_unreadable_configuration_file_is_a_parameter_error() {
        let dir = tempfile::tempdir().unwrap();
        for (path, reason) in [
            (dir.path().join("nope.toml"), "No such file or directory"),
            (dir.path().to_path_buf(), "Is a directory"),
        ] {
            let err = RunConfig::from_file(&path).unwrap_err();
            assert!(
                matches!(err, DriverError::ParameterFile { .. }) && err.is_input_error(),
                "{err}"
            );
            let text = err.to_string();
            assert!(
                text.contains(reason) && text.contains("--config") && !text.contains("os error"),
                "{text}"
            );
            assert!(
                std::error::Error::source(&err).is_none(),
                "the reason is in the message only"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<RunConfig>("[model]\nkk = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kk"), "{err}");
    }
}
