//! `inmf import`: a Matrix Market directory (Cell Ranger's
//! `filtered_feature_bc_matrix/`) to an AnnData `.h5ad` with a CSR `X`, in
//! one streaming pass and bounded memory.
//!
//! The entries are first read as stored, which needs them grouped by cell
//! in increasing order (Cell Ranger writes them so). At the first entry
//! out of order the partial output is discarded and the conversion starts
//! again with an external sort by cell (see `inmf_reader::MtxOrder`). The
//! output is written under a temporary name and renamed when complete;
//! on any error nothing is left behind and the input is never modified.
//!
//! The `.h5ad` holds `X` (float32 counts, cells × kept features),
//! `obs/_index` (barcodes), `var/_index` (feature names made unique
//! scanpy-style), `var/gene_ids` and, when the features file has them,
//! `var/feature_types`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use inmf_learner::Cols;
use inmf_reader::{open_mtx, MtxDir, MtxOrder, ReaderError};

use crate::anndata::{AnnDataWriter, Axis, DatasetOptions};
use crate::error::DriverError;
use crate::output::guard::check_output_file;

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The Matrix Market directory.
    pub dir: PathBuf,
    /// The `.h5ad` to write (its directory must exist).
    pub out: PathBuf,
    /// Keep only features of this type (default "Gene Expression"; `None`
    /// keeps all). Ignored when the features file has no type column.
    pub feature_type: Option<String>,
    /// Directory of the temporary file of the external sort (default: the
    /// output's directory).
    pub temp_dir: Option<PathBuf>,
    /// gzip level of the output's datasets; `None` (default) writes them
    /// uncompressed, which later reads decode about four times faster.
    pub gzip: Option<u8>,
    /// Cells per block appended to the output. Default 4096.
    pub block_cells: usize,
}

impl ImportRequest {
    /// A request with the defaults above.
    pub fn new(dir: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            out: out.into(),
            feature_type: Some("Gene Expression".into()),
            temp_dir: None,
            gzip: None,
            block_cells: 4096,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    /// The file written.
    pub output: PathBuf,
    /// Cells (barcodes) written.
    pub cells: usize,
    /// Features written.
    pub genes: usize,
    /// Non-zeros written.
    pub nnz: u64,
    /// Whether the entries had to be sorted by cell.
    pub sorted: bool,
    /// Feature names renamed to make them unique.
    pub duplicate_genes_renamed: usize,
    /// Features left out by type, with counts.
    pub features_dropped: Vec<(String, usize)>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {}: {} cells x {} genes, {} non-zeros",
            self.output.display(),
            self.cells,
            self.genes,
            self.nnz
        )?;
        if self.sorted {
            write!(f, " (entries sorted by cell first)")?;
        }
        if self.duplicate_genes_renamed > 0 {
            write!(
                f,
                "; {} duplicate gene names made unique",
                self.duplicate_genes_renamed
            )?;
        }
        for (t, n) in &self.features_dropped {
            write!(f, "; left out {n} {t}")?;
        }
        writeln!(f, " in {:.2} s", self.seconds)
    }
}

/// Converts the Matrix Market directory of `req` to an `.h5ad`.
pub fn import_mtx(req: &ImportRequest) -> Result<ImportSummary, DriverError> {
    let t0 = Instant::now();
    if req.block_cells == 0 {
        return Err(DriverError::InvalidParameter(
            "block_cells must be at least 1".into(),
        ));
    }
    if let Some(l) = req.gzip.filter(|&l| l > 9) {
        return Err(DriverError::InvalidParameter(format!(
            "gzip level {l} is out of range; use 0 to 9"
        )));
    }
    check_output_file(&req.out, &[])?;
    let mtx = open_mtx(&req.dir, req.feature_type.as_deref())?;
    let read: Vec<PathBuf> = mtx.files().iter().map(|p| p.to_path_buf()).collect();
    check_output_file(&req.out, &read)?;
    crate::scenarios::run::clean_stale(parent(&req.out), true);
    let (nnz, sorted) = match write(&mtx, req, MtxOrder::AsStored) {
        Ok(nnz) => (nnz, false),
        Err(DriverError::Reader(ReaderError::MtxUnsorted { .. })) => {
            let temp = match &req.temp_dir {
                Some(d) => d.clone(),
                None => parent(&req.out).to_path_buf(),
            };
            (write(&mtx, req, MtxOrder::SortByCell { temp_dir: temp })?, true)
        }
        Err(e) => return Err(e),
    };
    Ok(ImportSummary {
        output: req.out.clone(),
        cells: mtx.n_cells(),
        genes: mtx.gene_names().len(),
        nnz,
        sorted,
        duplicate_genes_renamed: mtx.duplicate_genes_renamed(),
        features_dropped: mtx.features_dropped().to_vec(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// One attempt: writes the whole file (dropped unfinished on error, which
/// removes its temporary) and returns the non-zeros written.
fn write(mtx: &MtxDir, req: &ImportRequest, order: MtxOrder) -> Result<u64, DriverError> {
    let opts = match req.gzip {
        Some(l) => DatasetOptions::gzip(l),
        None => DatasetOptions::default(),
    };
    let mut cells = mtx.cells(order, req.block_cells)?;
    let mut w = AnnDataWriter::create(&req.out)?;
    w.write_index(Axis::Var, mtx.gene_names())?;
    let mut ids = w.string_column(Axis::Var, "gene_ids")?;
    ids.append(mtx.gene_ids())?;
    ids.finish()?;
    if let Some(types) = mtx.feature_types() {
        let mut t = w.string_column(Axis::Var, "feature_types")?;
        t.append(types)?;
        t.finish()?;
    }
    let mut obs = w.index(Axis::Obs)?;
    for b in mtx.barcodes()? {
        obs.append([b?])?;
    }
    obs.finish()?;
    let mut x = w.x_csr::<f32>(mtx.gene_names().len(), opts)?;
    while let Some(block) = cells.next_block()? {
        let widened;
        let indices = match block.indices() {
            Cols::Wide(ix) => ix,
            narrow => {
                widened = narrow.to_vec();
                &widened[..]
            }
        };
        x.append_rows(block.indptr(), indices, block.data())?;
    }
    let nnz = x.nnz();
    x.finish()?;
    w.finish()?;
    Ok(nnz)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a 5-cell × 4-gene directory; entries sorted or reversed.
    fn mtx(dir: &Path, reversed: bool) {
        std::fs::create_dir_all(dir).unwrap();
        let mut entries = vec!["1 1 3", "4 1 1", "2 2 5", "2 2 1", "3 4 2", "1 5 7", "4 5 1"];
        if reversed {
            entries.reverse();
        }
        let mut m = String::from("%%MatrixMarket matrix coordinate integer general\n4 5 7\n");
        for e in entries {
            m.push_str(e);
            m.push('\n');
        }
        std::fs::write(dir.join("matrix.mtx"), m).unwrap();
        let f = "E0\tA\tGene Expression\nE1\tB\tGene Expression\nE2\tA\tGene Expression\nE3\tP\tAntibody Capture\n";
        std::fs::write(dir.join("features.tsv"), f).unwrap();
        std::fs::write(dir.join("barcodes.tsv"), "c0\nc1\nc2\nc3\nc4\n").unwrap();
    }

    #[test]
    fn sorted_and_unsorted_inputs_give_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for reversed in [false, true] {
            let d = dir.path().join(format!("in{reversed}"));
            mtx(&d, reversed);
            let out = dir.path().join(format!("out{reversed}.h5ad"));
            let s = import_mtx(&ImportRequest::new(&d, &out)).unwrap();
            assert_eq!((s.cells, s.genes, s.sorted), (5, 3, reversed));
            // The repeated entry of cell 1 (gene B: 5 + 1) is summed.
            assert_eq!(s.nnz, 4);
            assert_eq!(s.duplicate_genes_renamed, 1);
            assert_eq!(s.features_dropped, vec![("Antibody Capture".to_string(), 1)]);
            bytes.push(std::fs::read(&out).unwrap());
        }
        assert!(bytes[0] == bytes[1], "the sort must not change the output");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn a_failed_import_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("in");
        mtx(&d, true);
        let text = std::fs::read_to_string(d.join("matrix.mtx")).unwrap();
        std::fs::write(d.join("matrix.mtx"), text.replace("4 5 7\n", "4 5 9\n")).unwrap();
        let out = dir.path().join("out.h5ad");
        let e = import_mtx(&ImportRequest::new(&d, &out)).unwrap_err();
        assert!(
            e.is_input_error() && e.to_string().contains("announces 9 entries"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the input directory"
        );
    }
}
