//! End-to-end tests of the `inmf` binary (ripgrep style: one file of `mod`s).

mod common;
mod r2_bad_input;
mod r2_run;
mod r3_inputs;
mod r4_bound;
mod r5_scenarios;
mod r6_analyze;
mod r7_factor;
mod reliability_cache;
mod reliability_inputs;
mod reliability_outputs;
