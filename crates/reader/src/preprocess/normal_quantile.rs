//! The standard normal quantile function, Wichura's algorithm AS 241
//! (PPND16, Applied Statistics 37(3), 1988): rational approximations
//! accurate to about 1e-16 relative, the method R's `qnorm` uses.

// Coefficients of AS 241 (PPND16), lowest degree first, rounded to f64.
const A: [f64; 8] = [
    3.3871328727963665,
    133.14166789178438,
    1971.5909503065513,
    13731.69376550946,
    45921.95393154987,
    67265.7709270087,
    33430.57558358813,
    2509.0809287301227,
];
const B: [f64; 8] = [
    1.0,
    42.31333070160091,
    687.1870074920579,
    5394.196021424751,
    21213.794301586597,
    39307.89580009271,
    28729.085735721943,
    5226.495278852854,
];
const C: [f64; 8] = [
    1.4234371107496835,
    4.630337846156546,
    5.769497221460691,
    3.6478483247632045,
    1.2704582524523684,
    0.2417807251774506,
    0.022723844989269184,
    0.0007745450142783414,
];
const D: [f64; 8] = [
    1.0,
    2.053191626637759,
    1.6763848301838038,
    0.6897673349851,
    0.14810397642748008,
    0.015198666563616457,
    0.0005475938084995345,
    1.0507500716444169e-09,
];
const E: [f64; 8] = [
    6.657904643501103,
    5.463784911164114,
    1.7848265399172913,
    0.29656057182850487,
    0.026532189526576124,
    0.0012426609473880784,
    2.7115555687434876e-05,
    2.0103343992922881e-07,
];
const F: [f64; 8] = [
    1.0,
    0.599832206555888,
    0.1369298809227358,
    0.014875361290850615,
    0.0007868691311456133,
    1.8463183175100548e-05,
    1.421511758316446e-07,
    2.0442631033899397e-15,
];

/// Σ c_i r^i by Horner's rule.
fn poly(c: &[f64; 8], r: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * r + ci)
}

/// z with Φ(z) = p for the standard normal distribution. Returns −∞ at
/// p = 0, +∞ at p = 1 and NaN outside [0, 1].
pub(crate) fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let x = if r <= 5.0 {
        let r = r - 1.6;
        poly(&C, r) / poly(&D, r)
    } else {
        let r = r - 5.0;
        poly(&E, r) / poly(&F, r)
    };
    if q < 0.0 {
        -x
    } else {
        x
    }
}

/// z_{1−q} = −z_q, computed without forming 1 − q (exact for tiny q).
pub(crate) fn normal_upper_quantile(q: f64) -> f64 {
    -normal_quantile(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1.0)
    }

    #[test]
    fn known_values() {
        // Reference values: R's qnorm / Python's statistics.NormalDist.inv_cdf.
        let cases = [
            (0.975, 1.959963984540054),
            (0.995, 2.5758293035489),
            (0.9, 1.2815515655446008),
            (0.3, -0.5244005127080407),
            (0.02425, -1.9729610513118845),
            (0.075, -1.4395314709384557),
            (0.999999, 4.753424308817089),
            (1.0 - 1e-10, 6.361340889697421),
            (1e-300, -37.0470962993612),
            (0.5, 0.0),
        ];
        for (p, z) in cases {
            assert!(
                close(normal_quantile(p), z),
                "p={p}: {} vs {z}",
                normal_quantile(p)
            );
        }
        // The selectGenes case: alpha 0.99 over 20000 genes.
        assert!((normal_upper_quantile(0.99 / 20000.0 / 2.0) - 4.057975307992637).abs() < 1e-12);
    }

    #[test]
    fn symmetric_and_edges() {
        for p in [0.0625, 0.125, 0.25, 0.375] {
            assert_eq!(normal_quantile(p), -normal_quantile(1.0 - p));
        }
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(normal_quantile(1.5).is_nan());
        assert!(normal_quantile(f64::NAN).is_nan());
    }
}
