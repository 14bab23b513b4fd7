//! Column names, the Polars schema and file/directory names of sample files.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::KEY_COLUMNS;
use crate::catalogue::Catalogue;

/// All column names of a sample file for `cat`, in order.
pub fn column_names(cat: &Catalogue) -> Vec<String> {
    let mut v: Vec<String> = KEY_COLUMNS.iter().map(|s| s.to_string()).collect();
    v.extend(cat.feature_names());
    v.extend(cat.host_column_names());
    v
}

/// The Polars schema of a sample file for `cat`.
pub fn schema(cat: &Catalogue) -> Schema {
    let mut fields = vec![
        Field::new("ts_ns".into(), DataType::Int64),
        Field::new("seq".into(), DataType::UInt32),
        Field::new("tenant".into(), DataType::String),
        Field::new("n_neighbours".into(), DataType::UInt32),
        Field::new("dt_s".into(), DataType::Float32),
        Field::new("gap".into(), DataType::Boolean),
        Field::new("collect_us".into(), DataType::UInt32),
        Field::new("lateness_us".into(), DataType::UInt32),
    ];
    for n in cat
        .feature_names()
        .into_iter()
        .chain(cat.host_column_names())
    {
        fields.push(Field::new(n.into(), DataType::Float32));
    }
    Schema::from_iter(fields)
}

/// `seg-<start_ns>-<pid>.parquet`: the daemon's segment name.
pub fn segment_file_name(start_ns: i64, pid: u32) -> String {
    format!("seg-{start_ns}-{pid}.parquet")
}

/// `root/k1=v1/k2=v2/…`; `/` and `=` in values are replaced by `_`.
pub fn hive_dir(root: &Path, partition: &[(String, String)]) -> PathBuf {
    let mut p = root.to_path_buf();
    for (k, v) in partition {
        let v: String = v
            .chars()
            .map(|c| if c == '/' || c == '=' { '_' } else { c })
            .collect();
        p.push(format!("{k}={v}"));
    }
    p
}
