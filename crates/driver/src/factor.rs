//! `inmf factor`: the batch solvers of docs/algorithms.md §4–7 on the same
//! inputs and preprocessing as `inmf run`, writing the same kind of
//! `result.h5ad` (so `inmf analyze` works on it).
//!
//! Batch solvers are in-memory by nature: every preprocessed dataset is read
//! whole (sparse, f32) and the factors live in memory. Plain-NMF methods
//! (`nmf-mu`, `nmf-kl`, `diffusion-nmf`, `regularized-nmf`) factorize the
//! datasets concatenated in input order; iNMF methods keep one V_i and H_i
//! per dataset. The result file holds `obsm['X_inmf']` = H (cells × K),
//! `obs['dataset']`, `obs['cell_index']`, var = genes, `varm['W']`,
//! `varm['V_<dataset>']` (iNMF), `obsm['X_initiators']` (diffusion NMF), and
//! `uns['inmf']`: `method`, `objective_formula`, `params/*`,
//! `objective_per_epoch` (F per iteration, read by `inmf analyze`),
//! `objective_trace/{total,residual,penalty,coupling}`, `iterations`,
//! `stop_reason`, `seconds`, `input_paths`.
//!
//! Graph inputs. Cells of a diffusion graph are numbered 0-based over the
//! cells of the input files concatenated in input order (file rows, before
//! all-zero cells are dropped; edges touching dropped cells are ignored and
//! counted). Genes of a gene graph or of an M matrix file are named;
//! names that are not among the selected genes are ignored and counted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use inmf_learner::{CellSource, CsrMatrix, ObjectiveParts};
use inmf_reader::Hdf5Source;
use inmf_solvers::{
    concat_rows, diffusion_nmf, inmf_anls, inmf_hals, inmf_kl, inmf_mu, nmf_mu, regularized_nmf, CgParams,
    Coupling, DiffusionParams, FitReport, InmfAnlsParams, InmfHalsParams, InmfKlParams, InmfMuParams,
    KlCoupling, KlStep, Loss, NmfMuParams, RegularizedParams, RegularizedScale, RegularizedSolver,
    Regularizer, SparseF64, StopReason,
};
use ndarray::{s, Array2};

use crate::anndata::UnsValue;
use crate::config::RunConfig;
use crate::error::DriverError;
use crate::output::guard;
use crate::output::results::{ResultContent, ResultWriter};
use crate::scenarios::prepare::open_and_preprocess;
use crate::scenarios::run::{create_dir, in_pool, peak_rss_bytes, InputSpec};

/// The batch solvers `inmf factor` runs (names as on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorMethod {
    /// `nmf-mu`: plain NMF, Lee–Seung multiplicative updates, Frobenius (§5).
    NmfMu,
    /// `nmf-kl`: plain NMF, Lee–Seung multiplicative updates, KL (§5).
    NmfKl,
    /// `inmf-anls`: iNMF by ANLS with block principal pivoting (§4.1).
    InmfAnls,
    /// `inmf-hals`: iNMF by HALS (§4.2).
    InmfHals,
    /// `inmf-mu`: iNMF by multiplicative updates, Frobenius (§4.3).
    InmfMu,
    /// `inmf-mu-coupled`: iNMF + γ Σ‖H_i − H_j‖² for paired datasets (§4.4).
    InmfMuCoupled,
    /// `inmf-kl`: iNMF with the KL loss (§4.5).
    InmfKl,
    /// `inmf-kl-coupled`: KL iNMF + γ D(H_1‖H_2) for two paired datasets (§4.6).
    InmfKlCoupled,
    /// `diffusion-nmf`: X ≈ (KU)Wᵀ with K = (I + βL)⁻¹ over a cell graph (§6).
    DiffusionNmf,
    /// `regularized-nmf`: NMF + λ‖MW‖² for a gene operator M (§7).
    RegularizedNmf,
}

impl FactorMethod {
    /// Every method, in the order of the help text.
    pub const ALL: [FactorMethod; 10] = [
        FactorMethod::NmfMu,
        FactorMethod::NmfKl,
        FactorMethod::InmfAnls,
        FactorMethod::InmfHals,
        FactorMethod::InmfMu,
        FactorMethod::InmfMuCoupled,
        FactorMethod::InmfKl,
        FactorMethod::InmfKlCoupled,
        FactorMethod::DiffusionNmf,
        FactorMethod::RegularizedNmf,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FactorMethod::NmfMu => "nmf-mu",
            FactorMethod::NmfKl => "nmf-kl",
            FactorMethod::InmfAnls => "inmf-anls",
            FactorMethod::InmfHals => "inmf-hals",
            FactorMethod::InmfMu => "inmf-mu",
            FactorMethod::InmfMuCoupled => "inmf-mu-coupled",
            FactorMethod::InmfKl => "inmf-kl",
            FactorMethod::InmfKlCoupled => "inmf-kl-coupled",
            FactorMethod::DiffusionNmf => "diffusion-nmf",
            FactorMethod::RegularizedNmf => "regularized-nmf",
        }
    }

    /// The objective it minimizes (X_i cells × genes, H cells × K, W, V genes × K).
    pub fn objective(self) -> &'static str {
        match self {
            FactorMethod::NmfMu => "‖X − HWᵀ‖² over all cells (datasets concatenated)",
            FactorMethod::NmfKl => "D(X‖HWᵀ) = Σ x ln(x/y) − x + y over all cells (datasets concatenated)",
            FactorMethod::InmfAnls | FactorMethod::InmfHals | FactorMethod::InmfMu => {
                "Σ_i ‖X_i − H_i(W+V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖²"
            }
            FactorMethod::InmfMuCoupled => {
                "Σ_i ‖X_i − H_i(W+V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖² + γ Σ_{i<j} ‖H_i − H_j‖² (paired datasets)"
            }
            FactorMethod::InmfKl => "Σ_i D(X_i‖H_i(W+V_i)ᵀ) + λ Σ_i ‖H_iV_iᵀ‖²",
            FactorMethod::InmfKlCoupled => {
                "Σ_i D(X_i‖H_i(W+V_i)ᵀ) + λ Σ_i ‖H_iV_iᵀ‖² + γ D(H_1‖H_2) (two paired datasets)"
            }
            FactorMethod::DiffusionNmf => "‖X − (KU)Wᵀ‖² + α Σ U, K = (I + βL)⁻¹ (datasets concatenated)",
            FactorMethod::RegularizedNmf => "‖X − HWᵀ‖² + λ‖MW‖² (datasets concatenated)",
        }
    }

    /// One V_i per dataset (iNMF) rather than one factorization of all cells.
    pub fn is_inmf(self) -> bool {
        !matches!(
            self,
            FactorMethod::NmfMu
                | FactorMethod::NmfKl
                | FactorMethod::DiffusionNmf
                | FactorMethod::RegularizedNmf
        )
    }
}

impl fmt::Display for FactorMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FactorMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FactorMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FactorMethod::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method {s:?}; one of {}", names.join(", "))
            })
    }
}

/// Where the cell graph of diffusion NMF comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CellGraphInput {
    /// A text file of edges `i<TAB>j[<TAB>weight]` (weight 1 if absent;
    /// blank lines and `#` comments skipped), cells numbered as in the
    /// module docs; undirected (each edge is used both ways).
    EdgeList(PathBuf),
    /// A square sparse CSR adjacency in an HDF5 file: `group/{data,indices,indptr}`
    /// (AnnData's `obsp` layout, e.g. `obsp/connectivities`), symmetric and non-negative.
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// The group holding the CSR arrays.
        group: String,
    },
}

/// How M of ‖MW‖² is built.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum GeneOperatorInput {
    /// M = I (a ridge penalty λ‖W‖²).
    #[default]
    Identity,
    /// A gene graph from a text file of edges `gene1<TAB>gene2[<TAB>weight]`.
    GeneGraph {
        /// The edge list.
        path: PathBuf,
        /// Incidence (λ tr(WᵀLW) = λ Σ_e w‖W_g − W_h‖²) or Laplacian (λ‖LW‖²).
        operator: GeneGraphOperator,
    },
    /// A dense M in a text file: a first line of gene names (the columns),
    /// then one row of numbers per line (tab or space separated).
    MatrixFile(PathBuf),
}

/// Which matrix of a gene graph plays M.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeneGraphOperator {
    /// M = B, the weighted incidence matrix (BᵀB = L): penalizes differences across edges.
    #[default]
    Incidence,
    /// M = L = D − A, the Laplacian.
    Laplacian,
}

/// Method options; `None` means the solver's documented default.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorOptions {
    /// K, the number of factors.
    pub k: usize,
    /// Iteration budget [default: the method's].
    pub max_iter: Option<usize>,
    /// Relative-change tolerance [default: the method's].
    pub tol: Option<f64>,
    /// Seed of the initialisation.
    pub seed: u64,
    /// λ: iNMF's dataset-specific penalty [default 5] or ‖MW‖²'s weight [default 1].
    pub lambda: Option<f64>,
    /// γ of the coupled methods. Default 1.
    pub gamma: f64,
    /// KL step for the λ term.
    pub kl_step: KlStep,
    /// β of diffusion NMF. Default 1.
    pub beta: f64,
    /// α (L1 on the initiators) of diffusion NMF. Default 0.
    pub alpha: f64,
    /// Relative residual of the CG solves of diffusion NMF. Default 1e-10.
    pub cg_tol: f64,
    /// The cell graph (diffusion NMF).
    pub cell_graph: Option<CellGraphInput>,
    /// The gene operator M (regularized NMF).
    pub gene_operator: GeneOperatorInput,
    /// W update of regularized NMF.
    pub reg_solver: RegularizedSolver,
    /// Scale fixing of regularized NMF.
    pub reg_scale: RegularizedScale,
}

impl FactorOptions {
    /// Defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            max_iter: None,
            tol: None,
            seed: 1,
            lambda: None,
            gamma: 1.0,
            kl_step: KlStep::default(),
            beta: 1.0,
            alpha: 0.0,
            cg_tol: CgParams::default().tol,
            cell_graph: None,
            gene_operator: GeneOperatorInput::Identity,
            reg_solver: RegularizedSolver::default(),
            reg_scale: RegularizedScale::default(),
        }
    }
}

/// Everything `inmf factor` needs.
#[derive(Debug, Clone)]
pub struct FactorRequest {
    /// The solver.
    pub method: FactorMethod,
    /// Datasets, in order.
    pub inputs: Vec<InputSpec>,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Preprocessing and runtime (threads) settings; `[model]` is not used.
    pub config: RunConfig,
    /// The solver's options.
    pub options: FactorOptions,
    /// No progress messages.
    pub quiet: bool,
}

/// What a factorization did; `Display` prints the summary.
#[derive(Debug, Clone)]
pub struct FactorSummary {
    /// The solver.
    pub method: FactorMethod,
    /// Per dataset: name, cells in the file, cells used.
    pub datasets: Vec<(String, usize, usize)>,
    /// Genes selected.
    pub genes: usize,
    /// K.
    pub k: usize,
    /// The parameters as (name, value) text pairs.
    pub params: Vec<(String, String)>,
    /// F and its parts after each iteration.
    pub objective: Vec<ObjectiveParts>,
    /// Iterations run.
    pub iterations: usize,
    /// Why the solver stopped.
    pub stop: StopReason,
    /// First iteration whose relative change of F was below 1e-4, if any.
    pub iterations_to_1e4: Option<usize>,
    /// Notes on the inputs (ignored edges or genes, CG statistics).
    pub notes: Vec<String>,
    /// Seconds: preprocessing and reading, solver, writing.
    pub seconds: [f64; 3],
    /// The result file.
    pub output: PathBuf,
    /// Peak RSS.
    pub peak_rss_bytes: Option<u64>,
}

impl FactorSummary {
    /// F after the last iteration.
    pub fn final_objective(&self) -> ObjectiveParts {
        self.objective.last().copied().unwrap_or_default()
    }
}

impl fmt::Display for FactorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: usize = self.datasets.iter().map(|d| d.2).sum();
        writeln!(
            f,
            "inmf factor --method {}: {} datasets, {cells} cells, {} genes, K = {}",
            self.method,
            self.datasets.len(),
            self.genes,
            self.k
        )?;
        writeln!(f, "  objective: {}", self.method.objective())?;
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        writeln!(f, "  parameters: {}", params.join(", "))?;
        for (name, total, used) in &self.datasets {
            writeln!(f, "  {name}: {used} cells used of {total}")?;
        }
        for n in &self.notes {
            writeln!(f, "  {n}")?;
        }
        let o = self.final_objective();
        writeln!(
            f,
            "  {} iterations ({}), F = {:.6e} (residual {:.6e} + penalty {:.6e} + coupling {:.6e})",
            self.iterations,
            match self.stop {
                StopReason::Converged => "converged",
                StopReason::MaxIterations => "iteration budget reached",
            },
            o.total(),
            o.residual,
            o.penalty,
            o.coupling
        )?;
        match self.iterations_to_1e4 {
            Some(t) => writeln!(f, "  relative change of F below 1e-4 after iteration {t}")?,
            None => writeln!(f, "  relative change of F never below 1e-4")?,
        }
        let [p, s, w] = self.seconds;
        writeln!(f, "  time: read {p:.2} s, solve {s:.2} s, write {w:.2} s")?;
        if let Some(b) = self.peak_rss_bytes {
            writeln!(f, "  peak memory (RSS): {:.1} MB", b as f64 / 1048576.0)?;
        }
        writeln!(f, "  wrote {}", self.output.display())
    }
}

/// Runs `inmf factor` (module docs). On error nothing is left in the output
/// directory (the result file is written under a temporary name).
pub fn run_factor(req: &FactorRequest) -> Result<FactorSummary, DriverError> {
    if req.inputs.is_empty() {
        return Err(DriverError::InvalidParameter("no input dataset given".into()));
    }
    for (i, a) in req.inputs.iter().enumerate() {
        if req.inputs[..i].iter().any(|b| b.name == a.name) {
            return Err(DriverError::InvalidParameter(format!(
                "two inputs are named {:?}; name them explicitly as NAME=PATH",
                a.name
            )));
        }
    }
    check_method_inputs(req)?;
    in_pool(req.config.runtime.threads, || factor_in_pool(req))?
}

/// Rules across the method and its inputs, checked before any reading.
fn check_method_inputs(req: &FactorRequest) -> Result<(), DriverError> {
    let o = &req.options;
    let m = req.method;
    let bad = |s: String| Err(DriverError::InvalidParameter(s));
    if o.cell_graph.is_some() && m != FactorMethod::DiffusionNmf {
        return bad(format!("a cell graph is only used by diffusion-nmf, not {m}"));
    }
    if m == FactorMethod::DiffusionNmf && o.cell_graph.is_none() {
        return bad("diffusion-nmf needs a cell graph: --graph EDGES.tsv or --graph-h5 FILE[:GROUP]".into());
    }
    if o.gene_operator != GeneOperatorInput::Identity && m != FactorMethod::RegularizedNmf {
        return bad(format!(
            "a gene operator M is only used by regularized-nmf, not {m}"
        ));
    }
    if matches!(m, FactorMethod::InmfMuCoupled | FactorMethod::InmfKlCoupled) && req.inputs.len() < 2 {
        return bad(format!(
            "{m} couples paired datasets: give at least two inputs with the same cells"
        ));
    }
    Ok(())
}

/// What any solver produced, in the shape the result file wants.
struct Outcome {
    w: Array2<f64>,
    v: Vec<Array2<f64>>,
    /// H of every cell, all datasets stacked in order.
    h: Array2<f64>,
    extra_obsm: Option<(&'static str, Array2<f64>)>,
    objective: Vec<ObjectiveParts>,
    iterations: usize,
    stop: StopReason,
    seconds: f64,
    params: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Outcome {
    fn from_report(r: &impl FitReport, w: Array2<f64>, v: Vec<Array2<f64>>, h: Array2<f64>) -> Self {
        Self {
            w,
            v,
            h,
            extra_obsm: None,
            objective: r.objective().to_vec(),
            iterations: r.iterations(),
            stop: r.stop(),
            seconds: r.seconds(),
            params: Vec::new(),
            notes: Vec::new(),
        }
    }
}

fn stack(blocks: &[Array2<f64>], k: usize) -> Array2<f64> {
    let n: usize = blocks.iter().map(Array2::nrows).sum();
    let mut out = Array2::zeros((n, k));
    let mut r = 0;
    for b in blocks {
        out.slice_mut(s![r..r + b.nrows(), ..]).assign(b);
        r += b.nrows();
    }
    out
}

fn factor_in_pool(req: &FactorRequest) -> Result<FactorSummary, DriverError> {
    let t0 = Instant::now();
    let inputs: Vec<std::path::PathBuf> = req.inputs.iter().map(|i| i.path.clone()).collect();
    guard::check_output_dir(&req.out_dir, &inputs, guard::OutputSet::ResultOnly, &[])?;
    let (mut source, _) = open_and_preprocess(&req.inputs, &req.config.preprocess, None, None)?;
    if !req.quiet {
        crate::log::line(source.report().to_string().trim_end());
    }
    let names = source.dataset_names().to_vec();
    let mut data = Vec::with_capacity(source.n_datasets());
    for d in 0..source.n_datasets() {
        let n = source.n_cells(d);
        data.push(source.read_cells(d, 0..n)?);
    }
    let t_read = t0.elapsed().as_secs_f64();
    if !req.quiet {
        let nnz: usize = data.iter().map(CsrMatrix::nnz).sum();
        crate::log::line(&format!(
            "factor: {} in memory ({nnz} non-zeros); running {}",
            names.join(", "),
            req.method
        ));
    }

    let t1 = Instant::now();
    let outcome = solve(req, &source, &data).map_err(|e| e.with_dataset_names(&names))?;
    let t_solve = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    create_dir(&req.out_dir)?;
    let output = req.out_dir.join("result.h5ad");
    write_result(&output, &source, req, &outcome)?;
    let t_write = t2.elapsed().as_secs_f64();

    let datasets = (0..source.n_datasets())
        .map(|d| (names[d].clone(), source.cell_map(d).n_total(), source.n_cells(d)))
        .collect();
    let iterations_to_1e4 = outcome
        .objective
        .windows(2)
        .position(|p| inmf_solvers::relative_change(p[0].total(), p[1].total()) < 1e-4)
        .map(|t| t + 2);
    Ok(FactorSummary {
        method: req.method,
        datasets,
        genes: source.n_genes(),
        k: req.options.k,
        params: outcome.params,
        objective: outcome.objective,
        iterations: outcome.iterations,
        stop: outcome.stop,
        iterations_to_1e4,
        notes: outcome.notes,
        seconds: [t_read, t_solve.max(outcome.seconds), t_write],
        output,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

fn solve(req: &FactorRequest, source: &Hdf5Source, data: &[CsrMatrix]) -> Result<Outcome, DriverError> {
    let o = &req.options;
    let k = o.k;
    let mut params = vec![
        ("k".to_string(), k.to_string()),
        ("seed".to_string(), o.seed.to_string()),
    ];
    let outcome = match req.method {
        FactorMethod::NmfMu | FactorMethod::NmfKl => {
            let loss = if req.method == FactorMethod::NmfMu {
                Loss::Frobenius
            } else {
                Loss::KullbackLeibler
            };
            let d = NmfMuParams::new(k, loss);
            let p = NmfMuParams {
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                ..d
            };
            params.extend([
                ("max_iter".into(), p.max_iter.to_string()),
                ("tol".into(), p.tol.to_string()),
            ]);
            let x = concat_rows(data)?;
            let fit = nmf_mu(&x, &p, None)?;
            let (w, h) = (fit.factors.w.clone(), fit.factors.h.clone());
            Outcome::from_report(&fit, w, Vec::new(), h)
        }
        FactorMethod::InmfAnls => {
            let d = InmfAnlsParams::new(k);
            let p = InmfAnlsParams {
                lambda: o.lambda.unwrap_or(d.lambda),
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                ..d
            };
            params.extend(lambda_iter_tol(p.lambda, p.max_iter, p.tol));
            let fit = inmf_anls(data, &p, None)?;
            inmf_outcome(&fit, k)
        }
        FactorMethod::InmfHals => {
            let d = InmfHalsParams::new(k);
            let p = InmfHalsParams {
                lambda: o.lambda.unwrap_or(d.lambda),
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                ..d
            };
            params.extend(lambda_iter_tol(p.lambda, p.max_iter, p.tol));
            let fit = inmf_hals(data, &p, None)?;
            inmf_outcome(&fit, k)
        }
        FactorMethod::InmfMu | FactorMethod::InmfMuCoupled => {
            let d = InmfMuParams::new(k);
            let coupled = req.method == FactorMethod::InmfMuCoupled;
            let p = InmfMuParams {
                lambda: o.lambda.unwrap_or(d.lambda),
                coupling: if coupled {
                    Coupling::Paired { gamma: o.gamma }
                } else {
                    Coupling::None
                },
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                ..d
            };
            params.extend(lambda_iter_tol(p.lambda, p.max_iter, p.tol));
            if coupled {
                params.push(("gamma".into(), o.gamma.to_string()));
            }
            let fit = inmf_mu(data, &p, None)?;
            inmf_outcome(&fit, k)
        }
        FactorMethod::InmfKl | FactorMethod::InmfKlCoupled => {
            let d = InmfKlParams::new(k);
            let coupled = req.method == FactorMethod::InmfKlCoupled;
            let p = InmfKlParams {
                lambda: o.lambda.unwrap_or(d.lambda),
                coupling: if coupled {
                    KlCoupling::Paired { gamma: o.gamma }
                } else {
                    KlCoupling::None
                },
                step: o.kl_step,
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                ..d
            };
            params.extend(lambda_iter_tol(p.lambda, p.max_iter, p.tol));
            params.push(("kl_step".into(), format!("{:?}", p.step)));
            if coupled {
                params.push(("gamma".into(), o.gamma.to_string()));
            }
            let fit = inmf_kl(data, &p, None)?;
            inmf_outcome(&fit, k)
        }
        FactorMethod::DiffusionNmf => {
            let spec = o.cell_graph.as_ref().expect("checked: diffusion-nmf has a graph");
            let (graph, note) = read_cell_graph(spec, source)?;
            let d = DiffusionParams::new(k);
            let p = DiffusionParams {
                beta: o.beta,
                alpha: o.alpha,
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                cg: CgParams {
                    tol: o.cg_tol,
                    ..d.cg
                },
                ..d
            };
            params.extend([
                ("beta".into(), p.beta.to_string()),
                ("alpha".into(), p.alpha.to_string()),
                ("max_iter".into(), p.max_iter.to_string()),
                ("tol".into(), p.tol.to_string()),
                ("cg_tol".into(), p.cg.tol.to_string()),
            ]);
            let x = concat_rows(data)?;
            let fit = diffusion_nmf(&x, &graph, &p, None)?;
            let mut out =
                Outcome::from_report(&fit, fit.factors.w.clone(), Vec::new(), fit.factors.h.clone());
            out.extra_obsm = Some(("X_initiators", fit.initiators.clone()));
            out.notes.push(note);
            out.notes.push(format!(
                "conjugate gradients: {} iterations in all, largest final relative residual {:.1e}",
                fit.cg_iterations, fit.cg_max_residual
            ));
            out
        }
        FactorMethod::RegularizedNmf => {
            let (m, note) = gene_operator(&o.gene_operator, source.genes())?;
            let d = RegularizedParams::new(k);
            let p = RegularizedParams {
                lambda: o.lambda.unwrap_or(d.lambda),
                solver: o.reg_solver,
                scale: o.reg_scale,
                max_iter: o.max_iter.unwrap_or(d.max_iter),
                tol: o.tol.unwrap_or(d.tol),
                seed: o.seed,
                ..d
            };
            params.extend(lambda_iter_tol(p.lambda, p.max_iter, p.tol));
            params.push(("solver".into(), format!("{:?}", p.solver)));
            params.push(("scale".into(), format!("{:?}", p.scale)));
            let x = concat_rows(data)?;
            let fit = regularized_nmf(&x, &m, &p, None)?;
            let mut out =
                Outcome::from_report(&fit, fit.factors.w.clone(), Vec::new(), fit.factors.h.clone());
            out.notes.push(note);
            out
        }
    };
    let mut outcome = outcome;
    params.append(&mut outcome.params);
    outcome.params = params;
    Ok(outcome)
}

fn lambda_iter_tol(lambda: f64, max_iter: usize, tol: f64) -> [(String, String); 3] {
    [
        ("lambda".into(), lambda.to_string()),
        ("max_iter".into(), max_iter.to_string()),
        ("tol".into(), tol.to_string()),
    ]
}

fn inmf_outcome(fit: &inmf_solvers::InmfFit, k: usize) -> Outcome {
    let h = stack(&fit.factors.h, k);
    Outcome::from_report(fit, fit.factors.w.clone(), fit.factors.v.clone(), h)
}

fn write_result(
    output: &Path,
    source: &Hdf5Source,
    req: &FactorRequest,
    o: &Outcome,
) -> Result<(), DriverError> {
    let names = source.dataset_names();
    let totals: Vec<f64> = o.objective.iter().map(ObjectiveParts::total).collect();
    let content = ResultContent {
        method: req.method.name(),
        w: o.w.view(),
        v: names.iter().cloned().zip(o.v.iter().map(|v| v.view())).collect(),
        params: None,
        epoch_objective: &totals,
    };
    let mut writer = ResultWriter::create(output, source, content, false)?;
    let mut row = 0;
    for d in 0..source.n_datasets() {
        let n = source.n_cells(d);
        writer.write_h(d, 0..n, o.h.slice(s![row..row + n, ..]))?;
        row += n;
    }
    writer.write_uns("inmf/objective_formula", UnsValue::Str(req.method.objective()))?;
    for (key, value) in &o.params {
        writer.write_uns(&format!("inmf/params/{key}"), UnsValue::Str(value))?;
    }
    let part = |f: fn(&ObjectiveParts) -> f64| o.objective.iter().map(f).collect::<Vec<f64>>();
    writer.write_uns("inmf/objective_trace/total", UnsValue::F64s(&totals))?;
    writer.write_uns(
        "inmf/objective_trace/residual",
        UnsValue::F64s(&part(|p| p.residual)),
    )?;
    writer.write_uns(
        "inmf/objective_trace/penalty",
        UnsValue::F64s(&part(|p| p.penalty)),
    )?;
    writer.write_uns(
        "inmf/objective_trace/coupling",
        UnsValue::F64s(&part(|p| p.coupling)),
    )?;
    writer.write_uns("inmf/iterations", UnsValue::I64(o.iterations as i64))?;
    let stop = match o.stop {
        StopReason::Converged => "converged",
        StopReason::MaxIterations => "max_iterations",
    };
    writer.write_uns("inmf/stop_reason", UnsValue::Str(stop))?;
    writer.write_uns("inmf/seconds", UnsValue::F64(o.seconds))?;
    let paths: Vec<String> = req.inputs.iter().map(|i| i.path.display().to_string()).collect();
    let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    writer.write_uns("inmf/input_paths", UnsValue::Strs(&path_refs))?;
    if let Some((name, m)) = &o.extra_obsm {
        writer.write_obsm(name, m.view())?;
    }
    let zero_cells =
        o.h.rows()
            .into_iter()
            .filter(|r| r.iter().all(|&v| v == 0.0))
            .count();
    writer.finish(o.objective.last().copied().unwrap_or_default(), zero_cells)
}

/// Kept-cell index (over all datasets concatenated) of every file cell
/// (over all input files concatenated); `None` for dropped cells.
fn kept_index(source: &Hdf5Source) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut kept_base = 0;
    for d in 0..source.n_datasets() {
        let map = source.cell_map(d);
        let base = out.len();
        out.resize(base + map.n_total(), None);
        for k in 0..map.n_kept() {
            out[base + map.original(k)] = Some(kept_base + k);
        }
        kept_base += map.n_kept();
    }
    out
}

/// Parses `i<TAB>j[<TAB>w]` or `name<TAB>name[<TAB>w]` lines: (a, b, w) with w = 1 if absent.
fn read_edges(path: &Path) -> Result<Vec<(String, String, f64, usize)>, DriverError> {
    let text = std::fs::read_to_string(path).map_err(|source| DriverError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(['\t', ' ', ',']).filter(|s| !s.is_empty()).collect();
        let bad = |why: &str| {
            DriverError::InvalidParameter(format!(
                "{}, line {}: {why}: {line:?}",
                path.display(),
                lineno + 1
            ))
        };
        if f.len() != 2 && f.len() != 3 {
            return Err(bad("expected 2 or 3 fields (i, j[, weight])"));
        }
        let w = match f.get(2) {
            Some(s) => s.parse::<f64>().map_err(|_| bad("the weight is not a number"))?,
            None => 1.0,
        };
        if !(w.is_finite() && w > 0.0) {
            return Err(bad("weights must be finite and > 0"));
        }
        out.push((f[0].to_string(), f[1].to_string(), w, lineno + 1));
    }
    Ok(out)
}

/// The cell graph as an adjacency over the kept cells, and a note.
fn read_cell_graph(spec: &CellGraphInput, source: &Hdf5Source) -> Result<(SparseF64, String), DriverError> {
    let index = kept_index(source);
    let n_kept: usize = (0..source.n_datasets()).map(|d| source.n_cells(d)).sum();
    // An edge list names each undirected edge once; an HDF5 adjacency holds both directions.
    let (raw, what, symmetric): (Vec<(usize, usize, f64)>, String, bool) = match spec {
        CellGraphInput::EdgeList(path) => {
            let mut edges = Vec::new();
            for (a, b, w, line) in read_edges(path)? {
                let parse = |s: &str| {
                    s.parse::<usize>().map_err(|_| {
                        DriverError::InvalidParameter(format!(
                            "{}, line {line}: {s:?} is not a 0-based cell index",
                            path.display()
                        ))
                    })
                };
                edges.push((parse(&a)?, parse(&b)?, w));
            }
            (edges, format!("edge list {}", path.display()), false)
        }
        CellGraphInput::Hdf5 { path, group } => (
            read_h5_adjacency(path, group)?,
            format!("{}:{group}", path.display()),
            true,
        ),
    };
    let total = index.len();
    let mut edges = Vec::with_capacity(raw.len());
    let mut dropped = 0;
    for (e, &(i, j, w)) in raw.iter().enumerate() {
        if i >= total || j >= total {
            return Err(DriverError::InvalidParameter(format!(
                "cell graph {what}: entry {e} ({i}, {j}) refers to a cell ≥ {total}, the number of cells in the inputs"
            )));
        }
        match (index[i], index[j]) {
            (Some(a), Some(b)) => edges.push((a, b, w)),
            _ => dropped += 1,
        }
    }
    let graph = if symmetric {
        let a = SparseF64::from_triplets(n_kept, n_kept, &edges)?;
        a.check_adjacency()
            .map_err(|e| DriverError::InvalidParameter(format!("cell graph {what}: {e}")))?;
        a
    } else {
        SparseF64::adjacency(n_kept, &edges)?
    };
    let n_edges = if symmetric {
        edges.iter().filter(|e| e.0 < e.1).count()
    } else {
        edges.len()
    };
    let note = format!(
        "cell graph {what}: {n_edges} edges over {n_kept} cells{}",
        if dropped > 0 {
            format!(" ({dropped} entries touching dropped all-zero cells ignored)")
        } else {
            String::new()
        }
    );
    Ok((graph, note))
}

/// Triplets of a CSR adjacency stored as `group/{data,indices,indptr}`.
fn read_h5_adjacency(path: &Path, group: &str) -> Result<Vec<(usize, usize, f64)>, DriverError> {
    let h5 = |what: String| {
        let path = path.to_path_buf();
        move |source: hdf5::Error| DriverError::Hdf5 { path, what, source }
    };
    let f = hdf5::File::open(path).map_err(h5("opening the cell graph".into()))?;
    let g = f
        .group(group)
        .map_err(h5(format!("opening group {group} (a CSR adjacency)")))?;
    let indptr: Vec<i64> = g
        .dataset("indptr")
        .and_then(|d| d.read_raw())
        .map_err(h5(format!("reading {group}/indptr")))?;
    let indices: Vec<i64> = g
        .dataset("indices")
        .and_then(|d| d.read_raw())
        .map_err(h5(format!("reading {group}/indices")))?;
    let data: Vec<f64> = g
        .dataset("data")
        .and_then(|d| d.read_raw())
        .map_err(h5(format!("reading {group}/data")))?;
    let bad = |why: String| DriverError::InvalidParameter(format!("{}:{group}: {why}", path.display()));
    if indices.len() != data.len() || indptr.last().copied().unwrap_or(0) as usize != data.len() {
        return Err(bad("indptr, indices and data disagree in length".into()));
    }
    let mut out = Vec::with_capacity(data.len());
    for r in 0..indptr.len().saturating_sub(1) {
        let (a, b) = (indptr[r], indptr[r + 1]);
        if a < 0 || b < a {
            return Err(bad(format!("indptr decreases at row {r}")));
        }
        for p in a as usize..b as usize {
            let c = indices[p];
            if c < 0 {
                return Err(bad(format!("negative column index at row {r}")));
            }
            if data[p] != 0.0 {
                out.push((r, c as usize, data[p]));
            }
        }
    }
    Ok(out)
}

/// M as the learner wants it, and a note.
fn gene_operator(spec: &GeneOperatorInput, genes: &[String]) -> Result<(Regularizer, String), DriverError> {
    let position = |name: &str| genes.iter().position(|g| g == name);
    match spec {
        GeneOperatorInput::Identity => {
            Ok((Regularizer::Identity, "M = identity (ridge penalty λ‖W‖²)".into()))
        }
        GeneOperatorInput::GeneGraph { path, operator } => {
            let mut edges = Vec::new();
            let mut skipped = 0;
            for (a, b, w, _) in read_edges(path)? {
                match (position(&a), position(&b)) {
                    (Some(i), Some(j)) => edges.push((i, j, w)),
                    _ => skipped += 1,
                }
            }
            let m = match operator {
                GeneGraphOperator::Incidence => SparseF64::incidence(genes.len(), &edges)?,
                GeneGraphOperator::Laplacian => {
                    SparseF64::laplacian(&SparseF64::adjacency(genes.len(), &edges)?)?
                }
            };
            let note = format!(
                "M = {} of the gene graph {}: {} edges between selected genes{}",
                match operator {
                    GeneGraphOperator::Incidence => "incidence matrix",
                    GeneGraphOperator::Laplacian => "Laplacian",
                },
                path.display(),
                edges.len(),
                if skipped > 0 {
                    format!(" ({skipped} edges naming unselected genes ignored)")
                } else {
                    String::new()
                }
            );
            Ok((Regularizer::Sparse(m), note))
        }
        GeneOperatorInput::MatrixFile(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| DriverError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let mut lines = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            let header: Vec<&str> = lines
                .next()
                .ok_or_else(|| DriverError::InvalidParameter(format!("{} is empty", path.display())))?
                .split(['\t', ' ', ','])
                .filter(|s| !s.is_empty())
                .collect();
            let cols: Vec<Option<usize>> = header.iter().map(|g| position(g)).collect();
            let rows: Vec<&str> = lines.collect();
            let mut m = Array2::zeros((rows.len(), genes.len()));
            for (r, line) in rows.iter().enumerate() {
                let vals: Vec<&str> = line.split(['\t', ' ', ',']).filter(|s| !s.is_empty()).collect();
                if vals.len() != header.len() {
                    return Err(DriverError::InvalidParameter(format!(
                        "{}, row {}: {} values for {} genes in the header",
                        path.display(),
                        r + 1,
                        vals.len(),
                        header.len()
                    )));
                }
                for (c, v) in vals.iter().enumerate() {
                    let x: f64 = v.parse().map_err(|_| {
                        DriverError::InvalidParameter(format!(
                            "{}, row {}: {v:?} is not a number",
                            path.display(),
                            r + 1
                        ))
                    })?;
                    if let Some(g) = cols[c] {
                        m[[r, g]] = x;
                    }
                }
            }
            let matched = cols.iter().filter(|c| c.is_some()).count();
            let note = format!(
                "M from {}: {} × {} ({matched} of {} named genes selected; unnamed selected genes have zero columns)",
                path.display(),
                rows.len(),
                genes.len(),
                header.len()
            );
            Ok((Regularizer::Dense(m), note))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_are_documented() {
        for m in FactorMethod::ALL {
            assert_eq!(m.name().parse::<FactorMethod>().unwrap(), m);
            assert!(!m.objective().is_empty());
        }
        assert!("nmf".parse::<FactorMethod>().unwrap_err().contains("nmf-mu"));
        assert!(FactorMethod::InmfKl.is_inmf() && !FactorMethod::DiffusionNmf.is_inmf());
    }

    #[test]
    fn edge_lists_parse_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.tsv");
        std::fs::write(&p, "# comment\n0\t1\n2 3 0.5\n\n").unwrap();
        let e = read_edges(&p).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[1].0.as_str(), e[1].1.as_str(), e[1].2, e[1].3),
            ("2", "3", 0.5, 3)
        );
        std::fs::write(&p, "0\t1\n0\t1\t-2\n").unwrap();
        assert!(matches!(read_edges(&p), Err(DriverError::InvalidParameter(m)) if m.contains("line 2")));
        std::fs::write(&p, "0\n").unwrap();
        assert!(
            matches!(read_edges(&p), Err(DriverError::InvalidParameter(m)) if m.contains("2 or 3 fields"))
        );
    }

    #[test]
    fn gene_operators_match_names() {
        let dir = tempfile::tempdir().unwrap();
        let genes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let p = dir.path().join("g.tsv");
        std::fs::write(&p, "a\tb\nb\tc\t2\nc\tzzz\n").unwrap();
        let spec = GeneOperatorInput::GeneGraph {
            path: p.clone(),
            operator: GeneGraphOperator::Incidence,
        };
        let (m, note) = gene_operator(&spec, &genes).unwrap();
        assert!(note.contains("1 edges naming unselected genes ignored"), "{note}");
        let Regularizer::Sparse(b) = m else {
            panic!("sparse expected")
        };
        assert_eq!((b.n_rows(), b.n_cols()), (2, 3));
        let spec = GeneOperatorInput::GeneGraph {
            path: p,
            operator: GeneGraphOperator::Laplacian,
        };
        let Regularizer::Sparse(l) = gene_operator(&spec, &genes).unwrap().0 else {
            panic!()
        };
        assert_eq!(l.get(1, 1), 3.0);
        let f = dir.path().join("m.tsv");
        std::fs::write(&f, "c\ta\tq\n1\t2\t3\n").unwrap();
        let Regularizer::Dense(d) = gene_operator(&GeneOperatorInput::MatrixFile(f.clone()), &genes)
            .unwrap()
            .0
        else {
            panic!()
        };
        assert_eq!(d.row(0).to_vec(), vec![2.0, 0.0, 1.0]);
        std::fs::write(&f, "c\ta\n1\n").unwrap();
        assert!(gene_operator(&GeneOperatorInput::MatrixFile(f), &genes).is_err());
    }
}
