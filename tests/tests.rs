//! End-to-end tests of the `inmf` binary (ripgrep style: one file of `mod`s).

mod common;

mod analyze;
mod bad_input;
mod epoch_bound;
mod factor;
mod input_formats;
mod mapping;
mod real_data;
mod reliability_cache;
mod reliability_inputs;
mod reliability_outputs;
mod run;
mod scenarios;
