//! Peer-check helper for `scripts/compare-sklearn`: runs `inmf_solvers::nmf_mu`
//! from a given start for a fixed number of iterations and prints the factors.
//!
//! Usage: `nmf_mu_peer fro|kl ITERS EPS X.txt W0.txt H0.txt OUT_W.txt OUT_H.txt`
//! with whitespace-separated dense text matrices, one row per line: X cells ×
//! genes (values exactly representable in f32), W0 genes × K, H0 cells × K.
//! Outputs are written with 17 significant digits.

use std::error::Error;
use std::fs;

use inmf_learner::CsrMatrix;
use inmf_solvers::{nmf_mu, Loss, NmfFactors, NmfMuParams};
use ndarray::Array2;

fn read(path: &str) -> Result<Array2<f64>, Box<dyn Error>> {
    let text = fs::read_to_string(path)?;
    let rows: Vec<Vec<f64>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::parse).collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    let (n, m) = (rows.len(), rows.first().map_or(0, Vec::len));
    Ok(Array2::from_shape_vec((n, m), rows.concat())?)
}

fn write(path: &str, a: &Array2<f64>) -> Result<(), Box<dyn Error>> {
    let mut out = String::new();
    for row in a.rows() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.16e}")).collect();
        out.push_str(&cells.join(" "));
        out.push('\n');
    }
    Ok(fs::write(path, out)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [loss, iters, eps, x, w0, h0, out_w, out_h] = args.as_slice() else {
        return Err("usage: nmf_mu_peer fro|kl ITERS EPS X.txt W0.txt H0.txt OUT_W.txt OUT_H.txt".into());
    };
    let loss = match loss.as_str() {
        "fro" => Loss::Frobenius,
        "kl" => Loss::KullbackLeibler,
        other => return Err(format!("unknown loss {other}").into()),
    };
    let xd = read(x)?;
    let dense: Vec<f32> = xd.iter().map(|&v| v as f32).collect();
    if xd.iter().zip(&dense).any(|(&a, &b)| f64::from(b) != a) {
        return Err("X must hold values exactly representable in f32".into());
    }
    let x = CsrMatrix::from_dense(xd.nrows(), xd.ncols(), &dense);
    let init = NmfFactors {
        w: read(w0)?,
        h: read(h0)?,
    };
    let params = NmfMuParams {
        k: init.w.ncols(),
        loss,
        max_iter: iters.parse()?,
        tol: 0.0,
        eps: eps.parse()?,
        ..NmfMuParams::default()
    };
    let fit = nmf_mu(&x, &params, Some(init))?;
    write(out_w, &fit.factors.w)?;
    write(out_h, &fit.factors.h)?;
    eprintln!(
        "{} iterations, final objective {:.10e}",
        fit.iterations,
        fit.objective.last().map_or(f64::NAN, |o| o.total())
    );
    Ok(())
}
