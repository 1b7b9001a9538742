import CBLAS
import CShims
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

    /// Eigenvalues (ascending) and, with `vectors`, the eigenvectors (columns, row-major) of a
    /// symmetric matrix by LAPACK's divide and conquer (`dsyevd`), run on one thread so the bits do not
    /// depend on the thread count. For the statistics that need thousands of decompositions (bootstrap
    /// FID); `symmetricEigen` stays the reference.
    public static func symmetricEigenLAPACK(_ a: [Double], n: Int, vectors: Bool) -> (
        values: [Double], vectors: [Double]
    ) {
        precondition(a.count == n * n, "symmetricEigenLAPACK: \(a.count) values for \(n) x \(n)")
        var m = a  // symmetric: row- and column-major agree
        var w = [Double](repeating: 0, count: n)
        var nn = Int32(n)
        var lda = Int32(max(1, n))
        var info: Int32 = 0
        var lwork: Int32 = -1
        var liwork: Int32 = -1
        var workQuery = 0.0
        var iworkQuery: Int32 = 0
        let job: CChar = vectors ? 0x56 : 0x4E  // "V" : "N"
        var jobz = job
        var uplo: CChar = 0x55  // "U"
        lethe_serial_blas_enter()
        defer { lethe_serial_blas_leave() }
        dsyevd_(&jobz, &uplo, &nn, &m, &lda, &w, &workQuery, &lwork, &iworkQuery, &liwork, &info, 1, 1)
        lwork = Int32(workQuery)
        liwork = iworkQuery
        var work = [Double](repeating: 0, count: Int(max(1, lwork)))
        var iwork = [Int32](repeating: 0, count: Int(max(1, liwork)))
        BLAS.call {
            dsyevd_(&jobz, &uplo, &nn, &m, &lda, &w, &work, &lwork, &iwork, &liwork, &info, 1, 1)
        }
        precondition(info == 0, "dsyevd failed (info \(info))")
        if !vectors { return (w, []) }
        // LAPACK returns column-major eigenvectors: column k of the Fortran array is eigenvector k,
        // which as a row-major array is row k; transpose to the row-major "columns" convention.
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for k in 0..<n { v[i * n + k] = m[k * n + i] } }
        return (w, v)
    }

    /// C = A B for row-major n x n matrices through BLAS, on one thread (thread-count independent).
    public static func product(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        lethe_serial_blas_enter()
        defer { lethe_serial_blas_leave() }
        BLAS.call {
            cblas_dgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0,
                &c, Int32(n))
        }
        return c
    }

    /// sum_i w_i x_i x_i^T for rows x_i of `x` (rows x d, Float) with weights w_i >= 0, through BLAS
    /// (ssyrk on the rows scaled by sqrt(w_i); rows of weight 0 skipped), on one thread. Full symmetric
    /// d x d result in Double, row-major. Float products: for bootstrap statistics of features, where
    /// speed matters and 1e-6 relative error does not.
    public static func weightedGram(_ x: [Float], rows: Int, d: Int, weights: [Double]) -> [Double] {
        precondition(x.count == rows * d && weights.count == rows, "weightedGram: shapes")
        let kept = weights.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        var c = [Float](repeating: 0, count: d * d)
        if kept == 0 { return [Double](repeating: 0, count: d * d) }
        var scaled = [Float](repeating: 0, count: kept * d)
        scaled.withUnsafeMutableBufferPointer { out in
            x.withUnsafeBufferPointer { src in
                var k = 0
                for r in 0..<rows where weights[r] > 0 {
                    let s = Float(weights[r].squareRoot())
                    for j in 0..<d { out[k * d + j] = src[r * d + j] * s }
                    k += 1
                }
            }
        }
        lethe_serial_blas_enter()
        defer { lethe_serial_blas_leave() }
        BLAS.call {
            cblas_ssyrk(
                CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(kept), 1, scaled, Int32(d), 0, &c, Int32(d))
        }
        var out = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                out[i * d + j] = Double(c[i * d + j])
                out[j * d + i] = Double(c[i * d + j])
            }
        }
        return out
    }

    /// A B^T for row-major A (ra x d) and B (rb x d): ra x rb, through BLAS (single precision),
    /// split into row blocks over the numeric core's threads, each product on one thread.
    public static func crossProduct(_ a: [Float], rows ra: Int, _ b: [Float], rows rb: Int, d: Int) -> [Float] {
        precondition(a.count == ra * d && b.count == rb * d, "crossProduct: shapes")
        var c = [Float](repeating: 0, count: ra * rb)
        let block = 256
        c.withUnsafeMutableBufferPointer { out in
            let base = UncheckedSendable(out.baseAddress!)
            Parallel.blocksWithSerialBLAS((ra + block - 1) / block) { k in
                let r0 = k * block
                let rows = min(block, ra - r0)
                a.withUnsafeBufferPointer { pa in
                    BLAS.call {
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(rb), Int32(d), 1,
                            pa.baseAddress! + r0 * d, Int32(d), b, Int32(d), 0, base.value + r0 * rb, Int32(rb))
                    }
                }
            }
        }
        return c
    }
}
