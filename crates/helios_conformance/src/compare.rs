//! Max-abs and relative-L2 comparison of a port tensor against a golden tensor.

use std::fmt;

use burn::tensor::TensorData;

use crate::case::Tolerance;

/// One compared tensor.
#[derive(Debug, Clone)]
pub struct CheckLine {
    /// Case name.
    pub case: String,
    /// Tensor (or check) name.
    pub tensor: String,
    /// max |port - golden|.
    pub max_abs: f64,
    /// ||port - golden||_2 / ||golden||_2.
    pub rel_l2: f64,
    /// Allowed max-abs.
    pub tol_max_abs: f64,
    /// Allowed rel-L2.
    pub tol_rel_l2: f64,
    /// Both within tolerance (and shapes equal, values finite).
    pub ok: bool,
    /// Why it failed beyond the numbers (shape mismatch, NaN).
    pub note: Option<String>,
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<26} {:<34} max_abs={:.3e} (tol {:.0e})  rel_l2={:.3e} (tol {:.0e})  {}",
            self.case,
            self.tensor,
            self.max_abs,
            self.tol_max_abs,
            self.rel_l2,
            self.tol_rel_l2,
            if self.ok { "OK" } else { "FAIL" }
        )?;
        if let Some(n) = &self.note {
            write!(f, "  ({n})")?;
        }
        Ok(())
    }
}

/// The values as f32, whatever the stored dtype.
fn to_f32(data: &TensorData) -> Vec<f32> {
    data.iter::<f32>().collect()
}

/// Compares `port` with `golden` at `tol`.
pub fn compare(
    case: &str,
    tensor: &str,
    port: &TensorData,
    golden: &TensorData,
    tol: &Tolerance,
) -> CheckLine {
    let mut line = CheckLine {
        case: case.to_string(),
        tensor: tensor.to_string(),
        max_abs: f64::INFINITY,
        rel_l2: f64::INFINITY,
        tol_max_abs: tol.max_abs,
        tol_rel_l2: tol.rel_l2,
        ok: false,
        note: None,
    };
    if port.shape != golden.shape {
        line.note = Some(format!(
            "shape {:?} vs golden {:?}",
            port.shape, golden.shape
        ));
        return line;
    }
    let (a, b) = (to_f32(port), to_f32(golden));
    if a.len() != b.len() || a.is_empty() {
        line.note = Some(format!("{} values vs golden {}", a.len(), b.len()));
        return line;
    }
    let (mut max_abs, mut diff2, mut ref2) = (0f64, 0f64, 0f64);
    let mut finite = true;
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (*x as f64, *y as f64);
        if !x.is_finite() {
            finite = false;
        }
        let d = (x - y).abs();
        max_abs = max_abs.max(d);
        diff2 += d * d;
        ref2 += y * y;
    }
    line.max_abs = max_abs;
    line.rel_l2 = if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else {
        diff2.sqrt()
    };
    if !finite {
        line.note = Some("non-finite values".into());
        line.max_abs = f64::INFINITY;
    }
    line.ok = finite && line.max_abs <= tol.max_abs && line.rel_l2 <= tol.rel_l2;
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol() -> Tolerance {
        Tolerance {
            what: "t".into(),
            tensors: vec![],
            max_abs: 1e-3,
            rel_l2: 1e-3,
        }
    }

    #[test]
    fn equal_tensors_pass_and_far_ones_fail() {
        let g = TensorData::new(vec![1.0f32, 2.0, 3.0], [3]);
        assert!(compare("c", "t", &g, &g, &tol()).ok);
        let p = TensorData::new(vec![1.0f32, 2.0, 3.1], [3]);
        let line = compare("c", "t", &p, &g, &tol());
        assert!(!line.ok);
        assert!((line.max_abs - 0.1).abs() < 1e-6);
    }

    #[test]
    fn shape_mismatch_and_nan_fail() {
        let g = TensorData::new(vec![1.0f32, 2.0], [2]);
        let p = TensorData::new(vec![1.0f32, 2.0], [1, 2]);
        assert!(!compare("c", "t", &p, &g, &tol()).ok);
        let p = TensorData::new(vec![f32::NAN, 2.0], [2]);
        assert!(!compare("c", "t", &p, &g, &tol()).ok);
        let empty = TensorData::new(Vec::<f32>::new(), [0]);
        assert!(!compare("c", "t", &empty, &empty, &tol()).ok);
    }

    #[test]
    fn other_dtypes_are_compared_as_f32() {
        let g = TensorData::new(vec![1.0f32, 2.0], [2]);
        let p = TensorData::new(vec![1.0f64, 2.0], [2]);
        assert!(compare("c", "t", &p, &g, &tol()).ok);
        let p = TensorData::new(vec![1.0f64, 2.5], [2]);
        assert!(!compare("c", "t", &p, &g, &tol()).ok);
    }
}
