import Foundation

/// Dense symmetric linear algebra in Double, row-major `n x n`, for the statistics around training
/// (noise covariances, FID): small matrices, where exact, thread-independent results matter more than
/// speed. Every routine is deterministic.
public enum Linalg {
    public struct NotPositiveDefinite: Error, CustomStringConvertible {
        public let row: Int
        public let pivot: Double
        public var description: String { "the matrix is not positive definite (pivot \(pivot) at row \(row))" }
    }

    /// The lower Cholesky factor L with A = L L^T.
    public static func cholesky(_ a: [Double], n: Int) throws(NotPositiveDefinite) -> [Double] {
        precondition(a.count == n * n, "cholesky: \(a.count) values for \(n) x \(n)")
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0, s.isFinite else { throw NotPositiveDefinite(row: i, pivot: s) }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        return l
    }

    /// Eigenvalues and eigenvectors (columns of `vectors`, row-major) of a symmetric matrix by cyclic
    /// Jacobi rotations; eigenvalues in descending order.
    public static func symmetricEigen(_ a: [Double], n: Int, sweeps: Int = 64) -> (values: [Double], vectors: [Double])
    {
        precondition(a.count == n * n, "symmetricEigen: \(a.count) values for \(n) x \(n)")
        var m = a
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let scale = max(1e-300, a.reduce(0) { $0 + $1 * $1 }.squareRoot())
        for _ in 0..<sweeps {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<max(p + 1, n) { off += m[p * n + q] * m[p * n + q] } }
            if off.squareRoot() <= 1e-15 * scale { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) where m[p * n + q] != 0 {
                    let theta = (m[q * n + q] - m[p * n + p]) / (2 * m[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    for k in 0..<n {  // columns p, q
                        let mkp = m[k * n + p]
                        let mkq = m[k * n + q]
                        m[k * n + p] = c * mkp - s * mkq
                        m[k * n + q] = s * mkp + c * mkq
                    }
                    for k in 0..<n {  // rows p, q
                        let mpk = m[p * n + k]
                        let mqk = m[q * n + k]
                        m[p * n + k] = c * mpk - s * mqk
                        m[q * n + k] = s * mpk + c * mqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p]
                        let vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        let order = (0..<n).sorted { m[$0 * n + $0] > m[$1 * n + $1] || (m[$0 * n + $0] == m[$1 * n + $1] && $0 < $1) }
        var vectors = [Double](repeating: 0, count: n * n)
        for (j, src) in order.enumerated() { for k in 0..<n { vectors[k * n + j] = v[k * n + src] } }
        return (order.map { m[$0 * n + $0] }, vectors)
    }

    /// C = A B for row-major square matrices.
    public static func multiply(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for k in 0..<n {
                let aik = a[i * n + k]
                if aik == 0 { continue }
                for j in 0..<n { c[i * n + j] += aik * b[k * n + j] }
            }
        }
        return c
    }

    /// The PSD square root V sqrt(max(w, 0)) V^T of a symmetric matrix.
    public static func symmetricSqrt(_ a: [Double], n: Int) -> [Double] {
        let (w, v) = symmetricEigen(a, n: n)
        var out = [Double](repeating: 0, count: n * n)
        for k in 0..<n {
            let r = max(0, w[k]).squareRoot()
            if r == 0 { continue }
            for i in 0..<n { for j in 0..<n { out[i * n + j] += v[i * n + k] * r * v[j * n + k] } }
        }
        return out
    }

    /// Mean (d) and sample covariance (d x d) of `rows` vectors of length `d`, in Double.
    public static func meanAndCovariance(_ x: [Float], rows: Int, d: Int) -> (mean: [Double], covariance: [Double]) {
        precondition(x.count == rows * d && rows > 1, "meanAndCovariance: need at least two rows of \(d)")
        var mean = [Double](repeating: 0, count: d)
        for r in 0..<rows { for j in 0..<d { mean[j] += Double(x[r * d + j]) } }
        for j in 0..<d { mean[j] /= Double(rows) }
        var cov = [Double](repeating: 0, count: d * d)
        var centred = [Double](repeating: 0, count: d)
        for r in 0..<rows {
            for j in 0..<d { centred[j] = Double(x[r * d + j]) - mean[j] }
            for i in 0..<d {
                let ci = centred[i]
                if ci == 0 { continue }
                for j in i..<d { cov[i * d + j] += ci * centred[j] }
            }
        }
        for i in 0..<d {
            for j in i..<d {
                cov[i * d + j] /= Double(rows - 1)
                cov[j * d + i] = cov[i * d + j]
            }
        }
        return (mean, cov)
    }
}
