//! `inmf factor`: the batch solvers (docs/algorithms.md §4–7) on the inputs and
//! preprocessing of `inmf run`, in memory.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use inmf_driver::{
    run_factor, CellGraphInput, FactorMethod, FactorOptions, FactorRequest, FactorSummary, GeneGraphOperator,
    GeneOperatorInput, InputSpec, KlStep, RegularizedScale, RegularizedSolver, RunConfig,
};

/// The solver (X_i cells × genes, W and V_i genes × K, H_i cells × K).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Plain NMF, Lee–Seung MU: ‖X − HWᵀ‖² (datasets concatenated) [§5]
    NmfMu,
    /// Plain NMF, Lee–Seung MU: D(X‖HWᵀ) = Σ x ln(x/y) − x + y (datasets concatenated) [§5]
    NmfKl,
    /// iNMF by ANLS/BPP: Σ_i ‖X_i − H_i(W+V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖² [§4.1]
    InmfAnls,
    /// iNMF by HALS: same objective as inmf-anls [§4.2]
    InmfHals,
    /// iNMF by multiplicative updates: same objective as inmf-anls [§4.3]
    InmfMu,
    /// iNMF + γ Σ_{i<j} ‖H_i − H_j‖², paired datasets (same cells) [§4.4]
    InmfMuCoupled,
    /// KL iNMF: Σ_i D(X_i‖H_i(W+V_i)ᵀ) + λ Σ_i ‖H_iV_iᵀ‖² [§4.5]
    InmfKl,
    /// KL iNMF + γ D(H_1‖H_2), two paired datasets [§4.6]
    InmfKlCoupled,
    /// ‖X − (KU)Wᵀ‖² + α Σ U, K = (I + βL)⁻¹, L of a cell graph; H = KU [§6]
    DiffusionNmf,
    /// ‖X − HWᵀ‖² + λ‖MW‖², M a gene operator (datasets concatenated) [§7]
    RegularizedNmf,
}

impl From<Method> for FactorMethod {
    fn from(m: Method) -> Self {
        match m {
            Method::NmfMu => FactorMethod::NmfMu,
            Method::NmfKl => FactorMethod::NmfKl,
            Method::InmfAnls => FactorMethod::InmfAnls,
            Method::InmfHals => FactorMethod::InmfHals,
            Method::InmfMu => FactorMethod::InmfMu,
            Method::InmfMuCoupled => FactorMethod::InmfMuCoupled,
            Method::InmfKl => FactorMethod::InmfKl,
            Method::InmfKlCoupled => FactorMethod::InmfKlCoupled,
            Method::DiffusionNmf => FactorMethod::DiffusionNmf,
            Method::RegularizedNmf => FactorMethod::RegularizedNmf,
        }
    }
}

/// The λ step of the KL solvers.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KlStepArg {
    /// Majorize–minimize: r = 2a/(b + √(b² + 8λaP)); F never increases
    Mm,
    /// The seed's formula r = a/(b + 2λP); F may rise when λ > 0
    Linearized,
}

/// The W update of regularized-nmf.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegSolverArg {
    /// Projected gradient, step 1/L, L = ‖HᵀH‖₂ + λ‖MᵀM‖₂
    Pg,
    /// Multiplicative, MᵀM = P − N split by sign
    Mu,
}

/// Scale handling of regularized-nmf.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegScaleArg {
    /// The objective as written: F never increases, but the penalty is mostly met by shrinking W
    Free,
    /// Heuristic: rescale H's columns to unit norm after each H step (the penalty shapes W); F may rise
    UnitH,
}

/// Which matrix of a gene graph is M.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneGraphArg {
    /// The weighted incidence matrix B: λ‖BW‖² = λ Σ_edges w‖W_g − W_h‖²
    Incidence,
    /// The Laplacian L = D − A: λ‖LW‖²
    Laplacian,
}

/// The long help of `inmf factor` (every method with its objective).
pub const LONG_ABOUT: &str = "\
Factorize datasets with a batch solver (docs/algorithms.md §4–7).

Same inputs and preprocessing as `inmf run` (normalize, selectGenes,
scaleNotCenter), but batch solvers are in-memory by nature: every
preprocessed dataset is read whole (sparse) and all factors live in memory,
so this is for data that fit in RAM; use `inmf run` for atlases. Writes
OUT/result.h5ad like `inmf run` (obsm['X_inmf'] = H, obs['dataset'],
varm['W'], varm['V_<dataset>'] for iNMF methods, uns['inmf'] with the
method, parameters and the objective and its parts per iteration), so
`inmf analyze OUT` works on it. No model.h5 is written.

Notation: X_i cells × genes (preprocessed), W and V_i genes × K, H_i cells
× K, D(A‖B) = Σ a ln(a/b) − a + b. Every solver stops when the relative
change of F falls below --tol or after --max-iter iterations, and reports F
and its parts (residual, penalty, coupling) after each iteration.

Methods and objectives:
  nmf-mu           ‖X − HWᵀ‖², datasets concatenated; Lee–Seung MU (§5).
                   Defaults: 200 iterations, tol 1e-4.
  nmf-kl           D(X‖HWᵀ), datasets concatenated; Lee–Seung MU (§5).
  inmf-anls        Σ_i ‖X_i − H_i(W+V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖²; exact block
                   NNLS (BPP) for H_i, V_i, W (§4.1). Defaults: λ 5, 30
                   iterations, tol 1e-6.
  inmf-hals        same objective; column-wise HALS (§4.2). 200 its, 1e-6.
  inmf-mu          same objective; multiplicative updates (§4.3). 200, 1e-4.
  inmf-mu-coupled  + γ Σ_{i<j} ‖H_i − H_j‖² for paired datasets (the same
                   cells in every input, in the same order) (§4.4).
  inmf-kl          Σ_i D(X_i‖H_i(W+V_i)ᵀ) + λ Σ_i ‖H_iV_iᵀ‖² (§4.5).
  inmf-kl-coupled  + γ D(H_1‖H_2), exactly two paired datasets (§4.6); F
                   decreases overall, not necessarily every iteration.
  diffusion-nmf    ‖X − (KU)Wᵀ‖² + α Σ U with K = (I + βL)⁻¹, L the
                   Laplacian of a cell graph (--graph or --graph-h5);
                   H = KU is written as X_inmf, the initiators U as
                   obsm['X_initiators']. K is never formed (conjugate
                   gradients on I + βL). Datasets concatenated (§6).
                   Defaults: β 1, α 0, 200 iterations, tol 1e-5 (F falls
                   slowly at first).
  regularized-nmf  ‖X − HWᵀ‖² + λ‖MW‖² with M = identity (default), a gene
                   graph (--gene-graph) or a matrix (--reg-matrix); datasets
                   concatenated; projected gradient or MU for W (§7).
                   Defaults: λ 1, 200 iterations, tol 1e-4. λ‖MW‖² alone is
                   met by shrinking W and growing H (the objective is not
                   scale-invariant); --reg-scale unit-h is a heuristic that
                   keeps H's columns at unit norm instead.";

/// Factorize datasets with a batch solver: NMF (Frobenius, KL), iNMF (ANLS,
/// HALS, MU, KL, γ-coupled), diffusion-kernel NMF, ‖MW‖-regularized NMF.
#[derive(Args, Debug)]
pub struct FactorArgs {
    /// The solver (see the list of methods above).
    #[arg(long, value_enum)]
    pub method: Method,
    /// Input datasets (as for `inmf run`), optionally named as NAME=PATH.
    #[arg(required = true, value_name = "[NAME=]PATH")]
    pub inputs: Vec<InputSpec>,
    /// Output directory (created if missing).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// K, the number of factors.
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Iteration budget [default: the method's].
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < TOL [default: the method's].
    #[arg(long)]
    pub tol: Option<f64>,
    /// Seed of the initialisation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// λ: the iNMF penalty λ‖H_iV_iᵀ‖² [default: 5] or regularized-nmf's λ‖MW‖² [default: 1].
    #[arg(long)]
    pub lambda: Option<f64>,
    /// γ, weight of the coupling of the *-coupled methods.
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f64,
    /// How the KL solvers treat the λ term.
    #[arg(long, value_enum, default_value = "mm")]
    pub kl_step: KlStepArg,
    /// diffusion-nmf: edge list of the cell graph, `i<TAB>j[<TAB>weight]`,
    /// 0-based rows of the input files concatenated in input order.
    #[arg(long, value_name = "FILE", conflicts_with = "graph_h5")]
    pub graph: Option<PathBuf>,
    /// diffusion-nmf: a CSR adjacency in HDF5 (GROUP/{data,indices,indptr};
    /// default GROUP obsp/connectivities), over the same cell numbering.
    #[arg(long, value_name = "FILE[:GROUP]")]
    pub graph_h5: Option<String>,
    /// diffusion-nmf: β > 0, the extent of diffusion.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// diffusion-nmf: α ≥ 0, sparsity weight α‖U‖₁ on the initiators (W then keeps unit columns).
    #[arg(long, default_value_t = 0.0)]
    pub alpha: f64,
    /// diffusion-nmf: relative residual of each conjugate-gradient solve.
    #[arg(long, default_value_t = 1e-10)]
    pub cg_tol: f64,
    /// regularized-nmf: gene graph, `gene<TAB>gene[<TAB>weight]` by gene name.
    #[arg(long, value_name = "FILE", conflicts_with = "reg_matrix")]
    pub gene_graph: Option<PathBuf>,
    /// regularized-nmf: which matrix of --gene-graph is M.
    #[arg(long, value_enum, default_value = "incidence")]
    pub gene_graph_operator: GeneGraphArg,
    /// regularized-nmf: M as text, a header line of gene names then one row per line.
    #[arg(long, value_name = "FILE")]
    pub reg_matrix: Option<PathBuf>,
    /// regularized-nmf: the W update.
    #[arg(long, value_enum, default_value = "pg")]
    pub reg_solver: RegSolverArg,
    /// regularized-nmf: scale handling (λ‖MW‖² alone is defeated by W → W/c, H → cH).
    #[arg(long, value_enum, default_value = "free")]
    pub reg_scale: RegScaleArg,
    /// Keep only the top N variable genes per dataset (0 = all that pass selectGenes).
    #[arg(long, conflicts_with = "genes")]
    pub n_genes: Option<usize>,
    /// Use the genes listed in FILE (one per line) instead of selecting them.
    #[arg(long, value_name = "FILE")]
    pub genes: Option<PathBuf>,
    /// TOML configuration (its `[preprocess]` and `[runtime]` sections are used).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Worker threads; 0 = one per core [default: 0].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Matrix to read from .h5ad files: X, raw (raw/X) or layer:NAME [default: X].
    #[arg(long, value_name = "X|raw|layer:NAME")]
    pub matrix: Option<String>,
    /// No progress messages or summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout (for scripts).
    #[arg(long)]
    pub json: bool,
}

impl FactorArgs {
    fn request(self) -> anyhow::Result<FactorRequest> {
        let mut config = match &self.config {
            Some(p) => RunConfig::from_file(p)?,
            None => RunConfig::default(),
        };
        if let Some(t) = self.threads {
            config.runtime.threads = t;
        }
        if let Some(m) = self.matrix {
            config.preprocess.matrix = m;
        }
        if let Some(n) = self.n_genes {
            config.preprocess.n_genes = n;
        }
        if self.genes.is_some() {
            config.preprocess.genes_file = self.genes;
        }
        let cell_graph = match (self.graph, self.graph_h5) {
            (Some(p), _) => Some(CellGraphInput::EdgeList(p)),
            (None, Some(spec)) => {
                let (path, group) = match spec.rsplit_once(':') {
                    Some((p, g)) if !p.is_empty() && !g.is_empty() => (p.to_string(), g.to_string()),
                    _ => (spec.clone(), "obsp/connectivities".to_string()),
                };
                Some(CellGraphInput::Hdf5 {
                    path: PathBuf::from(path),
                    group,
                })
            }
            (None, None) => None,
        };
        let gene_operator = match (self.gene_graph, self.reg_matrix) {
            (Some(path), _) => GeneOperatorInput::GeneGraph {
                path,
                operator: match self.gene_graph_operator {
                    GeneGraphArg::Incidence => GeneGraphOperator::Incidence,
                    GeneGraphArg::Laplacian => GeneGraphOperator::Laplacian,
                },
            },
            (None, Some(path)) => GeneOperatorInput::MatrixFile(path),
            (None, None) => GeneOperatorInput::Identity,
        };
        let options = FactorOptions {
            max_iter: self.max_iter,
            tol: self.tol,
            seed: self.seed,
            lambda: self.lambda,
            gamma: self.gamma,
            kl_step: match self.kl_step {
                KlStepArg::Mm => KlStep::MajorizeMinimize,
                KlStepArg::Linearized => KlStep::Linearized,
            },
            beta: self.beta,
            alpha: self.alpha,
            cg_tol: self.cg_tol,
            cell_graph,
            gene_operator,
            reg_solver: match self.reg_solver {
                RegSolverArg::Pg => RegularizedSolver::ProjectedGradient,
                RegSolverArg::Mu => RegularizedSolver::Multiplicative,
            },
            reg_scale: match self.reg_scale {
                RegScaleArg::UnitH => RegularizedScale::UnitNormH,
                RegScaleArg::Free => RegularizedScale::Free,
            },
            ..FactorOptions::new(self.k)
        };
        Ok(FactorRequest {
            method: self.method.into(),
            inputs: self.inputs,
            out_dir: self.out,
            config,
            options,
            quiet: self.quiet || self.json,
        })
    }
}

fn summary_json(s: &FactorSummary) -> serde_json::Value {
    let [read, solve, write] = s.seconds;
    let o = s.final_objective();
    serde_json::json!({
        "method": s.method.name(),
        "objective_formula": s.method.objective(),
        "cells": s.datasets.iter().map(|d| d.2).sum::<usize>(),
        "per_dataset": s.datasets.iter().map(|(n, total, used)| serde_json::json!({"name": n, "cells_in_file": total, "cells_used": used})).collect::<Vec<_>>(),
        "genes": s.genes,
        "k": s.k,
        "params": s.params.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "iterations": s.iterations,
        "stop": match s.stop { inmf_driver::StopReason::Converged => "converged", inmf_driver::StopReason::MaxIterations => "max_iterations" },
        "iterations_to_rel_change_1e-4": s.iterations_to_1e4,
        "final_objective": {"total": o.total(), "residual": o.residual, "penalty": o.penalty, "coupling": o.coupling},
        "objective_per_iteration": s.objective.iter().map(|p| p.total()).collect::<Vec<_>>(),
        "notes": s.notes,
        "seconds": {"read": read, "solve": solve, "write": write, "total": read + solve + write},
        "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1048576.0),
        "output": s.output,
    })
}

/// Runs `inmf factor`.
pub fn run(args: FactorArgs) -> anyhow::Result<()> {
    let json = args.json;
    let req = args.request()?;
    let quiet = req.quiet;
    let summary = run_factor(&req).with_context(|| format!("inmf factor --method {} failed", req.method))?;
    if json {
        inmf_driver::log::out(&format!("{}\n", summary_json(&summary)));
    } else if !quiet {
        inmf_driver::log::out(&summary.to_string());
    }
    Ok(())
}
