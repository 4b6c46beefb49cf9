//! An online iteration reuses its workspaces: after the first steps, a
//! step allocates no buffer that grows with the genes or the cells of its
//! mini-batches (those are kept between steps, in pools and per-thread
//! scratch). What remains are small temporaries of fixed size (K × K
//! matrices, the packing buffers of the dense products of one gene
//! block), which the allocator serves from its free lists without new pages.
//!
//! The sizes come from a recording global allocator, so this file holds a
//! single test (nothing else allocates while it measures).

#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use inmf_learner::{CsrMatrix, IterationInfo, MiniBatch, OnlineInmf};
use ndarray::Array2;

struct Counting;

/// Bytes allocated since the start.
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// The largest single allocation since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn record(size: usize) {
    BYTES.fetch_add(size, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Deterministic values in [0, 1).
fn uniform(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

fn cells(state: &mut u64, n: usize, genes: usize) -> CsrMatrix {
    let dense: Vec<f32> = (0..n * genes)
        .map(|_| {
            let u = uniform(state);
            if u < 0.1 {
                (u * 30.0) as f32
            } else {
                0.0
            }
        })
        .collect();
    CsrMatrix::from_dense(n, genes, &dense)
}

/// Bytes allocated by step `t = 10` of a 2-dataset model after three
/// warm-up steps on the same batches, and the largest single allocation.
fn allocated_by_a_step(genes: usize, cells_per_dataset: usize) -> (usize, usize) {
    let k = 12;
    let mut state = 7;
    let w = Array2::from_shape_fn((genes, k), |_| uniform(&mut state));
    let vs = (0..2)
        .map(|_| Array2::from_shape_fn((genes, k), |_| 0.3 * uniform(&mut state)))
        .collect();
    let mut model = OnlineInmf::new(w, vs, 5.0).unwrap();
    let batches: Vec<MiniBatch> = (0..2)
        .map(|d| MiniBatch {
            dataset: d,
            cells: std::iter::once(0..cells_per_dataset).collect(),
            x: cells(&mut state, cells_per_dataset, genes),
        })
        .collect();
    let info = |t| IterationInfo {
        t,
        epoch: 0,
        new_epoch: false,
    };
    for t in 1..=3 {
        model.step(info(t), &batches, 1).unwrap();
    }
    let before = BYTES.load(Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    model.step(info(10), &batches, 1).unwrap();
    (
        BYTES.load(Ordering::Relaxed) - before,
        LARGEST.load(Ordering::Relaxed),
    )
}

#[test]
fn a_step_allocates_no_buffer_that_grows_with_genes_or_cells() {
    let (small_total, small_largest) = allocated_by_a_step(600, 1_000);
    let (large_total, large_largest) = allocated_by_a_step(4_800, 8_000);
    eprintln!(
        "one step allocates {small_total} bytes, at most {small_largest} at once (600 genes, 2 × 1000 cells); \
         {large_total} bytes, at most {large_largest} at once (4800 genes, 2 × 8000 cells)"
    );
    // The smallest buffer of the step's data at the large size (W+V_i in
    // f32: 4800 × 16 × 4 bytes) is 300 KiB; fixed-size temporaries stay
    // far below 64 KiB.
    assert!(
        large_largest < 64 << 10,
        "a step allocates a buffer of {large_largest} bytes: a workspace is not reused"
    );
    assert!(
        large_largest <= small_largest.max(32 << 10),
        "the largest allocation grows with the data: {small_largest} → {large_largest} bytes"
    );
}
