//! Run-time choice between the baseline (SSE2) and AVX2 builds of the hot
//! loops: the sparse products, the BPP block solver and the HALS sweeps.
//!
//! The binary is built for baseline x86-64 so it runs on any such CPU; the
//! hot loops are compiled a second time with AVX2 enabled (`#[target_feature]`)
//! and picked at run time when the CPU has it. Rust never fuses a multiply
//! and an add into an FMA nor reorders floating-point sums on its own, so the
//! two builds perform the same operations in the same order, only on wider
//! registers: results are bit-identical (tested in `kernels`, `nnls` and
//! `hals`).

/// 0 = not detected yet, 1 = AVX2 builds, 2 = baseline builds.
static MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the AVX2 builds run on this CPU (detected once). `INMF_NO_AVX2=1`
/// in the environment forces the baseline builds, to compare them.
#[inline]
pub(crate) fn avx2() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match MODE.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = detect();
            MODE.store(if on { 1 } else { 2 }, Relaxed);
            on
        }
    }
}

/// 0 = not detected yet, 1 = F16C (with AVX2) available, 2 = not.
static HALF_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether the AVX2 + F16C build of the half-precision product
/// (`kernels::half`) runs: [`avx2`] and the CPU converts binary16 (F16C).
#[inline]
pub(crate) fn f16c() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    if !avx2() {
        return false;
    }
    match HALF_MODE.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            #[cfg(target_arch = "x86_64")]
            let on = std::arch::is_x86_feature_detected!("f16c");
            #[cfg(not(target_arch = "x86_64"))]
            let on = false;
            HALF_MODE.store(if on { 1 } else { 2 }, Relaxed);
            on
        }
    }
}

fn detect() -> bool {
    let forced_off = std::env::var_os("INMF_NO_AVX2").is_some_and(|v| !v.is_empty() && v != "0");
    #[cfg(target_arch = "x86_64")]
    {
        !forced_off && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = forced_off;
        false
    }
}

/// Serializes the tests that choose the builds ([`Builds`]).
#[cfg(test)]
static BUILDS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Tests: the right to choose between the baseline and the detected builds,
/// held by one test at a time (a process-wide lock), so a test comparing
/// the two cannot have the choice flipped under it by another; the detected
/// builds are restored on drop. Tests that do not choose may run meanwhile:
/// both builds give the same bits.
#[cfg(test)]
pub(crate) struct Builds {
    _lock: std::sync::MutexGuard<'static, ()>,
}

#[cfg(test)]
impl Builds {
    /// Waits for the right to choose.
    pub(crate) fn take() -> Self {
        Self {
            _lock: BUILDS_LOCK.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Runs the baseline builds (`true`) or the detected ones (`false`)
    /// from now on; returns whether the AVX2 builds now run.
    pub(crate) fn baseline(&self, on: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let avx = !on && detect();
        MODE.store(if avx { 1 } else { 2 }, Relaxed);
        avx2()
    }
}

#[cfg(test)]
impl Drop for Builds {
    fn drop(&mut self) {
        self.baseline(false);
    }
}

/// Calls `$f::<N>` for the first listed constant N equal to `$v` (the
/// inner loops of `$f` then have a compile-time length and vectorize
/// fully), and `$f::<0>` (run-time length) for any other value.
macro_rules! dispatch_const {
    ($v:expr; $($n:literal),+; $f:ident $args:tt) => {
        match $v {
            $( $n => $f::<$n> $args, )+
            _ => $f::<0> $args,
        }
    };
}
pub(crate) use dispatch_const;

/// Defines `$name` from a function body: the body goes into `$imp`
/// (`#[inline(always)]`), compiled once for the baseline and once with AVX2
/// (`$avx`); `$name` calls the AVX2 build when [`avx2`] says so.
macro_rules! avx2_dispatch {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $avx:ident / $imp:ident
        $(< $(const $c:ident : $ct:ty),* >)?
        ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?
        $body:block
    ) => {
        $(#[$meta])*
        // The crate's only unsafe: calling the AVX2 build once the CPU is known to have it.
        #[allow(unsafe_code)]
        $vis fn $name $(< $(const $c: $ct),* >)? ( $($arg: $ty),* ) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::kernels::simd::avx2() {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { $avx $(::< $($c),* >)? ( $($arg),* ) };
            }
            $imp $(::< $($c),* >)? ( $($arg),* )
        }

        /// The AVX2 build of the function above (same operations, wider registers).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx $(< $(const $c: $ct),* >)? ( $($arg: $ty),* ) $(-> $ret)? {
            $imp $(::< $($c),* >)? ( $($arg),* )
        }

        #[inline(always)]
        #[allow(non_snake_case)]
        fn $imp $(< $(const $c: $ct),* >)? ( $($arg: $ty),* ) $(-> $ret)? $body
    };
}
pub(crate) use avx2_dispatch;

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::testutil::random_sparse;
    use crate::{initial_model, run_plan, InMemorySource, MiniBatchPlan, OnlineParams};

    /// A short online run (sparse products, BPP, HALS) gives the same bits
    /// with the baseline and the AVX2 builds of the hot loops.
    #[test]
    fn avx2_and_baseline_builds_give_identical_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let data: Vec<_> = (0..2).map(|_| random_sparse(900, 60, 0.2, &mut rng)).collect();
        let params = OnlineParams {
            k: 20,
            lambda: 5.0,
            batch_size: 300,
            epochs: 2,
            shuffle_block: 100,
            hals_sweeps: 1,
            seed: 3,
        };
        let builds = Builds::take();
        let run = |baseline: bool| {
            let avx = builds.baseline(baseline);
            assert_eq!(avx, !baseline && detect(), "the chosen builds run");
            let mut src = InMemorySource::new(data.clone());
            let mut model = initial_model(&mut src, &params).unwrap();
            let sizes: Vec<(usize, usize)> = (0..2).map(|d| (d, 900)).collect();
            let plan = MiniBatchPlan::new(&sizes, 300, 100, 2, 3).unwrap();
            run_plan(&mut model, &mut src, &plan, 1, |_, _| {}).unwrap();
            let (h, _) = model.solve_h(1, src.dataset(1)).unwrap();
            (model.w, h)
        };
        let (w0, h0) = run(true);
        let (w1, h1) = run(false);
        drop(builds);
        assert!(
            w0.iter().zip(&w1).all(|(a, b)| a.to_bits() == b.to_bits()),
            "W differs"
        );
        assert!(
            h0.iter().zip(&h1).all(|(a, b)| a.to_bits() == b.to_bits()),
            "H differs"
        );
        assert!(w0.iter().any(|&v| v > 1e-3), "the run learned something");
    }
}
