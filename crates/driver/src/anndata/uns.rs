//! Unstructured annotations (`uns`): scalars, strings, small arrays and
//! nested dicts, each with its AnnData encoding.

use hdf5::types::VarLenUnicode;
use hdf5::{Group, H5Type};
use ndarray::ArrayView2;

use super::h5::{encoding, vlen, Ctx};
use crate::DriverError;

/// A value stored under `uns` by
/// [`AnnDataWriter::write_uns`](super::AnnDataWriter::write_uns).
#[derive(Clone, Copy, Debug)]
pub enum UnsValue<'a> {
    /// A float64 "numeric-scalar".
    F64(f64),
    /// An int64 "numeric-scalar".
    I64(i64),
    /// A bool "numeric-scalar" (read back as `numpy.bool_`).
    Bool(bool),
    /// A "string" scalar (variable-length UTF-8).
    Str(&'a str),
    /// A 1-D float64 "array" (e.g. an objective trace).
    F64s(&'a [f64]),
    /// A 1-D int64 "array".
    I64s(&'a [i64]),
    /// A 1-D "string-array".
    Strs(&'a [&'a str]),
    /// A 2-D float64 "array", row-major as given.
    F64Matrix(ArrayView2<'a, f64>),
    /// An empty "dict" group (entries can then be written below it).
    Dict,
}

/// Opens (creating as a dict if missing) each group along `path`.
fn dict_path(ctx: &Ctx, mut g: Group, path: &[&str]) -> Result<Group, DriverError> {
    for part in path {
        g = if g.link_exists(part) {
            ctx.h5(g.group(part), || {
                format!("opening {}/{part} (it must be a dict)", g.name())
            })?
        } else {
            let c = ctx.h5(g.create_group(part), || format!("creating {}/{part}", g.name()))?;
            encoding(ctx, &c, "dict", "0.1.0")?;
            c
        };
    }
    Ok(g)
}

fn scalar<T: H5Type>(ctx: &Ctx, g: &Group, name: &str, v: &T) -> Result<hdf5::Dataset, DriverError> {
    let r = g
        .new_dataset::<T>()
        .shape(())
        .create(name)
        .and_then(|d| d.as_writer().write_scalar(v).map(|_| d));
    ctx.h5(r, || format!("writing {}/{name}", g.name()))
}

fn array<'a, T: H5Type + Clone + 'a>(
    ctx: &Ctx,
    g: &Group,
    name: &str,
    v: impl Into<ndarray::ArrayView<'a, T, ndarray::IxDyn>>,
) -> Result<hdf5::Dataset, DriverError> {
    let v = v.into();
    let v = v.as_standard_layout();
    let r = g.new_dataset_builder().with_data(v.view()).create(name);
    ctx.h5(r, || format!("writing {}/{name}", g.name()))
}

/// Writes `value` at the `/`-separated `key` below `uns`.
pub(crate) fn write_uns_value(
    ctx: &Ctx,
    uns: &Group,
    key: &str,
    value: UnsValue<'_>,
) -> Result<(), DriverError> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Err(ctx.invalid(format!(
            "uns key {key:?} is not valid: use names separated by single '/'"
        )));
    }
    let (name, parents) = parts.split_last().expect("split yields at least one part");
    let g = dict_path(ctx, uns.clone(), parents)?;
    if g.link_exists(name) {
        return Err(ctx.invalid(format!("uns/{key} is written twice")));
    }
    let what = format!("uns/{key}");
    let (ds, ty, ver) = match value {
        UnsValue::F64(v) => (scalar(ctx, &g, name, &v)?, "numeric-scalar", "0.2.0"),
        UnsValue::I64(v) => (scalar(ctx, &g, name, &v)?, "numeric-scalar", "0.2.0"),
        UnsValue::Bool(v) => (scalar(ctx, &g, name, &v)?, "numeric-scalar", "0.2.0"),
        UnsValue::Str(s) => (scalar(ctx, &g, name, &vlen(ctx, s, &what)?)?, "string", "0.2.0"),
        UnsValue::F64s(v) => (
            array(ctx, &g, name, ndarray::ArrayView1::from(v).into_dyn())?,
            "array",
            "0.2.0",
        ),
        UnsValue::I64s(v) => (
            array(ctx, &g, name, ndarray::ArrayView1::from(v).into_dyn())?,
            "array",
            "0.2.0",
        ),
        UnsValue::Strs(v) => {
            let v = v
                .iter()
                .map(|s| vlen(ctx, s, &what))
                .collect::<Result<Vec<VarLenUnicode>, _>>()?;
            (
                array(ctx, &g, name, ndarray::ArrayView1::from(&v[..]).into_dyn())?,
                "string-array",
                "0.2.0",
            )
        }
        UnsValue::F64Matrix(m) => (array(ctx, &g, name, m.into_dyn())?, "array", "0.2.0"),
        UnsValue::Dict => {
            dict_path(ctx, g, &[name])?;
            return Ok(());
        }
    };
    encoding(ctx, &ds, ty, ver)
}
